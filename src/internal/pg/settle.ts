/**
 * Settling claimed jobs on PostgreSQL: a batch of outcomes (and start marks) in one call of `settle_v4`
 * (migration 7: results, cancellation, finalization notices; on top of migration 5's per-job retry and
 * snooze delays), or, for a batch without a grouped job or a job going back, one plain statement.
 * `settle_v2` (migration 2) and `settle_v3` (migration 5) stay in the schema, unchanged, for workers of
 * previous versions during a rolling deploy; their texts here must never change.
 *
 * Every write is fenced by the claim token: the job must still be claimed by this worker (`worker_id`) under
 * the same claim (`claims`), a counter that only grows, so a worker that lost a job (rescued, then claimed
 * elsewhere) can never touch it, whatever happened in between.
 *
 * Rows are reached by primary key (`id = ANY(...)`) and their per-job values read from jsonb maps built
 * once: a join with the unnested arrays lets the planner choose a hash join over the whole table once
 * statistics say it is small (a table scan per batch), and `worker_id = $1` alone would let it walk the
 * worker index testing each row (quadratic).
 */
import { Effect } from "effect"
import type { PgClient } from "@effect/sql-pg"
import type * as JobStore from "../../JobStore.js"
import { type Names, type Row, storageError } from "./sql.js"

/** The columns of `job_finalized`, in the order `archive` writes them. */
const finalizedColumns = `id, name, channel, job_group, payload, attempts, max_attempts, claims, crashes, succeeded,
  last_error, scheduled_for, created_at`

/**
 * `INSERT INTO job_finalized ... SELECT ... FROM <from>` for deleted job rows; `attempts`, `succeeded` and
 * `error` are SQL expressions over those rows.
 */
export const archive = (
  n: Names,
  from: string,
  attempts: string,
  succeeded: string,
  error: string,
  crashes = "crashes",
  extra = ""
) => `
INSERT INTO ${n.finalized} (${finalizedColumns}${extra})
SELECT id, name, channel, job_group, payload, ${attempts}, max_attempts, claims, ${crashes}, ${succeeded}, ${error},
  scheduled_for, created_at${extra}
FROM ${from}`

/** The batch's per-job values as jsonb maps keyed by job id, from parallel arrays (SQL expressions). */
const mapsSql = (ids: string, claims: string, outcomes: string, errors: string) => `
  SELECT jsonb_object(${ids}, ${claims}) AS claim, jsonb_object(${ids}, ${outcomes}) AS outcome,
    jsonb_object(${ids}, ${errors}) AS error`

/** Row `j` is one of `ids`, still claimed by `worker` under the claim in the map `m` (the fence). */
const fencedSql = (ids: string, worker: string, also = "") =>
  `j.id = ANY(${ids}) AND j.worker_id IS NOT DISTINCT FROM ${worker}${also} AND j.claims = (m.claim->>j.id::text)::int`

/** The SET list of a recorded start. */
const startedSet = "started = true, attempts = j.attempts + 1"

/** What a deleted (finalized) row returns for `archiveFinalized`. */
const finalizedReturning = "RETURNING j.*, m.outcome->>j.id::text AS outcome, NULLIF(m.error->>j.id::text, '')::jsonb AS error"

/** Archives the rows of `from` (deleted with `finalizedReturning`); `extra`: further columns copied as they are. */
const archiveFinalized = (n: Names, from: string, extra = "") =>
  archive(n, from, "attempts + (NOT started)::int", "outcome = 'Succeeded'",
    "CASE WHEN outcome = 'Expired' THEN error ELSE last_error END", "crashes", extra)

/** The SET list of a job going back: retried (after its timeout, an attempt spent if not yet) or released. */
const backSet = `worker_id = NULL, claimed_at = NULL, started = false,
    attempts = CASE WHEN m.outcome->>j.id::text = 'Retry' THEN j.attempts + (NOT j.started)::int
      ELSE j.attempts - j.started::int END,
    run_at = CASE WHEN m.outcome->>j.id::text = 'Retry'
      THEN statement_timestamp() + make_interval(secs => j.timeout_secs) ELSE j.run_at END,
    sort_at = CASE WHEN m.outcome->>j.id::text = 'Retry'
      THEN statement_timestamp() + make_interval(secs => j.timeout_secs) ELSE j.sort_at END,
    last_error = CASE WHEN m.outcome->>j.id::text = 'Retry'
      THEN NULLIF(m.error->>j.id::text, '')::jsonb ELSE j.last_error END`

