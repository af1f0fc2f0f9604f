/**
 * Definitions, repeating jobs and retention on PostgreSQL.
 *
 * - deploy: an upsert per definition in one transaction, in name order (processes deploying the same
 *   definitions at once never deadlock). First due times come from the database clock. When a definition's
 *   repeat changes, it keeps the earlier of its current due time and the new schedule's first one, so two
 *   versions deploying in turn (a rolling deploy) never schedule extra runs.
 * - scheduleDue: in one transaction, due definitions this process knows are locked (`SKIP LOCKED`), one job
 *   inserted for each and its due time moved on, so each due time is enqueued exactly once however many
 *   orchestrators run.
 * - retention: finalized jobs past their time, deleted in bounded batches.
 */
import { Effect } from "effect"
import type { PgClient } from "@effect/sql-pg"
import { JobDefinitionInUse } from "../../CuckmqError.js"
import type * as JobStore from "../../JobStore.js"
import { type Names, optionalString, type Row, storageError } from "./sql.js"
import * as Unique from "./unique.js"

/** Retention: deletes up to $2 finalized jobs older than $1 seconds, oldest first, skipping rows others hold. */
export const deleteFinalizedSqlOf = (n: Names) => `
DELETE FROM ${n.finalized} WHERE id IN (
  SELECT id FROM ${n.finalized}
  WHERE finalized_at < now() - make_interval(secs => $1::float8)
  ORDER BY finalized_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED
)
RETURNING id, name`

