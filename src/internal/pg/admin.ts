/**
 * The admin backend on PostgreSQL (`CuckmqAdmin`): the statistics' reads, listings and actions (the
 * counters' rows are written by each process's store: src/internal/pg/outcomes.ts). Every statement is fixed text per schema (identifiers escaped by `names`), every value a
 * bind parameter; the only text that varies is chosen from fixed fragments (the state conditions, the sort).
 *
 * What a refresh (`snapshot`) costs, whatever the backlog:
 * - the channels: those of the definitions and settings, and those with ready jobs (a skip scan of the ready
 *   index: one probe per channel), so a channel whose jobs outlived their definition is listed too;
 * - per channel, a skip scan of the ready index over its priority levels, one probe for the oldest due job
 *   per level, and the due and delayed jobs counted against one budget per channel and state carried across
 *   the levels (`cap + 1` entries in all): at most `2 x (cap + 1)` index entries per channel, whatever the
 *   number of levels;
 * - held jobs: one scan of the held index that stops at the cap (per channel: exact while the whole held
 *   backlog is under the cap, a lower bound beyond);
 * - running jobs: the worker index (claimed rows only: bounded by the workers' concurrency);
 * - per definition: its channel's counts when it is alone there; on a channel several definitions share,
 *   the same capped scans read each row's name (heap fetches), so a definition's figure is exact while its
 *   channel's is, and a lower bound (its jobs among the channel's first `cap + 1`, level by level) beyond;
 * - counters: the last hour's rows of `stats_minute` (processes x definitions x 60 at most).
 */
import { Effect } from "effect"
import type { PgClient } from "@effect/sql-pg"
import { JobDefinitionNotDeployed } from "../../CuckmqError.js"
import type * as Backend from "../admin/backend.js"
import { names, notifyChannel, optionalDate, optionalString, type Row, storageError } from "./sql.js"

/** The SQL condition of each state, on the live table `j` or the finalized table `f` (fixed text). */
const liveCondition: Partial<Record<Backend.State, string>> = {
  waiting: "(j.worker_id IS NULL AND NOT j.held AND j.sort_at <= now())",
  delayed: "(j.worker_id IS NULL AND NOT j.held AND j.sort_at > now())",
  held: "(j.worker_id IS NULL AND j.held)",
  running: "(j.worker_id IS NOT NULL)"
}
const finalCondition: Partial<Record<Backend.State, string>> = {
  succeeded: "f.succeeded",
  failed: "(NOT f.succeeded)"
}

const liveStateSql = `CASE WHEN j.worker_id IS NOT NULL THEN 'running' WHEN j.held THEN 'held'
  WHEN j.sort_at <= now() THEN 'waiting' ELSE 'delayed' END`

const toRow = (r: Row): Backend.JobRow => ({
  id: String(r.id),
  name: r.name as string,
  channel: r.channel as string,
  jobGroup: optionalString(r.job_group),
  state: r.state as Backend.State,
  payload: r.payload,
  attempts: Number(r.attempts),
  maxAttempts: Number(r.max_attempts),
  claims: Number(r.claims),
  crashes: Number(r.crashes),
  priority: r.priority === null || r.priority === undefined ? undefined : Number(r.priority),
  runAt: optionalDate(r.run_at),
  lastError: r.last_error ?? undefined,
  workerId: optionalString(r.worker_id),
  createdAt: r.created_at as Date,
  finalizedAt: optionalDate(r.finalized_at),
  scheduledFor: optionalDate(r.scheduled_for)
})

