/**
 * The cuckmq context (the seed's `Context`): the storage backend, the schema, the settings, the registry
 * of job definitions this process knows, and the event PubSub. Workers, orchestrators and enqueue all
 * require this service. It also carries the run-time flow control: pausing and rate limiting a channel
 * (`pauseChannel`, `resumeChannel`, `setChannelRateLimit`) and a job group's own limits (`setGroupLimits`).
 * Every context counts its workers' outcomes for `CuckmqAdmin`'s statistics and writes them through its store
 * (5 seconds after the first outcome since the last write, and once more when the layer is released), so a
 * worker process needs no admin layer to be counted.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Redacted } from "effect"
 * import { PgClient } from "@effect/sql-pg"
 * import { Cuckmq, JobDefinition } from "@cuckmq/effect"
 *
 * const Cleanup = JobDefinition.make({ name: "cleanup", repeatSecs: 3600, handler: () => Effect.log("cleaning up") })
 *
 * const CuckmqLive = Cuckmq.layer({ definitions: [Cleanup] }).pipe(
 *   Layer.provide(PgClient.layer({ url: Redacted.make(process.env.DATABASE_URL!) }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import { Cause, Config, Context, Duration, Effect, Layer, Queue, type Redacted, Result, type Scope, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import {
  type InsufficientPrivilege,
  InvalidJobDefinition,
  InvalidOptions,
  InvalidResult,
  type InvalidSchemaName,
  type JobDefinitionInUse,
  PayloadDecodeError,
  type SchemaNotMigrated,
  type StorageError
} from "./CuckmqError.js"
import type { CuckmqEvent } from "./CuckmqEvent.js"
import * as Events from "./internal/events.js"
import * as internal from "./internal/definition.js"
import * as TimeOption from "./internal/duration.js"
import * as Engine from "./internal/engine.js"
import * as Metrics from "./internal/metrics.js"
import * as Outcomes from "./internal/outcomes.js"
import type * as JobDefinition from "./JobDefinition.js"
import {
  type CancelFilter as StoredCancelFilter,
  type ChannelState as StoredChannelState,
  type DefinitionRecord,
  type GroupState as StoredGroupState,
  type GroupUpdate,
  JobStore,
  type LocalClaim,
  type RateLimit as StoredRateLimit,
  type UndeployResult,
  type UndeployWaiting
} from "./JobStore.js"
import * as Migrations from "./Migrations.js"
import * as PgJobStore from "./PgJobStore.js"

/**
 * Settings shared by every worker and orchestrator of a context.
 *
 * @since 0.1.0
 */
export interface Settings {
  /** Seconds a finalized job is kept before the orchestrator deletes it. */
  readonly jobPostFinalizeDeleteSecs: number
  /**
   * Hard ceiling, in seconds, on how long a job group stays locked by one job. A worker interrupts a job that
   * would hold its group longer (and releases the group); the orchestrator releases any lock older than this.
   */
  readonly jobGroupUnlockSecs: number
  /** Events buffered per subscriber; a subscriber that falls further behind loses its oldest events. */
  readonly eventBufferSize: number
}

/**
 * The defaults of every setting of `layer`.
 *
 * @since 0.1.0
 */
export const defaults = {
  schema: Migrations.defaultSchema,
  jobPostFinalizeDeleteSecs: 24 * 60 * 60,
  jobGroupUnlockSecs: 3 * 60 * 60,
  eventBufferSize: 4096,
  migrate: true,
  deploy: true
} as const

/**
 * A rate limit as you give it: at most `limit` claims per fixed window of `period`. A window starts at the
 * first claim after the previous window ended and lasts `period`, so any interval of length T sees at most
 * `limit x (ceil(T / period) + 1)` claims, across every worker of every process.
 *
 * @since 0.2.0
 */
export interface RateLimitOptions {
  /** Claims per window: an integer in [1, 1,000,000,000]. */
  readonly limit: number
  /**
   * The window, a `Duration.Input` (`"1 second"`, `Duration.minutes(1)`; a plain number is milliseconds), at
   * least 1 millisecond and at most 1 day.
   */
  readonly period: Duration.Input
}

/**
 * A rate limit as cuckmq reports it: at most `limit` claims per fixed window of `period`.
 *
 * @since 0.2.0
 */
export interface RateLimit {
  readonly limit: number
  readonly period: Duration.Duration
}

/**
 * A channel's flow control: paused (no worker claims its jobs), and its rate limit, if any.
 *
 * @since 0.2.0
 */
export interface ChannelState {
  readonly channel: string
  readonly paused: boolean
  readonly rateLimit: RateLimit | undefined
}

/**
 * A change of a job group's own limits (see `setGroupLimits`): a field left out (or `undefined`) keeps the
 * current setting; `null` removes the group's own setting, so that its definitions' `groupConcurrency` /
 * `groupRateLimit` apply again.
 *
 * @since 0.2.0
 */
export interface GroupLimits {
  /** How many of the group's jobs may run at once: an integer in [1, 1,000,000]. */
  readonly concurrency?: number | null | undefined
  /** At most `limit` claims of the group's jobs per window of `period`. */
  readonly rateLimit?: RateLimitOptions | null | undefined
}

