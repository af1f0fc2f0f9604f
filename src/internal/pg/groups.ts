/**
 * Job groups on PostgreSQL: freeing slots (and making held jobs claimable again), and deleting groups no
 * job refers to.
 *
 * A group row (`job_group`) counts the slots its claimed jobs hold (`running`) against its `concurrency`.
 * Claims take slots under the group row's lock (claim.ts). Everything that ends a claimed job's hold on a
 * slot (settle, release, rescue, the ceiling) calls `free_slots_v2`, which locks the group rows in name
 * order (the order claims lock them in, so the two never deadlock), decrements `running`, and then, in a
 * second statement with a fresh snapshot, makes the oldest held jobs of each group claimable again: one
 * statement could not see a job that a concurrent claim held (under the group lock we now have) after this
 * statement's snapshot was taken, and that job would stay held with a free slot. That is why this is a
 * PL/pgSQL function: each statement in it sees everything committed before it started.
 */
import { Effect } from "effect"
import type { PgClient } from "@effect/sql-pg"
import { type Names, type Row, storageError } from "./sql.js"

/**
 * The channels of each `free` group's held jobs (columns `name`, `k`, `channel`): a skip scan of the held
 * index, one probe per channel. Shared by `free_slots_v2` and `free_slots_v3` (its text is part of both).
 */
const heldChannelsSql = (n: Names) => `    SELECT free.name, free.k, c.channel FROM free CROSS JOIN LATERAL (
      WITH RECURSIVE r(channel) AS (
        (SELECT h.channel FROM ${n.job} h WHERE h.job_group = free.name AND h.held ORDER BY h.channel LIMIT 1)
        UNION ALL
        SELECT (SELECT h.channel FROM ${n.job} h WHERE h.job_group = free.name AND h.held AND h.channel > r.channel
                ORDER BY h.channel LIMIT 1)
        FROM r WHERE r.channel IS NOT NULL
      )
      SELECT r.channel FROM r WHERE r.channel IS NOT NULL
    ) c`

/**
 * How many waiting, unheld, due jobs group `grp` has (SQL expressions), counted up to `limit` on
 * job_group_idx: what enqueue and promotion count against a group's concurrency. Due: `sort_at` at or before
 * `now` (an SQL expression; the statement's time unless given).
 */
export const readyCountSql = (n: Names, grp: string, limit: string, now = "statement_timestamp()") =>
  `(SELECT count(*) FROM (SELECT 1 FROM ${n.job} u WHERE u.job_group = ${grp} AND u.worker_id IS NULL AND NOT u.held
    AND u.sort_at <= ${now} LIMIT ${limit}) r)`

/**
 * `free_slots_v2(groups, counts)`: frees `counts[i]` slots of `groups[i]` and makes up to as many held jobs
 * claimable per channel as the group then has free slots (more than strictly needed when unheld jobs also
 * wait: a claim holds the surplus again, which costs one row update). Promoted jobs go behind the jobs
 * already waiting (`sort_at` = now): claims go round-robin across busy groups.
 * Part of migration 2: a change is a new migration and a new function name.
 */
export const freeSlotsFunction = (n: Names) => `
CREATE OR REPLACE FUNCTION ${n.fn("free_slots_v2")}(p_groups text[], p_counts integer[])
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM 1 FROM ${n.group} WHERE name = ANY(p_groups) ORDER BY name FOR UPDATE;
  UPDATE ${n.group} g SET running = GREATEST(g.running - x.n, 0)
  FROM unnest(p_groups, p_counts) AS x(name, n)
  WHERE g.name = x.name;
  -- a new statement: its snapshot sees every hold committed before we took the group locks
  WITH free AS (
    SELECT g.name, g.concurrency - g.running AS k FROM ${n.group} g
    WHERE g.name = ANY(p_groups) AND g.running < g.concurrency
  ),
  chans AS (
    -- the channels of each group's held jobs: a skip scan of the held index, one probe per channel
${heldChannelsSql(n)}
  ),
  pick AS (
    SELECT p.id FROM chans CROSS JOIN LATERAL (
      SELECT h.id FROM ${n.job} h
      WHERE h.job_group = chans.name AND h.channel = chans.channel AND h.held
      ORDER BY h.run_at, h.id
      LIMIT chans.k
    ) p
  )
  UPDATE ${n.job} j SET held = false, sort_at = GREATEST(j.run_at, statement_timestamp())
  WHERE j.id = ANY(ARRAY(SELECT id FROM pick)) AND j.held;
END
$fn$`

/** A group's effective concurrency: its explicit setting, else the definitions' default its claims recorded. */
export const groupConcurrencySql = (g: string) => `COALESCE(${g}.concurrency, ${g}.def_concurrency)`

/**
 * A group's claim budget in its current rate window (SQL, for group row `g`): unlimited (2^31-1) without a
 * rate limit; the limit when the window ended (the next claim starts a new one); else what is left.
 */