/** The statements of a refresh, per schema (exported for the cost measurement: EXPLAIN them). */
export const refreshStatements = (schema: string) => {
  const n = names(schema)
  const stats = n.fn("stats_minute")
  const definitionsSql = `SELECT name, channel FROM ${n.definition} ORDER BY name`
  const channelSettingsSql = `SELECT name, paused, rate_limit, rate_period_secs FROM ${n.channel} ORDER BY name`
  // Per channel ($1): its priority levels (a skip scan of the ready index, one level a step), and per level the
  // due and delayed jobs, counted against one budget per channel and state carried from level to level: the
  // first $2 = cap + 1 entries in all (a channel whose levels reach it is incomplete), so a refresh reads at
  // most cap + 1 entries per channel and state however many levels there are. On the channels ($3) that
  // several definitions share they are counted by definition (the rows' names: heap fetches, as a JSON
  // object), on the others as a plain count (the index alone); each CASE runs only its branch's subquery.
  // And per level the oldest due job's sort time (the first entry of its range).
  const ready = (state: "due" | "delayed", channel: string, level: string) =>
    `r.channel = ${channel} AND r.priority = ${level} AND r.worker_id IS NULL AND NOT r.held AND r.sort_at ${
      state === "due" ? "<=" : ">"
    } now()`
  const counts = (channel: string, shared: string, level: string, dueBudget: string, delayedBudget: string) => {
    const plain = (state: "due" | "delayed", budget: string) =>
      `CASE WHEN NOT ${shared} THEN (SELECT count(*) FROM (SELECT 1 FROM ${n.job} r WHERE ${ready(state, channel, level)}
        ORDER BY r.sort_at LIMIT greatest(${budget}, 0)) y) END`
    const byName = (state: "due" | "delayed", budget: string) =>
      `CASE WHEN ${shared} THEN (SELECT jsonb_object_agg(z.name, z.n) FROM (SELECT y.name, count(*) AS n FROM (
        SELECT r.name FROM ${n.job} r WHERE ${ready(state, channel, level)} ORDER BY r.sort_at LIMIT greatest(${budget}, 0)
      ) y GROUP BY y.name) z) END`
    const total = (prefix: string) =>
      `coalesce(x.${prefix}_plain, (SELECT sum(e.value::bigint) FROM jsonb_each_text(x.${prefix}_names) e), 0)::bigint`
    return `SELECT ${total("due")} AS due_n, ${total("delayed")} AS delayed_n, x.due_names, x.delayed_names, x.oldest FROM (
    SELECT ${plain("due", dueBudget)} AS due_plain, ${byName("due", dueBudget)} AS due_names,
      ${plain("delayed", delayedBudget)} AS delayed_plain, ${byName("delayed", delayedBudget)} AS delayed_names,
      (SELECT r.sort_at FROM ${n.job} r WHERE ${ready("due", channel, level)} ORDER BY r.sort_at LIMIT 1) AS oldest
  ) x`
  }
  const level = (channel: string, above: string | undefined) =>
    `SELECT r.priority AS p FROM ${n.job} r WHERE r.channel = ${channel} AND r.worker_id IS NULL AND NOT r.held${
      above === undefined ? "" : ` AND r.priority > ${above}`
    } ORDER BY r.priority LIMIT 1`
  const channelCountsSql = `
WITH RECURSIVE c AS (
  SELECT u.channel, u.channel = ANY($3::text[]) AS shared FROM unnest($1::text[]) AS u(channel)
),
lv AS (
  SELECT c.channel, c.shared, f.p, $2::bigint AS due_budget, $2::bigint AS delayed_budget, k.*
  FROM c CROSS JOIN LATERAL (${level("c.channel", undefined)}) f
  CROSS JOIN LATERAL (${counts("c.channel", "c.shared", "f.p", "$2::bigint", "$2::bigint")}) k
  UNION ALL
  SELECT lv.channel, lv.shared, f.p, lv.due_budget - lv.due_n, lv.delayed_budget - lv.delayed_n, k.*
  FROM lv CROSS JOIN LATERAL (${level("lv.channel", "lv.p")}) f
  CROSS JOIN LATERAL (${
    counts("lv.channel", "lv.shared", "f.p", "lv.due_budget - lv.due_n", "lv.delayed_budget - lv.delayed_n")
  }) k
)
SELECT lv.channel, lv.p, lv.due_n, lv.delayed_n, lv.due_names, lv.delayed_names, lv.oldest FROM lv`
  // Held jobs: any $1 held rows (the planner's cheapest: no order, so no heap visit per index entry), by channel
  // and definition: exact while the held backlog is at most $1 - 1 rows, lower bounds beyond.
  const heldSql = `
SELECT h.channel, h.name, count(*)::bigint AS n, (SELECT count(*) FROM (SELECT 1 FROM ${n.job} x WHERE x.held LIMIT $1) t) AS total
FROM (SELECT j.channel, j.name FROM ${n.job} j WHERE j.held LIMIT $1) h
GROUP BY h.channel, h.name`
  const runningSql = `
SELECT j.channel, j.name, count(*)::bigint AS n FROM ${n.job} j WHERE j.worker_id IS NOT NULL GROUP BY j.channel, j.name`
  const minutesSql = `
SELECT s.definition, max(s.channel) AS channel, s.minute, sum(s.succeeded)::bigint AS succeeded, sum(s.failed)::bigint AS failed,
  sum(s.errored)::bigint AS errored, sum(s.run_ms) AS run_ms, sum(s.attempts)::bigint AS attempts
FROM ${stats} s
WHERE s.minute >= date_trunc('minute', now()) - make_interval(secs => $1::float8) + interval '1 minute'
GROUP BY s.definition, s.minute`

  // The channels with ready jobs (due or delayed), by a skip scan of the ready index (one probe per channel):
  // a channel whose jobs outlived their definition is listed, as the memory store lists it.
  const readyChannelsSql = `
WITH RECURSIVE ch(channel) AS (
  (SELECT r.channel FROM ${n.job} r WHERE r.worker_id IS NULL AND NOT r.held ORDER BY r.channel LIMIT 1)
  UNION ALL
  SELECT (SELECT r.channel FROM ${n.job} r WHERE r.worker_id IS NULL AND NOT r.held AND r.channel > ch.channel
          ORDER BY r.channel LIMIT 1)
  FROM ch WHERE ch.channel IS NOT NULL
)
SELECT ch.channel FROM ch WHERE ch.channel IS NOT NULL`

  return { definitionsSql, channelSettingsSql, readyChannelsSql, channelCountsSql, heldSql, runningSql, minutesSql }
}

