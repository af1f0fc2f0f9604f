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
    SELECT free.name, free.k, c.channel FROM free CROSS JOIN LATERAL (
      WITH RECURSIVE r(channel) AS (
        (SELECT h.channel FROM ${n.job} h WHERE h.job_group = free.name AND h.held ORDER BY h.channel LIMIT 1)
        UNION ALL
        SELECT (SELECT h.channel FROM ${n.job} h WHERE h.job_group = free.name AND h.held AND h.channel > r.channel
                ORDER BY h.channel LIMIT 1)
        FROM r WHERE r.channel IS NOT NULL
      )
      SELECT r.channel FROM r WHERE r.channel IS NOT NULL
    ) c
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

/** Tallies the group of each job that gave up a slot: `[groups, counts]` in name order, or undefined if none. */
export const tally = (groups: ReadonlyArray<string>): readonly [Array<string>, Array<number>] | undefined => {
  if (groups.length === 0) return undefined
  const counts = new Map<string, number>()
  for (const g of groups) counts.set(g, (counts.get(g) ?? 0) + 1)
  const names = Array.from(counts.keys()).sort()
  return [names, names.map((g) => counts.get(g)!)]
}

/** Deletes up to `$1` groups with no slot taken that no live job refers to. */
export const deleteGroupsSql = (n: Names) => `
DELETE FROM ${n.group} WHERE name IN (
  SELECT g.name FROM ${n.group} g
  WHERE g.running = 0 AND NOT EXISTS (SELECT 1 FROM ${n.job} j WHERE j.job_group = g.name)
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
