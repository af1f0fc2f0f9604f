/**
 * The backend-neutral part of `CuckmqAdmin`: validation, the refusals of actions by id, events, and shaping
 * the backend's rows into the public types. The backends (src/internal/pg/admin.ts,
 * src/internal/memory/admin.ts) only read and write; the outcome counters are every context's own
 * (src/internal/outcomes.ts), flushed through its store.
 */
import { Duration, Effect, Option } from "effect"
import { PgClient } from "@effect/sql-pg"
import { Cuckmq } from "../../Cuckmq.js"
import type * as Admin from "../../CuckmqAdmin.js"
import {
  ChannelNotFound,
  InvalidOptions,
  JobActionRefused,
  JobDefinitionNotDeployed,
  JobNotFound
} from "../../CuckmqError.js"
import * as internalDefinition from "../definition.js"
import * as Engine from "../engine.js"
import * as MemoryAdmin from "../memory/admin.js"
import * as PgAdmin from "../pg/admin.js"
import type * as Backend from "./backend.js"

const minuteMs = 60_000

const fail = (message: string) => Effect.fail(new InvalidOptions({ message }))

/** Resolves the layer options (bounds as documented on `Options`). */
const resolveOptions = (options: Admin.Options) =>
  Effect.gen(function*() {
    const cap = options.countCap ?? 10_000
    if (!Number.isInteger(cap) || cap < 100 || cap > 1_000_000) {
      return yield* fail(`CuckmqAdmin: countCap must be an integer in [100, 1000000], got ${String(cap)}`)
    }
    return { cap }
  })

// ---- shaping ----

const exactZero: Admin.Count = { value: 0, accuracy: "exact" }

const toOutcomes = (rows: ReadonlyArray<Backend.MinuteRow>): Admin.Outcomes => {
  let succeeded = 0
  let failed = 0
  let errored = 0
  let runMs = 0
  let attempts = 0
  for (const r of rows) {
    succeeded += r.succeeded
    failed += r.failed
    errored += r.errored
    runMs += r.runMs
    attempts += r.attempts
  }
  return { succeeded, failed, errored, meanRunMs: attempts === 0 ? undefined : runMs / attempts }
}

/** The last 60 minutes (zero-filled, oldest first), the last hour's outcomes and the 5-minute throughput. */
const series = (rows: ReadonlyArray<Backend.MinuteRow>, now: Date) => {
  const current = Math.floor(now.getTime() / minuteMs) * minuteMs
  const first = current - 59 * minuteMs
  const byMinute = new Map<number, Array<Backend.MinuteRow>>()
  for (const r of rows) {
    const m = r.minute.getTime()
    if (m < first || m > current) continue
    const list = byMinute.get(m)
    if (list === undefined) byMinute.set(m, [r])
    else list.push(r)
  }
  const minutes: Array<Admin.Minute> = []
  for (let m = first; m <= current; m += minuteMs) minutes.push({ minute: new Date(m), ...toOutcomes(byMinute.get(m) ?? []) })
  const inHour = Array.from(byMinute.values()).flat()
  const recent = minutes.slice(-5)
  const throughputPerMinute = recent.reduce((sum, m) => sum + m.succeeded + m.failed, 0) / 5
  return { minutes, lastHour: toOutcomes(inHour), throughputPerMinute }
}

/**
 * Sums counts: exact only if every part is (then the sum is exact, even beyond the cap); an estimate if any
 * is; else at least, capped at `cap` (a sum of lower bounds is shown as the cap's "10,000+", like each part).
 */
const addCounts = (counts: ReadonlyArray<Admin.Count>, cap: number): Admin.Count => {
  let value = 0
  let accuracy: Admin.Count["accuracy"] = "exact"
  for (const c of counts) {
    value += c.value
    if (c.accuracy === "estimate") accuracy = "estimate"
    else if (c.accuracy === "atLeast" && accuracy === "exact") accuracy = "atLeast"
  }
  if (accuracy === "atLeast" && value > cap) return { value: cap, accuracy: "atLeast" }
  return { value, accuracy }
}

