/**
 * A graceful stop, in order (the worker's scope finalizer):
 * 1. stop claiming: no new claims or fast-path reservations; wait (bounded) for the claims and fast-path
 *    inserts in flight to land, since what they bring is given back; give back the prefetch buffer;
 * 2. let running jobs finish within the grace period;
 * 3. interrupt the rest: they go back to the queue without spending their attempt;
 * 4. write the outstanding settlements (bounded), then deregister, which releases anything still held.
 * Heartbeats and the fence run until the very end, so a long grace period never lets the lease lapse.
 */
import { Clock, Duration, Effect, Fiber } from "effect"
import type { Executor } from "./executor.js"
import type { Lease } from "./lease.js"
import type { Env } from "./state.js"

export interface Fibers {
  readonly producer: Fiber.Fiber<unknown, unknown>
  readonly wakeups: Fiber.Fiber<unknown, unknown>
  readonly completers: ReadonlyArray<Fiber.Fiber<unknown, unknown>>
  readonly heartbeat: Fiber.Fiber<unknown, unknown>
  readonly fence: Fiber.Fiber<unknown, unknown>
}

/**
 * Polls `done` every 5 ms until it holds or `secs` pass, by the live clock: what it waits for (claims and
 * settlements landing) takes real time, and under a `TestClock` nobody advances, a sleep on it would never end
 * and the worker's stop would hang.
 */
const until = (done: () => boolean, secs: number) =>
  Effect.gen(function*() {
    while (!done()) yield* Effect.sleep(Duration.millis(5))
  }).pipe(
    Effect.timeoutOption(Duration.seconds(secs)),
    Effect.asVoid,
    Effect.provideService(Clock.Clock, Clock.Clock.defaultValue())
  )

export const make = (env: Env, executor: Executor, lease: Lease, removeLocal: () => void, fibers: Fibers) =>
  Effect.gen(function*() {
    const { config, state } = env
    // 1. stop claiming, give back what was prefetched or is still arriving
    state.stopping = true
    removeLocal()
    yield* Fiber.interrupt(fibers.producer)
    yield* Fiber.interrupt(fibers.wakeups)
    yield* until(() => state.claimsInFlight === 0 && state.reserved === 0, 5)
    executor.releaseBuffer()
    // 2. let running jobs finish within the grace period
    const inFlight = state.running.size
    if (inFlight > 0) yield* executor.awaitIdle.pipe(Effect.timeoutOption(Duration.seconds(config.gracePeriodSecs)))
    // 3. interrupt the rest: they are released without spending their attempt
    const interrupted = executor.stopAll("shutdown")
    yield* until(() => state.running.size === 0, Math.max(1, config.gracePeriodSecs))
    // 4. flush settlements (bounded), then deregister, which also releases anything still held
    yield* until(() => state.unsettled === 0, Math.max(5, config.gracePeriodSecs))
    yield* Fiber.interruptAll(fibers.completers)
    yield* lease.deregister
    yield* Fiber.interrupt(fibers.heartbeat)
    yield* Fiber.interrupt(fibers.fence)
    yield* Effect.logDebug(`cuckmq: worker stopped (in flight at stop: ${inFlight}, interrupted: ${interrupted})`)
  })
