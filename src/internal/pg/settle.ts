/**
 * Settling claimed jobs on PostgreSQL: a batch of outcomes (and start marks) in one call of `settle_v3`
 * (migration 5: per-job retry and snooze delays, the `Snooze` outcome, the snooze counter), or, for a batch
 * without a grouped job, one plain statement. `settle_v2` (migration 2) stays in the schema, unchanged, for
 * workers of the previous version during a rolling deploy; its text here must never change.
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

/**
 * A batch with no job of a named group frees no group slot, so it needs neither the function's second
 * snapshot nor its group locks: one plain statement, as fast as settling gets (the common case). Each row
 * must also be in no group (`job_group IS NULL`), so a settlement wrongly marked ungrouped changes nothing.
 * $1 worker, $2 ids, $3 claims, $4 outcomes, $5 errors (parallel), $6 / $7 / $8 the ids to mark started /
 * finalize / send back, $9 keep finalized jobs, $10 delays (parallel to $2; '' for none). Client-side (not
 * part of a migration): it follows `settle_v3`'s semantics.
 */
export const settleUngroupedSql = (n: Names) => `
WITH m AS (${mapsV3Sql("$2::bigint[]::text[]", "$3::int[]::text[]", "$4::text[]", "$5::text[]", "$10::text[]")}),
started AS (
  UPDATE ${n.job} j SET ${startedSet}
  FROM m
  WHERE ${fencedSql("$6::bigint[]", "$1::uuid", " AND j.job_group IS NULL")} AND NOT j.started
  RETURNING j.id
),
fin AS (
  DELETE FROM ${n.job} j USING m
  WHERE ${fencedSql("$7::bigint[]", "$1::uuid", " AND j.job_group IS NULL")}
  ${finalizedReturning}
),
fin_ins AS (${archiveFinalized(n, "fin WHERE $9::boolean", ", snoozes")}
  RETURNING 1
),
back AS (
  UPDATE ${n.job} j SET ${backSetV3}
  FROM m
  WHERE ${fencedSql("$8::bigint[]", "$1::uuid", " AND j.job_group IS NULL")}
  RETURNING j.id
)
SELECT 0 AS freed`

/**
 * Settles a batch: one plain statement when no job of the batch is in a named group, else `settle_v3`.
 * Resolves to the number of groups with slots freed.
 */
export const settle = (sql: PgClient.PgClient, n: Names, keepFinalized: boolean) => {
  const grouped = `SELECT ${
    n.fn("settle_v3")
  }($1::uuid, $2::bigint[], $3::int[], $4::text[], $5::text[], $6::text[], $7::boolean) AS freed`
  const ungrouped = settleUngroupedSql(n)
  return (workerId: string, settlements: ReadonlyArray<JobStore.Settlement>) => {
    // one pass over the batch (ids go as text: PostgreSQL parses them as bigint)
    const ids: Array<string> = []
    const claims: Array<number> = []
    const outcomes: Array<string> = []
    const errors: Array<string> = []
    const delays: Array<string> = []
    const started: Array<string> = []
    const finalized: Array<string> = []
    const back: Array<string> = []
    let anyGrouped = false
    let anyDelay = false
    for (const x of settlements) {
      ids.push(x.id)
      claims.push(x.claim)
      outcomes.push(x.outcome)
      errors.push(x.error === undefined ? "" : JSON.stringify(x.error))
      if (x.delaySecs === undefined) delays.push("")
      else {
        delays.push(String(x.delaySecs))
        anyDelay = true
      }
      if (x.grouped !== false) anyGrouped = true
      if (x.outcome === "Started") started.push(x.id)
      else if (x.outcome === "Succeeded" || x.outcome === "Expired") finalized.push(x.id)
      else back.push(x.id)
    }
    // no delay in the batch (the common case: successes): NULL, so no map is built (jsonb_object is strict)
    const delayArg = anyDelay ? delays : null
    const statement = anyGrouped
      ? sql.unsafe<Row>(grouped, [workerId, ids, claims, outcomes, errors, delayArg, keepFinalized])
      : sql.unsafe<Row>(ungrouped, [workerId, ids, claims, outcomes, errors, started, finalized, back, keepFinalized, delayArg])
    return statement.pipe(
      Effect.map((rows) => Number(rows[0]?.freed ?? 0)),
      Effect.catchTag("SqlError", storageError("settle"))
    )
  }
}