/**
 * A job group's own limits (which win over its definitions' `groupConcurrency` and `groupRateLimit`) and the
 * slots it has taken now.
 *
 * @since 0.2.0
 */
export interface GroupState {
  readonly jobGroup: string
  /** The group's own concurrency, or undefined: its definitions' `groupConcurrency` applies (1 unless set). */
  readonly concurrency: number | undefined
  /** The group's own rate limit, or undefined: its definitions' `groupRateLimit` applies, if any. */
  readonly rateLimit: RateLimit | undefined
  /** Jobs of the group claimed now (each holds a slot until it is settled or given back). */
  readonly running: number
}

/**
 * What `cancel` did to one job: `"cancelled"` (it was waiting: finalized as cancelled, it never runs),
 * `"cancelling"` (it is claimed: its worker, in whatever process, interrupts its handler and finalizes it as
 * cancelled), `"finalized"` (it had already ended: nothing changed) or `"not-found"` (no such job, or it was
 * finalized and deleted since).
 *
 * @since 0.2.0
 */
export type CancelOutcome = "cancelled" | "cancelling" | "finalized" | "not-found"

/**
 * Which live jobs `cancelWhere` cancels: those of a definition, of a job group, or both (give at least one).
 *
 * @since 0.2.0
 */
export interface CancelFilter {
  readonly definition?: string | undefined
  readonly jobGroup?: string | undefined
}

/**
 * What `cancelWhere` did: the ids of the waiting jobs it finalized as cancelled, and of the claimed ones whose
 * workers are stopping them.
 *
 * @since 0.2.0
 */
export interface CancelResult {
  readonly cancelled: ReadonlyArray<string>
  readonly cancelling: ReadonlyArray<string>
}

/**
 * The context service.
 *
 * @since 0.1.0
 */
export class Cuckmq extends Context.Service<Cuckmq, {
  /** The PostgreSQL schema of the queue (also set for other backends, where it is only a name). */
  readonly schema: string
  readonly settings: Settings
  /** The definitions this process knows, by name: what its workers run and its orchestrators schedule. */
  readonly definitions: ReadonlyMap<string, JobDefinition.Any>
  /**
   * Events from the moment the stream starts running. To be sure not to miss events published between
   * forking a consumer and its first pull, use `subscribe`.
   */
  readonly events: Stream.Stream<CuckmqEvent>
  /** Subscribes now (for the life of the scope) and returns the stream of events from this moment. */
  readonly subscribe: Effect.Effect<Stream.Stream<CuckmqEvent>, never, Scope.Scope>
  /**
   * Runs `handler` for every event (one at a time, in order) in a fiber that lives as long as the scope.
   * A failing handler is logged and the next event still arrives; a slow handler loses events beyond
   * `eventBufferSize` rather than slowing workers.
   */
  readonly addEventHandler: <E, R>(
    handler: (event: CuckmqEvent) => Effect.Effect<void, E, R>
  ) => Effect.Effect<void, never, Scope.Scope | R>
  /**
   * Pauses a channel: no claim that starts after this returns takes its jobs, on any worker of any process
   * (jobs keep being enqueued; jobs already claimed, running or in a worker's prefetch buffer, still run).
   * Returns the channel's new state and publishes `CHANNEL_UPDATE`.
   */
  readonly pauseChannel: (channel: string) => Effect.Effect<ChannelState, InvalidOptions | StorageError>
  /** Resumes a paused channel and wakes every worker. Returns its new state and publishes `CHANNEL_UPDATE`. */
  readonly resumeChannel: (channel: string) => Effect.Effect<ChannelState, InvalidOptions | StorageError>
  /**
   * Sets (or with `null` removes) a channel's rate limit: at most `limit` claims of its jobs per fixed window
   * of `period`, across every worker of every process. Wakes every worker; returns the channel's new state and
   * publishes `CHANNEL_UPDATE`.
   */
  readonly setChannelRateLimit: (
    channel: string,
    rateLimit: RateLimitOptions | null
  ) => Effect.Effect<ChannelState, InvalidOptions | StorageError>
  /** A channel's flow control (a channel never configured: not paused, no rate limit). */
  readonly channel: (channel: string) => Effect.Effect<ChannelState, InvalidOptions | StorageError>
  /**
   * Changes a job group's own limits (see `GroupLimits`), then makes as many of its held jobs claimable as
   * the new limits allow and wakes workers. A group keeps its own limits while it has no job. Returns its new
   * state and publishes `GROUP_UPDATE`.
   */
  readonly setGroupLimits: (jobGroup: string, limits: GroupLimits) => Effect.Effect<GroupState, InvalidOptions | StorageError>
  /** A job group's own limits and the slots it has taken (a group never seen: no limit of its own, none taken). */
  readonly group: (jobGroup: string) => Effect.Effect<GroupState, InvalidOptions | StorageError>
  /**
   * Cancels a job (see `CancelOutcome`): a waiting one is finalized as cancelled at once; a running one's
   * worker, in whatever process, interrupts its handler (its finalizers run), within about a second (a
   * notification, with the worker's heartbeat as a fallback), then finalizes it as cancelled and frees its
   * group slot: only once the handler has stopped. A cancelled job never runs again. `JOB_CANCEL` events.
   */
  readonly cancel: (jobId: string) => Effect.Effect<CancelOutcome, InvalidOptions | StorageError>
  /** Cancels every live job of a definition and/or job group, as `cancel` does each. */
  readonly cancelWhere: (filter: CancelFilter) => Effect.Effect<CancelResult, InvalidOptions | StorageError>
  /**
   * The engine (storage backend, publishing, metrics, fast path): internal, under a symbol the package does
   * not export, so that it can change in any release.
   */
  readonly [Engine.EngineId]: Engine.Engine
}>()("cuckmq/Cuckmq") {}

