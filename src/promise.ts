/**
 * The seed's Promise API (cuckmq 0.4), for apps that are not on Effect: `new Context({ pool, schema })`,
 * `new JobDefinition({ name, context, workFunction, ... })`, `deploy()`, `enqueue(payload, options)`,
 * `new Worker({ context })`, `new Orchestrator({ context })`, `stop()`, `context.addEventHandler(fn)` and
 * `generateMigrationSql(schema)`. A thin layer over the same core as the Effect API (the same tables,
 * claims, retries, groups and events), so both can work on one schema at once.
 *
 * Every method returns a Promise that rejects with the core's typed errors (`InvalidPayload`,
 * `JobDefinitionNotDeployed`, `StorageError`, ...: instances with a `_tag` and a readable `message`).
 *
 * @example
 * ```ts
 * import { Pool } from "pg"
 * import { Context, JobDefinition, Worker, generateMigrationSql } from "@cuckmq/effect/promise"
 *
 * const pool = new Pool({ connectionString: process.env.DATABASE_URL })
 * await pool.query(generateMigrationSql("cuckmq"))
 * const context = new Context({ pool, schema: "cuckmq" })
 * const sendEmail = new JobDefinition({
 *   name: "send-email",
 *   context,
 *   numAttempts: 3,
 *   workFunction: async (payload: { to: string }) => { console.log(`sending to ${payload.to}`) }
 * })
 * await sendEmail.deploy()
 * const worker = new Worker({ context })
 * await sendEmail.enqueue({ to: "a@example.com" }, { delaySecs: 60 })
 * // on shutdown:
 * await worker.stop()
 * ```
 *
 * @since 0.1.0
 */
import { Effect, type Layer, Result, Schema } from "effect"
import { PgClient } from "@effect/sql-pg"
import type {
  CancelFilter,
  CancelOutcome,
  CancelResult,
  ChannelState,
  Cuckmq,
  GroupLimits,
  GroupState,
  RateLimit,
  RateLimitOptions
} from "./Cuckmq.js"
import * as CoreCuckmq from "./Cuckmq.js"
import { InvalidJobDefinition, InvalidOptions, InvalidPayload, StorageError } from "./CuckmqError.js"
import type { CuckmqEvent } from "./CuckmqEvent.js"
import * as internal from "./internal/definition.js"
import * as Engine from "./internal/promise/engine.js"
import * as Migration from "./internal/promise/migration.js"
import * as Pool from "./internal/promise/pool.js"
import * as Sql from "./internal/pg/sql.js"
import * as PgStore from "./internal/pg/store.js"
import * as CoreDefinition from "./JobDefinition.js"
import * as Migrations from "./Migrations.js"
import * as CoreOrchestrator from "./Orchestrator.js"
import * as CoreWorker from "./Worker.js"

export {
  /** @since 0.1.0 */
  InsufficientPrivilege,
  /** @since 0.1.0 */
  InvalidEnqueueOptions,
  /** @since 0.1.0 */
  InvalidJobDefinition,
  /** @since 0.1.0 */
  InvalidOptions,
  /** @since 0.1.0 */
  InvalidPayload,
  /** @since 0.1.0 */
  InvalidSchemaName,
  /** @since 0.1.0 */
  JobDefinitionNotDeployed,
  /** @since 0.1.0 */
  SchemaNotMigrated,
  /** @since 0.1.0 */
  StorageError
} from "./CuckmqError.js"

/**
 * A `pg` `Pool` (any `pg` 8.x pool; typed structurally, so this package does not depend on `pg`).
 *
 * @since 0.1.0
 */
export type PoolLike = Pool.PoolLike

export type {
  /** @since 0.2.0 */
  ChannelState,
  /** @since 0.2.0 */
  GroupLimits,
  /** @since 0.2.0 */
  GroupState,
  /** @since 0.2.0 */
  RateLimit,
  /** @since 0.2.0 */
  RateLimitOptions
} from "./Cuckmq.js"

/**
 * An event (the seed's event names are the `_tag`s; see the README's table of events).
 *
 * @since 0.1.0
 */
export type Event = CuckmqEvent

/**
 * A function that receives every event of a context. It may return a Promise: events are delivered one at
 * a time, in order, per worker or orchestrator. One that throws or rejects is logged and still gets the
 * next event; one that is too slow loses the oldest events beyond `eventBufferSize`, never slowing jobs.
 *
 * @since 0.1.0
 */