const rateLimitOf = (r: Backend.ChannelRow["rateLimit"]) =>
  r === undefined ? undefined : { limit: r.limit, period: Duration.seconds(r.periodSecs) }

const shapeStatistics = (s: Backend.Snapshot, cap: number): Admin.Statistics => {
  const deployed = new Map(s.definitions.map((d) => [d.name, d.channel]))
  const settings = new Map(s.channelSettings.map((c) => [c.channel, c]))
  const counts = new Map(s.channels.map((c) => [c.channel, c]))
  const defCounts = new Map(s.definitionCounts.map((d) => [d.definition, d]))
  const minutesByDef = new Map<string, Array<Backend.MinuteRow>>()
  for (const r of s.minutes) {
    const list = minutesByDef.get(r.definition)
    if (list === undefined) minutesByDef.set(r.definition, [r])
    else list.push(r)
  }
  const channelOfDef = (name: string) =>
    deployed.get(name) ?? defCounts.get(name)?.channel ?? minutesByDef.get(name)?.find((r) => r.channel !== "")?.channel ?? ""

  const defNames = Array.from(new Set([...deployed.keys(), ...defCounts.keys(), ...minutesByDef.keys()])).sort()
  const definitions: Array<Admin.DefinitionStatistics> = defNames.map((name) => {
    const c = defCounts.get(name)
    return {
      definition: name,
      channel: channelOfDef(name),
      deployed: deployed.has(name),
      waiting: c?.waiting ?? exactZero,
      delayed: c?.delayed ?? exactZero,
      held: c?.held ?? exactZero,
      running: c?.running ?? exactZero,
      ...series(minutesByDef.get(name) ?? [], s.now)
    }
  })

  const channelNames = Array.from(
    new Set([...deployed.values(), ...settings.keys(), ...counts.keys(), ...definitions.map((d) => d.channel)])
  ).filter((c) => c !== "").sort()
  const channels: Array<Admin.ChannelStatistics> = channelNames.map((channel) => {
    const c = counts.get(channel)
    const setting = settings.get(channel)
    const rows = definitions.filter((d) => d.channel === channel).flatMap((d) => minutesByDef.get(d.definition) ?? [])
    return {
      channel,
      paused: setting?.paused ?? false,
      rateLimit: rateLimitOf(setting?.rateLimit),
      definitions: definitions.filter((d) => d.channel === channel && d.deployed).map((d) => d.definition),
      waiting: c?.waiting ?? exactZero,
      delayed: c?.delayed ?? exactZero,
      held: c?.held ?? exactZero,
      running: c?.running ?? exactZero,
      oldestWaitingSecs: c?.oldestWaitingSince === undefined
        ? undefined
        : Math.max(0, (s.now.getTime() - c.oldestWaitingSince.getTime()) / 1000),
      ...series(rows, s.now)
    }
  })

  return {
    at: s.now,
    countCap: cap,
    channels,
    definitions,
    total: {
      waiting: addCounts(channels.map((c) => c.waiting), cap),
      delayed: addCounts(channels.map((c) => c.delayed), cap),
      held: addCounts(channels.map((c) => c.held), cap),
      running: addCounts(channels.map((c) => c.running), cap),
      ...series(s.minutes, s.now)
    }
  }
}

const errorMessage = (lastError: unknown): string | undefined => {
  if (lastError === undefined || lastError === null) return undefined
  if (typeof lastError === "string") return lastError
  if (typeof lastError === "object") {
    const message = (lastError as { readonly message?: unknown }).message
    if (typeof message === "string") return message
  }
  return JSON.stringify(lastError)
}

const toSummary = (r: Backend.JobRow): Admin.JobSummary => ({
  id: r.id,
  definition: r.name,
  channel: r.channel,
  jobGroup: r.jobGroup,
  state: r.state,
  attempts: r.attempts,
  maxAttempts: r.maxAttempts,
  priority: r.priority,
  runAt: r.runAt,
  createdAt: r.createdAt,
  finalizedAt: r.finalizedAt,
  lastErrorMessage: errorMessage(r.lastError)
})

