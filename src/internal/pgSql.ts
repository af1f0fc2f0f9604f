/**
 * The hand-written SQL of the PostgreSQL backend, compiled once per schema. Identifiers are escaped by the
 * driver's compiler (`PgClient.makeCompiler`); every value is a bind parameter. The statements run through
 * `sql.unsafe(text, params)`, which the driver prepares (named statements) like any other query, so the hot
 * statements are planned once per connection.
 *
 * Why these shapes (see also the README, "How it works"):
 * - claim: one statement takes up to `limit` jobs. Per channel, a range scan of the partial claim index
 *   (`channel, run_at, id` over waiting rows) with `FOR UPDATE SKIP LOCKED`; jobs whose named group is
 *   locked are skipped; one job per named group is kept, and its group lock is taken with an upsert that only
 *   succeeds on an unlocked group (a concurrent claimer of the same group waits for the row, then sees it
 *   locked). The worker's own lease is checked in the same statement, so a worker that was declared dead
 *   cannot claim.
 * - settle: one statement applies a whole batch of outcomes (`unnest` of arrays): finalized jobs move to
 *   `job_finalized` (or vanish when retention is 0), retried/released jobs go back to waiting, and their
 *   group locks are released. Every write is guarded by `worker_id` and `attempts`, so a worker that lost a
 *   job to a rescue cannot touch it.
 * - enqueue: `INSERT ... SELECT ... FROM job_definition`: the definition row supplies channel, attempts and
 *   timeout, and a missing row (never deployed) inserts nothing. No trigger and no NOTIFY in the insert: the
 *   wake-up is sent after commit, coalesced (see pgStore.ts).
 */
import { Statement } from "effect/sql"
import { PgClient } from "@effect/sql-pg"

const compiler = PgClient.makeCompiler()

/** The driver's escaping of a (possibly schema-qualified) identifier. */
export const ident = (name: string): string =>
  compiler.compile(Statement.fragment([Statement.identifier(name)]), true)[0]

/** The PostgreSQL NOTIFY channel of a schema (kept under the 63-byte identifier limit). */
export const notifyChannel = (schema: string): string => `cuckmq_${schema}`.slice(0, 63)

/** Columns returned for a claimed job. */
const claimedColumns = (alias: string) =>
  ["id", "name", "channel", "job_group", "payload", "attempts", "max_attempts", "timeout_secs", "run_at",
    "created_at", "scheduled_for", "trace_id", "span_id"].map((c) => `${alias}.${c}`).join(", ")