export type EventHandler = (event: Event) => void | Promise<void>

/**
 * Options of `new Context`.
 *
 * @since 0.1.0
 */
export interface ContextOptions {
  /** The `pg` pool whose connection settings cuckmq connects with (it opens connections of its own). */
  readonly pool: PoolLike
  /** The PostgreSQL schema of the queue (a plain identifier). Defaults to `"_cuckmq"`. */
  readonly schema?: string | undefined
  /** Seconds a finalized job is kept. 0 deletes jobs as they finalize. Defaults to 86400 (24 h). */
  readonly jobPostFinalizeDeleteSecs?: number | undefined
  /** Hard ceiling on one job's hold of its group lock, in seconds. Defaults to 10800 (3 h). */
  readonly jobGroupUnlockSecs?: number | undefined
  /** Events buffered per handler set and engine. Defaults to 4096. */
  readonly eventBufferSize?: number | undefined
  /**
   * The pool connects through a pooler in transaction mode (PgBouncer `pool_mode = transaction`): cuckmq's
   * connections then use unnamed statements only and send no startup parameters, and its one session
   * connection per context and process (LISTEN for wake-ups and notices, the liveness lock) goes to
   * `directUrl`, or there is none (poll-only). See the README's "Behind PgBouncer". Defaults to false.
   */
  readonly transactionPooler?: boolean | undefined
  /**
   * A `postgres://` URL reaching PostgreSQL directly (not through the pooler), for the session connection;
   * the pool's other settings (ssl, the password when the URL has none) apply to it. Defaults to none.
   */
  readonly directUrl?: string | undefined
}

interface ContextState {
  readonly settings: Engine.Settings
  readonly definitions: Map<string, CoreDefinition.JobDefinition<unknown, unknown, never>>
  readonly handlers: Set<Engine.Handler>
  readonly shared: Engine.Shared
  readonly daemons: Map<Daemon, Promise<Engine.Engine>>
  /** Running workers whose engine deploy and enqueue may use (see `JobDefinition#use`). */
  readonly workers: Set<WorkerLink>
}

/** A running worker's engine as deploy and enqueue see it. */
interface WorkerLink {
  readonly engine: Engine.Engine
  /** Calls running on the engine; `stop()` waits for them before closing it. */
  inFlight: number
  drained: (() => void) | undefined
}

const states = new WeakMap<Context, ContextState>()
const stateOf = (context: Context): ContextState => {
  const state = states.get(context)
  if (state === undefined) throw new TypeError("cuckmq: expected a Context created with new Context({ pool })")
  return state
}

/** How long the engine used by deploy and enqueue stays open after the last call. */
const sharedIdleMs = 1000

/**
 * The seed's `Context`: the pool, the schema and the settings, the definitions created on it and its event
 * handlers. Creating one opens nothing: connections are opened by the first call that needs them (and
 * closed when nothing needs them, see `close`).
 *
 * @since 0.1.0
 */
export class Context {
  /** The PostgreSQL schema of the queue. */
  readonly schema: string

  /**
   * Throws `InvalidSchemaName` when `schema` is not a plain identifier, and `InvalidOptions` when
   * `transactionPooler` is not a boolean or `directUrl` not a postgres:// URL.
   */
  constructor(options: ContextOptions) {
    const schema = Engine.runSync(Migrations.validateSchemaName(options.schema ?? Migrations.defaultSchema))
    const poolerProblem = PgStore.poolerProblem(options)
    if (poolerProblem !== undefined) throw new InvalidOptions({ message: `new Context: ${poolerProblem}` })
    this.schema = schema
    const settings: Engine.Settings = {
      pool: options.pool,
      schema,
      jobPostFinalizeDeleteSecs: options.jobPostFinalizeDeleteSecs,
      jobGroupUnlockSecs: options.jobGroupUnlockSecs,
      eventBufferSize: options.eventBufferSize,
      transactionPooler: options.transactionPooler,
      directUrl: options.directUrl
    }
    const handlers = new Set<Engine.Handler>()
    states.set(this, {
      settings,
      definitions: new Map(),
      handlers,
      shared: new Engine.Shared(() => Engine.build(settings, [], handlers), sharedIdleMs),
      daemons: new Map(),
      workers: new Set()
    })
  }

