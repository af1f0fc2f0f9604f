/**
 * Rescue on PostgreSQL: `rescue_v2` finds dead workers through indexes, takes back their jobs, frees the
 * group slots they held and those held past the ceiling. Every live process calls it every second or so;
 * one call at a time does the work (a transaction-level advisory lock, key 0 of the schema's namespace), at
 * most once per `minIntervalSecs` across all of them, so its cost does not grow with the number of workers.
 *
 * A worker is dead when:
 * - its heartbeat lease expired (index `worker (expires_at)`), or
 * - its process's liveness session is gone: each process holds a session-level advisory lock (its own key
 *   in the schema's namespace) on its LISTEN connection, and a killed process's connections close at once,
 *   which frees the lock. The rescuer tries each live session's key (one `pg_try_advisory_xact_lock` per
 *   process): a free key marks its workers suspected, and a worker still suspected `sessionGraceSecs` later,
 *   its key still free, is dead. The process itself notices a lost session at once (its LISTEN connection
 *   fails) and, unless it takes the same key back within 1.5 s of its last answered ping, stops its jobs inside that grace.
 * - or its row is gone while jobs still name it (a claim that raced the row's deletion): a skip scan of the
 *   worker index finds the distinct holders, one probe each.
 *
 * A dead worker's job whose start was recorded spent that attempt: finalized as failed with none left, else
 * retried once its `timeoutSecs` lease has passed. One whose start was not recorded is claimable again at
 * once, in its place, and its `crashes` count grows (its next worker records its start as soon as it runs),
 * unless that was its `max_attempts + 4`th crash: a job that kills its process before its start can be
 * recorded is finalized as failed then, so that it cannot take workers down forever.
 */
import { Effect } from "effect"
import type { PgClient } from "@effect/sql-pg"
import type * as JobStore from "../../JobStore.js"
import { type Names, type Row, storageError } from "./sql.js"
import { archive } from "./settle.js"

const diedMessage = "jsonb_build_object('message', 'the worker running this job died')"
const crashedMessage = "jsonb_build_object('message', 'the job crashed its workers ' || (crashes + 1) || " +
  "' times before its start could be recorded', 'crashes', crashes + 1)"

/**
 * `rescue_v2(ceiling, limit, ns, grace, keep, min_interval)`: rows of kind 'job' (a job taken back) and
 * 'group' (a slot freed). Part of migration 2: a change is a new migration and a new function name.
 */
