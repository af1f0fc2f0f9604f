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
const claimedColumnNames = ["id", "claims", "name", "channel", "job_group", "payload", "attempts", "max_attempts",
  "timeout_secs", "crashes", "priority", "run_at", "sort_at", "created_at", "scheduled_for", "trace_id", "span_id",
  "snoozes", "time_limit_secs"]

/** Columns returned for a claimed job. */
export const claimedColumns = (alias: string) => claimedColumnNames.map((c) => `${alias}.${c}`).join(", ")

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
  snoozes: Number(row.snoozes),
  timeLimitSecs: row.time_limit_secs === null || row.time_limit_secs === undefined ? undefined : Number(row.time_limit_secs),
  priority: Number(row.priority),
  runAt: row.run_at as Date,
  sortAt: row.sort_at as Date,
  createdAt: row.created_at as Date,
  scheduledFor: optionalDate(row.scheduled_for),
  traceId: optionalString(row.trace_id),
  spanId: optionalString(row.span_id)
})

/** A claimable row of the ready index (`w`): unclaimed, not held. */
const ready = "w.worker_id IS NULL AND NOT w.held"

/** The filter of excluded definition names ($5), when the claim has any. */
const excludedOf = (exclude: boolean) => exclude ? "AND w.name <> ALL($5::text[])" : ""

/**
 * A floored claim's extra parameters (after $5 when there are excluded names, else from $5): the one level
 * it has a floor for (channel, priority) and the floor (epoch seconds). Scalars: arrays cost the client more
 * to encode and the server a join, and a claim of one job pays for every microsecond.
 */
const floorParam = (exclude: boolean) => exclude ? 6 : 5
/** The floor of level (`channel`, `l.priority`) of `lv`, NULL on every other level. */
const floorColumnOf = (exclude: boolean, channel: string) => {
  const p = floorParam(exclude)
  return `CASE WHEN ${channel} = $${p}::text AND l.priority = $${p + 1}::int THEN to_timestamp($${p + 2}::float8) END AS floor`
}
/** A floored claim's candidate scan starts at its level's floor (the btree descent skips the rows below). */
const floorOf = (floored: boolean) => floored ? "AND w.sort_at >= COALESCE(lv.floor, '-infinity'::timestamptz)" : ""

/**
 * Per channel `c.channel`, its priority levels with ready rows, highest first (`l.priority`): a skip scan of
 * the ready index, one probe per level. Shared by both claim shapes.
 */
const levelsOf = (n: Names) => `  CROSS JOIN LATERAL (
    WITH RECURSIVE r(p) AS (
      (SELECT w.priority FROM ${n.job} w WHERE w.channel = c.channel AND ${ready} ORDER BY w.priority DESC LIMIT 1)
      UNION ALL
      SELECT (SELECT w.priority FROM ${n.job} w WHERE w.channel = c.channel AND ${ready} AND w.priority < r.p
              ORDER BY w.priority DESC LIMIT 1)
      FROM r WHERE r.p IS NOT NULL
    )
    SELECT r.p AS priority FROM r WHERE r.p IS NOT NULL
  ) l`

/**
 * The claim, in eight shapes (one channel or several, with or without excluded definition names, with or
 * without the marker row), each planned once and reused (prepared, generic plan). Parameters: $1 worker id, $2 channels, $3 limit, $4 priority aging (seconds),
 * $5 excluded names.
 *
 * - `chan`: the flow control of the claim's channels. Only channels that are paused or rate limited have a
 *   row that matches, and those are locked (`FOR UPDATE`: their latest committed window), so claims of a
 *   rate-limited channel take turns on its row while plain channels cost one index probe and no lock.
 * - `lv`: per channel, its priority levels with ready rows (a skip scan of the ready index, one probe per
 *   level) and the channel's budget. `cand0`: per level, the first due rows in run order (`FOR UPDATE SKIP
 *   LOCKED`); `cand`: merged by `sort_at - priority x aging`, at most the budget per channel, at most $3.
 * - Groups, as before, with limits: a group's concurrency and rate limit are its explicit settings, else the
 *   candidates' definitions' (the smallest). `free = min(concurrency - running, budget)`; the first `free`
 *   candidates of a group are claimed, the rest held; a group whose rate budget is what held them is
 *   blocked until its window ends. Slots and windows are taken with an upsert that re-checks them against
 *   the row's latest state (a row created by a concurrent claim after this statement's snapshot).
 * - Channel budgets are spent by the jobs claimed. The rows returned are the claimed and held jobs, each with
 *   `refill_in` (the seconds until claiming again can find more, when a limit refused jobs: returned as a
 *   time on the worker's clock) and `limited` (a channel of the claim is rate limited). With `marker`, a claim
 *   that returns no job returns one row without a job carrying them when there is something to say: that
 *   costs the statement a CTE over the UPDATE, so workers ask for it only while their channels may be rate
 *   limited (`ClaimRequest.reportRefill`).
 */