export const groupBudgetSql = (g: string) => `CASE
    WHEN COALESCE(${g}.rate_limit, ${g}.def_rate_limit) IS NULL THEN 2147483647
    WHEN ${g}.window_start IS NOT NULL AND ${g}.window_start + make_interval(secs =>
      CASE WHEN ${g}.rate_limit IS NOT NULL THEN ${g}.rate_period_secs ELSE ${g}.def_rate_period_secs END) > statement_timestamp()
    THEN GREATEST(COALESCE(${g}.rate_limit, ${g}.def_rate_limit) - ${g}.window_used, 0)
    ELSE COALESCE(${g}.rate_limit, ${g}.def_rate_limit) END`

/**
 * `free_slots_v3(groups, counts)`: frees `counts[i]` slots of `groups[i]` (0: only promote), clears a
 * block whose window ended, and then, in a second statement with a fresh snapshot, makes held jobs
 * claimable again: per group, `k = min(concurrency - running - ready, budget)` where `ready` counts its
 * waiting, unheld, due jobs (so promotions never outnumber what the group can run), the oldest `k` held
 * jobs per channel by run time, behind the jobs already waiting (`sort_at` = now): claims go round-robin
 * across busy groups. A group with room whose rate budget is spent (and held jobs) is blocked until its
 * window ends, when `promoteGroups` promotes it. Returns how many groups had jobs promoted.
 *
 * `clock`: what "now" is for the count of due ready jobs and for the promoted jobs' `sort_at`.
 * - `"statement"` (migration 3, as shipped): `statement_timestamp()`, the start of the caller's statement. A
 *   bug: a call that waited for a group's lock while its holder promoted jobs (whose `sort_at` is the
 *   holder's statement time, later than ours) did not count those jobs as due, and let out more jobs than the
 *   group had room for (claims hold the surplus again, so no limit was exceeded, but they could run out of
 *   order and a group's held jobs were not the oldest).
 * - `"snapshot"` (migration 8): the clock read by each statement once its snapshot is taken (an uncorrelated
 *   subquery, evaluated once, at its first use), later than the commit of every job that snapshot sees.
 */
export const freeSlotsV3Function = (n: Names, clock: "statement" | "snapshot" = "statement") => {
  const now = clock === "statement" ? "statement_timestamp()" : "(SELECT clock_timestamp())"
  return `
CREATE OR REPLACE FUNCTION ${n.fn("free_slots_v3")}(p_groups text[], p_counts integer[])
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
  v_promoted integer;
BEGIN
  -- a promotion alone (count 0) may concern a group that no claim has taken a slot of yet: give it its row
  INSERT INTO ${n.group} (name)
  SELECT x.name FROM unnest(p_groups, p_counts) AS x(name, n) WHERE x.n = 0 ORDER BY x.name
  ON CONFLICT (name) DO NOTHING;
  PERFORM 1 FROM ${n.group} WHERE name = ANY(p_groups) ORDER BY name FOR UPDATE;
  UPDATE ${n.group} g SET running = GREATEST(g.running - x.n, 0),
    blocked_until = CASE WHEN g.blocked_until <= statement_timestamp() THEN NULL ELSE g.blocked_until END
  FROM unnest(p_groups, p_counts) AS x(name, n)
  WHERE g.name = x.name AND (x.n > 0 OR g.blocked_until <= statement_timestamp());
  -- a new statement: its snapshot sees every hold committed before we took the group locks
  WITH free AS (
    SELECT g.name, LEAST(
      ${groupConcurrencySql("g")} - g.running - ${readyCountSql(n, "g.name", groupConcurrencySql("g"), now)},
      ${groupBudgetSql("g")}) AS k
    FROM ${n.group} g
    WHERE g.name = ANY(p_groups) AND g.running < ${groupConcurrencySql("g")}
      AND (g.blocked_until IS NULL OR g.blocked_until <= statement_timestamp())
  ),
  chans AS (
    -- the channels of each group's held jobs: a skip scan of the held index, one probe per channel
${heldChannelsSql(n)}
    WHERE free.k > 0
  ),
  pick AS (
    SELECT chans.name, p.id FROM chans CROSS JOIN LATERAL (
      SELECT h.id FROM ${n.job} h
      WHERE h.job_group = chans.name AND h.channel = chans.channel AND h.held
      ORDER BY h.run_at, h.id
      LIMIT chans.k
    ) p
  ),
  promoted AS (
    UPDATE ${n.job} j SET held = false, sort_at = GREATEST(j.run_at, ${now})
    WHERE j.id = ANY(ARRAY(SELECT id FROM pick)) AND j.held
    RETURNING j.job_group
  )
  SELECT count(DISTINCT job_group)::int INTO v_promoted FROM promoted;
  -- room, but the rate budget is spent: blocked until the window ends, when promoteGroups promotes it
  UPDATE ${n.group} g SET blocked_until = g.window_start + make_interval(secs =>
      CASE WHEN g.rate_limit IS NOT NULL THEN g.rate_period_secs ELSE g.def_rate_period_secs END)
  WHERE g.name = ANY(p_groups) AND g.blocked_until IS NULL AND g.window_start IS NOT NULL
    AND COALESCE(g.rate_limit, g.def_rate_limit) IS NOT NULL
    AND ${groupBudgetSql("g")} <= 0
    AND ${groupConcurrencySql("g")} - g.running - ${readyCountSql(n, "g.name", groupConcurrencySql("g"), now)} > 0
    AND EXISTS (SELECT 1 FROM ${n.job} h WHERE h.job_group = g.name AND h.held);
  RETURN v_promoted;
END
$fn$`
}