/**
 * Options of `layer` and `layerStore`.
 *
 * @since 0.1.0
 */
export interface Options<Defs extends ReadonlyArray<JobDefinition.Any>> extends SettingsOptions {
  /** The definitions this process runs and schedules. Defaults to none (enqueue-only processes). */
  readonly definitions?: Defs | undefined
}

/**
 * The options of `layer` that are settings (everything but the definitions): what `layerConfig` reads from
 * `Config`. Each time option has two forms: a `Duration.Input` (`"24 hours"`, `Duration.hours(24)`: the
 * preferred form; a plain number there is milliseconds, as everywhere in Effect) and the seed's `...Secs`
 * number of seconds. Give one form of an option, not both (`InvalidOptions`).
 *
 * @since 0.1.0
 */
export interface SettingsOptions {
  /** The PostgreSQL schema (a plain identifier). Defaults to `"_cuckmq"`. */
  readonly schema?: string | undefined
  /**
   * How long a finalized job is kept before the orchestrator deletes it (preferred form). Zero deletes jobs as
   * they finalize. At most 100 years. Defaults to 24 hours.
   */
  readonly jobPostFinalizeDelete?: Duration.Input | undefined
  /** The seed's form of `jobPostFinalizeDelete`, in seconds. Defaults to 86400 (24 h). */
  readonly jobPostFinalizeDeleteSecs?: number | undefined
  /**
   * Hard ceiling on one job's hold of its group lock (preferred form): a worker interrupts a job that would
   * hold its group longer, the orchestrator releases any lock older than this. Must be > 0, at most 100
   * years. Defaults to 3 hours.
   */
  readonly jobGroupUnlock?: Duration.Input | undefined
  /** The seed's form of `jobGroupUnlock`, in seconds. Defaults to 10800 (3 h). */
  readonly jobGroupUnlockSecs?: number | undefined
  /** Events buffered per subscriber. Defaults to 4096. */
  readonly eventBufferSize?: number | undefined
  /**
   * Migrate the schema when the layer starts (safe with many processes). With false the layer runs no DDL:
   * it checks the schema version and fails with `SchemaNotMigrated` when the schema is behind (see
   * `PgJobStore`). Defaults to true.
   */
  readonly migrate?: boolean | undefined
  /** Deploy `definitions` when the layer starts. Defaults to true. */
  readonly deploy?: boolean | undefined
  /**
   * The `PgClient` goes through a pooler in transaction mode (PgBouncer `pool_mode = transaction`): see
   * `PgJobStore.Options.transactionPooler` and the README's "Behind PgBouncer". Defaults to false.
   */
  readonly transactionPooler?: boolean | undefined
  /**
   * A URL reaching PostgreSQL directly, for the process's session connection (LISTEN, liveness) while
   * everything else goes through the pooler: see `PgJobStore.Options.directUrl`. Defaults to none.
   */
  readonly directUrl?: Redacted.Redacted | undefined
}

/**
 * The errors a context layer can fail with.
 *
 * @since 0.1.0
 */
export type LayerError =
  | InvalidSchemaName
  | InvalidJobDefinition
  | InvalidOptions
  | SchemaNotMigrated
  | InsufficientPrivilege
  | StorageError

const time = (
  spec: TimeOption.Spec,
  duration: Duration.Input | undefined,
  secs: number | undefined,
  fallback: number
): Effect.Effect<number, InvalidOptions> => {
  const resolved = TimeOption.resolve(spec, duration, secs, fallback)
  return Result.isSuccess(resolved)
    ? Effect.succeed(resolved.success.secs)
    : Effect.fail(new InvalidOptions({ message: resolved.failure }))
}

const resolveSettings = (options: SettingsOptions) =>
  Effect.gen(function*() {
    const schema = yield* Migrations.validateSchemaName(options.schema ?? defaults.schema)
    const settings: Settings = {
      jobPostFinalizeDeleteSecs: yield* time(
        TimeOption.jobPostFinalizeDeleteSpec,
        options.jobPostFinalizeDelete,
        options.jobPostFinalizeDeleteSecs,
        defaults.jobPostFinalizeDeleteSecs
      ),
      jobGroupUnlockSecs: yield* time(
        { name: "jobGroupUnlock", secsName: "jobGroupUnlockSecs", min: 0, minExclusive: true },
        options.jobGroupUnlock,
        options.jobGroupUnlockSecs,
        defaults.jobGroupUnlockSecs
      ),
      eventBufferSize: options.eventBufferSize ?? defaults.eventBufferSize
    }
    if (!Number.isInteger(settings.eventBufferSize) || settings.eventBufferSize < 1) {
      return yield* new InvalidOptions({
        message: `eventBufferSize must be an integer >= 1, got ${String(settings.eventBufferSize)}`
      })
    }
    return { schema, settings }
  })