export const claimSql = (n: Names, exclude: boolean, marker: boolean, multiChannel = true, floored = false) => {
  // seconds from now (the worker waits by its own clock, which may differ from the database's), and whether
  // a channel of the claim is rate limited: computed once per statement (uncorrelated subqueries)
  const refillIn = "(SELECT CASE WHEN refill.at IS NOT NULL THEN GREATEST(extract(epoch FROM refill.at - now())::float8, 0) END FROM refill)"
  const limited = "(EXISTS (SELECT 1 FROM chan WHERE chan.rate_limit IS NOT NULL))"
  // a channel of the claim is paused or rate limited (so the plain shape would claim nothing)
  const flow = "(EXISTS (SELECT 1 FROM chan))"
  const isHeld = "(j.job_group IS NOT NULL AND j.id = ANY(ARRAY(SELECT id FROM ranked WHERE r > free)))"
  const excluded = excludedOf(exclude)
  const current = (t: string, period: string) =>
    `(${t}.window_start IS NOT NULL AND ${t}.window_start + make_interval(secs => ${period}) > now())`
  return `
WITH live AS (
  SELECT 1 FROM ${n.worker} WHERE id = $1::uuid AND expires_at > now()
),
chan AS (
  SELECT c.name, c.paused, c.rate_limit, c.rate_period_secs,
    CASE WHEN ${current("c", "c.rate_period_secs")} THEN c.window_used ELSE 0 END AS used,
    CASE WHEN ${current("c", "c.rate_period_secs")} THEN c.window_start ELSE now() END AS wstart
  FROM ${n.channel} c
  WHERE c.name = ANY($2::text[]) AND (c.paused OR c.rate_limit IS NOT NULL)
  ORDER BY c.name
  FOR UPDATE
),
lv AS (
  SELECT c.channel, l.priority,${floored ? ` ${floorColumnOf(exclude, "c.channel")},` : ""}
    CASE WHEN ch.rate_limit IS NULL THEN $3::int ELSE LEAST($3::int, GREATEST(ch.rate_limit - ch.used, 0)) END AS lim
  FROM unnest($2::text[]) AS c(channel)
  LEFT JOIN chan ch ON ch.name = c.channel
${levelsOf(n)}
  WHERE ch.paused IS NOT TRUE AND EXISTS (SELECT 1 FROM live)
),
${multiChannel ? "cand0" : "cand"} AS (
  SELECT j.id, j.name, j.channel, j.job_group, j.key${multiChannel ? ", lv.lim" : ""} FROM lv CROSS JOIN LATERAL (
    SELECT w.id, w.name, w.channel, w.job_group, w.sort_at - make_interval(secs => w.priority * $4::float8) AS key
    FROM ${n.job} w
    WHERE w.channel = lv.channel AND w.priority = lv.priority AND ${ready} AND w.sort_at <= now() ${floorOf(floored)} ${excluded}
    ORDER BY w.sort_at, w.id
    LIMIT lv.lim
    FOR UPDATE SKIP LOCKED
  ) j
  WHERE lv.lim > 0${
    multiChannel
      ? `
),
-- several channels: merged, at most each channel's budget, at most $3
cand AS (
  SELECT x.id, x.name, x.channel, x.job_group, x.key FROM (
    SELECT c.*, row_number() OVER (PARTITION BY c.channel ORDER BY c.key, c.id) AS cr FROM cand0 c
  ) x
  WHERE x.cr <= x.lim
  ORDER BY x.key, x.id
  LIMIT $3`
      : `
  -- one channel: its levels merged, at most its budget (the same on every level)
  ORDER BY j.key, j.id
  LIMIT (SELECT min(lv.lim) FROM lv)`
  }
),
-- grouped candidates only: a claim of ungrouped jobs does no group work at all
gcand AS (
  SELECT c.id, c.job_group, c.key, COALESCE(d.group_concurrency, 1) AS dc,
    d.group_rate_limit AS drl, d.group_rate_period_secs AS drp
  FROM cand c LEFT JOIN ${n.definition} d ON d.name = c.name
  WHERE c.job_group IS NOT NULL
),
gdef AS (
  SELECT job_group, min(dc) AS dc, min(drl) AS drl, max(drp) AS drp FROM gcand GROUP BY job_group
),
gstate AS (
  SELECT g.name, g.running, g.concurrency, g.rate_limit, g.rate_period_secs, g.window_start, g.window_used
  FROM ${n.group} g
  WHERE g.name = ANY(ARRAY(SELECT job_group FROM gdef))
  ORDER BY g.name
  FOR UPDATE
),
glim AS (
  SELECT d.job_group, d.dc, d.drl, d.drp,
    COALESCE(s.concurrency, d.dc) AS conc,
    COALESCE(s.running, 0) AS running,
    CASE WHEN s.rate_limit IS NOT NULL THEN s.rate_limit ELSE d.drl END AS rl,
    CASE WHEN s.rate_limit IS NOT NULL THEN s.rate_period_secs ELSE d.drp END AS rp,
    s.window_start, COALESCE(s.window_used, 0) AS window_used
  FROM gdef d LEFT JOIN gstate s ON s.name = d.job_group
),
gbud AS (
  SELECT l.job_group, l.dc, l.drl, l.drp, l.rl, l.rp,
    GREATEST(l.conc - l.running, 0) AS slots,
    CASE WHEN l.rl IS NULL THEN 2147483647
      WHEN ${current("l", "l.rp")} THEN GREATEST(l.rl - l.window_used, 0) ELSE l.rl END AS budget,
    CASE WHEN ${current("l", "l.rp")} THEN l.window_start ELSE now() END AS wstart
  FROM glim l
),
ranked AS (
  SELECT c.id, c.job_group,
    row_number() OVER (PARTITION BY c.job_group ORDER BY c.key, c.id) AS r,
    LEAST(b.slots, b.budget) AS free
  FROM gcand c JOIN gbud b ON b.job_group = c.job_group
),
want AS (
  SELECT b.job_group, b.dc, b.drl, b.drp, b.rl, b.rp, b.wstart,
    count(*) FILTER (WHERE r.r <= LEAST(b.slots, b.budget))::int AS n,
    -- the rate budget, not the slots, held candidates back: blocked until the window ends
    bool_or(r.r > LEAST(b.slots, b.budget)) AND b.budget < b.slots AS blocked
  FROM gbud b JOIN ranked r ON r.job_group = b.job_group
  GROUP BY b.job_group, b.dc, b.drl, b.drp, b.rl, b.rp, b.wstart, b.slots, b.budget
),
granted AS (
  INSERT INTO ${n.group} AS g (name, running, def_concurrency, def_rate_limit, def_rate_period_secs,
    window_start, window_used, blocked_until)
  SELECT job_group, n, dc, drl, drp,
    CASE WHEN rl IS NOT NULL THEN now() END, CASE WHEN rl IS NOT NULL THEN n ELSE 0 END,
    CASE WHEN blocked THEN wstart + make_interval(secs => rp) END
  FROM want WHERE n > 0 OR blocked
  ORDER BY job_group
  ON CONFLICT (name) DO UPDATE SET
    running = g.running + EXCLUDED.running,
    def_concurrency = EXCLUDED.def_concurrency,
    def_rate_limit = EXCLUDED.def_rate_limit,
    def_rate_period_secs = EXCLUDED.def_rate_period_secs,
    window_start = CASE WHEN COALESCE(g.rate_limit, EXCLUDED.def_rate_limit) IS NULL OR EXCLUDED.running = 0 THEN g.window_start
      WHEN ${current("g", "CASE WHEN g.rate_limit IS NOT NULL THEN g.rate_period_secs ELSE EXCLUDED.def_rate_period_secs END")}
      THEN g.window_start ELSE now() END,
    window_used = CASE WHEN COALESCE(g.rate_limit, EXCLUDED.def_rate_limit) IS NULL OR EXCLUDED.running = 0 THEN g.window_used
      WHEN ${current("g", "CASE WHEN g.rate_limit IS NOT NULL THEN g.rate_period_secs ELSE EXCLUDED.def_rate_period_secs END")}
      THEN g.window_used + EXCLUDED.running ELSE EXCLUDED.running END,
    blocked_until = EXCLUDED.blocked_until
  -- the row's latest state (it may have been created after this statement's snapshot)
  WHERE g.running + EXCLUDED.running <= COALESCE(g.concurrency, EXCLUDED.def_concurrency)
    AND (COALESCE(g.rate_limit, EXCLUDED.def_rate_limit) IS NULL OR EXCLUDED.running = 0
      OR (CASE WHEN ${current("g", "CASE WHEN g.rate_limit IS NOT NULL THEN g.rate_period_secs ELSE EXCLUDED.def_rate_period_secs END")}
          THEN g.window_used ELSE 0 END) + EXCLUDED.running <= COALESCE(g.rate_limit, EXCLUDED.def_rate_limit))
  RETURNING g.name, g.blocked_until
),
admitted AS (
  SELECT id, channel FROM cand WHERE job_group IS NULL
  UNION ALL
  SELECT r.id, c.channel FROM ranked r JOIN cand c ON c.id = r.id
  WHERE r.r <= r.free AND r.job_group IN (SELECT name FROM granted)
),
spend AS (
  UPDATE ${n.channel} c SET
    window_start = CASE WHEN ${current("c", "c.rate_period_secs")} THEN c.window_start ELSE now() END,
    window_used = CASE WHEN ${current("c", "c.rate_period_secs")} THEN c.window_used + x.n ELSE x.n END
  -- counted only when a channel of the claim is rate limited (otherwise there is nothing to spend), and from
  -- \`cand\`, not \`admitted\`: read once, by the UPDATE, \`admitted\` is inlined instead of materialized
  FROM (
    SELECT c.channel, count(*)::int AS n FROM cand c
    WHERE ${limited} AND (c.job_group IS NULL
      OR c.id IN (SELECT r.id FROM ranked r WHERE r.r <= r.free AND r.job_group IN (SELECT name FROM granted)))
    GROUP BY c.channel
  ) x
  WHERE c.name = x.channel AND c.rate_limit IS NOT NULL
  RETURNING c.name, c.window_start + make_interval(secs => c.rate_period_secs) AS ends, c.window_used >= c.rate_limit AS spent
),
refill AS (
  SELECT min(t) AS at FROM (
    SELECT ends AS t FROM spend WHERE spent
    UNION ALL
    -- channels whose budget was spent before this claim (nothing taken, nothing to spend)
    SELECT ch.wstart + make_interval(secs => ch.rate_period_secs) FROM chan ch
    WHERE ch.rate_limit IS NOT NULL AND NOT ch.paused AND ch.used >= ch.rate_limit
    UNION ALL
    SELECT blocked_until FROM granted WHERE blocked_until IS NOT NULL
  ) t
)${marker ? ",\nupd AS (" : ""}
UPDATE ${n.job} j SET
    held = ${isHeld},
    worker_id = CASE WHEN ${isHeld} THEN NULL ELSE $1::uuid END,
    claims = CASE WHEN ${isHeld} THEN j.claims ELSE j.claims + 1 END,
    started = false,
    claimed_at = CASE WHEN ${isHeld} THEN NULL ELSE now() END,
    group_slot = j.job_group IS NOT NULL AND NOT ${isHeld}
  WHERE j.id = ANY(ARRAY(
    SELECT id FROM admitted
    UNION ALL
    SELECT id FROM ranked WHERE r > free))
  RETURNING ${claimedColumns("j")}, j.worker_id IS NOT NULL AS claimed, ${refillIn} AS refill_in, ${limited} AS limited, ${flow} AS flow
${
    marker
      ? `)