const toDetail = (r: Backend.JobRow): Admin.JobDetail => ({
  ...toSummary(r),
  payload: r.payload,
  lastError: r.lastError,
  claims: r.claims,
  crashes: r.crashes,
  workerId: r.workerId,
  scheduledFor: r.scheduledFor
})

// ---- validation ----

const states: ReadonlySet<string> = new Set(["waiting", "delayed", "held", "running", "succeeded", "failed"])
const finalStates: ReadonlyArray<Backend.State> = ["succeeded", "failed"]
const liveStates: ReadonlyArray<Backend.State> = ["waiting", "delayed", "held", "running"]

const checkId = (operation: string, id: unknown): Effect.Effect<string, InvalidOptions> =>
  typeof id === "string" && /^\d{1,19}$/.test(id)
    ? Effect.succeed(id)
    : fail(`${operation}: a job id is a decimal integer, got ${JSON.stringify(id)}`)

const checkText = (operation: string, what: string, value: unknown, max: number): Effect.Effect<string | undefined, InvalidOptions> => {
  if (value === undefined) return Effect.succeed(undefined)
  const problem = internalDefinition.checkName(what, value, max)
  return problem === undefined ? Effect.succeed(value as string) : fail(`${operation}: ${problem}`)
}

const checkFilter = (operation: string, filter: Admin.JobFilter | undefined, allowed: ReadonlyArray<Backend.State>) =>
  Effect.gen(function*() {
    const f = filter ?? {}
    if (typeof f !== "object" || f === null) return yield* fail(`${operation}: give the filter as an object`)
    const raw = f.state === undefined ? allowed : typeof f.state === "string" ? [f.state] : f.state
    if (!Array.isArray(raw) || raw.length === 0) {
      return yield* fail(`${operation}: state must be one of ${Array.from(states).join(", ")}, or a non-empty list of them`)
    }
    for (const s of raw) {
      if (!states.has(s)) return yield* fail(`${operation}: unknown state ${JSON.stringify(s)} (one of ${Array.from(states).join(", ")})`)
      if (!allowed.includes(s)) {
        return yield* fail(`${operation}: applies to ${allowed.join(", ")} jobs only, not ${JSON.stringify(s)}`)
      }
    }
    const filterOut: Backend.Filter = {
      states: Array.from(new Set(raw as ReadonlyArray<Backend.State>)),
      definition: yield* checkText(operation, "definition", f.definition, internalDefinition.maxNameLength),
      channel: yield* checkText(operation, "channel", f.channel, internalDefinition.maxNameLength),
      jobGroup: yield* checkText(operation, "jobGroup", f.jobGroup, internalDefinition.maxGroupLength)
    }
    return filterOut
  })

const checkLimit = (operation: string, limit: unknown, fallback: number, max: number): Effect.Effect<number, InvalidOptions> => {
  const value = limit ?? fallback
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= max
    ? Effect.succeed(value as number)
    : fail(`${operation}: limit must be an integer in [1, ${max}], got ${String(limit)}`)
}

interface CursorBody {
  readonly s: Backend.SortKey
  readonly d: boolean
  readonly f: string
  readonly k: string
  readonly i: string
}

const encodeCursor = (body: CursorBody): string => Buffer.from(JSON.stringify(body)).toString("base64url")

const decodeCursor = (text: string): CursorBody | undefined => {
  try {
    const body = JSON.parse(Buffer.from(text, "base64url").toString("utf8")) as CursorBody
    return typeof body === "object" && body !== null && typeof body.k === "string" && /^-?\d{1,20}$/.test(body.k) && typeof body.i === "string" &&
        /^\d{1,19}$/.test(body.i) && typeof body.f === "string"
      ? body
      : undefined
  } catch {
    return undefined
  }
}

// ---- the service ----