/**
 * Validates the definitions (before anything is migrated or deployed) and builds the registry: each
 * definition's decode-and-run, with the handler called inside `Effect.suspend`, so that a handler that
 * throws instead of returning an Effect fails that attempt with a defect like any other.
 */
const makeRegistry = Effect.fnUntraced(function*(options: Options<ReadonlyArray<JobDefinition.Any>>) {
  const definitions = new Map<string, Engine.Registered>()
  const records: Array<DefinitionRecord> = []
  for (const definition of options.definitions ?? []) {
    if (definitions.has(definition.name)) {
      return yield* new InvalidJobDefinition({
        definitionName: definition.name,
        message: `Job definition ${JSON.stringify(definition.name)} is registered twice`
      })
    }
    records.push(yield* internal.validate(definition))
    const { decode, encodeResult } = internal.internals(definition)
    /** The handler's value as stored: encoded with the `success` Schema, checked to be storable JSON. */
    const encoded = (jobId: string) => (value: unknown): Effect.Effect<unknown, InvalidResult> => {
      const invalid = (why: string | undefined) =>
        Effect.fail(
          new InvalidResult({
            definitionName: definition.name,
            jobId,
            message: `The handler's value for job ${jobId} (${definition.name}) cannot be stored: ${why}`
          })
        )
      const exit = encodeResult!(value)
      if (exit._tag === "Failure") return invalid((Cause.squash(exit.cause) as { message?: string }).message)
      const json = internal.payloadJson(exit.value)
      return Result.isFailure(json) ? invalid(json.failure.replace("the payload", "the value")) : Effect.succeed(exit.value)
    }
    definitions.set(definition.name, {
      definition,
      run: (job, metadata) =>
        Effect.suspend(() => {
          const decoded = decode(job.payload)
          if (decoded._tag === "Success") {
            const run = definition.handler(decoded.value, metadata) as Effect.Effect<unknown, unknown>
            return encodeResult === undefined ? Effect.asVoid(run) : Effect.flatMap(run, encoded(job.id))
          }
          return Effect.fail(
              new PayloadDecodeError({
                definitionName: definition.name,
                jobId: job.id,
                message: `The stored payload of job ${job.id} (${definition.name}) does not decode: ${
                  (Cause.squash(decoded.cause) as { message?: string }).message
                }`
              })
            )
        })
    })
  }
  return { definitions, records }
})

/** A stored rate limit in its public form. */
const publicRateLimit = (rateLimit: StoredRateLimit | undefined): RateLimit | undefined =>
  rateLimit === undefined ? undefined : { limit: rateLimit.limit, period: Duration.seconds(rateLimit.periodSecs) }

const publicChannel = (state: StoredChannelState): ChannelState => ({
  channel: state.channel,
  paused: state.paused,
  rateLimit: publicRateLimit(state.rateLimit)
})

const publicGroup = (state: StoredGroupState): GroupState => ({
  jobGroup: state.jobGroup,
  concurrency: state.concurrency,
  rateLimit: publicRateLimit(state.rateLimit),
  running: state.running
})

/** Checks a channel or group name as enqueue and definitions do, for `operation`. */
const checkName = (operation: string, what: "channel" | "definition" | "jobGroup", name: unknown): Effect.Effect<string, InvalidOptions> => {
  const problem = internal.checkName(what, name, what !== "jobGroup" ? internal.maxNameLength : internal.maxGroupLength)
  return problem === undefined
    ? Effect.succeed(name as string)
    : Effect.fail(new InvalidOptions({ message: `${operation}: ${problem}` }))
}

/** A rate limit of `operation` in the store's form (`null` stays `null`: remove it). */
const checkRateLimit = (
  operation: string,
  rateLimit: unknown
): Effect.Effect<StoredRateLimit | null | undefined, InvalidOptions> => {
  if (rateLimit === undefined || rateLimit === null) return Effect.succeed(rateLimit)
  const resolved = internal.resolveRateLimit("rateLimit", rateLimit)
  return Result.isSuccess(resolved)
    ? Effect.succeed(resolved.success)
    : Effect.fail(new InvalidOptions({ message: `${operation}: ${resolved.failure}` }))
}