SELECT * FROM upd
UNION ALL
-- no job row to carry them: one row without a job
SELECT ${claimedColumnNames.map(() => "NULL").join(", ")}, NULL, ${refillIn}, ${limited}, ${flow}
WHERE NOT EXISTS (SELECT 1 FROM upd) AND (EXISTS (SELECT 1 FROM refill WHERE at IS NOT NULL) OR ${limited})`
      : ""
  }`
}

/**
 * The plain claim: for a worker whose last claim showed that none of its channels is paused or rate limited
 * and that the head of its queue holds no grouped job (see `claim`). It does no flow-control work at all, so
 * it writes only the job table and reads the worker table (the full shape also reads and locks the channel, definition and
 * group tables, a fixed cost of about a third of a claim of 100 jobs; it probes the channel table's index but
 * locks nothing there): the same priority levels and claim
 * order, and it re-checks what it relies on, so it is never wrong, only sometimes short.
 *
 * - Claims only if no channel of the claim is paused or rate limited in the statement's snapshot (a limit or
 *   pause committed before the claim began is seen, as by the full shape), and only if none of its
 *   candidates is grouped (their groups' slots and rates are the full shape's work); otherwise it claims
 *   nothing (its candidates were locked by this statement only until it ended).
 * - So it claims exactly what the full shape would have claimed, or nothing.
 *
 * Parameters as the full shape's ($1 worker, $2 channels, $3 limit, $4 aging, $5 excluded names).
 */