  /**
   * Calls `handler` with every event from now on (from enqueues and deploys of this context and from its
   * workers and orchestrators) and returns a function that removes it.
   */
  addEventHandler(handler: EventHandler): () => void {
    const state = stateOf(this)
    state.handlers.add(handler)
    const engines = [state.shared.current, ...state.daemons.values()]
    for (const engine of engines) {
      void engine?.then((e) => e.subscribe()).catch(() => undefined)
    }
    return () => {
      state.handlers.delete(handler)
    }
  }

  /**
   * Migrates the schema to the latest version (versioned, idempotent, safe when many processes run it at
   * once) and returns the migrations it applied (`[id, name]`, empty when it was current). The same as
   * applying `generateMigrationSql(schema)`; needs a role with `CREATE` rights.
   */
  migrate(): Promise<ReadonlyArray<readonly [id: number, name: string]>> {
    const state = stateOf(this)
    return Engine.run(
      Migrations.migrate(state.settings.schema).pipe(
        Effect.provide(PgClient.layer(Pool.config(state.settings.pool, state.settings))),
        // the client's own connection failure, before the migration started
        Effect.catchTag("SqlError", (cause) => Effect.fail(Sql.toStorageError("migrate")(cause)))
      )
    )
  }

  /**
   * Stops every worker and orchestrator of this context (gracefully, as `stop()` does) and closes the
   * connections cuckmq opened. Not needed to let a program exit: once its daemons are stopped, a context
   * closes its connections by itself one second after the last deploy or enqueue. Calls made later open
   * connections again. The `pg` pool is the app's: it is never ended here.
   */
  async close(): Promise<void> {
    const state = stateOf(this)
    await Promise.all(Array.from(state.daemons.keys(), (d) => d.stop()))
    await state.shared.close()
  }

  /**
   * Pauses a channel for every worker of every process: no claim that starts after this resolves takes its
   * jobs; jobs already claimed (running, or in a worker's prefetch buffer) still run. Rejects with
   * `InvalidOptions` for a bad name. See `Cuckmq.pauseChannel`.
   */
  pauseChannel(channel: string): Promise<ChannelState> {
    return useEngine(this, CoreCuckmq.pauseChannel(channel))
  }

  /**
   * Cancels a job: a waiting one is finalized as cancelled at once (`"cancelled"`); a running one's worker,
   * in whatever process, interrupts it (`"cancelling"`): its work function's `signal` is aborted, and the job
   * is finalized as cancelled once the work function has settled (which is what frees its group). Resolves
   * to `"finalized"` for a job that had already ended, `"not-found"` for none. See `Cuckmq.cancel`.
   */
  cancel(jobId: string): Promise<CancelOutcome> {
    return useEngine(this, CoreCuckmq.cancel(jobId))
  }

  /** Cancels every live job of a definition and/or job group (`{ definition?, jobGroup? }`). See `Cuckmq.cancelWhere`. */
  cancelWhere(filter: CancelFilter): Promise<CancelResult> {
    return useEngine(this, CoreCuckmq.cancelWhere(filter))
  }

  /** Resumes a paused channel and wakes every worker. */
  resumeChannel(channel: string): Promise<ChannelState> {
    return useEngine(this, CoreCuckmq.resumeChannel(channel))
  }

  /**
   * Sets a channel's rate limit, `{ limit, period }` (at most `limit` claims per fixed window of `period`:
   * `"1 second"`, or a number of milliseconds), across every worker; `null` removes it.
   */
  setChannelRateLimit(channel: string, rateLimit: RateLimitOptions | null): Promise<ChannelState> {
    return useEngine(this, CoreCuckmq.setChannelRateLimit(channel, rateLimit))
  }

  /** A channel's flow control: paused, and its rate limit. */
  channel(channel: string): Promise<ChannelState> {
    return useEngine(this, CoreCuckmq.channel(channel))
  }

  /**
   * Changes a job group's own limits (`{ concurrency?, rateLimit? }`; `null` removes a setting, so that the
   * definitions' `groupConcurrency` / `groupRateLimit` apply again). See `Cuckmq.setGroupLimits`.
   */
  setGroupLimits(jobGroup: string, limits: GroupLimits): Promise<GroupState> {
    return useEngine(this, CoreCuckmq.setGroupLimits(jobGroup, limits))
  }

  /** A job group's own limits and the slots it has taken now. */
  group(jobGroup: string): Promise<GroupState> {
    return useEngine(this, CoreCuckmq.group(jobGroup))
  }
}