/** The service's flow-control methods: each validates, calls the store, publishes the new state. */
const flowControl = (store: JobStore["Service"], publish: (make: () => Events.EventFields) => void) => {
  const channelUpdated = (state: StoredChannelState) => {
    publish(() => ({
      _tag: "CHANNEL_UPDATE",
      timestamp: new Date(),
      channel: state.channel,
      paused: state.paused,
      rateLimit: state.rateLimit
    }))
    return publicChannel(state)
  }
  const setPaused = (operation: "pauseChannel" | "resumeChannel", paused: boolean) =>
    Effect.fn(`Cuckmq.${operation}`)(function*(channel: string) {
      const name = yield* checkName(operation, "channel", channel)
      return channelUpdated(yield* store.setChannel(name, { paused }))
    })
  return {
    pauseChannel: setPaused("pauseChannel", true),
    resumeChannel: setPaused("resumeChannel", false),
    setChannelRateLimit: Effect.fn("Cuckmq.setChannelRateLimit")(function*(channel: string, rateLimit: RateLimitOptions | null) {
      const operation = "setChannelRateLimit"
      const name = yield* checkName(operation, "channel", channel)
      if (rateLimit === undefined) {
        return yield* new InvalidOptions({ message: `${operation}: give a rate limit { limit, period }, or null to remove it` })
      }
      const limit = yield* checkRateLimit(operation, rateLimit)
      return channelUpdated(yield* store.setChannel(name, { rateLimit: limit }))
    }),
    channel: Effect.fn("Cuckmq.channel")(function*(channel: string) {
      const name = yield* checkName("channel", "channel", channel)
      return publicChannel(yield* store.getChannel(name))
    }),
    setGroupLimits: Effect.fn("Cuckmq.setGroupLimits")(function*(jobGroup: string, limits: GroupLimits) {
      const operation = "setGroupLimits"
      const name = yield* checkName(operation, "jobGroup", jobGroup)
      if (typeof limits !== "object" || limits === null) {
        return yield* new InvalidOptions({ message: `${operation}: give the limits as { concurrency?, rateLimit? }` })
      }
      const concurrency = limits.concurrency
      const badConcurrency = concurrency === undefined || concurrency === null
        ? undefined
        : internal.checkConcurrency("concurrency", concurrency)
      if (badConcurrency !== undefined) return yield* new InvalidOptions({ message: `${operation}: ${badConcurrency}` })
      const update: GroupUpdate = { concurrency, rateLimit: yield* checkRateLimit(operation, limits.rateLimit) }
      const state = yield* store.setGroupLimits(name, update)
      publish(() => ({
        _tag: "GROUP_UPDATE",
        timestamp: new Date(),
        jobGroup: state.jobGroup,
        concurrency: state.concurrency,
        rateLimit: state.rateLimit,
        running: state.running
      }))
      return publicGroup(state)
    }),
    group: Effect.fn("Cuckmq.group")(function*(jobGroup: string) {
      const name = yield* checkName("group", "jobGroup", jobGroup)
      return publicGroup(yield* store.getGroup(name))
    }),
    ...cancellation(store, publish)
  }
}

/** The service's cancellation methods: each validates, calls the store, publishes `JOB_CANCEL` for jobs it finalized. */
const cancellation = (store: JobStore["Service"], publish: (make: () => Events.EventFields) => void) => {
  const run = (filter: StoredCancelFilter) =>
    Effect.map(store.cancel(filter), (result) => {
      const timestamp = new Date()
      for (const job of result.cancelled) {
        publish(() => ({ _tag: "JOB_CANCEL", timestamp, jobId: job.id, definitionName: job.name, running: false }))
      }
      return result
    })
  return {
    cancel: Effect.fn("Cuckmq.cancel")(function*(jobId: string) {
      if (typeof jobId !== "string" || !/^\d{1,19}$/.test(jobId)) {
        return yield* new InvalidOptions({ message: `cancel: a job id is a decimal string, got ${JSON.stringify(jobId)}` })
      }
      const result = yield* run({ ids: [jobId] })
      if (result.cancelled.length > 0) return "cancelled" as const
      if (result.cancelling.length > 0) return "cancelling" as const
      const job = yield* store.getJob(jobId)
      return job._tag === "Some" ? "finalized" as const : "not-found" as const
    }),
    cancelWhere: Effect.fn("Cuckmq.cancelWhere")(function*(filter: CancelFilter) {
      const operation = "cancelWhere"
      if (typeof filter !== "object" || filter === null || (filter.definition === undefined && filter.jobGroup === undefined)) {
        return yield* new InvalidOptions({ message: `${operation}: give a definition, a jobGroup or both` })
      }
      const definition = filter.definition === undefined ? undefined : yield* checkName(operation, "definition", filter.definition)
      const jobGroup = filter.jobGroup === undefined ? undefined : yield* checkName(operation, "jobGroup", filter.jobGroup)
      const result = yield* run({ definition, jobGroup })
      return { cancelled: result.cancelled.map((j) => j.id), cancelling: result.cancelling.map((j) => j.id) }
    })
  }
}

