/**
 * The cuckmq context (the seed's `Context`): the storage backend, the schema, the settings, the registry
 * of job definitions this process knows, and the event PubSub. Workers, orchestrators and enqueue all
 * require this service.
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
import { Cause, Config, Context, type Duration, Effect, Layer, Queue, Result, type Scope, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import {
  InvalidJobDefinition,
  InvalidOptions,
  type InvalidSchemaName,
  PayloadDecodeError,
  type StorageError
} from "./CuckmqError.js"
import type { CuckmqEvent } from "./CuckmqEvent.js"
import * as Events from "./internal/events.js"
import * as internal from "./internal/definition.js"
import * as TimeOption from "./internal/duration.js"
import * as Metrics from "./internal/metrics.js"
import * as PgStore from "./internal/pg/store.js"
import type * as JobDefinition from "./JobDefinition.js"
import { type DefinitionRecord, JobStore, type LocalClaim, type LocalReservation } from "./JobStore.js"
import * as Migrations from "./Migrations.js"

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
 * A definition as registered in a context.
 *
 * @since 0.1.0
 */
export interface Registered {
  readonly definition: JobDefinition.Any
  /**
   * Decodes the stored payload (failing with `PayloadDecodeError`) and runs the handler. The handler's
   * services are not provided here: run it with `withHandlerServices` (workers do that once per fiber).
   */
  readonly run: (job: { readonly id: string; readonly payload: unknown }, metadata: JobDefinition.JobMetadata) => Effect.Effect<void, unknown>
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
  readonly definitions: ReadonlyMap<string, Registered>
  /** The storage backend. */
  readonly store: JobStore["Service"]
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
   * Publishes an event whose plain fields `make` returns; `make` is only called, and the event class instance
   * only built from its fields, when someone is subscribed.
   */
  readonly publish: (make: () => Events.EventFields) => void
  /** Whether anyone is subscribed to events (so that hot paths can skip building them). */
  readonly hasSubscribers: () => boolean
  /** Metric updates (see `CuckmqMetrics`), synchronous for the hot paths. */
  readonly metrics: Metrics.Recorder
  /**
   * The services the definitions' handlers require, captured when the layer was built, merged under
   * `context` (whose own services win).
   */
  readonly handlerContext: (context: Context.Context<never>) => Context.Context<never>
  /** The in-process fast path: idle local workers take jobs enqueued here in the INSERT itself. */
  readonly localClaim: LocalClaim
  /** Makes a worker of this process available to the fast path; returns its removal. */
  readonly addLocalWorker: (worker: LocalWorker) => () => void
}>()("cuckmq/Cuckmq") {}

/**
 * A worker of this process as the in-process fast path sees it.
 *
 * @since 0.1.0
 */
export interface LocalWorker {
  readonly channels: ReadonlySet<string>
  /** Reserves a free slot now, if the worker has one and holds a live lease. */
  readonly reserve: () => LocalReservation | undefined
}

/**
 * Provides the handlers' services (captured by the context layer) to an effect that runs handlers.
 *
 * @since 0.1.0
 */
export const withHandlerServices = <A, E, R>(
  cuckmq: Cuckmq["Service"],
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.updateContext(effect, (current: Context.Context<any>) => cuckmq.handlerContext(current) as Context.Context<any>)

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
  /** Migrate the schema when the layer starts (safe with many processes). Defaults to true. */
  readonly migrate?: boolean | undefined
  /** Deploy `definitions` when the layer starts. Defaults to true. */
  readonly deploy?: boolean | undefined
}

/**
 * The errors a context layer can fail with.
 *
 * @since 0.1.0
 */
export type LayerError = InvalidSchemaName | InvalidJobDefinition | InvalidOptions | StorageError

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
  const definitions = new Map<string, Registered>()
  const records: Array<DefinitionRecord> = []
  for (const definition of options.definitions ?? []) {
    if (definitions.has(definition.name)) {
      return yield* new InvalidJobDefinition({
        definitionName: definition.name,
        message: `Job definition ${JSON.stringify(definition.name)} is registered twice`
      })
    }
    records.push(yield* internal.validate(definition))
    const decode = internal.internals(definition).decode
    definitions.set(definition.name, {
      definition,
      run: (job, metadata) =>
        Effect.suspend(() => {
          const decoded = decode(job.payload)
          return decoded._tag === "Success"
            ? definition.handler(decoded.value, metadata) as Effect.Effect<void, unknown>
            : Effect.fail(
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

  const localWorkers = new Set<LocalWorker>()
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

  const service = Cuckmq.of({
    schema,
    settings,
    definitions,
    store,
    events: Stream.unwrap(subscribe),
    subscribe,
    addEventHandler,
    publish,
    hasSubscribers: () => subscribers.size > 0,
    metrics: Metrics.make(services),
    handlerContext: (current) => Context.merge(services, current),
    localClaim,
    addLocalWorker: (worker) => {
      localWorkers.add(worker)
      return () => {
        localWorkers.delete(worker)
      }
    }
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
        yield* Migrations.migrate(schema).pipe(Effect.provideService(SqlClient.SqlClient, pg))
      }
      const store = yield* PgStore.make({ schema, keepFinalized: settings.jobPostFinalizeDeleteSecs > 0 })
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
  return Config.unwrap<SettingsOptions>(TimeOption.definedEntries(settings) as Config.Wrap<SettingsOptions>)
}
