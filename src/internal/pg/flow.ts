/**
 * Flow control settings on PostgreSQL: channels (pause, rate limit) in `job_channel`, a group's explicit
 * limits on its `job_group` row, and the promotions that limits changing (or rate windows ending) call for.
 * The claim (claim.ts) enforces all of it; this module only writes settings and promotes held jobs.
 */
import { Effect } from "effect"
import type { PgClient } from "@effect/sql-pg"
import type * as JobStore from "../../JobStore.js"
import { promoteGroupsSql } from "./groups.js"
import { type Names, type Row, storageError } from "./sql.js"

const rateOf = (limit: unknown, periodSecs: unknown): JobStore.RateLimit | undefined =>
  limit === null || limit === undefined ? undefined : { limit: Number(limit), periodSecs: Number(periodSecs) }

const toChannel = (channel: string, row: Row | undefined): JobStore.ChannelState => ({
  channel,
  paused: row?.paused === true,
  rateLimit: row === undefined ? undefined : rateOf(row.rate_limit, row.rate_period_secs)
})

const toGroup = (jobGroup: string, row: Row | undefined): JobStore.GroupState => ({
  jobGroup,
  concurrency: row?.concurrency === null || row?.concurrency === undefined ? undefined : Number(row.concurrency),
  rateLimit: row === undefined ? undefined : rateOf(row.rate_limit, row.rate_period_secs),
  running: row === undefined ? 0 : Number(row.running)
})

/**
 * A channel's settings ($2 paused, or NULL to keep it; $3/$4 the rate limit, kept when $5). A changed rate
 * limit keeps the current window and its count: claims already made in it count against the new limit, so
 * changing a limit never admits a burst.
 */
const setChannelSql = (n: Names) => `
INSERT INTO ${n.channel} AS c (name, paused, rate_limit, rate_period_secs)
VALUES ($1, COALESCE($2::boolean, false), $3::int, $4::float8)
ON CONFLICT (name) DO UPDATE SET
  paused = COALESCE($2::boolean, c.paused),
  rate_limit = CASE WHEN $5::boolean THEN c.rate_limit ELSE EXCLUDED.rate_limit END,
  rate_period_secs = CASE WHEN $5::boolean THEN c.rate_period_secs ELSE EXCLUDED.rate_period_secs END,
  updated_at = statement_timestamp()
RETURNING paused, rate_limit, rate_period_secs`

const getChannelSql = (n: Names) => `SELECT paused, rate_limit, rate_period_secs FROM ${n.channel} WHERE name = $1`

/**
 * A group's explicit limits ($2 concurrency, $3/$4 rate limit; $5/$6: keep the current one). The row is
 * locked by the upsert; a changed rate limit keeps the current window's count (claims already made count
 * against the new limit until the window ends).
 */
const setGroupSql = (n: Names) => `
INSERT INTO ${n.group} AS g (name, concurrency, rate_limit, rate_period_secs)
VALUES ($1, $2::int, $3::int, $4::float8)
ON CONFLICT (name) DO UPDATE SET
  concurrency = CASE WHEN $5::boolean THEN g.concurrency ELSE EXCLUDED.concurrency END,
  rate_limit = CASE WHEN $6::boolean THEN g.rate_limit ELSE EXCLUDED.rate_limit END,
  rate_period_secs = CASE WHEN $6::boolean THEN g.rate_period_secs ELSE EXCLUDED.rate_period_secs END,
  blocked_until = CASE WHEN $6::boolean THEN g.blocked_until ELSE NULL END
RETURNING concurrency, rate_limit, rate_period_secs, running`

const getGroupSql = (n: Names) =>
  `SELECT concurrency, rate_limit, rate_period_secs, running FROM ${n.group} WHERE name = $1`

const promoteSql = (n: Names) => `SELECT ${n.fn("free_slots_v3")}($1::text[], $2::int[]) AS promoted`

export const make = (sql: PgClient.PgClient, n: Names, wakeAll: Effect.Effect<void>) => {
  const texts = {
    setChannel: setChannelSql(n),
    getChannel: getChannelSql(n),
    setGroup: setGroupSql(n),
    getGroup: getGroupSql(n),
    promote: promoteSql(n),
    promoteGroups: promoteGroupsSql(n)
  }

  /** Promotes held jobs of `groups` where they have room; wakes workers when something was promoted. */
  const promoteIn = (groups: ReadonlyArray<string>) => {
    const sorted = Array.from(new Set(groups)).sort()
    return sql.unsafe<Row>(texts.promote, [sorted, sorted.map(() => 0)]).pipe(
      Effect.flatMap((rows) => Number(rows[0]?.promoted ?? 0) > 0 ? wakeAll : Effect.void)
    )
  }

  const setChannel = (channel: string, update: JobStore.ChannelUpdate) => {
    const keepRate = update.rateLimit === undefined
    const rate = update.rateLimit ?? undefined
    return sql.unsafe<Row>(texts.setChannel, [
      channel,
      update.paused ?? null,
      rate?.limit ?? null,
      rate?.periodSecs ?? null,
      keepRate
    ]).pipe(
      Effect.map((rows) => toChannel(channel, rows[0])),
      Effect.tap(() => wakeAll),
      Effect.catchTag("SqlError", storageError("set channel"))
    )
  }

  const getChannel = (channel: string) =>
    sql.unsafe<Row>(texts.getChannel, [channel]).pipe(
      Effect.map((rows) => toChannel(channel, rows[0])),
      Effect.catchTag("SqlError", storageError("get channel"))
    )

  const setGroupLimits = (jobGroup: string, update: JobStore.GroupUpdate) => {
    const rate = update.rateLimit ?? undefined
    return sql.unsafe<Row>(texts.setGroup, [
      jobGroup,
      update.concurrency ?? null,
      rate?.limit ?? null,
      rate?.periodSecs ?? null,
      update.concurrency === undefined,
      update.rateLimit === undefined
    ]).pipe(
      Effect.map((rows) => toGroup(jobGroup, rows[0])),
      // raised limits: held jobs may be claimable now
      Effect.tap(() => promoteIn([jobGroup])),
      Effect.tap(() => wakeAll),
      Effect.catchTag("SqlError", storageError("set group limits"))
    )
  }

  const getGroup = (jobGroup: string) =>
    sql.unsafe<Row>(texts.getGroup, [jobGroup]).pipe(
      Effect.map((rows) => toGroup(jobGroup, rows[0])),
      Effect.catchTag("SqlError", storageError("get group"))
    )

  // the safety net's cursor over groups with held jobs (by name, wrapping around)
  let cursor = ""
  const promoteGroups = (limit: number) =>
    sql.unsafe<Row>(texts.promoteGroups, [limit, cursor]).pipe(
      Effect.tap((rows) =>
        Effect.sync(() => {
          const row = rows[0]
          cursor = row === undefined || Number(row.seen) < limit || row.last === null ? "" : String(row.last)
        })
      ),
      Effect.map((rows) => Number(rows[0]?.promoted ?? 0)),
      Effect.tap((promoted) => promoted > 0 ? wakeAll : Effect.void),
      Effect.catchTag("SqlError", storageError("promote groups"))
    )

  /** After an enqueue held jobs: never fails (the maintenance's `promoteGroups` is the safety net). */
  const promoteAfterEnqueue = (groups: ReadonlyArray<string>) =>
    promoteIn(groups).pipe(
      Effect.catchCause((cause) => Effect.logWarning("cuckmq: promoting held jobs after an enqueue failed", cause))
    )

  return { setChannel, getChannel, setGroupLimits, getGroup, promoteGroups, promoteAfterEnqueue }
}