/**
 * Runs `effect` on a running worker's engine of `context` when there is one (so that a job enqueued while
 * the worker has a free slot takes the core's in-process fast path: claimed by that worker in its own
 * INSERT), else on the context's shared engine.
 */
const useEngine = <A, E>(context: Context, effect: Effect.Effect<A, E, Cuckmq>): Promise<A> => {
  const schema = context.schema
  const state = stateOf(context)
  const link: WorkerLink | undefined = state.workers.values().next().value
  const result = link === undefined
    ? state.shared.use((engine) => Engine.run(Effect.provide(effect, engine.context)))
    : (() => {
      link.inFlight++
      return Engine.run(Effect.provide(effect, link.engine.context)).finally(() => {
        if (--link.inFlight === 0) link.drained?.()
      })
    })()
  return result.catch((error) => {
    // a missing table: say what to do about it
    if (error instanceof StorageError && error.sqlState === "42P01") {
      throw new StorageError({
        operation: error.operation,
        sqlState: error.sqlState,
        cause: error.cause,
        message: `${error.message} (is schema ${JSON.stringify(schema)} migrated? Apply generateMigrationSql(${
          JSON.stringify(schema)
        }) or await context.migrate())`
      })
    }
    throw error
  })
}

/**
 * What a work function learns about the job it runs: the core's metadata (job id, attempt, ...) plus a
 * signal that aborts when the worker gives up on the job (its grace period ran out on `stop()`, or it lost
 * its lease).
 *
 * @since 0.1.0
 */
export interface JobMetadata extends CoreDefinition.JobMetadata {
  readonly signal: AbortSignal
}

/**
 * Options of `new JobDefinition`.
 *
 * @since 0.1.0
 */
export interface JobDefinitionOptions<T> {
  /** The definition's unique name (its identity in the database). */
  readonly name: string
  /** The context the definition belongs to. */
  readonly context: Context
  /**
   * Runs one job. The payload is the enqueued value as JSON gives it back (`T` is not checked at run time:
   * a `Date` arrives as its ISO string). Throwing or rejecting fails the attempt.
   */
  readonly workFunction: (payload: T, metadata: JobMetadata) => void | Promise<void>
  /** The channel the definition publishes on; workers take only their channels. Defaults to `"_default"`. */
  readonly channel?: string | undefined
  /** How many times a job is attempted before it is finalized as failed. Defaults to 1. */
  readonly numAttempts?: number | undefined
  /** Seconds after a failed attempt before the job is available again (also a crashed job's lease). Defaults to 60. */
  readonly timeoutSecs?: number | undefined
  /** Enqueue a job every this many seconds (with payload `{}`), run by an Orchestrator. Defaults to none. */
  readonly repeatSecs?: number | undefined
  /** The priority of its jobs, an integer in [-1000, 1000], higher first (an enqueue may give its own). Defaults to 0. */
  readonly priority?: number | undefined
  /** How many jobs of one job group may run at once, unless the group has its own setting. Defaults to 1. */
  readonly groupConcurrency?: number | undefined
  /**
   * At most `limit` claims of one job group's jobs per window of `period` (`"1 second"`, or a number of
   * milliseconds), unless the group has its own setting. Defaults to none.
   */
  readonly groupRateLimit?: RateLimitOptions | undefined
}

/**
 * Options of one enqueued job.
 *
 * @since 0.1.0
 */
export type EnqueueOptions = CoreDefinition.EnqueueOptions

/**
 * One job for `enqueueMany`.
 *
 * @since 0.1.0
 */
export type EnqueueItem<T> = CoreDefinition.EnqueueItem<T>

/**
 * The seed's `JobDefinition`: a name, a work function and the settings its jobs inherit, registered on its
 * context when constructed. A Worker runs the definitions its context had when the Worker was created.
 *
 * @since 0.1.0
 */
export class JobDefinition<T = unknown> {
  /** The definition's unique name. */
  readonly name: string
  /** The context it is registered on. */
  readonly context: Context
  /** The channel it publishes on (`"_default"` unless given). */
  readonly channel: string
  /** Attempts per job (1 unless given). */
  readonly numAttempts: number
  /** Seconds before a failed attempt is retried (60 unless given). */
  readonly timeoutSecs: number
  /** The repeat interval in seconds, for a repeating definition. */
  readonly repeatSecs: number | undefined
  /** The priority of its jobs unless an enqueue gives one (0 unless given). */
  readonly priority: number
  /** The concurrency of its jobs' groups that have none of their own (1 unless given). */
  readonly groupConcurrency: number
  /** The rate limit of its jobs' groups that have none of their own. */
  readonly groupRateLimit: RateLimit | undefined
  readonly #core: CoreDefinition.JobDefinition<unknown, unknown, never>

