/**
 * The claim on PostgreSQL: one statement takes up to `limit` jobs for a worker.
 *
 * - Candidates: per channel, a range scan of the ready index (`channel, sort_at, id` over waiting, unheld
 *   rows) with `FOR UPDATE SKIP LOCKED`, at most `limit` rows (merged across channels in claim order).
 * - Groups: the rows of the candidates' groups are locked (`FOR UPDATE`, in name order: the order every
 *   writer of group rows uses), which returns their latest committed state. A group's first
 *   `concurrency - running` candidates may be claimed; its slots are taken with an upsert that, for a group
 *   with no row yet, only succeeds while the slots are free (a concurrent claimer that created the row first
 *   wins, and our candidates of that group stay waiting). Candidates beyond a group's free slots are *held*:
 *   the group row is locked by this statement, so whoever frees a slot later (free_slots_v2, after this
 *   statement commits) sees them and makes them claimable again. A held job costs later claims nothing, so
 *   a group's backlog never slows the claim.
 * - Lock order: existing group rows in name order, then new ones in name order. A group row committed after
 *   this statement's snapshot is locked in the second phase, out of order; PostgreSQL's deadlock detector
 *   then aborts one of two such claimers (rare: it needs a new group and crossing claims), which retries.
 * - The worker's lease is checked in the same statement, so a worker declared dead cannot claim. No row lock
 *   on the worker (it would cost a fifth of the claim): should a rescue delete the row while this claim
 *   runs, the jobs belong to a worker without a row, which the next rescue takes back.
 * - Claimed jobs get the next claim number (`claims + 1`, the fencing token) and `started = false`; their
 *   attempt is not counted until their start is recorded.
 *
 * Returned: the claimed rows and the rows held (`claimed` false), so that a worker whose claim came back
 * short because of held jobs claims again at once.
 */
import { Effect } from "effect"
import type { PgClient } from "@effect/sql-pg"
import type * as JobStore from "../../JobStore.js"
import { type Names, optionalDate, optionalString, type Row, storageError } from "./sql.js"

/** Columns returned for a claimed job. */
export const claimedColumns = (alias: string) =>
  ["id", "claims", "name", "channel", "job_group", "payload", "attempts", "max_attempts", "timeout_secs", "crashes",
    "run_at", "sort_at", "created_at", "scheduled_for", "trace_id", "span_id"].map((c) => `${alias}.${c}`).join(", ")

export const toClaimedJob = (row: Row): JobStore.ClaimedJob => ({
  id: String(row.id),
  claim: Number(row.claims),
  name: row.name as string,
  channel: row.channel as string,
  jobGroup: optionalString(row.job_group),
  payload: row.payload,
  attempt: Number(row.attempts) + 1,
  maxAttempts: Number(row.max_attempts),
  timeoutSecs: Number(row.timeout_secs),
  crashes: Number(row.crashes),
  runAt: row.run_at as Date,
  sortAt: row.sort_at as Date,
  createdAt: row.created_at as Date,
  scheduledFor: optionalDate(row.scheduled_for),
  traceId: optionalString(row.trace_id),
  spanId: optionalString(row.span_id)
})

/**
 * The claim, in four shapes so that each is planned well once and then reused (prepared, generic plan): one
 * channel (a plain range scan) or several (one range per channel, merged), with or without excluded
 * definition names. Parameters: $1 worker id, $2 channel (or channels), $3 limit, $4 excluded names.
 */