/** Builds the service on an already-available store. */
const makeWith = Effect.fnUntraced(function*(
  options: Options<ReadonlyArray<JobDefinition.Any>>,
  schema: string,
  settings: Settings,
  registry: Effect.Success<ReturnType<typeof makeRegistry>>
) {
  const store = yield* JobStore
  const services = yield* Effect.context<never>()
  const { definitions, records } = registry

  // ---- events ----
  // Fan-out to one sliding queue per subscriber: publishing never waits, and a subscriber that falls behind
  // loses its own oldest events without holding back the others.
  const subscribers = new Set<Queue.Queue<CuckmqEvent>>()
  const subscribe = Effect.map(
    Effect.acquireRelease(
      Effect.tap(Queue.sliding<CuckmqEvent>(settings.eventBufferSize), (queue) => Effect.sync(() => subscribers.add(queue))),
      (queue) =>
        Effect.andThen(
          Effect.sync(() => subscribers.delete(queue)),
          Queue.shutdown(queue)
        )
    ),
    (queue) => Stream.fromQueue(queue)
  )
  const publish = (make: () => Events.EventFields) => {
    if (subscribers.size === 0) return
    // subscribers receive the event class instances; built here, once per event, for all of them
    const event = Events.fromFields(make())
    for (const queue of subscribers) Queue.offerUnsafe(queue, event)
  }
  const addEventHandler = <E, R>(handler: (event: CuckmqEvent) => Effect.Effect<void, E, R>) =>
    Effect.gen(function*() {
      const stream = yield* subscribe
      yield* stream.pipe(
        Stream.runForEach((event) =>
          handler(event).pipe(
            Effect.catchCause((cause) =>
              Cause.hasInterruptsOnly(cause)
                ? Effect.failCause(cause)
                : Effect.logWarning("cuckmq: event handler failed", cause)
            )
          )
        ),
        Effect.forkScoped
      )
    })

  const localWorkers = new Set<Engine.LocalWorker>()
  const localClaim: LocalClaim = {
    reserve: (definitionName) => {
      const channel = definitions.get(definitionName)?.definition.channel
      if (channel === undefined) return undefined
      for (const worker of localWorkers) {
        if (worker.channels.has(channel)) {
          const reservation = worker.reserve()
          if (reservation !== undefined) return reservation
        }
      }
      return undefined
    }
  }

  // this process's outcome counters (the admin's statistics), counted by the engine and flushed through the
  // store every few seconds while jobs run, and once more when the context's scope closes (after its workers')
  const outcomes = yield* Outcomes.make(store, (name) => definitions.get(name)?.definition.channel ?? "")
  yield* Outcomes.flusher(outcomes)

  const engine: Engine.Engine = {
    schema,
    settings,
    definitions,
    store,
    publish,
    hasSubscribers: () => subscribers.size > 0,
    metrics: Metrics.make(services, outcomes),
    outcomes,
    handlerContext: (current) => Context.merge(services, current),
    localClaim,
    addLocalWorker: (worker) => {
      localWorkers.add(worker)
      return () => {
        localWorkers.delete(worker)
      }
    }
  }
  const service = Cuckmq.of({
    schema,
    settings,
    definitions: new Map(Array.from(definitions, ([name, registered]) => [name, registered.definition])),
    events: Stream.unwrap(subscribe),
    subscribe,
    addEventHandler,
    ...flowControl(store, publish),
    [Engine.EngineId]: engine
  })

  if (options.deploy ?? defaults.deploy) {
    yield* store.deploy(records, internal.firstDue)
  }
  return service
})

/**
 * The context on any storage backend (a `JobStore` layer); used by the test backend.
 *
 * @since 0.1.0
 */
export const layerStore = <const Defs extends ReadonlyArray<JobDefinition.Any> = readonly []>(
  options: Options<Defs> = {}
): Layer.Layer<Cuckmq, LayerError, JobStore | JobDefinition.Requirements<Defs[number]>> =>
  Layer.effect(
    Cuckmq,
    Effect.gen(function*() {
      const { schema, settings } = yield* resolveSettings(options)
      const registry = yield* makeRegistry(options)
      return yield* makeWith(options, schema, settings, registry)
    })
  )

/**
 * The context on PostgreSQL: migrates the schema (unless `migrate: false`), deploys the definitions
 * (unless `deploy: false`) and builds the PostgreSQL store. Requires a `PgClient`: provide the same one
 * your app uses so that enqueue joins your transactions.
 *
 * @since 0.1.0
 */
export const layer = <const Defs extends ReadonlyArray<JobDefinition.Any> = readonly []>(
  options: Options<Defs> = {}
): Layer.Layer<Cuckmq, LayerError, PgClient.PgClient | JobDefinition.Requirements<Defs[number]>> =>
  Layer.effect(
    Cuckmq,
    Effect.gen(function*() {
      const { schema, settings } = yield* resolveSettings(options)
      // every input is checked before anything is written
      const registry = yield* makeRegistry(options)
      if (options.migrate ?? defaults.migrate) {
        const pg = yield* PgClient.PgClient
        yield* PgJobStore.migrate({ schema }).pipe(Effect.provideService(SqlClient.SqlClient, pg))
      }
      // the runtime store: no DDL, and a typed error when the schema is behind
      const store = yield* PgJobStore.make({
        schema,
        keepFinalized: settings.jobPostFinalizeDeleteSecs > 0,
        transactionPooler: options.transactionPooler,
        directUrl: options.directUrl
      })
      return yield* makeWith(options, schema, settings, registry).pipe(Effect.provideService(JobStore, store))
    })
  )

/**
 * The options of `layerConfig`: each setting as a `Config` (read when the layer is built), and the
 * definitions as plain values. The settings may also be given as one `Config` of `SettingsOptions`.
 *
 * @since 0.1.0
 */