/** The service on a backend. */
const make = (backend: Backend.AdminBackend, options: Admin.Options) =>
  Effect.gen(function*() {
    const { cap } = yield* resolveOptions(options)
    const cuckmq = yield* Cuckmq
    const engine = Engine.get(cuckmq)
    // the context's own counters (every context counts its workers' outcomes: src/internal/outcomes.ts)
    const flushCounters = engine.outcomes.flush

    const publish = (
      tag: "ADMIN_JOB_RETRY" | "ADMIN_JOB_CANCEL" | "ADMIN_JOB_DELETE" | "ADMIN_JOB_RUN_NOW",
      row: Backend.ActionRow
    ) => {
      if (row.ids.length > 0) engine.publish(() => ({ _tag: tag, timestamp: new Date(), jobIds: row.ids, more: row.more }))
    }
    const result = (row: Backend.ActionRow): Admin.ActionResult => ({ jobIds: row.ids, count: row.ids.length, more: row.more })

    /** Which states each action applies to, and what to say when the job is in another. */
    const applies: Record<Backend.Action, { readonly states: ReadonlyArray<Backend.State>; readonly advice: (s: string) => string }> = {
      retry: {
        states: ["failed"],
        advice: (s) =>
          s === "running"
            ? "it is running: wait for it to end"
            : s === "succeeded"
            ? "it succeeded"
            : "it is waiting already (run it now if it is delayed)"
      },
      cancel: {
        states: ["waiting", "delayed", "held"],
        advice: (s) =>
          s === "running"
            ? "it is running, and cancelling running jobs is not supported yet: it ends its current attempt"
            : "it is finalized already (delete it to remove it)"
      },
      delete: {
        states: ["waiting", "delayed", "held", "succeeded", "failed"],
        advice: () => "it is running: wait for it to end (cancelling running jobs is not supported yet)"
      },
      runNow: {
        states: ["delayed"],
        advice: (s) =>
          s === "waiting"
            ? "it is due already"
            : s === "held"
            ? "it is held behind its full job group: it runs when a slot frees"
            : s === "running"
            ? "it is running"
            : "it is finalized (retry it if it failed)"
      }
    }
    const verbs: Record<Backend.Action, string> = { retry: "retry", cancel: "cancel", delete: "delete", runNow: "run now" }
    const tags = { retry: "ADMIN_JOB_RETRY", cancel: "ADMIN_JOB_CANCEL", delete: "ADMIN_JOB_DELETE", runNow: "ADMIN_JOB_RUN_NOW" } as const
    const cancelled = () => ({ _tag: "Cancelled", message: "cancelled by an operator", cancelledAt: new Date().toISOString() })

    const refuse = (action: Backend.Action, id: string, state: string) =>
      new JobActionRefused({
        action,
        jobId: id,
        state,
        message: `Cannot ${verbs[action]} job ${id}: ${applies[action].advice(state)}`
      })
    const notFound = (id: string) =>
      new JobNotFound({ jobId: id, message: `No job ${id}: not a live job, nor a finalized one still kept` })

    const byId = (action: Backend.Action) =>
      Effect.fn(`CuckmqAdmin.${action}Job`)(function*(jobId: string) {
        const id = yield* checkId(`${action}Job`, jobId)
        const before = yield* backend.get(id)
        if (before === undefined) return yield* notFound(id)
        if (!applies[action].states.includes(before.state)) return yield* refuse(action, id, before.state)
        const row = yield* backend.act(action, { _tag: "Ids", ids: [id] }, cancelled())
        if (row.ids.length === 0) {
          // it changed meanwhile (claimed, finalized, deleted): say what it is now
          const after = yield* backend.get(id)
          return yield* after === undefined ? notFound(id) : refuse(action, id, after.state)
        }
        publish(tags[action], row)
        return result(row)
      })

    const byFilter = (action: Backend.Action) =>
      Effect.fn(`CuckmqAdmin.${action}Jobs`)(function*(filter: Admin.ActionFilter = {}) {
        const operation = `${action}Jobs`
        const f = yield* checkFilter(operation, filter, applies[action].states)
        const limit = yield* checkLimit(operation, filter?.limit, 1000, 10_000)
        const row = yield* backend.act(action, { _tag: "Filter", filter: f, limit }, cancelled())
        publish(tags[action], row)
        return result(row)
      })

    const noDefinition = <A, E, R>(effect: Effect.Effect<A, E | JobDefinitionNotDeployed, R>) =>
      effect as Effect.Effect<A, E, R>

    const checkChannel = (operation: string, channel: unknown) =>
      Effect.gen(function*() {
        const name = yield* checkText(operation, "channel", channel, internalDefinition.maxNameLength)
        if (name === undefined) return yield* fail(`${operation}: give a channel`)
        if (!(yield* backend.channelKnown(name))) {
          return yield* new ChannelNotFound({
            channel: name,
            message: `Unknown channel ${JSON.stringify(name)}: no deployed definition uses it and it has no settings`
          })
        }
        return name
      })

    return {
      statistics: Effect.gen(function*() {
        // this process's own counters first, so that what it just did shows
        yield* Effect.ignore(flushCounters)
        return shapeStatistics(yield* backend.snapshot(cap, 60 * 60), cap)
      }).pipe(Effect.withSpan("CuckmqAdmin.statistics")),

      listJobs: Effect.fn("CuckmqAdmin.listJobs")(function*(query: Admin.JobQuery = {}) {
        const operation = "listJobs"
        const sort = query.sort ?? "id"
        if (sort !== "id" && sort !== "runAt" && sort !== "finalizedAt") {
          return yield* fail(`${operation}: sort must be "id", "runAt" or "finalizedAt", got ${JSON.stringify(sort)}`)
        }
        const allowed = sort === "runAt" ? liveStates : sort === "finalizedAt" ? finalStates : [...liveStates, ...finalStates]
        const filter = yield* checkFilter(operation, query, allowed).pipe(
          Effect.mapError((e) =>
            sort === "id" ? e : new InvalidOptions({ message: `${e.message} (sort ${JSON.stringify(sort)} applies to ${allowed.join(", ")} jobs)` })
          )
        )
        const direction = query.direction ?? (sort === "runAt" ? "asc" : "desc")
        if (direction !== "asc" && direction !== "desc") {
          return yield* fail(`${operation}: direction must be "asc" or "desc", got ${JSON.stringify(direction)}`)
        }
        const limit = yield* checkLimit(operation, query.limit, 50, 1000)
        const fingerprint = JSON.stringify([filter.states, filter.definition, filter.channel, filter.jobGroup])
        let after: Backend.Position | undefined
        if (query.cursor !== undefined) {
          const body = typeof query.cursor === "string" ? decodeCursor(query.cursor) : undefined
          if (body === undefined) return yield* fail(`${operation}: the cursor is not one that listJobs returned`)
          if (body.s !== sort || body.d !== (direction === "desc") || body.f !== fingerprint) {
            return yield* fail(`${operation}: the cursor belongs to a listing with other filters or another sort`)
          }
          after = { key: body.k, id: body.i }
        }
        const rows = yield* backend.list({ filter, sort, descending: direction === "desc", after, limit: limit + 1 })
        const page = rows.slice(0, limit)
        const last = page.at(-1)
        const next = rows.length > limit && last !== undefined
          ? encodeCursor({
            s: sort,
            d: direction === "desc",
            f: fingerprint,
            k: sort === "id" ? "0" : last.sortKey ?? "0",
            i: last.id
          })
          : undefined
        return { jobs: page.map(toSummary), next }
      }),

      getJob: Effect.fn("CuckmqAdmin.getJob")(function*(jobId: string) {
        const id = yield* checkId("getJob", jobId)
        const row = yield* backend.get(id)
        if (row === undefined) return yield* notFound(id)
        return toDetail(row)
      }),

      retryJob: byId("retry"),
      retryJobs: byFilter("retry"),
      cancelJob: (id: string) => noDefinition(byId("cancel")(id)),
      cancelJobs: (filter?: Admin.ActionFilter) => noDefinition(byFilter("cancel")(filter)),
      deleteJob: (id: string) => noDefinition(byId("delete")(id)),
      deleteJobs: (filter?: Admin.ActionFilter) => noDefinition(byFilter("delete")(filter)),
      runJobNow: (id: string) => noDefinition(byId("runNow")(id)),
      runJobsNow: (filter?: Admin.ActionFilter) => noDefinition(byFilter("runNow")(filter)),

      purge: Effect.fn("CuckmqAdmin.purge")(function*(options: Admin.PurgeOptions) {
        const operation = "purge"
        if (typeof options !== "object" || options === null) return yield* fail(`${operation}: give { olderThan }`)
        const olderThan = Option.getOrUndefined(Duration.fromInput(options.olderThan))
        if (olderThan === undefined || !Duration.isFinite(olderThan) || Duration.toMillis(olderThan) < 0) {
          return yield* fail(`${operation}: olderThan must be a finite duration of at least 0, got ${String(options.olderThan)}`)
        }
        const raw = options.state === undefined ? finalStates : typeof options.state === "string" ? [options.state] : options.state
        if (!Array.isArray(raw) || raw.length === 0 || raw.some((s) => s !== "succeeded" && s !== "failed")) {
          return yield* fail(`${operation}: state must be "succeeded", "failed" or both, got ${JSON.stringify(options.state)}`)
        }
        const limit = yield* checkLimit(operation, options.limit, 10_000, 100_000)
        const row = yield* backend.purge(Duration.toSeconds(olderThan), raw as ReadonlyArray<"succeeded" | "failed">, limit)
        if (row.ids.length > 0) {
          engine.publish(() => ({ _tag: "ADMIN_JOB_PURGE", timestamp: new Date(), jobIds: row.ids, more: row.more, before: row.before }))
        }
        return result(row)
      }),

      pauseChannel: Effect.fn("CuckmqAdmin.pauseChannel")(function*(channel: string) {
        return yield* cuckmq.pauseChannel(yield* checkChannel("pauseChannel", channel))
      }),
      resumeChannel: Effect.fn("CuckmqAdmin.resumeChannel")(function*(channel: string) {
        return yield* cuckmq.resumeChannel(yield* checkChannel("resumeChannel", channel))
      }),

      channels: Effect.map(backend.channels, (rows) => rows.map((c) => ({ ...c, rateLimit: rateLimitOf(c.rateLimit) }))),

      workers: Effect.map(backend.workers, (rows) =>
        rows.map((w): Admin.WorkerInfo => ({
          id: w.id,
          name: w.name,
          hostname: w.hostname,
          pid: w.pid,
          channels: w.channels,
          concurrency: w.concurrency,
          inFlight: w.inFlight,
          startedAt: w.startedAt,
          lastHeartbeatAt: w.heartbeatAt,
          leaseExpiresAt: w.expiresAt,
          alive: w.expiresAt.getTime() > w.now.getTime() && w.suspectedAt === undefined
        }))),

      flushCounters
    } satisfies Admin.CuckmqAdmin["Service"]
  })