export const rescueFunction = (n: Names) => `
CREATE OR REPLACE FUNCTION ${n.fn("rescue_v2")}(
  p_ceiling float8, p_limit integer, p_ns integer, p_grace float8, p_keep boolean, p_min_interval float8)
RETURNS TABLE (kind text, job_id bigint, name text, worker_id uuid, finalized boolean, job_group text, reason text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
  v_dead uuid[];
  v_gone uuid[];
  a_ids bigint[];
  a_names text[];
  a_workers uuid[];
  a_final boolean[];
  a_groups text[];
  a_group_jobs bigint[];
  c_ids bigint[];
  c_groups text[];
  v_groups text[];
  v_counts integer[];
BEGIN
  -- one rescuer at a time, at most once per p_min_interval
  IF NOT pg_try_advisory_xact_lock(p_ns, 0) THEN RETURN; END IF;
  UPDATE ${n.maintenance} SET last_at = now()
  WHERE task = 'rescue' AND last_at <= now() - make_interval(secs => p_min_interval);
  IF NOT FOUND THEN RETURN; END IF;

  -- sessions whose lock is free are suspected; suspected ones whose lock is held again are not any more
  -- (a lock this transaction takes is re-entrant, and released at commit)
  UPDATE ${n.worker} w SET suspected_at = now()
  WHERE w.suspected_at IS NULL AND w.session_key IN (
    SELECT s.k FROM (SELECT DISTINCT x.session_key AS k FROM ${n.worker} x
                     WHERE x.session_key IS NOT NULL AND x.suspected_at IS NULL) s
    WHERE pg_try_advisory_xact_lock(p_ns, s.k));
  UPDATE ${n.worker} w SET suspected_at = NULL
  WHERE w.suspected_at IS NOT NULL AND w.session_key IN (
    SELECT s.k FROM (SELECT DISTINCT x.session_key AS k FROM ${n.worker} x WHERE x.suspected_at IS NOT NULL) s
    WHERE NOT pg_try_advisory_xact_lock(p_ns, s.k));

  SELECT coalesce(array_agg(d.id), '{}') INTO v_dead FROM (
    SELECT x.id FROM ${n.worker} x
    WHERE x.expires_at <= now() OR x.suspected_at <= now() - make_interval(secs => p_grace)
    FOR UPDATE SKIP LOCKED
  ) d;

  WITH RECURSIVE h(holder) AS (
    (SELECT j.worker_id FROM ${n.job} j WHERE j.worker_id IS NOT NULL ORDER BY j.worker_id LIMIT 1)
    UNION ALL
    SELECT (SELECT j.worker_id FROM ${n.job} j WHERE j.worker_id > h.holder ORDER BY j.worker_id LIMIT 1)
    FROM h WHERE h.holder IS NOT NULL
  )
  SELECT coalesce(array_agg(h.holder), '{}') INTO v_gone FROM h
  WHERE h.holder IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${n.worker} x WHERE x.id = h.holder);

  -- the jobs of dead and gone workers
  WITH old AS (
    -- spent: the job is finalized as failed. Its start was recorded with no attempt left, or (never started as
    -- far as anyone knows) this is its max_attempts + 4th crash: it kills its process before its start can be
    -- recorded, and must not take workers down forever.
    SELECT j.id, j.name, j.worker_id, j.started, j.group_slot, j.job_group,
      CASE WHEN j.started THEN j.attempts >= j.max_attempts ELSE j.crashes + 1 >= j.max_attempts + 4 END AS spent
    -- no ORDER BY: with one, the planner may walk the primary key testing every row
    FROM ${n.job} j WHERE j.worker_id = ANY(v_dead || v_gone)
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED
  ),
  fin AS (
    DELETE FROM ${n.job} j USING old
    WHERE j.id = old.id AND old.spent
    RETURNING j.*
  ),
  fin_ins AS (${archive(n, "fin WHERE p_keep", "attempts", "false", `CASE WHEN started THEN ${diedMessage} ELSE ${crashedMessage} END`, "crashes + 1")}
    RETURNING 1
  ),
  back AS (
    UPDATE ${n.job} j SET worker_id = NULL, claimed_at = NULL, group_slot = false,
      started = false, crashes = j.crashes + 1,
      run_at = CASE WHEN old.started THEN GREATEST(statement_timestamp(), j.claimed_at + make_interval(secs => j.timeout_secs)) ELSE j.run_at END,
      sort_at = CASE WHEN old.started THEN GREATEST(statement_timestamp(), j.claimed_at + make_interval(secs => j.timeout_secs)) ELSE j.sort_at END,
      last_error = CASE WHEN old.started THEN ${diedMessage} ELSE j.last_error END
    FROM old
    WHERE j.id = old.id AND NOT old.spent
    RETURNING j.id
  )
  SELECT coalesce(array_agg(old.id ORDER BY old.id), '{}'), coalesce(array_agg(old.name ORDER BY old.id), '{}'),
    coalesce(array_agg(old.worker_id ORDER BY old.id), '{}'),
    coalesce(array_agg(old.spent ORDER BY old.id), '{}'),
    coalesce(array_agg(old.job_group ORDER BY old.id) FILTER (WHERE old.group_slot), '{}'),
    coalesce(array_agg(old.id ORDER BY old.id) FILTER (WHERE old.group_slot), '{}')
  INTO a_ids, a_names, a_workers, a_final, a_groups, a_group_jobs
  FROM old
  WHERE old.id IN (SELECT fin.id FROM fin UNION ALL SELECT back.id FROM back);

  -- slots held past the ceiling: the job stays with its (live) worker, which stops it
  WITH c AS (
    SELECT j.id FROM ${n.job} j
    WHERE j.group_slot AND j.claimed_at < now() - make_interval(secs => p_ceiling)
    ORDER BY j.claimed_at
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED
  ),
  up AS (
    UPDATE ${n.job} j SET group_slot = false FROM c WHERE j.id = c.id AND j.group_slot
    RETURNING j.id, j.job_group
  )
  SELECT coalesce(array_agg(up.id ORDER BY up.id), '{}'), coalesce(array_agg(up.job_group ORDER BY up.id), '{}')
  INTO c_ids, c_groups FROM up;

  SELECT array_agg(g.name ORDER BY g.name), array_agg(g.n ORDER BY g.name) INTO v_groups, v_counts
  FROM (SELECT x.name, count(*)::int AS n FROM unnest(a_groups || c_groups) AS x(name) GROUP BY x.name) g;
  IF v_groups IS NOT NULL THEN
    PERFORM ${n.fn("free_slots_v2")}(v_groups, v_counts);
  END IF;

  -- dead workers with nothing left are gone for good
  DELETE FROM ${n.worker} x WHERE x.id = ANY(v_dead) AND NOT EXISTS (SELECT 1 FROM ${n.job} j WHERE j.worker_id = x.id);

  RETURN QUERY
  SELECT 'job'::text, t.id, t.name, t.worker_id, t.finalized, NULL::text, NULL::text
  FROM unnest(a_ids, a_names, a_workers, a_final) AS t(id, name, worker_id, finalized)
  UNION ALL
  SELECT 'group'::text, t.id, NULL::text, NULL::uuid, NULL::boolean, t.job_group, 'worker-dead'::text
  FROM unnest(a_group_jobs, a_groups) AS t(id, job_group)
  UNION ALL
  SELECT 'group'::text, t.id, NULL::text, NULL::uuid, NULL::boolean, t.job_group, 'ceiling'::text
  FROM unnest(c_ids, c_groups) AS t(id, job_group);
END
$fn$`

/** Calls `rescue_v2`. */
export const rescue = (sql: PgClient.PgClient, n: Names, lockNamespace: number, keepFinalized: boolean) => {
  const text = `SELECT * FROM ${n.fn("rescue_v2")}($1::float8, $2::int, $3::int, $4::float8, $5::boolean, $6::float8)`
  return (o: JobStore.RescueOptions) =>
    sql.unsafe<Row>(text, [o.jobGroupUnlockSecs, o.limit, lockNamespace, o.sessionGraceSecs, keepFinalized, o.minIntervalSecs])
      .pipe(
        Effect.map((rows) => {
          const jobs: Array<JobStore.RescuedJob> = []
          const groups: Array<JobStore.UnlockedGroup> = []
          for (const r of rows) {
            if (r.kind === "job") {
              jobs.push({
                jobId: String(r.job_id),
                definitionName: r.name as string,
                workerId: String(r.worker_id),
                finalized: r.finalized === true
              })
            } else {
              groups.push({
                jobGroup: r.job_group as string,
                jobId: String(r.job_id),
                reason: r.reason === "ceiling" ? "ceiling" : "worker-dead"
              })
            }
          }
          return { jobs, groups }
        }),
        Effect.catchTag("SqlError", storageError("rescue"))
      )
}