/** What distinguishes one version of the settle function from another (each a migration's, fixed once shipped). */
interface SettleVersion {
  readonly name: string
  /** The parameter list, as it follows the opening parenthesis. */
  readonly params: string
  /** The outcomes that send a job back (quoted, comma-separated). */
  readonly back: string
  /** The batch's maps (`mapsSql` over the parameters). */
  readonly maps: string
  /** Columns archived as they are beyond `finalizedColumns` (", a, b"). */
  readonly archived: string
  /** The SET list of a job going back. */
  readonly backSet: string
  /** The function that frees group slots. */
  readonly freeSlots: string
}

/**
 * The settle function of a version: the settlements of one batch, parallel arrays with at most one entry per
 * job. Returns how many groups had slots freed (workers are woken when > 0).
 */
const settleFunctionOf = (n: Names, v: SettleVersion) => `
CREATE OR REPLACE FUNCTION ${n.fn(v.name)}(
  ${v.params}
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
  v_start bigint[];
  v_fin bigint[];
  v_back bigint[];
  v_groups text[];
  v_counts integer[];
BEGIN
  SELECT
    coalesce(array_agg(x.id) FILTER (WHERE x.o = 'Started'), '{}'),
    coalesce(array_agg(x.id) FILTER (WHERE x.o IN ('Succeeded', 'Expired')), '{}'),
    coalesce(array_agg(x.id) FILTER (WHERE x.o IN (${v.back})), '{}')
  INTO v_start, v_fin, v_back
  FROM unnest(p_ids, p_outcomes) AS x(id, o);

  WITH m AS (${v.maps}),
  started AS (
    UPDATE ${n.job} j SET ${startedSet}
    FROM m
    WHERE ${fencedSql("v_start", "p_worker")} AND NOT j.started
    RETURNING j.id
  ),
  fin AS (
    DELETE FROM ${n.job} j USING m
    WHERE ${fencedSql("v_fin", "p_worker")}
    ${finalizedReturning}
  ),
  fin_ins AS (${archiveFinalized(n, "fin WHERE p_keep", v.archived)}
    RETURNING 1
  ),
  old AS (
    -- locked first, so that the group slot read is the one the update replaces
    SELECT j.id, j.group_slot, j.job_group FROM ${n.job} j, m
    WHERE ${fencedSql("v_back", "p_worker")}
    FOR UPDATE OF j
  ),
  back AS (
    UPDATE ${n.job} j SET group_slot = false, ${v.backSet}
    FROM m, old
    WHERE j.id = old.id
    RETURNING old.group_slot, old.job_group
  ),
  freed AS (
    SELECT job_group FROM fin WHERE group_slot
    UNION ALL
    SELECT job_group FROM back WHERE group_slot
  )
  SELECT array_agg(f.job_group ORDER BY f.job_group), array_agg(f.n ORDER BY f.job_group)
  INTO v_groups, v_counts
  FROM (SELECT job_group, count(*)::int AS n FROM freed GROUP BY job_group) f;

  IF v_groups IS NOT NULL THEN
    PERFORM ${n.fn(v.freeSlots)}(v_groups, v_counts);
  END IF;
  RETURN coalesce(array_length(v_groups, 1), 0);
END
$fn$`

/**
 * `settle_v2(worker, ids, claims, outcomes, errors, keep)`. Part of migration 2: a change is a new migration
 * and a new function name (its text must not change, so neither may what `settleFunctionOf` makes of this).
 */
export const settleFunction = (n: Names) =>
  settleFunctionOf(n, {
    name: "settle_v2",
    params: "p_worker uuid, p_ids bigint[], p_claims integer[], p_outcomes text[], p_errors text[], p_keep boolean)",
    back: "'Retry', 'Released'",
    maps: mapsSql("p_ids::text[]", "p_claims::text[]", "p_outcomes", "p_errors"),
    archived: "",
    backSet,
    freeSlots: "free_slots_v2"
  })

// ---- version 3 (migration 5): per-job delays, Snooze, snoozes --------------------------------------------
// New pieces beside version 2's (whose text is part of migration 2 and must not change).

/** The batch's maps, with the per-job delays (seconds as text, '' for none; the array NULL when none has one). */
const mapsV3Sql = (ids: string, claims: string, outcomes: string, errors: string, delays: string) =>
  `${mapsSql(ids, claims, outcomes, errors)}, jsonb_object(${ids}, ${delays}) AS delay`