export const plainClaimSql = (n: Names, exclude: boolean, floored = false) => {
  const excluded = excludedOf(exclude)
  return `
WITH lv AS (
  SELECT c.channel, l.priority${floored ? `, ${floorColumnOf(exclude, "c.channel")}` : ""}
  FROM unnest($2::text[]) AS c(channel)
${levelsOf(n)}
  WHERE EXISTS (SELECT 1 FROM ${n.worker} WHERE id = $1::uuid AND expires_at > now())
    AND NOT EXISTS (SELECT 1 FROM ${n.channel} ch WHERE ch.name = ANY($2::text[]) AND (ch.paused OR ch.rate_limit IS NOT NULL))
),
cand AS (
  SELECT j.id, j.job_group FROM lv CROSS JOIN LATERAL (
    SELECT w.id, w.job_group, w.sort_at - make_interval(secs => w.priority * $4::float8) AS key
    FROM ${n.job} w
    WHERE w.channel = lv.channel AND w.priority = lv.priority AND ${ready} AND w.sort_at <= now() ${floorOf(floored)} ${excluded}
    ORDER BY w.sort_at, w.id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
  ) j
  ORDER BY j.key, j.id
  LIMIT $3
)
UPDATE ${n.job} j SET worker_id = $1::uuid, claims = j.claims + 1, started = false, claimed_at = now(), group_slot = false
WHERE j.id = ANY(ARRAY(SELECT id FROM cand WHERE NOT EXISTS (SELECT 1 FROM cand WHERE job_group IS NOT NULL)))
RETURNING ${claimedColumns("j")}`
}