export const make = (sql: PgClient.PgClient, n: Names, wake: (channel: string) => Effect.Effect<void>) => {
  const deploySql = `
INSERT INTO ${n.definition} AS d (name, channel, num_attempts, timeout_secs, repeat_secs, cron, cron_tz, next_run_at,
  group_concurrency, group_rate_limit, group_rate_period_secs, priority)
VALUES ($1, $2, $3, $4::float8, $5::float8, $6, $7, $8::timestamptz, $10::int, $11::int, $12::float8, $13::int)
ON CONFLICT (name) DO UPDATE SET
  channel = EXCLUDED.channel, num_attempts = EXCLUDED.num_attempts, timeout_secs = EXCLUDED.timeout_secs,
  repeat_secs = EXCLUDED.repeat_secs, cron = EXCLUDED.cron, cron_tz = EXCLUDED.cron_tz,
  group_concurrency = EXCLUDED.group_concurrency, group_rate_limit = EXCLUDED.group_rate_limit,
  group_rate_period_secs = EXCLUDED.group_rate_period_secs, priority = EXCLUDED.priority,
  next_run_at = CASE
    WHEN (d.repeat_secs, d.cron, d.cron_tz) IS NOT DISTINCT FROM (EXCLUDED.repeat_secs, EXCLUDED.cron, EXCLUDED.cron_tz)
    THEN d.next_run_at
    WHEN EXCLUDED.next_run_at IS NULL THEN NULL
    ELSE LEAST(COALESCE(d.next_run_at, $9::timestamptz), $9::timestamptz) END,
  updated_at = now()
WHERE (d.channel, d.num_attempts, d.timeout_secs, d.repeat_secs, d.cron, d.cron_tz, d.group_concurrency,
    d.group_rate_limit, d.group_rate_period_secs, d.priority)
  IS DISTINCT FROM (EXCLUDED.channel, EXCLUDED.num_attempts, EXCLUDED.timeout_secs, EXCLUDED.repeat_secs,
    EXCLUDED.cron, EXCLUDED.cron_tz, EXCLUDED.group_concurrency, EXCLUDED.group_rate_limit,
    EXCLUDED.group_rate_period_secs, EXCLUDED.priority)
RETURNING name`

  const deploy = (definitions: ReadonlyArray<JobStore.DefinitionRecord>, firstDue: JobStore.FirstDue) =>
    sql.withTransaction(Effect.gen(function*() {
      const [clock] = yield* sql.unsafe<Row>("SELECT statement_timestamp() AS now")
      const now = clock!.now as Date
      const sorted = [...definitions].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      return yield* Effect.forEach(sorted, (d) => {
        const due = d.repeat === undefined ? undefined : firstDue(d.repeat, now)
        return Effect.map(
          sql.unsafe(deploySql, [
            d.name,
            d.channel,
            d.numAttempts,
            d.timeoutSecs,
            d.repeat?._tag === "Every" ? d.repeat.secs : null,
            d.repeat?._tag === "Cron" ? d.repeat.expression : null,
            d.repeat?._tag === "Cron" ? (d.repeat.tz ?? null) : null,
            due?.fresh ?? null,
            due?.changed ?? null,
            d.groupConcurrency,
            d.groupRateLimit?.limit ?? null,
            d.groupRateLimit?.periodSecs ?? null,
            d.priority
          ]),
          (rows) => ({ name: d.name, changed: rows.length > 0 })
        )
      })
    })).pipe(Effect.catchTag("SqlError", storageError("deploy")))

  /** Due definitions this process knows ($2), locked for the scheduling transaction. */
  const dueSql = `
SELECT name, next_run_at, repeat_secs, cron, cron_tz, statement_timestamp() AS db_now
FROM ${n.definition}
WHERE next_run_at <= statement_timestamp() AND name = ANY($2::text[])
ORDER BY next_run_at
LIMIT $1
FOR UPDATE SKIP LOCKED`

  /** Due definitions this process does not know (reported, never locked or touched). */
  const orphansSql = `
SELECT name, next_run_at FROM ${n.definition}
WHERE next_run_at <= statement_timestamp() AND NOT (name = ANY($1::text[]))
ORDER BY next_run_at
LIMIT 100`

  /** Runs in the scheduling transaction, which holds the definition's row lock. */
  const scheduleJobSql = `
INSERT INTO ${n.job} (name, channel, payload, run_at, sort_at, created_at, max_attempts, timeout_secs, scheduled_for,
  priority)
SELECT d.name, d.channel, '{}'::jsonb, t.now, t.now, t.now, d.num_attempts, d.timeout_secs, d.next_run_at, d.priority
FROM ${n.definition} d, (SELECT statement_timestamp() AS now) t WHERE d.name = $1
RETURNING id, channel, scheduled_for`

  const nextDueSql = `
SELECT extract(epoch FROM min(next_run_at) - statement_timestamp())::float8 AS secs
FROM ${n.definition} WHERE next_run_at IS NOT NULL AND name = ANY($1::text[])`

  const advanceSql = `UPDATE ${n.definition} SET next_run_at = $2::timestamptz WHERE name = $1`

  const scheduleDue = (known: ReadonlySet<string>, advance: JobStore.Advance, limit: number) =>
    sql.withTransaction(Effect.gen(function*() {
      const knownNames = Array.from(known)
      const due = yield* sql.unsafe<Row>(dueSql, [limit, knownNames])
      const scheduled: Array<JobStore.ScheduledJob> = []
      const orphans = (yield* sql.unsafe<Row>(orphansSql, [knownNames])).map((r): JobStore.OrphanSchedule => ({
        definitionName: r.name as string,
        dueAt: r.next_run_at as Date
      }))
      for (const row of due) {
        const name = row.name as string
        const repeat: JobStore.Repeat = row.repeat_secs !== null
          ? { _tag: "Every", secs: Number(row.repeat_secs) }
          : { _tag: "Cron", expression: row.cron as string, tz: optionalString(row.cron_tz) }
        const next = advance(repeat, row.next_run_at as Date, row.db_now as Date)
        const [inserted] = yield* sql.unsafe<Row>(scheduleJobSql, [name])
        yield* sql.unsafe(advanceSql, [name, next])
        scheduled.push({ definitionName: name, jobId: String(inserted!.id), scheduledFor: inserted!.scheduled_for as Date })
        yield* sql.afterCommit(wake(inserted!.channel as string))
      }
      const [soonest] = yield* sql.unsafe<Row>(nextDueSql, [knownNames])
      const secs = soonest?.secs
      return { scheduled, orphans, nextDueInSecs: secs === null || secs === undefined ? undefined : Number(secs) }
    })).pipe(Effect.catchTag("SqlError", storageError("schedule")))

  const deleteFinalizedSql = deleteFinalizedSqlOf(n)

  const deleteFinalized = (olderThanSecs: number, limit: number) =>
    sql.unsafe<Row>(deleteFinalizedSql, [olderThanSecs, limit]).pipe(
      Effect.map((rows) => rows.map((r) => ({ id: String(r.id), name: r.name as string }))),
      Effect.catchTag("SqlError", storageError("delete finalized jobs"))
    )

  const sweepUniqueSql = Unique.sweepSql(n)
  const deleteStaleUniqueKeys = (limit: number) =>
    sql.unsafe<Row>(sweepUniqueSql, [limit]).pipe(
      Effect.map((rows) => Number(rows[0]?.n ?? 0)),
      Effect.catchTag("SqlError", storageError("delete stale unique keys"))
    )

  // ---- undeploy ----
  // One transaction: the definition row goes first (from then on nothing schedules it, and an enqueue that
  // starts after the commit is refused), then the waiting jobs as asked. The live-job count scans the job
  // table by name (there is no index on it: undeploy is a rare administrative step).
  const undeployDefinitionSql = `DELETE FROM ${n.definition} WHERE name = $1 RETURNING name`
  const liveJobsSql = `
SELECT count(*) FILTER (WHERE worker_id IS NULL)::int AS waiting, count(*) FILTER (WHERE worker_id IS NOT NULL)::int AS running
FROM ${n.job} WHERE name = $1`
  const deleteWaitingSql = `DELETE FROM ${n.job} WHERE name = $1 AND worker_id IS NULL RETURNING job_group`
  // A deleted waiting job may have been the one a group's held jobs queued behind: with no slot taken by it,
  // free_slots_v2 with nothing to free makes them claimable again where the group has room.
  const unholdSql = `SELECT ${n.fn("free_slots_v3")}($1::text[], $2::integer[])`

  const undeploy = (definitionName: string, waiting: JobStore.UndeployWaiting) =>
    sql.withTransaction(Effect.gen(function*() {
      const deleted = yield* sql.unsafe<Row>(undeployDefinitionSql, [definitionName])
      const [live] = yield* sql.unsafe<Row>(liveJobsSql, [definitionName])
      const waitingJobs = Number(live?.waiting ?? 0)
      const running = Number(live?.running ?? 0)
      if (waiting === "fail" && waitingJobs + running > 0) {
        return yield* new JobDefinitionInUse({
          definitionName,
          waiting: waitingJobs,
          running,
          message: `Job definition ${JSON.stringify(definitionName)} still has ${waitingJobs} waiting and ${running} running ` +
            `job(s): nothing was undeployed (undeploy with waiting: "delete" or "keep", or let them drain first)`
        })
      }
      let removed = 0
      if (waiting === "delete" && waitingJobs > 0) {
        const rows = yield* sql.unsafe<Row>(deleteWaitingSql, [definitionName])
        removed = rows.length
        const groups = Array.from(new Set(rows.flatMap((r) => r.job_group === null ? [] : [r.job_group as string]))).sort()
        if (groups.length > 0) yield* sql.unsafe(unholdSql, [groups, groups.map(() => 0)])
        yield* sql.afterCommit(wake("*"))
      }
      return {
        undeployed: deleted.length > 0,
        deleted: removed,
        kept: waiting === "keep" ? waitingJobs : 0,
        running
      } satisfies JobStore.UndeployResult
    })).pipe(Effect.catchTag("SqlError", storageError("undeploy")))

  return { deploy, scheduleDue, deleteFinalized, deleteStaleUniqueKeys, undeploy }
}
