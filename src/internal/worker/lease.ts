/**
 * The lease: the worker's registration row, its heartbeat, its liveness session, and the fence.
 *
 * A registration is alive in the store for as long as its lease (`leaseSecs` from its last heartbeat) runs
 * and, when the store has liveness sessions, its process's session lives. The worker keeps its own deadline
 * from the time each heartbeat was *sent*, minus a quarter of the lease, and fences the moment it passes,
 * or the moment its session is lost: it interrupts every job of that registration (they go back with no
 * attempt spent) and gives back its buffer, before the store could let anyone else take them. Then it
 * registers again under a new id. The margin is what the guarantee rests on: a worker whose event loop is
 * blocked for longer than it cannot stop its jobs in time.
 */
import * as os from "node:os"
import { randomUUID } from "node:crypto"
import { Duration, Effect } from "effect"
import type { Executor } from "./executor.js"
import type { Env } from "./state.js"

export const make = (env: Env, executor: Executor) => {
  const { config, state, store } = env
  const hostname = os.hostname()
  // The worker stops its jobs a quarter of the lease before the store could declare it dead: slack for a slow
  // statement, a busy event loop or clocks that drift apart.
  const leaseMarginMs = config.leaseSecs * 250
  const extend = (sentAt: number) => {
    state.leaseDeadline = sentAt + config.leaseSecs * 1000 - leaseMarginMs
  }

  /** Stops every job of registration `id`, if it is still the current one. */
  const fence = (why: string, id = state.workerId) =>
    Effect.gen(function*() {
      if (!state.registered || state.workerId !== id) return
      state.registered = false
      yield* Effect.logWarning(`cuckmq: worker stops its jobs and registers again (${why})`)
        .pipe(Effect.annotateLogs("workerId", id))
      executor.stopAll("lease-lost", id)
      env.ring()
    })

  /** Registers under a new id, in the current liveness session (waiting for one). */
  const register = Effect.gen(function*() {
    const session = yield* store.session
    const id = randomUUID()
    const sentAt = env.now()
    state.registering = id
    yield* store.registerWorker({
      id,
      name: config.name,
      hostname,
      pid: process.pid,
      channels: config.channels,
      concurrency: config.concurrency,
      leaseSecs: config.leaseSecs,
      sessionKey: session?.key
    })
    state.workerId = id
    extend(sentAt)
    state.registered = true
    state.registering = undefined
    state.rung = true
    if (session !== undefined) {
      yield* Effect.forkIn(Effect.andThen(session.lost, fence("its liveness session was lost", id)), env.scope)
    }
    yield* Effect.logDebug("cuckmq: worker registered").pipe(Effect.annotateLogs("workerId", id))
  })

  /** Fences the moment the lease deadline passes, whatever the heartbeat loop is doing. */
  const fenceTimerLoop = Effect.gen(function*() {
    while (true) {
      const wait = state.registered ? state.leaseDeadline - env.now() : config.heartbeatSecs * 1000
      if (state.registered && wait <= 0) {
        yield* fence("no heartbeat reached the store in time")
        continue
      }
      yield* Effect.sleep(Duration.millis(Math.max(10, wait)))
    }
  })

  const heartbeatLoop = Effect.gen(function*() {
    while (true) {
      yield* Effect.sleep(Duration.seconds(config.heartbeatSecs))
      // record the starts of jobs running for a while (a crash then counts their attempt)
      executor.markStarted(1000)
      if (!state.registered) continue
      const sentAt = env.now()
      const id = state.workerId
      // A heartbeat that cannot land before the deadline is useless: give up on it then (the fence fires).
      const ok = yield* Effect.result(
        store.heartbeat(id, config.leaseSecs).pipe(
          Effect.timeoutOrElse({
            duration: Duration.millis(Math.max(1, state.leaseDeadline - sentAt)),
            orElse: () => Effect.succeed(undefined)
          })
        )
      )
      if (id !== state.workerId || !state.registered) continue
      if (ok._tag === "Success" && ok.success === true) {
        extend(sentAt)
        // the poll beside the notices: jobs of this registration whose cancellation was requested
        const requests = yield* Effect.result(store.cancelRequests(id))
        if (requests._tag === "Success") for (const jobId of requests.success) executor.cancel(jobId)
        else yield* Effect.logWarning("cuckmq: reading cancellation requests failed", requests.failure.message)
      } else if (ok._tag === "Success" && ok.success === false) yield* fence("the store declared it dead")
      else yield* Effect.logWarning("cuckmq: heartbeat failed", ok._tag === "Failure" ? ok.failure.message : "timed out")
    }
  })

  /**
   * Deregisters the current registration, releasing anything it still holds, and one interrupted while it
   * was being written (its row may exist).
   */
  const deregister = Effect.suspend(() => {
    const ids = [state.registered ? state.workerId : undefined, state.registering].filter((id) => id !== undefined)
    return Effect.forEach(ids, (id) =>
      store.deregisterWorker(id).pipe(
        Effect.catch((e) => Effect.logWarning("cuckmq: deregistering the worker failed (its lease will expire)", e.message))
      ), { discard: true })
  })

  return { register, fence, fenceTimerLoop, heartbeatLoop, deregister }
}

export type Lease = ReturnType<typeof make>
