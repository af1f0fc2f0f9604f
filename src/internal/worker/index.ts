/**
 * The worker engine: wires its parts (state.ts lists them and what each owns) into fibers of the worker's
 * scope, and registers the graceful stop as the scope's finalizer.
 */
import { randomUUID } from "node:crypto"
import { Clock, Effect, Queue, Scope, Stream } from "effect"
import type { Engine } from "../engine.js"
import * as Execute from "../execute.js"
import * as Maintenance from "../maintenance.js"
import * as Completer from "./completer.js"
import * as Executor from "./executor.js"
import * as Lease from "./lease.js"
import * as Producer from "./producer.js"
import * as Shutdown from "./shutdown.js"
import { type Config, type Env, makeState, type Snapshot, snapshot } from "./state.js"

export type { Config, Snapshot } from "./state.js"

/** The running workers of each engine (this process), for `inspect`. */
const live = new WeakMap<Engine, Set<Env>>()

/**
 * Diagnostics, internal (the package does not export this module): the state of every worker of `engine`
 * that is running in this process, from its start until its stop has finished.
 */
export const inspect = (engine: Engine): ReadonlyArray<Snapshot> => Array.from(live.get(engine) ?? [], snapshot)

/** Runs a worker in the current scope until the scope closes. */
export const run = (cuckmq: Engine, config: Config): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const clock = yield* Clock.Clock
    const doorbell = yield* Queue.sliding<void>(1)
    const env: Env = {
      cuckmq,
      store: cuckmq.store,
      config,
      state: makeState(randomUUID()),
      scope,
      clock,
      now: () => clock.currentTimeMillisUnsafe(),
      ring: () => {
        Queue.offerUnsafe(doorbell, undefined)
      },
      doorbell,
      services: undefined,
      traced: true
    }
    const annotate = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.annotateLogs(effect, { cuckmq: "worker", worker: config.name })
    // job fibers run with this fiber's services (and the worker's log annotations) plus the handlers',
    // merged once, not per job
    env.services = cuckmq.handlerContext(yield* annotate(Effect.context<never>()))
    env.traced = yield* Execute.isTraced

    const completer = yield* Completer.make(env)
    const executor = Executor.make(env, completer)
    const lease = Lease.make(env, executor)
    const producer = Producer.make(env, executor, lease)
    const removeLocal = cuckmq.addLocalWorker({ channels: producer.channelSet, reserve: producer.reserve })

    const fork = <A, E>(effect: Effect.Effect<A, E>) => Effect.forkIn(annotate(effect), scope)
    const heartbeat = yield* fork(lease.heartbeatLoop)
    const fence = yield* fork(lease.fenceTimerLoop)
    // two writers: while one batch's commit waits for its fsync, the next batch is already on its way
    const completers = [yield* fork(completer.loop), yield* fork(completer.loop)]
    const wakeupScope = yield* Scope.fork(scope, "sequential")
    const wakeups = yield* Effect.forkIn(Effect.scoped(annotate(producer.wakeupLoop)), wakeupScope)
    const producerFiber = yield* fork(producer.loop)
    // cancellations requested by any process: the worker holding the job stops it (the heartbeat also polls)
    // (subscribed before the worker runs, so that no request made after its start is missed)
    const notices = yield* Effect.provideService(cuckmq.store.notices, Scope.Scope, scope)
    yield* fork(Stream.runForEach(notices, (n) => n._tag === "CancelRequested" ? Effect.sync(() => executor.cancel(n.id)) : Effect.void))
    // every live worker also takes back what dead workers held, so crash recovery needs no orchestrator
    yield* fork(Maintenance.rescueLoop(cuckmq, Maintenance.defaults.rescueIntervalSecs))

    let envs = live.get(cuckmq)
    if (envs === undefined) live.set(cuckmq, envs = new Set())
    envs.add(env)
    yield* Scope.addFinalizer(
      scope,
      annotate(Shutdown.make(env, executor, lease, removeLocal, {
        producer: producerFiber,
        wakeups,
        completers,
        heartbeat,
        fence
      })).pipe(Effect.ensuring(Effect.sync(() => envs.delete(env))))
    )
  })