export type ConfigOptions<Defs extends ReadonlyArray<JobDefinition.Any>> =
  & Config.Wrap<SettingsOptions>
  & { readonly definitions?: Defs | undefined }

/**
 * `layer` with its settings read from `Config` (environment variables by default) when the layer is built.
 * A missing or malformed value fails the layer with a `ConfigError` naming the key; a value that reads but is
 * out of bounds fails it with `InvalidOptions`, as in `layer`. Use `Config.withDefault` for optional keys.
 *
 * @example
 * ```ts
 * import { Config, Effect } from "effect"
 * import { Cuckmq, JobDefinition } from "@cuckmq/effect"
 *
 * const SendEmail = JobDefinition.make({ name: "send-email", handler: () => Effect.log("sending") })
 *
 * export const CuckmqLive = Cuckmq.layerConfig({
 *   definitions: [SendEmail],
 *   schema: Config.String("CUCKMQ_SCHEMA").pipe(Config.withDefault("_cuckmq")),
 *   jobPostFinalizeDelete: Config.Duration("CUCKMQ_KEEP_FINALIZED").pipe(Config.withDefault("24 hours"))
 * })
 * ```
 *
 * @since 0.1.0
 */
export const layerConfig = <const Defs extends ReadonlyArray<JobDefinition.Any> = readonly []>(
  options: ConfigOptions<Defs>
): Layer.Layer<Cuckmq, LayerError | Config.ConfigError, PgClient.PgClient | JobDefinition.Requirements<Defs[number]>> =>
  Layer.unwrap(Effect.map(unwrapConfig(options), (settings) => layer<Defs>({ ...settings, definitions: options.definitions })))

/** Reads the `Config` settings of `options` (a record of Configs, or one Config), leaving the definitions out. */
const unwrapConfig = (options: ConfigOptions<any>): Effect.Effect<SettingsOptions, Config.ConfigError> => {
  if (Config.isConfig(options)) return options as Config.Config<SettingsOptions>
  const { definitions: _, ...settings } = options as { readonly definitions?: unknown } & Record<string, unknown>
  return TimeOption.readConfig(settings as Config.Wrap<SettingsOptions>)
}

/**
 * Options of `undeploy`.
 *
 * @since 0.1.0
 */
export interface UndeployOptions {
  /**
   * What to do with the definition's waiting jobs: `"fail"` refuses while it has any live job (waiting or
   * running), `"delete"` deletes the waiting ones, `"keep"` leaves them (for workers that still know the
   * definition). Running jobs always end their current attempt. Defaults to `"fail"`.
   */
  readonly waiting?: UndeployWaiting | undefined
}

/**
 * Retires a job definition, by name or by value: it is no longer scheduled (a repeating one stops), enqueueing
 * it fails with `JobDefinitionNotDeployed`, and its waiting jobs are deleted, kept or protected as `waiting`
 * says (see `UndeployOptions`), so that no orphan job or schedule is left for workers and orchestrators to
 * report forever. Idempotent: undeploying what is not deployed succeeds with `undeployed: false`.
 *
 * A definition registered in this context is refused (`InvalidJobDefinition`): this process would deploy it
 * again at its next start. Remove it from `definitions` (in every process) first. A job enqueued by a process
 * racing the undeploy may still land after it: undeploy again (with `"delete"`) to clear it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Cuckmq } from "@cuckmq/effect"
 *
 * // a deploy step, after the last release that knew "nightly-report" (needs a Cuckmq context)
 * export const retire = Effect.gen(function*() {
 *   const result = yield* Cuckmq.undeploy("nightly-report", { waiting: "delete" })
 *   yield* Effect.log(`deleted ${result.deleted} waiting jobs`)
 * })
 * ```
 *
 * @since 0.1.0
 */
export const undeploy: (
  definition: string | JobDefinition.Any,
  options?: UndeployOptions
) => Effect.Effect<UndeployResult, JobDefinitionInUse | InvalidJobDefinition | StorageError, Cuckmq> = Effect
  .fn("Cuckmq.undeploy")(function*(definition: string | JobDefinition.Any, options: UndeployOptions = {}) {
    const cuckmq = yield* Cuckmq
    const name = typeof definition === "string" ? definition : definition.name
    if (typeof name !== "string" || name.length === 0) {
      return yield* new InvalidJobDefinition({ definitionName: String(name), message: "undeploy needs a definition or a non-empty name" })
    }
    const waiting = options.waiting ?? "fail"
    if (waiting !== "fail" && waiting !== "delete" && waiting !== "keep") {
      return yield* new InvalidJobDefinition({
        definitionName: name,
        message: `undeploy: waiting must be "fail", "delete" or "keep", got ${JSON.stringify(waiting)}`
      })
    }
    if (cuckmq.definitions.has(name)) {
      return yield* new InvalidJobDefinition({
        definitionName: name,
        message: `Job definition ${
          JSON.stringify(name)
        } is registered in this context, which would deploy it again at its next start: remove it from the definitions of every process first`
      })
    }
    const result = yield* Engine.get(cuckmq).store.undeploy(name, waiting)
    yield* Effect.logInfo(`cuckmq: undeployed ${JSON.stringify(name)}`, result)
    return result
  })