  /**
   * Throws `InvalidJobDefinition` for invalid settings (an empty name, `numAttempts` below 1, ...) or a
   * name already used on this context.
   */
  constructor(options: JobDefinitionOptions<T>) {
    const state = stateOf(options.context)
    const workFunction = options.workFunction
    const core = CoreDefinition.make({
      name: options.name,
      payload: Schema.Unknown,
      handler: (payload, metadata) =>
        Effect.tryPromise({
          // a work function that throws synchronously fails the attempt like one that rejects
          try: (signal) => new Promise<void>((resolve) => resolve(workFunction(payload as T, { ...metadata, signal }))),
          catch: (error) => error
        }),
      ...(options.channel !== undefined ? { channel: options.channel } : {}),
      ...(options.numAttempts !== undefined ? { numAttempts: options.numAttempts } : {}),
      ...(options.timeoutSecs !== undefined ? { timeoutSecs: options.timeoutSecs } : {}),
      ...(options.repeatSecs !== undefined ? { repeatSecs: options.repeatSecs } : {}),
      ...(options.priority !== undefined ? { priority: options.priority } : {}),
      ...(options.groupConcurrency !== undefined ? { groupConcurrency: options.groupConcurrency } : {}),
      ...(options.groupRateLimit !== undefined ? { groupRateLimit: options.groupRateLimit } : {})
    })
    Engine.runSync(internal.validate(core))
    if (state.definitions.has(core.name)) {
      throw new InvalidJobDefinition({
        definitionName: core.name,
        message: `Job definition ${JSON.stringify(core.name)} is already defined on this context`
      })
    }
    state.definitions.set(core.name, core)
    this.#core = core
    this.name = core.name
    this.context = options.context
    this.channel = core.channel
    this.numAttempts = core.numAttempts
    this.timeoutSecs = core.timeoutSecs
    this.repeatSecs = options.repeatSecs
    this.priority = core.priority
    this.groupConcurrency = core.groupConcurrency
    this.groupRateLimit = core.groupRateLimit
  }

  /** Upserts the definition's settings into the database; enqueue needs it (else `JobDefinitionNotDeployed`). */
  deploy(): Promise<void> {
    return this.#use(this.#core.deploy)
  }

  /**
   * Enqueues one job and returns its id. The payload is stored as `JSON.stringify` writes it; one that has
   * no JSON form (a `bigint`, a cycle, `undefined`) or holds a NUL character rejects with `InvalidPayload`,
   * nothing inserted.
   */
  enqueue(payload: T, options?: EnqueueOptions): Promise<string> {
    return this.enqueueMany([{ ...options, payload }]).then((ids) => ids[0]!)
  }

  /**
   * Waits for the job to finish, from any process: resolves when it succeeded (the work function's value is
   * not stored by this API), rejects with `JobFailed`, `JobCancelled`, `JobNotFound` or, after `timeout`
   * (default 1 minute; a `Duration.Input`: `"30 seconds"`, or milliseconds), `JobResultTimeout`. See
   * `JobDefinition.awaitResult`.
   */
  awaitResult(jobId: string, options?: CoreDefinition.AwaitOptions): Promise<void> {
    return this.#use(Effect.asVoid(this.#core.awaitResult(jobId, options)))
  }

  /** Enqueues many jobs in one statement and returns their ids in order; all or nothing. */
  enqueueMany(jobs: Iterable<EnqueueItem<T>>): Promise<ReadonlyArray<string>> {
    const items: Array<EnqueueItem<unknown>> = []
    let i = 0
    for (const job of jobs) {
      const json = internal.payloadJson(job.payload)
      if (Result.isFailure(json)) {
        const where = i > 0 || items.length > 0 ? ` (job ${i})` : ""
        return Promise.reject(
          new InvalidPayload({
            definitionName: this.name,
            message: `Invalid payload for job definition ${JSON.stringify(this.name)}${where}: ${json.failure}`
          })
        )
      }
      items.push({ ...job, payload: JSON.parse(json.success) })
      i++
    }
    return this.#use(this.#core.enqueueMany(items))
  }