/** The job's outcome in the batch, and its delay (NULL: none given). */
const outcomeOf = "m.outcome->>j.id::text"
const delayOf = "NULLIF(m.delay->>j.id::text, '')::float8"

/** When a job going back is due: a retry after its delay (default its timeout), a snooze after its delay. */
const backDue = (column: string) => `CASE WHEN ${outcomeOf} = 'Retry'
      THEN statement_timestamp() + make_interval(secs => COALESCE(${delayOf}, j.timeout_secs))
      WHEN ${outcomeOf} = 'Snooze' THEN statement_timestamp() + make_interval(secs => COALESCE(${delayOf}, 0))
      ELSE j.${column} END`

/**
 * The SET list of a job going back: retried (after its delay, an attempt spent if not yet), snoozed (after its
 * delay, the attempt refunded, counted) or released (in its place, the attempt refunded).
 */
const backSetV3 = `worker_id = NULL, claimed_at = NULL, started = false,
    attempts = CASE WHEN ${outcomeOf} = 'Retry' THEN j.attempts + (NOT j.started)::int
      ELSE j.attempts - j.started::int END,
    run_at = ${backDue("run_at")},
    sort_at = ${backDue("sort_at")},
    snoozes = j.snoozes + (${outcomeOf} = 'Snooze')::int,
    last_error = CASE WHEN ${outcomeOf} = 'Retry'
      THEN NULLIF(m.error->>j.id::text, '')::jsonb ELSE j.last_error END`

/**
 * `settle_v3(worker, ids, claims, outcomes, errors, delays, keep)`: as `settle_v2`, with per-job delays
 * (seconds as text, '' for none: a retry then waits the job's `timeout_secs`, a snooze none; `delays` may be
 * NULL when no job of the batch has one) and the `Snooze` outcome.
 * Part of migration 5: a change is a new migration and a new function name.
 */
export const settleV3Function = (n: Names) =>
  settleFunctionOf(n, {
    name: "settle_v3",
    params: "p_worker uuid, p_ids bigint[], p_claims integer[], p_outcomes text[], p_errors text[], p_delays text[],\n  p_keep boolean)",
    back: "'Retry', 'Snooze', 'Released'",
    maps: mapsV3Sql("p_ids::text[]", "p_claims::text[]", "p_outcomes", "p_errors", "p_delays"),
    archived: ", snoozes",
    backSet: backSetV3,
    freeSlots: "free_slots_v3"
  })

// ---- version 4 (migration 7): results, cancellation, finalization notices -------------------------------
// New pieces beside versions 2 and 3 (whose texts are part of migrations 2 and 5 and must not change).

/**
 * The error recorded on a cancelled job (a SQL expression); the same JSON as the memory store's.
 */
export const cancelledErrorSql = "jsonb_build_object('message', 'the job was cancelled', 'tag', 'JobCancelled')"

/** A SQL string literal. */
export const literal = (text: string) => `'${text.replace(/'/g, "''")}'`

/** The NOTIFY payload of a finalized job that someone awaits (`f:<id>`), on the schema's notice channel. */
export const finalizedNotifySql = (channel: string, id: string) => `pg_notify(${literal(channel)}, 'f:' || ${id}::text)`

/** The batch's maps, with the per-job results (encoded JSON as text, '' for none; the array NULL when none has one). */
const mapsV4Sql = (ids: string, claims: string, outcomes: string, errors: string, delays: string, results: string) =>
  `${mapsV3Sql(ids, claims, outcomes, errors, delays)}, jsonb_object(${ids}, ${results}) AS result`

/** The outcomes that finalize a job: `Withdrawn` is a `Cancelled` whose handler never started. */
const finalOutcomesV4 = "'Succeeded', 'Expired', 'Cancelled', 'Withdrawn'"

/** What a finalized row returns for the archive (version 4: its result too). */
const finalizedReturningV4 = `${finalizedReturning}, NULLIF(m.result->>j.id::text, '')::jsonb AS result`

/**
 * Archives finalized rows (version 4): a `Cancelled`, a `Withdrawn`, or a job sent back whose cancellation was
 * requested (its outcome `Retry`, `Snooze` or `Released`) is finalized as cancelled; a start is recorded for
 * every outcome but those of a handler that did not run to a failure of its own (`Withdrawn`, `Released`,
 * `Snooze`); a succeeded job keeps its result.
 */