export const claimSql = (n: Names, multiChannel: boolean, exclude: boolean) => {
  const isHeld = "(j.job_group IS NOT NULL AND j.id = ANY(ARRAY(SELECT id FROM ranked WHERE r > free)))"
  const excluded = exclude ? "AND w.name <> ALL($4::text[])" : ""
  const waiting = `w.worker_id IS NULL AND NOT w.held AND w.sort_at <= now() ${excluded}`
  const candidates = multiChannel
    ? `
  SELECT j.id, j.job_group, j.sort_at
  FROM unnest($2::text[]) AS c(channel)
  CROSS JOIN LATERAL (
    SELECT w.id, w.job_group, w.sort_at FROM ${n.job} w
    WHERE w.channel = c.channel AND ${waiting}
    ORDER BY w.sort_at, w.id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
  ) j
  WHERE EXISTS (SELECT 1 FROM live)
  ORDER BY j.sort_at, j.id
  LIMIT $3`
    : `
  SELECT w.id, w.job_group, w.sort_at FROM ${n.job} w
  WHERE w.channel = $2::text AND ${waiting} AND EXISTS (SELECT 1 FROM live)
  ORDER BY w.sort_at, w.id
  LIMIT $3
  FOR UPDATE OF w SKIP LOCKED`
  return `
WITH live AS (
  SELECT 1 FROM ${n.worker} WHERE id = $1::uuid AND expires_at > now()
),
cand AS (${candidates}
),
-- grouped candidates only: a claim of ungrouped jobs does no group work at all
gcand AS (
  SELECT id, job_group, sort_at FROM cand WHERE job_group IS NOT NULL
),
gstate AS (
  SELECT g.name, g.concurrency - g.running AS free FROM ${n.group} g
  WHERE g.name = ANY(ARRAY(SELECT DISTINCT job_group FROM gcand))
  ORDER BY g.name
  FOR UPDATE
),
ranked AS (
  SELECT c.id, c.job_group,
    row_number() OVER (PARTITION BY c.job_group ORDER BY c.sort_at, c.id) AS r,
    -- a group without a row yet has all of its slots free (the column default: 1)
    COALESCE(s.free, 1) AS free
  FROM gcand c LEFT JOIN gstate s ON s.name = c.job_group
),
want AS (
  SELECT job_group, count(*)::int AS n FROM ranked WHERE r <= free GROUP BY job_group
),
granted AS (
  INSERT INTO ${n.group} AS g (name, running)
  SELECT job_group, n FROM want ORDER BY job_group
  ON CONFLICT (name) DO UPDATE SET running = g.running + EXCLUDED.running
  WHERE g.running + EXCLUDED.running <= g.concurrency
  RETURNING g.name
)
-- One UPDATE, the statement itself (its rows stream back, no CTE holds them): the claimed rows, and the
-- rows held back (full groups), told apart by worker_id. "= ANY(ARRAY(...))" rather than a join: always
-- primary-key lookups, never a hash join over the table. Only grouped rows can be held, so ungrouped ones
-- never test the (small) held list.
UPDATE ${n.job} j SET
  held = ${isHeld},
  worker_id = CASE WHEN ${isHeld} THEN NULL ELSE $1::uuid END,
  claims = CASE WHEN ${isHeld} THEN j.claims ELSE j.claims + 1 END,
  started = false,
  claimed_at = CASE WHEN ${isHeld} THEN NULL ELSE now() END,
  group_slot = j.job_group IS NOT NULL AND NOT ${isHeld}
WHERE j.id = ANY(ARRAY(
  SELECT id FROM cand WHERE job_group IS NULL
  UNION ALL
  SELECT id FROM ranked WHERE (r <= free AND job_group IN (SELECT name FROM granted)) OR r > free))
RETURNING ${claimedColumns("j")}, j.worker_id IS NOT NULL AS claimed`
}

/** Claim order: `sortAt`, then id (compared as integers). */
export const byClaimOrder = (a: JobStore.ClaimedJob, b: JobStore.ClaimedJob): number =>
  a.sortAt.getTime() - b.sortAt.getTime() || a.id.length - b.id.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

export const claim = (sql: PgClient.PgClient, n: Names) => {
  const texts = [claimSql(n, false, false), claimSql(n, false, true), claimSql(n, true, false), claimSql(n, true, true)]
  return (r: JobStore.ClaimRequest): Effect.Effect<JobStore.ClaimResult, import("../../CuckmqError.js").StorageError> => {
    const multi = r.channels.length > 1
    const exclude = r.excludeNames.length > 0
    const params: Array<unknown> = [r.workerId, multi ? [...r.channels] : r.channels[0], r.limit]
    if (exclude) params.push([...r.excludeNames])
    return sql.unsafe<Row>(texts[(multi ? 2 : 0) + (exclude ? 1 : 0)]!, params).pipe(
      Effect.map((rows) => {
        let held = 0
        const jobs: Array<JobStore.ClaimedJob> = []
        for (const row of rows) {
          if (row.claimed === true) jobs.push(toClaimedJob(row))
          else held++
        }
        jobs.sort(byClaimOrder)
        return { jobs, held }
      }),
      Effect.catchTag("SqlError", storageError("claim"))
    )
  }
}
