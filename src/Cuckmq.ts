/**
 * The cuckmq context (the seed's `Context`): the storage backend, the schema, the settings, the registry
 * of job definitions this process knows, and the event PubSub. Workers, orchestrators and enqueue all
 * require this service.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { PgClient } from "@effect/sql-pg"
 * import { Cuckmq } from "@cuckmq/effect"
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
  type InsufficientPrivilege,
  InvalidJobDefinition,
  InvalidOptions,
  type InvalidSchemaName,
  type JobDefinitionInUse,
  PayloadDecodeError,
  type SchemaNotMigrated,
  type StorageError
} from "./CuckmqError.js"
import type { CuckmqEvent } from "./CuckmqEvent.js"
import * as internal from "./internal/definition.js"
import * as Engine from "./internal/engine.js"
import * as Metrics from "./internal/metrics.js"
import type * as JobDefinition from "./JobDefinition.js"
import { type DefinitionRecord, JobStore, type LocalClaim, type UndeployResult, type UndeployWaiting } from "./JobStore.js"
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
  /**
   * Migrate the schema when the layer starts (safe with many processes). With false the layer runs no DDL:
   * it checks the schema version and fails with `SchemaNotMigrated` when the schema is behind (see
   * `PgJobStore`). Defaults to true.
   */
  readonly migrate?: boolean | undefined
  /** Deploy `definitions` when the layer starts. Defaults to true. */
  readonly deploy?: boolean | undefined
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

  const engine: Engine.Engine = {
    schema,
    settings,
    definitions,
    store,
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
  }
  const service = Cuckmq.of({
    schema,
    settings,
    definitions: new Map(Array.from(definitions, ([name, registered]) => [name, registered.definition])),
    events: Stream.unwrap(subscribe),
    subscribe,
    addEventHandler,
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
      const store = yield* PgJobStore.make({ schema, keepFinalized: settings.jobPostFinalizeDeleteSecs > 0 })
      return yield* makeWith(options, schema, settings, registry).pipe(Effect.provideService(JobStore, store))
    })
  )

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
 * // a deploy step, after the last release that knew "nightly-report"
 * const result = yield* Cuckmq.undeploy("nightly-report", { waiting: "delete" })
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