/** Claim order: `sortAt - priority x aging`, then id (compared as integers). */
export const byClaimOrder = (agingSecs: number) => (a: JobStore.ClaimedJob, b: JobStore.ClaimedJob): number =>
  (a.sortAt.getTime() - a.priority * agingSecs * 1000) - (b.sortAt.getTime() - b.priority * agingSecs * 1000) ||
  a.id.length - b.id.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

/** How often a worker's claim runs without its floor at the least (the longest a straggler waits). */
export const unflooredEveryMs = 1_000

/**
 * The claim as the store runs it. It chooses between the full shape (`claimSql`) and the plain one
 * (`plainClaimSql`) per worker, from what that worker's last claim showed:
 *
 * - after a full claim that came back full (`limit` jobs), with none of them grouped, nothing held, and no
 *   channel of the claim paused or rate limited (`flow`), the next claim of that worker is plain;
 * - after a plain claim that came back full, the next one is plain again; otherwise it is full;
 * - a plain claim that took nothing (the queue ran out, a channel was paused or limited since, or a
 *   candidate was grouped) is followed at once, in the same call, by the full claim.
 *
 * So a claim returns what the full shape returns (jobs, held, refill time, rate limited): the plain shape
 * is an optimisation a caller cannot observe, except as one more statement when a run of plain claims ends.
 *
 * Floors (a held snapshot, and the time between two vacuums). The entries of jobs claimed and deleted lie at
 * the start of each level of the ready index; while a snapshot that may still see them is held, no scan can
 * mark them dead, and every claim would walk all of them again: its cost would grow with the jobs that went
 * through since the snapshot began (bench/results/soak.md). So after a claim that came back full, with no
 * grouped job and nothing held, a worker keeps a floor for its head level (the highest priority it took, on
 * the first channel it took that from): the `sort_at` of the first job there, less a millisecond (a `Date`
 * has no microseconds), and its next claims scan that level from there (one level: scalar parameters cost a
 * claim of one job next to nothing; the other levels are scanned as before). Below the floor there are only
 * rows of jobs claimed since, rows that other claims had locked, and
 * stragglers: jobs that became ready there later. A job that went back, was rescued or was let out of its
 * group keeps its place, and the store sends a wake-up of all channels for it (to this process's workers and,
 * by NOTIFY, to every other's): every store drops its floors then (`resetFloors`). What is left is a
 * transaction's enqueue that commits after later jobs were claimed, a claim that rolled back, and the
 * wake-ups a poll-only process cannot hear. For those, a claim that comes back short, and every claim at
 * least once per `unflooredEveryMs`, runs without floors: such a straggler waits at most that long (and
 * only while the workers' claims come back full). Claim order within a floored scan is unchanged.
 */