/** Each statement of a refresh is cancelled by PostgreSQL after this long (the dashboard's own limit). */
export const statementTimeoutMs = 30_000

export const make = (sql: PgClient.PgClient, schema: string, keepFinalized: boolean): Backend.AdminBackend => {
  const n = names(schema)
  const liveCols = `j.id, j.name, j.channel, j.job_group, j.payload, ${liveStateSql} AS state, j.attempts, j.max_attempts,
  j.claims, j.crashes, j.priority, j.run_at, j.last_error, j.worker_id, j.created_at, NULL::timestamptz AS finalized_at,
  j.scheduled_for`
  const finalCols = `f.id, f.name, f.channel, f.job_group, f.payload,
  CASE WHEN f.succeeded THEN 'succeeded' ELSE 'failed' END AS state, f.attempts, f.max_attempts, f.claims, f.crashes,
  NULL::smallint AS priority, NULL::timestamptz AS run_at, f.last_error, NULL::uuid AS worker_id, f.created_at,
  f.finalized_at, f.scheduled_for`

  const run = <A>(operation: string, text: string, params: ReadonlyArray<unknown>, f: (rows: ReadonlyArray<Row>) => A) =>
    sql.unsafe<Row>(text, params as Array<unknown>).pipe(Effect.map(f), Effect.catchTag("SqlError", storageError(operation)))

  // ---- the refresh ----
  const { channelCountsSql, channelSettingsSql, definitionsSql, heldSql, minutesSql, readyChannelsSql, runningSql } =
    refreshStatements(schema)

  // One transaction, for `SET LOCAL jit = off` and `statement_timeout`: the planner prices the capped scans as if they read whole
  // ranges (a LIMIT under a lateral join), and JIT-compiling them costs some 500 ms where running them costs 20.
  // (A caller that gives up on a slow refresh, as the dashboard does after 30 seconds, only interrupts the
  // fiber: the timeout makes PostgreSQL cancel the statement too, so a hung refresh does not keep a connection.)
  const snapshot = (cap: number, sinceSecs: number) =>
    Effect.gen(function*() {
      yield* run(
        "admin statistics",
        "SELECT set_config('jit', 'off', true), set_config('statement_timeout', $1, true)",
        [`${statementTimeoutMs}ms`],
        () => undefined
      )
      const now = yield* run("admin statistics", "SELECT now() AS now", [], (rows) => rows[0]!.now as Date)
      const definitions = yield* run("admin statistics", definitionsSql, [], (rows) =>
        rows.map((r): Backend.DefinitionRow => ({ name: r.name as string, channel: r.channel as string })))
      const channelSettings = yield* run("admin statistics", channelSettingsSql, [], (rows) =>
        rows.map((r): Backend.ChannelRow => ({
          channel: r.name as string,
          paused: r.paused === true,
          rateLimit: r.rate_limit === null ? undefined : { limit: Number(r.rate_limit), periodSecs: Number(r.rate_period_secs) }
        })))
      const running = yield* run("admin statistics", runningSql, [], (rows) =>
        rows.map((r) => ({ channel: r.channel as string, name: r.name as string, n: Number(r.n) })))
      const held = yield* run("admin statistics", heldSql, [cap + 1], (rows) => ({
        rows: rows.map((r) => ({ channel: r.channel as string, name: r.name as string, n: Number(r.n) })),
        complete: rows.length === 0 || Number(rows[0]!.total) <= cap
      }))
      const readyChannels = yield* run("admin statistics", readyChannelsSql, [], (rows) => rows.map((r) => r.channel as string))
      const channelNames = Array.from(
        new Set([
          ...definitions.map((d) => d.channel),
          ...channelSettings.map((c) => c.channel),
          ...running.map((r) => r.channel),
          ...held.rows.map((r) => r.channel),
          ...readyChannels
        ])
      ).sort()
      // the definitions of each channel (deployed, or with running or held jobs): shared channels count by name
      const defNames = new Map<string, string>(definitions.map((d) => [d.name, d.channel]))
      for (const r of [...running, ...held.rows]) if (!defNames.has(r.name)) defNames.set(r.name, r.channel)
      const perChannel = new Map<string, number>()
      for (const channel of defNames.values()) perChannel.set(channel, (perChannel.get(channel) ?? 0) + 1)
      const shared = channelNames.filter((c) => (perChannel.get(c) ?? 0) > 1)

      type Tally = { total: number; complete: boolean; byName: Map<string, number> }
      const tallies = new Map<string, Tally>() // `${channel}\0${state}`
      const oldest = new Map<string, Date>()
      const rows = yield* run("admin statistics", channelCountsSql, [channelNames, cap + 1, shared], (rs) => rs)
      for (const r of rows) {
        const channel = r.channel as string
        const at = optionalDate(r.oldest)
        const seen = oldest.get(channel)
        if (at !== undefined && (seen === undefined || at < seen)) oldest.set(channel, at)
        for (const [state, n, byName] of [["waiting", r.due_n, r.due_names], ["delayed", r.delayed_n, r.delayed_names]] as const) {
          const key = `${channel}\u0000${state}`
          let t = tallies.get(key)
          if (t === undefined) tallies.set(key, t = { total: 0, complete: true, byName: new Map() })
          t.total += Number(n)
          if (byName !== null && byName !== undefined) {
            for (const [name, value] of Object.entries(byName as Record<string, unknown>)) {
              t.byName.set(name, (t.byName.get(name) ?? 0) + Number(value))
            }
          }
        }
      }
      // the levels share one budget of cap + 1: a channel whose levels used it up stopped there, so its figure
      // (and every definition's on it) is a lower bound
      for (const t of tallies.values()) if (t.total > cap) t.complete = false
      const figure = (value: number, complete: boolean): Backend.CountRow =>
        complete && value <= cap ? { value, accuracy: "exact" } : { value: Math.min(value, cap), accuracy: "atLeast" }
      const stateCount = (channel: string, state: "waiting" | "delayed", name?: string): Backend.CountRow => {
        const t = tallies.get(`${channel}\u0000${state}`)
        if (t === undefined) return { value: 0, accuracy: "exact" }
        return figure(name === undefined ? t.total : t.byName.get(name) ?? 0, t.complete)
      }
      const heldCount = (value: number): Backend.CountRow =>
        held.complete ? { value, accuracy: "exact" } : { value: Math.min(value, cap), accuracy: "atLeast" }
      const sum = <K extends "channel" | "name">(list: ReadonlyArray<{ channel: string; name: string; n: number }>, key: K, value: string) =>
        list.reduce((s, r) => r[key] === value ? s + r.n : s, 0)

      const channels = channelNames.map((channel): Backend.ChannelCountsRow => ({
        channel,
        waiting: stateCount(channel, "waiting"),
        delayed: stateCount(channel, "delayed"),
        held: heldCount(sum(held.rows, "channel", channel)),
        running: { value: sum(running, "channel", channel), accuracy: "exact" },
        oldestWaitingSince: oldest.get(channel)
      }))
      const definitionCounts = Array.from(defNames, ([definition, channel]): Backend.DefinitionCountsRow => {
        const alone = (perChannel.get(channel) ?? 0) <= 1
        return {
          definition,
          channel,
          waiting: alone ? stateCount(channel, "waiting") : stateCount(channel, "waiting", definition),
          delayed: alone ? stateCount(channel, "delayed") : stateCount(channel, "delayed", definition),
          held: heldCount(sum(held.rows, "name", definition)),
          running: { value: sum(running, "name", definition), accuracy: "exact" }
        }
      })
      const minutes = yield* run("admin statistics", minutesSql, [sinceSecs], (rows) =>
        rows.map((r): Backend.MinuteRow => ({
          definition: r.definition as string,
          channel: r.channel as string,
          minute: r.minute as Date,
          succeeded: Number(r.succeeded),
          failed: Number(r.failed),
          errored: Number(r.errored),
          runMs: Number(r.run_ms),
          attempts: Number(r.attempts)
        })))
      return { now, definitions, channelSettings, channels, definitionCounts, minutes }
    }).pipe(sql.withTransaction, Effect.catchTag("SqlError", storageError("admin statistics")))

  // ---- listings ----
  const filterSql = (alias: "j" | "f", first: number) =>
    `($${first}::text IS NULL OR ${alias}.name = $${first}) AND ($${first + 1}::text IS NULL OR ${alias}.channel = $${first + 1})
  AND ($${first + 2}::text IS NULL OR ${alias}.job_group = $${first + 2})`

  const list = (request: Backend.ListRequest) => {
    const f = request.filter
    const live = f.states.flatMap((s) => liveCondition[s] ?? [])
    const final = f.states.flatMap((s) => finalCondition[s] ?? [])
    const dir = request.descending ? "DESC" : "ASC"
    const cmp = request.descending ? "<" : ">"
    // params: $1 name, $2 channel, $3 group, $4 limit; after a position: $5 id, or $5 key (timestamptz) and $6 id
    const keyOf = (alias: "j" | "f") =>
      request.sort === "runAt" ? `${alias}.run_at` : request.sort === "finalizedAt" ? `${alias}.finalized_at` : undefined
    const keyset = (alias: "j" | "f") => {
      if (request.after === undefined) return "true"
      const key = keyOf(alias)
      // the key is exact microseconds since the epoch (a timestamp's own resolution), back to a timestamptz
      return key === undefined
        ? `${alias}.id ${cmp} $5::bigint`
        : `(${key}, ${alias}.id) ${cmp} ('epoch'::timestamptz + ($5::bigint / 1000000) * interval '1 second'
      + ($5::bigint % 1000000) * interval '1 microsecond', $6::bigint)`
    }
    const order = (alias: "j" | "f" | "") => {
      const p = alias === "" ? "" : `${alias}.`
      const key = request.sort === "runAt" ? `${p}run_at` : request.sort === "finalizedAt" ? `${p}finalized_at` : undefined
      return key === undefined ? `${p}id ${dir}` : `${key} ${dir}, ${p}id ${dir}`
    }
    const parts: Array<string> = []
    // the sort key, exactly: microseconds since the epoch
    const sortKey = (alias: "j" | "f") => {
      const key = keyOf(alias)
      return key === undefined ? "NULL::text" : `(EXTRACT(EPOCH FROM ${key}) * 1000000)::bigint::text`
    }
    if (live.length > 0) {
      parts.push(`(SELECT ${liveCols}, ${sortKey("j")} AS sort_key FROM ${n.job} j WHERE (${live.join(" OR ")}) AND ${filterSql("j", 1)} AND ${keyset("j")}
  ORDER BY ${order("j")} LIMIT $4)`)
    }
    if (final.length > 0) {
      parts.push(`(SELECT ${finalCols}, ${sortKey("f")} AS sort_key FROM ${n.finalized} f WHERE (${final.join(" OR ")}) AND ${filterSql("f", 1)} AND ${keyset("f")}
  ORDER BY ${order("f")} LIMIT $4)`)
    }
    if (parts.length === 0) return Effect.succeed([] as ReadonlyArray<Backend.JobRow>)
    const text = `SELECT * FROM (${parts.join("\nUNION ALL\n")}) u ORDER BY ${order("")} LIMIT $4`
    const after = request.after
    return run("admin list jobs", text, [
      f.definition ?? null,
      f.channel ?? null,
      f.jobGroup ?? null,
      request.limit,
      ...(after === undefined ? [] : request.sort === "id" ? [after.id] : [after.key, after.id])
    ], (rows) => rows.map((r) => ({ ...toRow(r), sortKey: r.sort_key === null || r.sort_key === undefined ? undefined : String(r.sort_key) })))
  }

  const getSql = `SELECT ${liveCols} FROM ${n.job} j WHERE j.id = $1::bigint
UNION ALL SELECT ${finalCols} FROM ${n.finalized} f WHERE f.id = $1::bigint`

  // ---- actions ----
  // Each picks its jobs (by ids, or by filter: at most $limit + 1 to tell `more`), then changes the first
  // $limit in one statement whose conditions re-check the state (a job claimed meanwhile is left alone).
  const pick = (alias: "j" | "f", target: Parameters<Backend.AdminBackend["act"]>[1], states: string) =>
    target._tag === "Ids"
      ? `${alias}.id = ANY($1::bigint[]) AND ${states} AND $2::text IS NULL AND $3::text IS NULL`
      : `${states} AND ${filterSql(alias, 1)}`
  const params = (target: Parameters<Backend.AdminBackend["act"]>[1]) =>
    target._tag === "Ids"
      ? [target.ids, null, null, target.ids.length]
      : [target.filter.definition ?? null, target.filter.channel ?? null, target.filter.jobGroup ?? null, target.limit]
  const statesOf = (target: Parameters<Backend.AdminBackend["act"]>[1], allowed: ReadonlyArray<Backend.State>, table: "j" | "f") => {
    const wanted = target._tag === "Ids" ? allowed : target.filter.states.filter((s) => allowed.includes(s))
    const conds = wanted.flatMap((s) => (table === "j" ? liveCondition[s] : finalCondition[s]) ?? [])
    return conds.length === 0 ? undefined : `(${conds.join(" OR ")})`
  }
  /** `$4` is the limit; the statement returns the changed ids, and how many matched (up to limit + 1). */
  const retrySql = (where: string) => `
WITH picked AS (
  SELECT f.id FROM ${n.finalized} f WHERE ${where} AND EXISTS (SELECT 1 FROM ${n.definition} d WHERE d.name = f.name)
  ORDER BY f.id LIMIT $4::int + 1
),
gone AS (
  DELETE FROM ${n.finalized} f USING ${n.definition} d
  WHERE f.id IN (SELECT id FROM picked ORDER BY id LIMIT $4) AND NOT f.succeeded AND d.name = f.name
  RETURNING f.id, f.name, f.job_group, f.payload, f.claims, f.last_error, f.scheduled_for, f.created_at,
    d.channel, d.num_attempts, d.timeout_secs, d.priority
),
back AS (
  INSERT INTO ${n.job} (id, name, channel, job_group, payload, run_at, sort_at, created_at, timeout_secs, attempts,
    max_attempts, claims, crashes, held, last_error, scheduled_for, priority)
  SELECT g.id, g.name, g.channel, g.job_group, g.payload, now(), now(), g.created_at, g.timeout_secs, 0,
    g.num_attempts, g.claims, 0, g.job_group IS NOT NULL, g.last_error, g.scheduled_for, g.priority
  FROM gone g
  RETURNING id, job_group
)
SELECT (SELECT array_agg(id::text ORDER BY id) FROM back) AS ids,
  (SELECT array_agg(DISTINCT job_group ORDER BY job_group) FROM back WHERE job_group IS NOT NULL) AS groups,
  (SELECT count(*) FROM picked) AS matched`
  // The DELETE repeats the requested states (`states`): a row changed by a concurrent transaction since
  // `picked` read it (claimed, promoted, made due) is re-checked on its newest version, and left alone when it
  // no longer is in one of them.
  const cancelSql = (where: string, states: string) => `
WITH picked AS (
  SELECT j.id FROM ${n.job} j WHERE ${where} ORDER BY j.id LIMIT $4::int + 1
),
gone AS (
  DELETE FROM ${n.job} j WHERE j.id IN (SELECT id FROM picked ORDER BY id LIMIT $4) AND j.worker_id IS NULL AND ${states}
  RETURNING j.*
),
fin AS (
  INSERT INTO ${n.finalized} (id, name, channel, job_group, payload, attempts, max_attempts, succeeded, last_error,
    scheduled_for, created_at, claims, crashes)
  SELECT g.id, g.name, g.channel, g.job_group, g.payload, g.attempts, g.max_attempts, false, $5::jsonb,
    g.scheduled_for, g.created_at, g.claims, g.crashes
  FROM gone g WHERE $6::boolean
)
SELECT (SELECT array_agg(id::text ORDER BY id) FROM gone) AS ids,
  (SELECT array_agg(DISTINCT job_group ORDER BY job_group) FROM gone WHERE job_group IS NOT NULL) AS groups,
  (SELECT count(*) FROM picked) AS matched`
  const deleteLiveSql = (where: string, states: string) => `
WITH picked AS (
  SELECT j.id FROM ${n.job} j WHERE ${where} ORDER BY j.id LIMIT $4::int + 1
),
gone AS (
  DELETE FROM ${n.job} j WHERE j.id IN (SELECT id FROM picked ORDER BY id LIMIT $4) AND j.worker_id IS NULL AND ${states}
  RETURNING j.id, j.job_group
)
SELECT (SELECT array_agg(id::text ORDER BY id) FROM gone) AS ids,
  (SELECT array_agg(DISTINCT job_group ORDER BY job_group) FROM gone WHERE job_group IS NOT NULL) AS groups,
  (SELECT count(*) FROM picked) AS matched`
  const deleteFinalSql = (where: string) => `
WITH picked AS (
  SELECT f.id FROM ${n.finalized} f WHERE ${where} ORDER BY f.id LIMIT $4::int + 1
),
gone AS (
  DELETE FROM ${n.finalized} f WHERE f.id IN (SELECT id FROM picked ORDER BY id LIMIT $4) RETURNING f.id
)
SELECT (SELECT array_agg(id::text ORDER BY id) FROM gone) AS ids, NULL::text[] AS groups,
  (SELECT count(*) FROM picked) AS matched`
  const runNowSql = (where: string) => `
WITH picked AS (
  SELECT j.id FROM ${n.job} j WHERE ${where} ORDER BY j.id LIMIT $4::int + 1
),
moved AS (
  UPDATE ${n.job} j SET run_at = now(), sort_at = now()
  WHERE j.id IN (SELECT id FROM picked ORDER BY id LIMIT $4) AND j.worker_id IS NULL AND NOT j.held AND j.sort_at > now()
  RETURNING j.id
)
SELECT (SELECT array_agg(id::text ORDER BY id) FROM moved) AS ids, NULL::text[] AS groups,
  (SELECT count(*) FROM picked) AS matched`
  const promoteSql = `SELECT ${n.fn("free_slots_v3")}($1::text[], array_fill(0, ARRAY[cardinality($1::text[])]))`
  const wakeSql = `SELECT pg_notify($1, $2)`
  const wakeChannel = notifyChannel(schema)
  // a sender id no process has: every listener (this process's too) takes it as someone else's
  const wakePayload = `admin-${Math.random().toString(36).slice(2)}:*`
  const definitionOfSql = `SELECT f.name, EXISTS (SELECT 1 FROM ${n.definition} d WHERE d.name = f.name) AS deployed
FROM ${n.finalized} f WHERE f.id = ANY($1::bigint[]) AND NOT f.succeeded`

  type Outcome = { readonly ids: Array<string>; readonly groups: Array<string>; readonly matched: number }
  const outcome = (rows: ReadonlyArray<Row>): Outcome => ({
    ids: (rows[0]?.ids as Array<string> | null) ?? [],
    groups: (rows[0]?.groups as Array<string> | null) ?? [],
    matched: Number(rows[0]?.matched ?? 0)
  })
  const none: Outcome = { ids: [], groups: [], matched: 0 }
  const afterwards = (o: Outcome, wake: boolean) =>
    Effect.gen(function*() {
      // a group whose job left (or came back held) may have a held job to make claimable now
      if (o.groups.length > 0) yield* run("admin promote groups", promoteSql, [o.groups], () => undefined)
      if (o.ids.length > 0 && (wake || o.groups.length > 0)) {
        yield* run("admin wake workers", wakeSql, [wakeChannel, wakePayload], () => undefined).pipe(Effect.ignore)
      }
    })

  const act: Backend.AdminBackend["act"] = (action, target, error) =>
    Effect.gen(function*() {
      const limit = target._tag === "Ids" ? target.ids.length : target.limit
      const p = params(target)
      if (action === "retry") {
        if (target._tag === "Ids") {
          const gone = yield* run("admin retry", definitionOfSql, [target.ids], (rows) => rows.find((r) => r.deployed !== true))
          if (gone !== undefined) {
            return yield* new JobDefinitionNotDeployed({
              definitionName: gone.name as string,
              message: `Job ${target.ids.join(", ")} cannot be retried: its definition ${JSON.stringify(gone.name)} is not deployed`
            })
          }
        }
        const states = statesOf(target, ["failed"], "f")
        const o = states === undefined ? none : yield* run("admin retry", retrySql(pick("f", target, states)), p, outcome)
        yield* afterwards(o, true)
        return { ids: o.ids, more: o.matched > limit }
      }
      if (action === "cancel") {
        const states = statesOf(target, ["waiting", "delayed", "held"], "j")
        const o = states === undefined
          ? none
          : yield* run("admin cancel", cancelSql(pick("j", target, states), states), [...p, JSON.stringify(error), keepFinalized], outcome)
        yield* afterwards(o, false)
        return { ids: o.ids, more: o.matched > limit }
      }
      if (action === "runNow") {
        const states = statesOf(target, ["delayed"], "j")
        const o = states === undefined ? none : yield* run("admin run now", runNowSql(pick("j", target, states)), p, outcome)
        yield* afterwards(o, true)
        return { ids: o.ids, more: o.matched > limit }
      }
      // delete: waiting jobs first, then finalized ones with what is left of the limit
      const liveStates = statesOf(target, ["waiting", "delayed", "held"], "j")
      const live = liveStates === undefined ? none : yield* run("admin delete", deleteLiveSql(pick("j", target, liveStates), liveStates), p, outcome)
      yield* afterwards(live, false)
      const left = limit - live.ids.length
      const finalStates = statesOf(target, ["succeeded", "failed"], "f")
      const final = finalStates === undefined || left <= 0 || live.matched > limit
        ? none
        : yield* run("admin delete", deleteFinalSql(pick("f", target, finalStates)), [...p.slice(0, 3), left], outcome)
      return {
        ids: [...live.ids, ...final.ids],
        more: live.matched > limit || final.matched > left || (left <= 0 && finalStates !== undefined && target._tag === "Filter")
      }
    })

  const purgeSql = `
WITH picked AS (
  SELECT f.id FROM ${n.finalized} f
  WHERE f.finalized_at < now() - make_interval(secs => $1::float8) AND f.succeeded = ANY($2::boolean[])
  ORDER BY f.finalized_at, f.id LIMIT $3::int + 1
),
gone AS (DELETE FROM ${n.finalized} f WHERE f.id IN (SELECT id FROM picked ORDER BY id LIMIT $3) RETURNING f.id)
SELECT (SELECT array_agg(id::text ORDER BY id) FROM gone) AS ids, (SELECT count(*) FROM picked) AS matched,
  now() - make_interval(secs => $1::float8) AS before`
  // (`picked` holds the oldest $3 + 1 by finalization; any $3 of them qualify, and `matched` tells `more`)

  const workersSql = `
SELECT w.id, w.name, w.hostname, w.pid, w.channels, w.concurrency, w.started_at, w.heartbeat_at, w.expires_at,
  w.suspected_at, (SELECT count(*) FROM ${n.job} j WHERE j.worker_id = w.id) AS in_flight, now() AS now
FROM ${n.worker} w ORDER BY w.name, w.id`

  const channelsSql = `
SELECT c.channel, s.paused, s.rate_limit, s.rate_period_secs,
  ARRAY(SELECT d.name FROM ${n.definition} d WHERE d.channel = c.channel ORDER BY d.name) AS definitions
FROM (SELECT channel FROM ${n.definition} UNION SELECT name FROM ${n.channel}) c
LEFT JOIN ${n.channel} s ON s.name = c.channel
ORDER BY c.channel`
  const channelKnownSql = `SELECT EXISTS (SELECT 1 FROM ${n.definition} WHERE channel = $1)
  OR EXISTS (SELECT 1 FROM ${n.channel} WHERE name = $1) AS known`

  return {
    snapshot,
    list,
    get: (id) => run("admin get job", getSql, [id], (rows) => rows[0] === undefined ? undefined : toRow(rows[0])),
    act,
    purge: (olderThanSecs, states, limit) =>
      run("admin purge", purgeSql, [olderThanSecs, states.map((s) => s === "succeeded"), limit], (rows) => ({
        ids: (rows[0]?.ids as Array<string> | null) ?? [],
        more: Number(rows[0]?.matched ?? 0) > limit,
        before: rows[0]!.before as Date
      })),
    workers: run("admin workers", workersSql, [], (rows) =>
      rows.map((r): Backend.WorkerRow => ({
        id: String(r.id),
        name: r.name as string,
        hostname: r.hostname as string,
        pid: Number(r.pid),
        channels: r.channels as Array<string>,
        concurrency: r.concurrency === null ? undefined : Number(r.concurrency),
        inFlight: Number(r.in_flight),
        startedAt: r.started_at as Date,
        heartbeatAt: r.heartbeat_at as Date,
        expiresAt: r.expires_at as Date,
        suspectedAt: optionalDate(r.suspected_at),
        now: r.now as Date
      }))),
    channels: run("admin channels", channelsSql, [], (rows) =>
      rows.map((r) => ({
        channel: r.channel as string,
        paused: r.paused === true,
        rateLimit: r.rate_limit === null || r.rate_limit === undefined
          ? undefined
          : { limit: Number(r.rate_limit), periodSecs: Number(r.rate_period_secs) },
        definitions: r.definitions as Array<string>
      }))),
    channelKnown: (channel) => run("admin channel", channelKnownSql, [channel], (rows) => rows[0]?.known === true)
  }
}