  /** Runs `effect` on an engine of the context (see `useEngine`). */
  #use<A, E>(effect: Effect.Effect<A, E, Cuckmq>): Promise<A> {
    return useEngine(this.context, effect)
  }
}

/**
 * What Worker and Orchestrator share: an engine of their own, built at construction, closed by `stop()`.
 *
 * @since 0.1.0
 */
abstract class Daemon {
  /** Resolves once the daemon runs; rejects with the typed error that kept it from starting. */
  readonly ready: Promise<void>
  readonly #engine: Promise<Engine.Engine>
  readonly #onStop: () => void
  #stopping: Promise<void> | undefined

  constructor(context: Context, layer: Layer.Layer<never, unknown, Cuckmq>, kind: "worker" | "orchestrator") {
    const state = stateOf(context)
    const engine = Engine.build(state.settings, Array.from(state.definitions.values()), state.handlers, layer)
    let link: WorkerLink | undefined
    this.#engine = engine
    this.ready = engine.then(() => undefined)
    this.ready.catch(() => undefined) // reported by the log below; awaiting `ready` still rejects
    state.daemons.set(this, engine)
    engine.then(
      (e) => {
        if (kind === "worker" && this.#stopping === undefined) {
          link = { engine: e, inFlight: 0, drained: undefined }
          state.workers.add(link)
        }
      },
      (error) => {
        state.daemons.delete(this)
        Effect.runFork(Effect.logError(`cuckmq: the ${kind} could not start`, error))
      }
    )
    this.#detach = async () => {
      // deploy and enqueue stop using this engine; those already running on it finish first
      if (link === undefined) return
      state.workers.delete(link)
      if (link.inFlight > 0) await new Promise<void>((resolve) => (link!.drained = resolve))
    }
    this.#onStop = () => state.daemons.delete(this)
  }

  readonly #detach: () => Promise<void>

  /**
   * Stops gracefully and resolves once stopped: no new job is claimed, running jobs finish (a worker's
   * `gracePeriodSecs`, 15 by default; then they are interrupted, their signal aborted, and they go back to
   * the queue with no attempt spent), every lock is released and the daemon's connections are closed.
   * Idempotent; resolves as well for a daemon that never started (see `ready`).
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#engine.then(async (e) => {
      await this.#detach()
      await e.close()
    }, () => undefined).finally(this.#onStop)
    return this.#stopping
  }
}

/**
 * Options of `new Worker`: the core worker's options (`channels`, `concurrency`, `gracePeriodSecs`, ...)
 * plus the context.
 *
 * @since 0.1.0
 */
export interface WorkerOptions extends CoreWorker.Options {
  readonly context: Context
}

/**
 * The seed's `Worker`: starts at once, claims jobs of its channels (by default every channel of the
 * context's definitions) and runs the definitions its context had when it was created, `concurrency` (10)
 * at a time. `ready` tells when it runs; `stop()` stops it gracefully.
 *
 * @since 0.1.0
 */
export class Worker extends Daemon {
  constructor(options: WorkerOptions) {
    const { context, ...rest } = options
    super(context, CoreWorker.layer(rest), "worker")
  }
}

/**
 * Options of `new Orchestrator`: the core orchestrator's options (`jobSchedulePollSecs`, ...) plus the
 * context.
 *
 * @since 0.1.0
 */
export interface OrchestratorOptions extends CoreOrchestrator.Options {
  readonly context: Context
}

/**
 * The seed's `Orchestrator`: starts at once; enqueues repeating jobs of the definitions its context had when
 * it was created, deletes old finalized jobs and unused groups, and takes back dead workers' jobs. Any
 * number may run at once. `stop()` stops it.
 *
 * @since 0.1.0
 */
export class Orchestrator extends Daemon {
  constructor(options: OrchestratorOptions) {
    const { context, ...rest } = options
    super(context, CoreOrchestrator.layer(rest), "orchestrator")
  }
}

/**
 * The SQL that migrates `schema` to the latest version, as one statement to run as is
 * (`await pool.query(generateMigrationSql(schema))`): idempotent and versioned (it applies only the
 * migrations `<schema>.cuckmq_migrations` does not list, and records them), safe when many processes run it
 * at once (it holds the same advisory lock as `context.migrate()`). Throws `InvalidSchemaName`.
 *
 * @since 0.1.0
 */
export const generateMigrationSql = (schema: string = Migrations.defaultSchema): string =>
  Migration.sql(Engine.runSync(Migrations.validateSchemaName(schema)))
