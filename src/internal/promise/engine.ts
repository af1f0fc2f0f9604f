/**
 * The Promise API's link to the core: an *engine* is the core built in a scope of its own (a `PgClient`
 * from the pool's settings, a `Cuckmq` context on it and, for a daemon, its `Worker` or `Orchestrator`
 * layer), and effects are run against it as Promises that reject with the core's typed errors.
 */
import { Cause, Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { PgClient } from "@effect/sql-pg"
import * as CuckmqModule from "../../Cuckmq.js"
import { Cuckmq } from "../../Cuckmq.js"
import type { CuckmqEvent } from "../../CuckmqEvent.js"
import type * as JobDefinition from "../../JobDefinition.js"
import * as Pool from "./pool.js"

/** Runs an effect as a Promise that rejects with the failure itself (a typed error, or a defect's value). */
export const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> =>
  Effect.runPromiseExit(effect).then((exit) => {
    if (Exit.isSuccess(exit)) return exit.value
    throw Cause.squash(exit.cause)
  })

/** Runs an effect synchronously, throwing the failure itself. */
export const runSync = <A, E>(effect: Effect.Effect<A, E>): A => {
  const exit = Effect.runSyncExit(effect)
  if (Exit.isSuccess(exit)) return exit.value
  throw Cause.squash(exit.cause)
}

/** What an engine is built from. */
export interface Settings {
  readonly pool: Pool.PoolLike
  readonly schema: string
  readonly jobPostFinalizeDeleteSecs?: number | undefined
  readonly jobGroupUnlockSecs?: number | undefined
  readonly eventBufferSize?: number | undefined
  /** The pool goes through a transaction-mode pooler (see `ContextOptions.transactionPooler`). */
  readonly transactionPooler?: boolean | undefined
  /** A URL reaching PostgreSQL directly, for the session connection (see `ContextOptions.directUrl`). */
  readonly directUrl?: string | undefined
}

/** An event handler as the Promise API takes it. */
export type Handler = (event: CuckmqEvent) => void | Promise<void>

/** A core built in its own scope. */
export interface Engine {
  readonly context: Context.Context<Cuckmq>
  readonly scope: Scope.Closeable
  /** Starts delivering events to the handler set (once). */
  readonly subscribe: () => Promise<void>
  /** Closes the scope: daemons stop gracefully, then the store and the client close. */
  readonly close: () => Promise<void>
}

/**
 * Delivers every event of `cuckmq` to the current members of `handlers`, one event at a time and in order.
 * A handler that throws or rejects is logged; the next event still arrives.
 */
const dispatch = (handlers: ReadonlySet<Handler>) => (event: CuckmqEvent) =>
  Effect.forEach(
    Array.from(handlers),
    (handler) =>
      Effect.tryPromise({ try: async () => handler(event), catch: (error) => error }).pipe(
        Effect.catch((error) => Effect.logWarning("cuckmq: event handler failed", error))
      ),
    { discard: true }
  )

/**
 * Builds an engine: the core context for `definitions`, subscribed to events at once when there are
 * handlers, and then `daemon` (a Worker or Orchestrator layer) if given, so that a daemon's first events
 * reach the handlers. Fails (closing what was built) with the core's typed error.
 */
export const build = async (
  settings: Settings,
  definitions: ReadonlyArray<JobDefinition.JobDefinition<any, unknown, never>>,
  handlers: ReadonlySet<Handler>,
  daemon?: Layer.Layer<never, unknown, Cuckmq>
): Promise<Engine> => {
  const scope = Effect.runSync(Scope.make())
  const closeScope = () => Effect.runPromise(Scope.close(scope, Exit.void))
  const core = CuckmqModule.layer({
    schema: settings.schema,
    definitions,
    jobPostFinalizeDeleteSecs: settings.jobPostFinalizeDeleteSecs,
    jobGroupUnlockSecs: settings.jobGroupUnlockSecs,
    eventBufferSize: settings.eventBufferSize,
    transactionPooler: settings.transactionPooler,
    directUrl: settings.directUrl === undefined ? undefined : Redacted.make(settings.directUrl),
    migrate: false, // the Promise API migrates only when asked (generateMigrationSql, context.migrate)
    deploy: false // definitions are deployed by definition.deploy()
  }).pipe(Layer.provide(PgClient.layer(Pool.config(settings.pool, settings))))
  let subscribed = false
  try {
    const context = await run(Layer.buildWithScope(core, scope))
    const subscribe = async () => {
      if (subscribed) return
      subscribed = true
      await run(Effect.gen(function*() {
        const cuckmq = Context.get(context, Cuckmq)
        yield* cuckmq.addEventHandler(dispatch(handlers))
      }).pipe(Scope.provide(scope)))
    }
    if (handlers.size > 0) await subscribe()
    if (daemon !== undefined) await run(Layer.buildWithScope(daemon, scope).pipe(Effect.provide(context)))
    return { context, scope, subscribe, close: closeScope }
  } catch (error) {
    await closeScope()
    throw error
  }
}

/**
 * An engine shared by the calls that need one for a moment (deploy, enqueue): built on first use, kept while
 * calls are in flight and for `idleMs` after the last one, then closed, so that a program whose daemons
 * stopped holds no connection and can exit. Calls after that build it again.
 */
export class Shared {
  private engine: Promise<Engine> | undefined
  private users = 0
  private timer: ReturnType<typeof setTimeout> | undefined
  private closing: Promise<void> = Promise.resolve()

  constructor(private readonly make: () => Promise<Engine>, private readonly idleMs: number) {}

  /** The engine, if one is open or opening. */
  get current(): Promise<Engine> | undefined {
    return this.engine
  }

  /** Runs `f` with the engine, holding it open meanwhile. */
  async use<A>(f: (engine: Engine) => Promise<A>): Promise<A> {
    this.users++
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    try {
      if (this.engine === undefined) {
        const closing = this.closing
        const opening = closing.then(() => this.make())
        this.engine = opening
        opening.catch(() => {
          if (this.engine === opening) this.engine = undefined
        })
      }
      return await f(await this.engine)
    } finally {
      this.users--
      if (this.users === 0) {
        this.timer = setTimeout(() => void this.close(), this.idleMs)
      }
    }
  }

  /** Closes the engine now (calls in flight may fail with a `StorageError`). */
  close(): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    const engine = this.engine
    this.engine = undefined
    if (engine !== undefined) {
      this.closing = this.closing.then(() => engine.then((e) => e.close(), () => undefined))
    }
    return this.closing
  }
}