export const claim = (sql: PgClient.PgClient, n: Names) => {
  // [floored][multi-channel][exclude][marker]
  const texts = [false, true].map((floored) =>
    [false, true].map((multi) =>
      [false, true].map((exclude) => [false, true].map((marker) => claimSql(n, exclude, marker, multi, floored)))
    )
  )
  // [floored][exclude]
  const plainTexts = [false, true].map((floored) => [false, true].map((exclude) => plainClaimSql(n, exclude, floored)))
  // workers whose next claim may be plain, with the channels and exclusions that claim was for
  const plainFor = new Map<string, string>()
  // per worker: the shape its floor is for, the floor, and when it last claimed without one
  const floorsOf = new Map<string, { key: string; floor: Floor | undefined; unflooredAt: number }>()
  // counts `resetFloors`: a claim that was in flight across one keeps no floor (it may have scanned before
  // the straggler that the reset was for became ready)
  let epoch = 0
  const shapeKey = (r: JobStore.ClaimRequest) => `${r.channels.join("\u0000")}\u0001${r.excludeNames.join("\u0000")}`

  /** After a claim: sets, moves or drops the worker's floor. */
  const track = (
    r: JobStore.ClaimRequest,
    key: string,
    floored: boolean,
    since: number,
    jobs: ReadonlyArray<JobStore.ClaimedJob>,
    keep: boolean
  ) => {
    const now = Date.now()
    let entry = floorsOf.get(r.workerId)
    if (entry === undefined || entry.key !== key) {
      if (floorsOf.size >= 10_000) floorsOf.clear()
      entry = { key, floor: undefined, unflooredAt: now }
      floorsOf.set(r.workerId, entry)
    }
    if (!floored) entry.unflooredAt = now
    if (!keep || jobs.length < r.limit || since !== epoch) {
      entry.floor = undefined
      return
    }
    // the head level (the highest priority the claim took; its first channel), and its first job
    let head = jobs[0]!
    let at = head.sortAt.getTime()
    for (const job of jobs) {
      if (job.priority > head.priority) {
        head = job
        at = job.sortAt.getTime()
      } else if (job.priority === head.priority && job.channel === head.channel && job.sortAt.getTime() < at) {
        at = job.sortAt.getTime()
      }
    }
    entry.floor = { channel: head.channel, priority: head.priority, at: at - 1 }
  }

  const full = (
    r: JobStore.ClaimRequest,
    key: string,
    exclude: boolean,
    floored: boolean,
    since: number,
    params: ReadonlyArray<unknown>
  ) => {
    const marker = r.reportRefill !== false
    const multi = r.channels.length > 1
    return sql.unsafe<Row>(texts[floored ? 1 : 0]![multi ? 1 : 0]![exclude ? 1 : 0]![marker ? 1 : 0]!, params).pipe(
      Effect.map((rows): JobStore.ClaimResult => {
        let held = 0
        let grouped = false
        const jobs: Array<JobStore.ClaimedJob> = []
        for (const row of rows) {
          if (row.claimed === true) {
            const job = toClaimedJob(row)
            if (job.jobGroup !== undefined) grouped = true
            jobs.push(job)
          } else if (row.claimed === false) held++
        }
        // the same on every row (computed once by the statement)
        const first = rows[0]
        const refillIn = first?.refill_in
        const refillAt = refillIn === null || refillIn === undefined ? undefined : new Date(Date.now() + Number(refillIn) * 1000)
        // without the marker row, a claim that took nothing cannot tell
        const rateLimited = first === undefined ? (marker ? false : undefined) : first.limited === true
        const clean = jobs.length > 0 && jobs.length === r.limit && !grouped && held === 0 && first?.flow === false
        if (clean) {
          // a hint only (the plain claim re-checks everything): bounded by clearing, should workers that
          // ended without deregistering (their process crashed) pile up
          if (plainFor.size >= 10_000) plainFor.clear()
          plainFor.set(r.workerId, key)
        } else plainFor.delete(r.workerId)
        track(r, key, floored, since, jobs, clean)
        jobs.sort(byClaimOrder(r.priorityAgingSecs))
        return { jobs, held, refillAt, rateLimited }
      })
    )
  }
  const run = (r: JobStore.ClaimRequest): Effect.Effect<JobStore.ClaimResult, import("../../CuckmqError.js").StorageError> => {
    const exclude = r.excludeNames.length > 0
    const params: Array<unknown> = [r.workerId, [...r.channels], r.limit, r.priorityAgingSecs]
    if (exclude) params.push([...r.excludeNames])
    const key = shapeKey(r)
    const since = epoch
    const floors = floorsOf.get(r.workerId)
    const floor = floors !== undefined && floors.key === key && Date.now() - floors.unflooredAt < unflooredEveryMs
      ? floors.floor
      : undefined
    const floored = floor !== undefined
    if (floored) params.push(floor.channel, floor.priority, floor.at / 1000)
    const statement = plainFor.get(r.workerId) === key
      ? sql.unsafe<Row>(plainTexts[floored ? 1 : 0]![exclude ? 1 : 0]!, params).pipe(
        Effect.flatMap((rows): Effect.Effect<JobStore.ClaimResult, import("effect/sql").SqlError.SqlError> => {
          if (rows.length === 0) {
            plainFor.delete(r.workerId)
            return full(r, key, exclude, floored, since, params)
          }
          if (rows.length < r.limit) plainFor.delete(r.workerId)
          const jobs = rows.map(toClaimedJob)
          track(r, key, floored, since, jobs, true)
          jobs.sort(byClaimOrder(r.priorityAgingSecs))
          // no channel of the claim is rate limited (the statement checked)
          return Effect.succeed({ jobs, held: 0, refillAt: undefined, rateLimited: false })
        })
      )
      : full(r, key, exclude, floored, since, params)
    return statement.pipe(Effect.catchTag("SqlError", storageError("claim")))
  }
  /** Jobs may have become ready below the floors (a wake-up of all channels): every next claim is unfloored. */
  const resetFloors = () => {
    epoch++
    for (const entry of floorsOf.values()) entry.floor = undefined
  }
  /** A deregistered worker claims no more: its hint and its floors go. */
  const forget = (workerId: string) => {
    plainFor.delete(workerId)
    floorsOf.delete(workerId)
  }
  return { run, forget, resetFloors }
}

/** A level's floor: the claim scans its ready rows from `at` (epoch milliseconds) on. */
interface Floor {
  readonly channel: string
  readonly priority: number
  readonly at: number
}