/**
 * Pauses a channel, everywhere: no claim that starts after this returns takes its jobs (enqueue goes on; jobs
 * already claimed, running or in a worker's prefetch buffer, still run). Idempotent. Returns the channel's
 * state; `resumeChannel` undoes it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Cuckmq } from "@cuckmq/effect"
 *
 * // hold the "emails" channel while the mail provider is down, then let it go (needs a Cuckmq context)
 * export const maintenance = <A, E, R>(work: Effect.Effect<A, E, R>) =>
 *   Effect.acquireUseRelease(Cuckmq.pauseChannel("emails"), () => work, () => Effect.orDie(Cuckmq.resumeChannel("emails")))
 * ```
 *
 * @since 0.2.0
 */
export const pauseChannel = (channel: string): Effect.Effect<ChannelState, InvalidOptions | StorageError, Cuckmq> =>
  Cuckmq.use((cuckmq) => cuckmq.pauseChannel(channel))

/**
 * Resumes a paused channel and wakes every worker. Idempotent. Returns the channel's state.
 *
 * @since 0.2.0
 */
export const resumeChannel = (channel: string): Effect.Effect<ChannelState, InvalidOptions | StorageError, Cuckmq> =>
  Cuckmq.use((cuckmq) => cuckmq.resumeChannel(channel))

/**
 * Sets a channel's rate limit (at most `limit` claims of its jobs per fixed window of `period`, across every
 * worker of every process), or removes it with `null`. Wakes every worker, so that a raised limit applies at
 * once. Returns the channel's state.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Cuckmq } from "@cuckmq/effect"
 *
 * // the partner's API allows 100 calls a second: one job per call on the "partner-api" channel
 * export const throttle = Cuckmq.setChannelRateLimit("partner-api", { limit: 100, period: "1 second" })
 * export const unthrottle = Cuckmq.setChannelRateLimit("partner-api", null)
 * export const show = Effect.tap(Cuckmq.channel("partner-api"), (state) => Effect.log(state.paused, state.rateLimit))
 * ```
 *
 * @since 0.2.0
 */
export const setChannelRateLimit = (
  channel: string,
  rateLimit: RateLimitOptions | null
): Effect.Effect<ChannelState, InvalidOptions | StorageError, Cuckmq> =>
  Cuckmq.use((cuckmq) => cuckmq.setChannelRateLimit(channel, rateLimit))

/**
 * A channel's flow control: paused or not, and its rate limit (a channel never configured: not paused, no
 * rate limit).
 *
 * @since 0.2.0
 */
export const channel = (channel: string): Effect.Effect<ChannelState, InvalidOptions | StorageError, Cuckmq> =>
  Cuckmq.use((cuckmq) => cuckmq.channel(channel))

/**
 * Changes a job group's own limits, which win over its definitions' `groupConcurrency` and `groupRateLimit`:
 * a field left out keeps its setting, `null` removes it. Then as many of the group's held jobs become
 * claimable as the new limits allow, and workers are woken. A group keeps its own limits while it has no job
 * (the orchestrator does not delete it). Returns the group's state.
 *
 * @example
 * ```ts
 * import { Cuckmq } from "@cuckmq/effect"
 *
 * // a tenant on a bigger plan: 5 jobs at once, at most 600 a minute
 * export const upgrade = (tenant: string) =>
 *   Cuckmq.setGroupLimits(tenant, { concurrency: 5, rateLimit: { limit: 600, period: "1 minute" } })
 * // back to the definitions' defaults
 * export const downgrade = (tenant: string) => Cuckmq.setGroupLimits(tenant, { concurrency: null, rateLimit: null })
 * ```
 *
 * @since 0.2.0
 */
export const setGroupLimits = (
  jobGroup: string,
  limits: GroupLimits
): Effect.Effect<GroupState, InvalidOptions | StorageError, Cuckmq> =>
  Cuckmq.use((cuckmq) => cuckmq.setGroupLimits(jobGroup, limits))

/**
 * A job group's own limits and the slots it has taken now (a group never seen: no limit of its own, none
 * taken).
 *
 * @since 0.2.0
 */
export const group = (jobGroup: string): Effect.Effect<GroupState, InvalidOptions | StorageError, Cuckmq> =>
  Cuckmq.use((cuckmq) => cuckmq.group(jobGroup))

/**
 * Cancels a job by id (see the service's `cancel`): a waiting job never runs, a running one's handler is
 * interrupted by its worker, wherever it runs.
 *
 * @since 0.2.0
 */
export const cancel = (jobId: string): Effect.Effect<CancelOutcome, InvalidOptions | StorageError, Cuckmq> =>
  Cuckmq.use((cuckmq) => cuckmq.cancel(jobId))

/**
 * Cancels every live job of a definition and/or job group (see the service's `cancelWhere`).
 *
 * @since 0.2.0
 */
export const cancelWhere = (filter: CancelFilter): Effect.Effect<CancelResult, InvalidOptions | StorageError, Cuckmq> =>
  Cuckmq.use((cuckmq) => cuckmq.cancelWhere(filter))
