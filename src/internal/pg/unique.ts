/**
 * Unique jobs on PostgreSQL: the statements of an enqueue with unique keys, run in one transaction (the
 * caller's, or the store's own).
 *
 * 1. `take`: inserts a `job_unique` row per key (in key order, so that two enqueuers of overlapping keys
 *    lock them in one order), naming a freshly allocated job id. A key already present is locked instead
 *    (`ON CONFLICT DO UPDATE`, a no-op update) and its current taker returned. An insert of a key by a
 *    transaction not yet committed makes this wait for it: a rolled-back enqueue frees its key, a committed
 *    one is met as a duplicate.
 * 2. `resolve`, for the keys met: a new statement, so its snapshot is taken after the lock was granted and
 *    sees the taker's job as committed. The taker holds the key when its job is in one of the rule's states
 *    (a cancelled job holds none)
 *    (and, with a period, was enqueued less than the period ago; a job gone from both tables counts as
 *    finalized then); otherwise the key passes to the new job in the same statement.
 * 3. `change`, for a held key under `replace` or `debounce` whose job is waiting: updates that job if it is
 *    still waiting (`worker_id IS NULL`, rechecked on the row: a claim may have won it meanwhile; then the
 *    key is resolved again).
 * 4. The jobs that took their keys are inserted with their allocated ids by the enqueue's bulk statement.
 *
 * Nothing else touches `job_unique`: whether a taker still holds its key is read from where its job is, at
 * the next enqueue of the key. The retention sweep deletes rows whose job is gone and whose period ended.
 */
import type { Names } from "./sql.js"

/**
 * $1 definition, $2 keys (distinct, in call order), $3 the period in seconds (NULL: none). One row per key:
 * the taker's job id and whether it is the new one (`taken`). No row at all when the definition is not
 * deployed. Keys are inserted (and so locked) in key order.
 */
export const takeSql = (n: Names) => `
WITH i AS (
  -- ids in call order (nextval runs after the sort), so that the jobs are claimed in call order
  SELECT k.key, nextval(pg_get_serial_sequence('${n.job}', 'id')) AS id
  FROM ${n.definition} d, unnest($2::text[]) WITH ORDINALITY AS k(key, ord)
  WHERE d.name = $1
  ORDER BY k.ord
),
u AS (
  INSERT INTO ${n.unique} AS u (name, key, job_id, created_at, hold_until)
  SELECT $1, i.key, i.id, statement_timestamp(), statement_timestamp() + make_interval(secs => $3::float8)
  FROM i ORDER BY i.key
  ON CONFLICT (name, key) DO UPDATE SET job_id = u.job_id
  RETURNING u.key, u.job_id
)
SELECT u.key, u.job_id::text AS job_id, i.id::text AS new_id, u.job_id = i.id AS taken
FROM u JOIN i ON i.key = u.key`

/**
 * $1 definition, $2 keys met (locked by this transaction), $3 their new job ids, $4 the rule's states, $5 the
 * period in seconds (NULL: none). Per key: the taker's job id, its state and whether it holds the key; a key
 * not held passes to the new id.
 */
export const resolveSql = (n: Names) => `
WITH c AS (
  SELECT u.key, u.job_id, c.new_id, u.created_at,
    CASE WHEN j.id IS NOT NULL THEN CASE WHEN j.worker_id IS NULL THEN 'waiting' ELSE 'running' END
      WHEN f.id IS NOT NULL THEN CASE WHEN f.succeeded THEN 'succeeded' WHEN f.cancelled THEN 'cancelled' ELSE 'failed' END
      ELSE 'gone' END AS state
  FROM unnest($2::text[], $3::bigint[]) AS c(key, new_id)
  JOIN ${n.unique} u ON u.name = $1 AND u.key = c.key
  LEFT JOIN ${n.job} j ON j.id = u.job_id
  LEFT JOIN ${n.finalized} f ON f.id = u.job_id
),
h AS (
  SELECT c.*, ($5::float8 IS NULL OR c.created_at + make_interval(secs => $5::float8) > statement_timestamp())
    AND (c.state = ANY($4::text[])
      OR (c.state = 'gone' AND $5::float8 IS NOT NULL AND $4::text[] && ARRAY['succeeded', 'failed'])) AS held
  FROM c
),
t AS (
  UPDATE ${n.unique} u
  SET job_id = h.new_id, created_at = statement_timestamp(),
    hold_until = statement_timestamp() + make_interval(secs => $5::float8)
  FROM h
  WHERE u.name = $1 AND u.key = h.key AND NOT h.held
  RETURNING u.key
)
SELECT h.key, h.job_id::text AS job_id, h.state, h.held FROM h`

/**
 * $1 job ids, $2 payloads (a JSON array), $3 delays, $4 priorities, $5 time limits ('' for none), $6 replace
 * (true) or debounce (false). Updates the jobs still waiting; returns them.
 */
export const changeSql = (n: Names) => `
UPDATE ${n.job} j
SET run_at = statement_timestamp() + make_interval(secs => x.delay),
  sort_at = statement_timestamp() + make_interval(secs => x.delay),
  payload = CASE WHEN $6::boolean THEN x.payload ELSE j.payload END,
  priority = CASE WHEN $6::boolean THEN x.priority ELSE j.priority END,
  time_limit_secs = CASE WHEN $6::boolean THEN NULLIF(x.time_limit, '')::float8 ELSE j.time_limit_secs END
FROM ROWS FROM (unnest($1::bigint[]), jsonb_array_elements($2::jsonb), unnest($3::float8[]), unnest($4::int[]),
  unnest($5::text[])) AS x(id, payload, delay, priority, time_limit)
WHERE j.id = x.id AND j.worker_id IS NULL
RETURNING j.id::text AS id, j.channel`

/**
 * The retention sweep: deletes up to $1 rows whose job is in neither table and whose period (if any) ended;
 * returns how many. Rows locked by an enqueue are skipped, and so is a row taken over since the statement's
 * snapshot: the locked row must still name the job the snapshot judged gone (`c`, not re-read when the lock
 * re-checks the row), since the re-check would judge the new job, invisible to the snapshot, gone too.
 */
export const sweepSql = (n: Names) => `
WITH d AS (
  DELETE FROM ${n.unique} u
  USING (
    SELECT s.name, s.key FROM ${n.unique} s
    JOIN (
      SELECT c.name, c.key, c.job_id FROM ${n.unique} c
      WHERE (c.hold_until IS NULL OR c.hold_until <= now())
        AND NOT EXISTS (SELECT 1 FROM ${n.job} j WHERE j.id = c.job_id)
        AND NOT EXISTS (SELECT 1 FROM ${n.finalized} f WHERE f.id = c.job_id)
      LIMIT $1
    ) c ON s.name = c.name AND s.key = c.key AND s.job_id = c.job_id
    FOR UPDATE OF s SKIP LOCKED
  ) x
  WHERE u.name = x.name AND u.key = x.key
  RETURNING 1
)
SELECT count(*)::int AS n FROM d`