/** Version 2's `free_slots_v2` (called by settle_v2, release_v2 and rescue_v2), now version 3's promotion. */
export const freeSlotsV2Delegate = (n: Names) => `
CREATE OR REPLACE FUNCTION ${n.fn("free_slots_v2")}(p_groups text[], p_counts integer[])
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM ${n.fn("free_slots_v3")}(p_groups, p_counts);
END
$fn$`

/**
 * The groups `promoteGroups` looks at: those whose rate window ended while they were blocked (oldest
 * first), then (a safety net) groups with held jobs, by name after the cursor $2 (a skip scan of the held
 * index), at most $1 of each. Promotes them with `free_slots_v3`. Returns the groups seen by the scan (to
 * move the cursor) and how many had jobs promoted.
 */
export const promoteGroupsSql = (n: Names) => `
WITH blocked AS (
  SELECT g.name FROM ${n.group} g WHERE g.blocked_until <= statement_timestamp() ORDER BY g.blocked_until LIMIT $1
),
scanned AS (
  WITH RECURSIVE r(name) AS (
    (SELECT h.job_group FROM ${n.job} h WHERE h.held AND h.job_group > $2::text ORDER BY h.job_group LIMIT 1)
    UNION ALL
    SELECT (SELECT h.job_group FROM ${n.job} h WHERE h.held AND h.job_group > r.name ORDER BY h.job_group LIMIT 1)
    FROM r WHERE r.name IS NOT NULL
  )
  SELECT r.name FROM r WHERE r.name IS NOT NULL LIMIT $1
),
todo AS (SELECT name FROM blocked UNION SELECT name FROM scanned)
SELECT (SELECT max(name) FROM scanned) AS last, (SELECT count(*) FROM scanned)::int AS seen,
  CASE WHEN EXISTS (SELECT 1 FROM todo)
    THEN ${n.fn("free_slots_v3")}(ARRAY(SELECT name FROM todo ORDER BY name),
      array_fill(0, ARRAY[(SELECT count(*) FROM todo)::int]))
    ELSE 0 END AS promoted`

/** Tallies the group of each job that gave up a slot: `[groups, counts]` in name order, or undefined if none. */
export const tally = (groups: ReadonlyArray<string>): readonly [Array<string>, Array<number>] | undefined => {
  if (groups.length === 0) return undefined
  const counts = new Map<string, number>()
  for (const g of groups) counts.set(g, (counts.get(g) ?? 0) + 1)
  const names = Array.from(counts.keys()).sort()
  return [names, names.map((g) => counts.get(g)!)]
}

/**
 * Deletes up to `$1` groups with no slot taken, no explicit setting and no open rate window that no live job
 * refers to.
 */
export const deleteGroupsSql = (n: Names) => `
DELETE FROM ${n.group} WHERE name IN (
  SELECT g.name FROM ${n.group} g
  WHERE g.running = 0 AND g.concurrency IS NULL AND g.rate_limit IS NULL
    -- a rate window still open keeps its count: deleting it would let the group's next jobs past the limit
    AND (g.window_start IS NULL OR g.window_start + make_interval(secs => COALESCE(g.def_rate_period_secs, 0)) <= now())
    -- two probes: unheld jobs (job_group_idx) and held ones (job_held_idx)
    AND NOT EXISTS (SELECT 1 FROM ${n.job} j WHERE j.job_group = g.name AND NOT j.held)
    AND NOT EXISTS (SELECT 1 FROM ${n.job} j WHERE j.job_group = g.name AND j.held)
  LIMIT $1
  FOR UPDATE SKIP LOCKED
) AND running = 0
RETURNING name`

export const deleteUnreferencedGroups = (sql: PgClient.PgClient, n: Names) => {
  const text = deleteGroupsSql(n)
  return (limit: number) =>
    sql.unsafe<Row>(text, [limit]).pipe(
      Effect.map((rows) => rows.map((r) => r.name as string)),
      Effect.catchTag("SqlError", storageError("delete job groups"))
    )
}
