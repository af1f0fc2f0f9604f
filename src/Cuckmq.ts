/**
 * The cuckmq context (the seed's `Context`): the storage backend, the schema, the settings, the registry
 * of job definitions this process knows, and the event PubSub. Workers, orchestrators and enqueue all
 * require this service.
 *
 * @example
 * ```ts
 * import { Layer, Redacted } from "effect"
 * import { PgClient } from "@effect/sql-pg"
 * import { Cuckmq, type JobDefinition } from "@cuckmq/effect"
 *
 * declare const SendEmail: JobDefinition.JobDefinition<{ readonly to: string }> // from JobDefinition.make
 * declare const Cleanup: JobDefinition.JobDefinition<{}>
 *
 * const CuckmqLive = Cuckmq.layer({ definitions: [SendEmail, Cleanup] }).pipe(
 *   Layer.provide(PgClient.layer({ url: Redacted.make(process.env.DATABASE_URL!) }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import { Cause, Context, Effect, Layer, Queue, type Scope, Stream } from "effect"
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
import * as internal from "./internal/definition.js"
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
  /** Publishes an event built by `make`, which is only called when someone is subscribed. */
  readonly publish: (make: () => CuckmqEvent) => void
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
export interface Options<Defs extends ReadonlyArray<JobDefinition.Any>> {
  /** The PostgreSQL schema (a plain identifier). Defaults to `"_cuckmq"`. */
  readonly schema?: string | undefined
  /** The definitions this process runs and schedules. Defaults to none (enqueue-only processes). */
  readonly definitions?: Defs | undefined
  /** Seconds a finalized job is kept. 0 deletes jobs as they finalize. Defaults to 86400 (24 h). */
  readonly jobPostFinalizeDeleteSecs?: number | undefined
  /** Hard ceiling on one job's hold of its group lock, in seconds. Defaults to 10800 (3 h). */
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

const nonNegative = (name: string, value: number | undefined, fallback: number) =>
  value === undefined
    ? Effect.succeed(fallback)
    : typeof value === "number" && Number.isFinite(value) && value >= 0
    ? Effect.succeed(value)
    : Effect.fail(new InvalidOptions({ message: `${name} must be a finite number >= 0, got ${String(value)}` }))

const resolveSettings = (options: Options<any>) =>
  Effect.gen(function*() {
    const schema = yield* Migrations.validateSchemaName(options.schema ?? defaults.schema)
    const settings: Settings = {
      jobPostFinalizeDeleteSecs: yield* nonNegative(
        "jobPostFinalizeDeleteSecs",
        options.jobPostFinalizeDeleteSecs,
        defaults.jobPostFinalizeDeleteSecs
      ),
      jobGroupUnlockSecs: yield* nonNegative("jobGroupUnlockSecs", options.jobGroupUnlockSecs, defaults.jobGroupUnlockSecs),
      eventBufferSize: yield* nonNegative("eventBufferSize", options.eventBufferSize, defaults.eventBufferSize)
    }
    if (settings.jobGroupUnlockSecs <= 0) {
      return yield* new InvalidOptions({ message: `jobGroupUnlockSecs must be > 0, got ${settings.jobGroupUnlockSecs}` })
    }
    if (!Number.isInteger(settings.eventBufferSize) || settings.eventBufferSize < 1) {
      return yield* new InvalidOptions({ message: `eventBufferSize must be an integer >= 1, got ${settings.eventBufferSize}` })
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
  const publish = (make: () => CuckmqEvent) => {
    if (subscribers.size === 0) return
    const event = make()
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