const archiveFinalizedV4 = (n: Names, from: string) => `
INSERT INTO ${n.finalized} (${finalizedColumns}, snoozes, result, cancelled)
SELECT id, name, channel, job_group, payload,
  attempts + (NOT started AND outcome NOT IN ('Withdrawn', 'Released', 'Snooze'))::int, max_attempts, claims, crashes,
  outcome = 'Succeeded',
  CASE WHEN outcome = 'Expired' THEN error WHEN outcome = 'Succeeded' THEN last_error ELSE ${cancelledErrorSql} END,
  scheduled_for, created_at, snoozes, result, outcome NOT IN ('Succeeded', 'Expired')
FROM ${from}`

/**
 * `settle_v4(worker, ids, claims, outcomes, errors, delays, results, keep)`: as `settle_v3`, with per-job
 * results (stored with a succeeded job), the `Cancelled` and `Withdrawn` outcomes (finalized as cancelled),
 * cancellation requests honoured (a job whose cancellation was requested is finalized as cancelled instead
 * of going back: its row is locked before the batch is read, so a request racing the settlement is either
 * seen or comes after the job left), and a NOTIFY for each finalized job that someone awaits.
 * Part of migration 7: a change is a new migration and a new function name.
 */
export const settleV4Function = (n: Names, channel: string) => `
CREATE OR REPLACE FUNCTION ${n.fn("settle_v4")}(
  p_worker uuid, p_ids bigint[], p_claims integer[], p_outcomes text[], p_errors text[], p_delays text[],
  p_results text[], p_keep boolean)
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
  v_start bigint[];
  v_fin bigint[];
  v_back bigint[];
  v_cxl bigint[];
  v_groups text[];
  v_counts integer[];
  v_notified integer;
BEGIN
  SELECT
    coalesce(array_agg(x.id) FILTER (WHERE x.o = 'Started'), '{}'),
    coalesce(array_agg(x.id) FILTER (WHERE x.o IN (${finalOutcomesV4})), '{}'),
    coalesce(array_agg(x.id) FILTER (WHERE x.o IN ('Retry', 'Snooze', 'Released')), '{}')
  INTO v_start, v_fin, v_back
  FROM unnest(p_ids, p_outcomes) AS x(id, o);

  IF cardinality(v_back) > 0 THEN
    -- the batch's rows locked in id order (as a cancellation locks them): a cancellation requested before
    -- is seen by the statement below, and none can be requested until this transaction ends
    SELECT coalesce(array_agg(s.id) FILTER (WHERE s.cancel_requested), '{}') INTO v_cxl
    FROM (SELECT j.id, j.cancel_requested FROM ${n.job} j WHERE j.id = ANY(p_ids) ORDER BY j.id FOR UPDATE) s;
    IF cardinality(v_cxl) > 0 THEN
      v_fin := v_fin || v_cxl;
      v_back := ARRAY(SELECT unnest(v_back) EXCEPT SELECT unnest(v_cxl));
    END IF;
  END IF;

  WITH m AS (${mapsV4Sql("p_ids::text[]", "p_claims::text[]", "p_outcomes", "p_errors", "p_delays", "p_results")}),
  started AS (
    UPDATE ${n.job} j SET ${startedSet}
    FROM m
    WHERE ${fencedSql("v_start", "p_worker")} AND NOT j.started
    RETURNING j.id
  ),
  fin AS (
    DELETE FROM ${n.job} j USING m
    WHERE ${fencedSql("v_fin", "p_worker")}
    ${finalizedReturningV4}
  ),
  fin_ins AS (${archiveFinalizedV4(n, "fin WHERE p_keep")}
    RETURNING 1
  ),
  notified AS (
    SELECT ${finalizedNotifySql(channel, "fin.id")} FROM fin WHERE fin.awaited
  ),
  old AS (
    -- locked first, so that the group slot read is the one the update replaces
    SELECT j.id, j.group_slot, j.job_group FROM ${n.job} j, m
    WHERE ${fencedSql("v_back", "p_worker")}
    FOR UPDATE OF j
  ),
  back AS (
    UPDATE ${n.job} j SET group_slot = false, ${backSetV3}
    FROM m, old
    WHERE j.id = old.id
    RETURNING old.group_slot, old.job_group
  ),
  freed AS (
    SELECT job_group FROM fin WHERE group_slot
    UNION ALL
    SELECT job_group FROM back WHERE group_slot
  )
  SELECT array_agg(f.job_group ORDER BY f.job_group), array_agg(f.n ORDER BY f.job_group),
    (SELECT count(*)::int FROM notified)
  INTO v_groups, v_counts, v_notified
  FROM (SELECT job_group, count(*)::int AS n FROM freed GROUP BY job_group) f;

  IF v_groups IS NOT NULL THEN
    PERFORM ${n.fn("free_slots_v3")}(v_groups, v_counts);
  END IF;
  RETURN coalesce(array_length(v_groups, 1), 0);
END
$fn$`