/** The PostgreSQL backend for the context's schema, through the app's `PgClient`. */
const pgBackend = Effect.gen(function*() {
  const cuckmq = yield* Cuckmq
  const engine = Engine.get(cuckmq)
  if (MemoryAdmin.stateOf(engine.store) !== undefined) {
    return yield* fail("CuckmqAdmin.layer is the PostgreSQL admin, and this Cuckmq context runs on the memory store: use CuckmqAdmin.layerMemory")
  }
  const pg = yield* PgClient.PgClient
  return PgAdmin.make(pg.withoutTransforms(), cuckmq.schema, cuckmq.settings.jobPostFinalizeDeleteSecs > 0)
})

const memoryBackend = Effect.gen(function*() {
  const cuckmq = yield* Cuckmq
  const state = MemoryAdmin.stateOf(Engine.get(cuckmq).store)
  if (state === undefined) {
    return yield* fail("CuckmqAdmin.layerMemory needs a Cuckmq context on the memory store (CuckmqTest.layer); on PostgreSQL use CuckmqAdmin.layer")
  }
  return MemoryAdmin.make(state)
})

export const makePg = (options: Admin.Options): Effect.Effect<Admin.CuckmqAdmin["Service"], InvalidOptions, Cuckmq | PgClient.PgClient> =>
  Effect.flatMap(pgBackend, (backend) => make(backend, options))

export const makeMemory = (options: Admin.Options): Effect.Effect<Admin.CuckmqAdmin["Service"], InvalidOptions, Cuckmq> =>
  Effect.flatMap(memoryBackend, (backend) => make(backend, options))