export const statements = (schema: string) => {
  const job = ident(`${schema}.job`)
  const finalized = ident(`${schema}.job_finalized`)
  const group = ident(`${schema}.job_group`)
  const definition = ident(`${schema}.job_definition`)
  const worker = ident(`${schema}.worker`)

  /** Moves the rows of CTE `fin` (deleted jobs plus `outcome`, `error`) into job_finalized. */
  const archive = (succeeded: string, error: string) => `
INSERT INTO ${finalized} (id, name, channel, job_group, payload, attempts, max_attempts, succeeded, last_error,
  scheduled_for, created_at)
SELECT id, name, channel, job_group, payload, attempts, max_attempts, ${succeeded}, ${error}, scheduled_for, created_at
FROM fin`

  /**
   * Settle: $2 ids (bigint[]), $3 attempts, $4 outcomes, $5 errors (JSON text or ''), parallel arrays, and
   * $6 / $7 the ids that finalize (Succeeded, Expired) / go back (Retry, Released). The
   * rows are found by primary key (`id = ANY($2)`) and their per-job values looked up in jsonb maps built
   * once. Two planner traps avoided: a join with the unnested arrays lets the planner pick a hash join over the
   * whole table once statistics say it is small (a table scan per batch), and `worker_id = $1` would let it
   * walk the worker index testing `id = ANY($2)` on every row (quadratic); `IS NOT DISTINCT FROM` (equal here,
   * worker_id being set) is not indexable, so the primary key is used.
   */
  const settle = (keep: boolean) => `
WITH m AS (
  SELECT jsonb_object($2::bigint[]::text[], $3::text[]) AS attempt,
    jsonb_object($2::bigint[]::text[], $4::text[]) AS outcome,
    jsonb_object($2::bigint[]::text[], $5::text[]) AS error
),
fin AS (
  DELETE FROM ${job} j USING m
  WHERE j.id = ANY($6::bigint[]) AND j.worker_id IS NOT DISTINCT FROM $1::uuid
    AND j.attempts = (m.attempt->>j.id::text)::int
    AND m.outcome->>j.id::text IN ('Succeeded', 'Expired')
  RETURNING j.*, m.outcome->>j.id::text AS outcome, NULLIF(m.error->>j.id::text, '')::jsonb AS error
),${keep ? `
fin_ins AS (${archive("outcome = 'Succeeded'", "CASE WHEN outcome = 'Expired' THEN error ELSE last_error END")}
),` : ""}
back AS (
  UPDATE ${job} j SET
    worker_id = NULL, claimed_at = NULL, locked_until = NULL,
    attempts = CASE WHEN m.outcome->>j.id::text = 'Released' THEN j.attempts - 1 ELSE j.attempts END,
    run_at = CASE WHEN m.outcome->>j.id::text = 'Retry' THEN now() + make_interval(secs => j.timeout_secs) ELSE j.run_at END,
    last_error = CASE WHEN m.outcome->>j.id::text = 'Retry' THEN NULLIF(m.error->>j.id::text, '')::jsonb ELSE j.last_error END
  FROM m
  WHERE j.id = ANY($7::bigint[]) AND j.worker_id IS NOT DISTINCT FROM $1::uuid
    AND j.attempts = (m.attempt->>j.id::text)::int
    AND m.outcome->>j.id::text IN ('Retry', 'Released')
  RETURNING j.id, j.job_group
),
unlocked AS (
  UPDATE ${group} g SET locked_by_job = NULL, worker_id = NULL, locked_at = NULL
  FROM (SELECT id, job_group FROM fin WHERE job_group IS NOT NULL
        UNION ALL SELECT id, job_group FROM back WHERE job_group IS NOT NULL) x
  WHERE g.name = x.job_group AND g.locked_by_job = x.id AND g.worker_id = $1::uuid
  RETURNING g.name
)
SELECT (SELECT count(*) FROM unlocked)::int AS unlocked`

  return {
    enqueueOne: `
INSERT INTO ${job} (name, channel, job_group, payload, run_at, max_attempts, timeout_secs, trace_id, span_id)
SELECT d.name, d.channel, $2, $3::jsonb, now() + make_interval(secs => $4::float8), d.num_attempts, d.timeout_secs,
  $5, $6
FROM ${definition} d WHERE d.name = $1
RETURNING id, channel`,

    /**
     * One job, claimed in its insert by the local worker $3 when the deployed channel is one of its channels
     * ($6); otherwise inserted waiting. Only used outside a transaction, so the claim commits with the job.
     */
    enqueueClaimed: `
INSERT INTO ${job} AS j (name, channel, payload, max_attempts, timeout_secs, trace_id, span_id,
  worker_id, attempts, claimed_at, locked_until)
SELECT d.name, d.channel, $2::jsonb, d.num_attempts, d.timeout_secs, $4, $5,
  CASE WHEN d.channel = ANY($6::text[]) THEN $3::uuid END,
  CASE WHEN d.channel = ANY($6::text[]) THEN 1 ELSE 0 END,
  CASE WHEN d.channel = ANY($6::text[]) THEN now() END,
  CASE WHEN d.channel = ANY($6::text[]) THEN now() + make_interval(secs => d.timeout_secs) END
FROM ${definition} d WHERE d.name = $1
RETURNING ${claimedColumns("j")}, j.worker_id`,

    /**
     * Many jobs with options: the payloads as one JSON array, delays, groups and trace ids as parallel arrays.
     * One row back.
     */
    enqueueMany: `
WITH ins AS (
  INSERT INTO ${job} (name, channel, job_group, payload, run_at, max_attempts, timeout_secs, trace_id, span_id)
  SELECT d.name, d.channel, NULLIF(i.job_group, ''), i.payload, now() + make_interval(secs => i.delay),
    d.num_attempts, d.timeout_secs, NULLIF(i.trace_id, ''), NULLIF(i.span_id, '')
  FROM ${definition} d,
    ROWS FROM (jsonb_array_elements($2::jsonb), unnest($3::text[]::float8[], $4::text[], $5::text[], $6::text[]))
      WITH ORDINALITY AS i(payload, delay, job_group, trace_id, span_id, ord)
  WHERE d.name = $1
  ORDER BY i.ord
  RETURNING id, channel
)
SELECT array_agg(id ORDER BY id)::text[] AS ids, min(channel) AS channel FROM ins`,

    /** Many jobs that are payloads only (no delay, group or trace), as one JSON array: the common bulk case. */
    enqueuePayloads: `
WITH ins AS (
  INSERT INTO ${job} (name, channel, payload, max_attempts, timeout_secs)
  SELECT d.name, d.channel, i.payload, d.num_attempts, d.timeout_secs
  FROM ${definition} d, jsonb_array_elements($2::jsonb) WITH ORDINALITY AS i(payload, ord)
  WHERE d.name = $1
  ORDER BY i.ord
  RETURNING id, channel
)
SELECT array_agg(id ORDER BY id)::text[] AS ids, min(channel) AS channel FROM ins`,

    deploy: `
INSERT INTO ${definition} AS d (name, channel, num_attempts, timeout_secs, repeat_secs, cron, cron_tz, next_run_at)
VALUES ($1, $2, $3, $4::float8, $5::float8, $6, $7,
  CASE WHEN $5::float8 IS NOT NULL THEN date_trunc('milliseconds', now()) ELSE $8::timestamptz END)
ON CONFLICT (name) DO UPDATE SET
  channel = EXCLUDED.channel, num_attempts = EXCLUDED.num_attempts, timeout_secs = EXCLUDED.timeout_secs,
  repeat_secs = EXCLUDED.repeat_secs, cron = EXCLUDED.cron, cron_tz = EXCLUDED.cron_tz,
  next_run_at = CASE
    WHEN (d.repeat_secs, d.cron, d.cron_tz) IS NOT DISTINCT FROM (EXCLUDED.repeat_secs, EXCLUDED.cron, EXCLUDED.cron_tz)
    THEN d.next_run_at ELSE EXCLUDED.next_run_at END,
  updated_at = now()
WHERE (d.channel, d.num_attempts, d.timeout_secs, d.repeat_secs, d.cron, d.cron_tz)
  IS DISTINCT FROM (EXCLUDED.channel, EXCLUDED.num_attempts, EXCLUDED.timeout_secs, EXCLUDED.repeat_secs,
    EXCLUDED.cron, EXCLUDED.cron_tz)
RETURNING name`,

    /**
     * The claim, in four shapes so that each is planned well once and then reused (prepared, generic plan):
     * one channel (a plain range scan of the claim index) or several (one range per channel, merged), and
     * with or without excluded definition names. Parameters: $1 worker id, $2 channel or channels, $3 limit,
     * $4 excluded names (when present).
     */
    claim: (multiChannel: boolean, exclude: boolean) => {
      const excluded = exclude ? "AND w.name <> ALL($4::text[])" : ""
      const filter = `w.worker_id IS NULL AND w.run_at <= now() ${excluded}
      AND (w.job_group IS NULL OR w.job_group NOT IN (
        SELECT g.name FROM ${group} g WHERE g.locked_by_job IS NOT NULL))`
      const candidates = multiChannel
        ? `
  SELECT j.id, j.job_group, j.run_at
  FROM unnest($2::text[]) AS c(channel)
  CROSS JOIN LATERAL (
    SELECT w.id, w.job_group, w.run_at FROM ${job} w
    WHERE w.channel = c.channel AND ${filter}
    ORDER BY w.run_at, w.id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
  ) j
  WHERE EXISTS (SELECT 1 FROM live)
  ORDER BY j.run_at, j.id
  LIMIT $3`
        : `
  SELECT w.id, w.job_group, w.run_at FROM ${job} w
  WHERE w.channel = $2::text AND ${filter} AND EXISTS (SELECT 1 FROM live)
  ORDER BY w.run_at, w.id
  LIMIT $3
  FOR UPDATE OF w SKIP LOCKED`
      return `
WITH live AS (
  -- The worker's lease must be live. No row lock: should a rescue delete the row while this claim runs, the
  -- claimed jobs belong to a dead worker and are rescued in turn, and the worker does not start them, because
  -- its own deadline (a quarter of the lease earlier) has passed by then.
  SELECT 1 FROM ${worker} WHERE id = $1::uuid AND expires_at > now()
),
cand AS (${candidates}
),
grouped AS (
  SELECT DISTINCT ON (job_group) id, job_group FROM cand WHERE job_group IS NOT NULL
  ORDER BY job_group, run_at, id
),
locked AS (
  INSERT INTO ${group} AS g (name, locked_by_job, worker_id, locked_at)
  SELECT job_group, id, $1::uuid, now() FROM grouped ORDER BY job_group
  ON CONFLICT (name) DO UPDATE SET
    locked_by_job = EXCLUDED.locked_by_job, worker_id = EXCLUDED.worker_id, locked_at = EXCLUDED.locked_at
  WHERE g.locked_by_job IS NULL
  RETURNING g.locked_by_job AS id
),
chosen AS (
  SELECT id FROM cand WHERE job_group IS NULL
  UNION ALL
  SELECT id FROM locked
)
-- "= ANY(ARRAY(...))" rather than a join: always primary-key lookups, never a hash join over the whole table
-- (which the planner picks for a few hundred ids once statistics say the table is small)
UPDATE ${job} j SET worker_id = $1::uuid, attempts = j.attempts + 1, claimed_at = now(),
  locked_until = now() + make_interval(secs => j.timeout_secs)
WHERE j.id = ANY(ARRAY(SELECT id FROM chosen))
RETURNING ${claimedColumns("j")}`
    },

    settleKeep: settle(true),
    settleDrop: settle(false),

    registerWorker: `
INSERT INTO ${worker} (id, name, hostname, pid, channels, expires_at)
VALUES ($1::uuid, $2, $3, $4, $5::text[], now() + make_interval(secs => $6::float8))`,

    heartbeat: `
UPDATE ${worker} SET heartbeat_at = now(), expires_at = now() + make_interval(secs => $2::float8)
WHERE id = $1::uuid AND expires_at > now()
RETURNING id`,

    /** Deregistration releases whatever the worker still holds (attempts refunded) and deletes its row. */
    deregisterWorker: `
WITH back AS (
  UPDATE ${job} j SET worker_id = NULL, claimed_at = NULL, locked_until = NULL, attempts = j.attempts - 1
  WHERE j.worker_id = $1::uuid
  RETURNING j.id
),
unlocked AS (
  UPDATE ${group} g SET locked_by_job = NULL, worker_id = NULL, locked_at = NULL
  WHERE g.worker_id = $1::uuid AND g.locked_by_job IS NOT NULL
  RETURNING g.name
)
DELETE FROM ${worker} WHERE id = $1::uuid`,

    releaseUnowned: `
WITH back AS (
  UPDATE ${job} j SET worker_id = NULL, claimed_at = NULL, locked_until = NULL, attempts = j.attempts - 1
  WHERE j.worker_id = $1::uuid AND j.id <> ALL($2::text[]::bigint[])
  RETURNING j.id, j.job_group
),
unlocked AS (
  UPDATE ${group} g SET locked_by_job = NULL, worker_id = NULL, locked_at = NULL
  FROM back WHERE g.name = back.job_group AND g.locked_by_job = back.id AND g.worker_id = $1::uuid
  RETURNING g.name
)
SELECT (SELECT count(*) FROM back)::int AS released, (SELECT count(*) FROM unlocked)::int AS unlocked`,

    getJob: `
SELECT id, name, channel, job_group, payload,
  CASE WHEN worker_id IS NULL THEN 'waiting' ELSE 'running' END AS state,
  attempts, max_attempts, run_at, last_error, worker_id, created_at, NULL::timestamptz AS finalized_at, scheduled_for
FROM ${job} WHERE id = $1::bigint
UNION ALL
SELECT id, name, channel, job_group, payload, CASE WHEN succeeded THEN 'succeeded' ELSE 'failed' END,
  attempts, max_attempts, NULL, last_error, NULL, created_at, finalized_at, scheduled_for
FROM ${finalized} WHERE id = $1::bigint`,

    /** Due definitions this process knows ($2), locked for the scheduling transaction. */
    dueDefinitions: `
SELECT name, next_run_at, repeat_secs, cron, cron_tz, now() AS db_now
FROM ${definition}
WHERE next_run_at <= now() AND name = ANY($2::text[])
ORDER BY next_run_at
LIMIT $1
FOR UPDATE SKIP LOCKED`,

    /** Due definitions this process does not know (reported, never locked or touched). */
    dueOrphans: `
SELECT name FROM ${definition}
WHERE next_run_at <= now() AND NOT (name = ANY($1::text[]))
ORDER BY next_run_at
LIMIT 100`,

    /** Runs in the scheduling transaction, which holds the definition's row lock. */
    scheduleJob: `
INSERT INTO ${job} (name, channel, payload, run_at, max_attempts, timeout_secs, scheduled_for)
SELECT d.name, d.channel, '{}'::jsonb, now(), d.num_attempts, d.timeout_secs, d.next_run_at
FROM ${definition} d WHERE d.name = $1
RETURNING id, channel, scheduled_for`,

    nextDue: `
SELECT extract(epoch FROM min(next_run_at) - now())::float8 AS secs
FROM ${definition} WHERE next_run_at IS NOT NULL AND name = ANY($1::text[])`,

    advanceDefinition: `
UPDATE ${definition} SET next_run_at = $2::timestamptz WHERE name = $1`,

    deleteFinalized: `
DELETE FROM ${finalized} WHERE id IN (
  SELECT id FROM ${finalized}
  WHERE finalized_at < now() - make_interval(secs => $1::float8)
  ORDER BY finalized_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED
)
RETURNING id, name`,

    deleteGroups: `
DELETE FROM ${group} WHERE name IN (
  SELECT g.name FROM ${group} g
  WHERE g.locked_by_job IS NULL AND NOT EXISTS (SELECT 1 FROM ${job} j WHERE j.job_group = g.name)
  LIMIT $1
  FOR UPDATE SKIP LOCKED
) AND locked_by_job IS NULL
RETURNING name`,

    /**
     * Rescue: workers whose lease expired are locked (skipping any that is heartbeating or claiming right now)
     * and deleted; running jobs of those workers, or of workers whose row is gone, go back to waiting
     * (available once their lease `locked_until` has passed; finalized as failed when no attempt is left).
     * The candidates are read without locks and every write compares the row with what was read
     * (`worker_id`, `attempts`): under READ COMMITTED a lock would recheck the row against this statement's
     * old snapshot, so a job claimed meanwhile by a worker that registered after it must not be taken.
     */
    rescue: (keep: boolean) => `
WITH dead AS (
  SELECT id FROM ${worker} WHERE expires_at <= now() FOR UPDATE SKIP LOCKED
),
dead_deleted AS (
  DELETE FROM ${worker} w USING dead WHERE w.id = dead.id
),
stale AS (
  SELECT j.id, j.worker_id, j.attempts FROM ${job} j
  WHERE j.worker_id IS NOT NULL
    AND (j.worker_id IN (SELECT id FROM dead) OR NOT EXISTS (SELECT 1 FROM ${worker} w WHERE w.id = j.worker_id))
  LIMIT $1
),
fin AS (
  DELETE FROM ${job} j USING stale s
  WHERE j.id = s.id AND j.worker_id = s.worker_id AND j.attempts = s.attempts AND j.attempts >= j.max_attempts
  RETURNING j.*
),${keep ? `
fin_ins AS (${archive("false", "jsonb_build_object('message', 'the worker running this job died')")}
),` : ""}
back AS (
  UPDATE ${job} j SET worker_id = NULL, claimed_at = NULL, run_at = GREATEST(now(), j.locked_until),
    locked_until = NULL, last_error = jsonb_build_object('message', 'the worker running this job died')
  FROM stale s
  WHERE j.id = s.id AND j.worker_id = s.worker_id AND j.attempts = s.attempts AND j.attempts < j.max_attempts
  RETURNING j.id, j.name, s.worker_id
)
SELECT f.id, f.name, f.worker_id, true AS finalized FROM fin f
UNION ALL
SELECT b.id, b.name, b.worker_id, false FROM back b`,

    /** Releases group locks held by no live worker, or past the ceiling ($1 seconds); compare-and-set as above. */
    releaseGroups: `
WITH old AS (
  SELECT g.name, g.locked_by_job, g.worker_id, g.locked_at,
    (g.locked_at < now() - make_interval(secs => $1::float8)) AS past_ceiling
  FROM ${group} g
  WHERE g.locked_by_job IS NOT NULL AND (
    g.locked_at < now() - make_interval(secs => $1::float8)
    OR NOT EXISTS (SELECT 1 FROM ${worker} w WHERE w.id = g.worker_id AND w.expires_at > now()))
  LIMIT $2
)
UPDATE ${group} g SET locked_by_job = NULL, worker_id = NULL, locked_at = NULL
FROM old
WHERE g.name = old.name AND g.locked_by_job = old.locked_by_job AND g.worker_id IS NOT DISTINCT FROM old.worker_id
  AND g.locked_at = old.locked_at
RETURNING old.name, old.locked_by_job, old.past_ceiling`
  }
}

/** The compiled statements of one schema. */
export type Statements = ReturnType<typeof statements>