/**
 * A batch with no job of a named group and no job going back frees no group slot and meets no cancellation
 * race, so it needs neither the function's row locks nor its group locks: one plain statement, as fast as
 * settling gets (the common case: successes). Each row must also be in no group (`job_group IS NULL`), so a
 * settlement wrongly marked ungrouped changes nothing.
 * $1 worker, $2 ids, $3 claims, $4 outcomes, $5 errors (parallel), $6 / $7 the ids to mark started /
 * finalize, $8 keep finalized jobs, $9 results (parallel to $2; '' for none; NULL when none has one).
 * Client-side (not part of a migration): it follows `settle_v4`'s semantics.
 */
export const settleUngroupedSql = (n: Names, channel: string) => `
WITH m AS (${
  mapsV4Sql("$2::bigint[]::text[]", "$3::int[]::text[]", "$4::text[]", "$5::text[]", "NULL::text[]", "$9::text[]")
}),
started AS (
  UPDATE ${n.job} j SET ${startedSet}
  FROM m
  WHERE ${fencedSql("$6::bigint[]", "$1::uuid", " AND j.job_group IS NULL")} AND NOT j.started
  RETURNING j.id
),
fin AS (
  DELETE FROM ${n.job} j USING m
  WHERE ${fencedSql("$7::bigint[]", "$1::uuid", " AND j.job_group IS NULL")}
  ${finalizedReturningV4}
),
fin_ins AS (${archiveFinalizedV4(n, "fin WHERE $8::boolean")}
  RETURNING 1
),
notified AS (
  SELECT ${finalizedNotifySql(channel, "fin.id")} FROM fin WHERE fin.awaited
)
SELECT 0 AS freed, (SELECT count(*) FROM notified) AS notified`

/**
 * Settles a batch: one plain statement when no job of the batch is in a named group or goes back, else
 * `settle_v4`. Resolves to the number of groups with slots freed.
 */
export const settle = (sql: PgClient.PgClient, n: Names, keepFinalized: boolean, channel: string) => {
  const grouped = `SELECT ${
    n.fn("settle_v4")
  }($1::uuid, $2::bigint[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::boolean) AS freed`
  const ungrouped = settleUngroupedSql(n, channel)
  return (workerId: string, settlements: ReadonlyArray<JobStore.Settlement>) => {
    // one pass over the batch (ids go as text: PostgreSQL parses them as bigint)
    const ids: Array<string> = []
    const claims: Array<number> = []
    const outcomes: Array<string> = []
    const errors: Array<string> = []
    const delays: Array<string> = []
    const results: Array<string> = []
    const started: Array<string> = []
    const finalized: Array<string> = []
    let anyGrouped = false
    let anyBack = false
    let anyDelay = false
    let anyResult = false
    for (const x of settlements) {
      ids.push(x.id)
      claims.push(x.claim)
      outcomes.push(x.outcome === "Cancelled" && x.ran === false ? "Withdrawn" : x.outcome)
      errors.push(x.error === undefined ? "" : JSON.stringify(x.error))
      if (x.delaySecs === undefined) delays.push("")
      else {
        delays.push(String(x.delaySecs))
        anyDelay = true
      }
      if (x.result === undefined) results.push("")
      else {
        results.push(JSON.stringify(x.result))
        anyResult = true
      }
      if (x.grouped !== false) anyGrouped = true
      if (x.outcome === "Started") started.push(x.id)
      else if (x.outcome === "Succeeded" || x.outcome === "Expired" || x.outcome === "Cancelled") finalized.push(x.id)
      else anyBack = true
    }
    // no delay or result in the batch (the common case): NULL, so no map is built (jsonb_object is strict)
    const delayArg = anyDelay ? delays : null
    const resultArg = anyResult ? results : null
    const statement = anyGrouped || anyBack
      ? sql.unsafe<Row>(grouped, [workerId, ids, claims, outcomes, errors, delayArg, resultArg, keepFinalized])
      : sql.unsafe<Row>(ungrouped, [workerId, ids, claims, outcomes, errors, started, finalized, keepFinalized, resultArg])
    return statement.pipe(
      Effect.map((rows) => Number(rows[0]?.freed ?? 0)),
      Effect.catchTag("SqlError", storageError("settle"))
    )
  }
}
