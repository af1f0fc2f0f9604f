/**
 * The executor: claimed jobs wait in the prefetch buffer until a slot frees, then run in a fiber each.
 *
 * Before a job starts, the executor checks that it may: its claim belongs to the current registration, the
 * lease has not run out, the worker is not stopping, and (for a job of a named group) its group deadline,
 * counted from the claim, has not passed. A job that may not start is given back untouched (`Released`: no
 * attempt spent).
 *
 * A start is only ever recorded after the handler started, never before (a record made before could outlive
 * a process that died before the handler ran, and fail a job that never started). A job's start is recorded
 * with its settlement, or by a `Started` mark at the next heartbeat if it runs that long; a job that has
 * been taken back from a dead worker before (`crashes > 0`) might be one that kills its process whenever it
 * runs, so its `Started` mark is sent the moment its handler starts. A job whose start was never recorded
 * is never finalized as failed (unless it crashed its workers `numAttempts + 4` times, see rescue.ts).
 *
 * The handler runs uninterruptibly except for the handler itself (restore), so its outcome is always
 * settled; a synchronous throw in a handler is a defect of that attempt (the handler is called inside
 * `Effect.suspend`, see Cuckmq.ts).
 */
import { Effect } from "effect"
import * as Execute from "../execute.js"
import type * as JobStore from "../../JobStore.js"
import type { Completer } from "./completer.js"
import { buffered, type Claimed, type Env, type Running } from "./state.js"

/**
 * How far ahead prefetching looks: the buffer holds at most the jobs that the worker is expected to start
 * within this many milliseconds, given how long its handlers take.
 */
const prefetchHorizonMs = 50

export const make = (env: Env, completer: Completer) => {
  const { config, cuckmq, state } = env
  const ceilingSecs = cuckmq.settings.jobGroupUnlockSecs
  const ceilingMs = (ceilingSecs - Execute.ceilingMarginSecs(ceilingSecs)) * 1000
  let idle: (() => void) | undefined

  /** The prefetch buffer's size: what we expect to start within the horizon, up to `prefetch`. */
  const prefetchLimit = () =>
    Math.min(config.prefetch, Math.floor(config.concurrency * prefetchHorizonMs / Math.max(state.avgDurationMs, 0.01)))
  const capacity = () => config.concurrency + prefetchLimit()

  /** The moment a group job must have stopped: shortly before the ceiling, counted from its claim. */
  const deadlineOf = (c: Claimed): number | undefined =>
    c.job.jobGroup === undefined ? undefined : c.claimedAt + ceilingMs

  const mayStart = (c: Claimed, at: number): boolean => {
    if (state.stopping || !state.registered || c.claimedBy !== state.workerId || at >= state.leaseDeadline) return false
    const deadline = deadlineOf(c)
    return deadline === undefined || at < deadline
  }

  /** Gives a job back untouched: back to the queue in its place, no attempt spent. */
  const release = (c: Claimed) => completer.submit(c, "Released")

  /** Takes over claimed jobs: orphans and jobs this registration may not run go back; the rest wait. */
  const accept = (jobs: ReadonlyArray<Claimed>) => {
    const at = new Date(env.now())
    for (const c of jobs) {
      const { claimedBy, job } = c
      state.owned.set(job.id, job.claim)
      cuckmq.publish(() => ({
        _tag: "WORKER_JOB_DEQUEUE",
        timestamp: at,
        jobId: job.id,
        definitionName: job.name,
        workerId: claimedBy,
        attempt: job.attempt
      }))
      if (!cuckmq.definitions.has(job.name)) {
        // A definition this process does not know (rolling deploy): give it back, no attempt spent, and stop
        // claiming it so that a worker that knows it gets it.
        state.excludeNames.add(job.name)
        release(c)
        cuckmq.publish(() => ({
          _tag: "WORKER_JOB_ORPHAN",
          timestamp: at,
          jobId: job.id,
          definitionName: job.name,
          workerId: claimedBy
        }))
        continue
      }
      if (state.stopping || claimedBy !== state.workerId || !state.registered) {
        release(c) // claimed while stopping or losing the lease: give it back untouched
        continue
      }
      state.buffer.push(c)
    }
    startBuffered()
  }

  // A job may complete synchronously inside its fork, and its `finish` starts the next one: without this
  // guard that would recurse once per buffered job (and overflow the stack with a large buffer).
  let starting = false
  const startBuffered = () => {
    if (starting) return // the loop below picks up the slot just freed
    starting = true
    try {
      while (state.running.size < config.concurrency && state.bufferHead < state.buffer.length) {
        const c = state.buffer[state.bufferHead++]!
        if (state.bufferHead === state.buffer.length) {
          state.buffer = []
          state.bufferHead = 0
        }
        const at = env.now()
        if (!mayStart(c, at)) {
          release(c)
          continue
        }
        const entry: Running = { claimed: c, fiber: undefined, reason: undefined, startedAt: undefined, marked: false }
        state.running.set(c.job.id, entry)
        launch(entry, at)
      }
    } finally {
      starting = false
    }
    cuckmq.metrics.inFlight(config.name, state.running.size)
  }

  /** Starts the handler's fiber; a crash survivor's start is recorded at once (right after, never before). */
  const launch = (entry: Running, at: number) => {
    entry.startedAt = at
    entry.fiber = Effect.runForkWith(env.services!)(execute(entry, at))
    // cancelled while the fork ran the handler's first synchronous steps, before the fiber was known
    if (entry.reason === "cancelled") entry.fiber.interruptUnsafe()
    if (entry.claimed.job.crashes > 0 && state.running.get(entry.claimed.job.id) === entry) {
      entry.marked = true
      completer.submit(entry.claimed, "Started")
    }
  }

  const finish = (
    entry: Running,
    settlement: Pick<JobStore.Settlement, "outcome" | "error" | "delaySecs" | "result" | "ran">,
    durationMs: number
  ) => {
    completer.submit(entry.claimed, settlement.outcome, settlement.error, settlement.delaySecs, settlement.result, settlement.ran)
    state.running.delete(entry.claimed.job.id)
    if (entry.startedAt !== undefined) state.avgDurationMs = state.avgDurationMs * 0.7 + durationMs * 0.3
    if (!state.stopping) startBuffered()
    else cuckmq.metrics.inFlight(config.name, state.running.size)
    if (state.running.size === 0 && idle) idle()
    env.ring()
  }

  const execute = (entry: Running, started: number): Effect.Effect<void> =>
    Effect.uninterruptibleMask((restore) => {
      const { claimedBy, job } = entry.claimed
      if (entry.reason === "cancelled") {
        // cancelled between being started and running: finalized as cancelled, never run
        Execute.publishCancel(cuckmq, job, claimedBy, started, false)
        finish(entry, { outcome: "Cancelled", ran: false }, 0)
        return Effect.void
      }
      if (entry.reason !== undefined) {
        // stopped between being started and running: give it back untouched
        finish(entry, { outcome: "Released" }, 0)
        return Effect.void
      }
      Execute.publishRun(cuckmq, job, claimedBy, started)
      const run = Execute.handler(cuckmq, job, claimedBy, env.traced, deadlineOf(entry.claimed), started)
      return Effect.flatMap(Effect.exit(restore(run)), (exit) => {
        const ended = env.now()
        finish(entry, Execute.conclude(cuckmq, job, claimedBy, exit, started, ended, entry.reason), ended - started)
        return Effect.void
      })
    })

  /**
   * Gives back jobs of a claim (or fast-path insert) the worker gave up on: untouched, never run, and not
   * owned (a later claim of the same job may be; the settlement's claim token keeps the two apart, and a
   * reconcile may release these first, which is just as well).
   */
  const giveBack = (jobs: ReadonlyArray<Claimed>) => {
    for (const c of jobs) release(c)
    env.ring()
  }

  /** Gives back the prefetched jobs that have not started. */
  const releaseBuffer = () => {
    const left = state.buffer.slice(state.bufferHead)
    state.buffer = []
    state.bufferHead = 0
    for (const c of left) release(c)
  }

  /**
   * Stops every job of registration `workerId` (shutdown, lost lease): marks them, sends their handlers an
   * interruption without waiting for them to end (a handler slow to stop must not hold up the caller; each
   * settles when it does end), and gives back the buffer. Synchronous: it must work in a closing scope.
   */
  const stopAll = (reason: Execute.InterruptReason, workerId?: string): number => {
    releaseBuffer()
    let interrupted = 0
    for (const entry of state.running.values()) {
      if (workerId !== undefined && entry.claimed.claimedBy !== workerId) continue
      if (entry.reason !== "cancelled") entry.reason = reason // a cancelled job stays cancelled
      if (entry.fiber) {
        entry.fiber.interruptUnsafe()
        interrupted++
      }
    }
    return interrupted
  }

  /**
   * Stops a job whose cancellation was requested: a running one's handler is interrupted (it settles as
   * `Cancelled` once its fiber has ended, so its group slot is freed only then), a buffered one is taken out
   * of the buffer and finalized as cancelled, never run. A job this worker does not hold is ignored.
   */
  const cancel = (jobId: string) => {
    const entry = state.running.get(jobId)
    if (entry !== undefined) {
      if (entry.reason !== undefined) return // already being stopped
      entry.reason = "cancelled"
      // (no fiber yet: the request came from inside the handler's first synchronous steps, run by `launch`
      // before it records the fiber; `launch` interrupts it then)
      entry.fiber?.interruptUnsafe()
      return
    }
    for (let i = state.bufferHead; i < state.buffer.length; i++) {
      const c = state.buffer[i]!
      if (c.job.id !== jobId) continue
      state.buffer.splice(i, 1)
      Execute.publishCancel(cuckmq, c.job, c.claimedBy, env.now(), false)
      completer.submit(c, "Cancelled", undefined, undefined, undefined, false)
      env.ring() // a slot of the prefetch buffer is free
      return
    }
  }

  /** Waits until no job has a slot. */
  const awaitIdle = Effect.callback<void>((resume) => {
    idle = () => resume(Effect.void)
    if (state.running.size === 0) resume(Effect.void)
  })

  /** Queues a `Started` mark for every job that has been running at least `olderThanMs` unrecorded. */
  const markStarted = (olderThanMs: number) => {
    const at = env.now()
    for (const entry of state.running.values()) {
      if (entry.marked || entry.startedAt === undefined || at - entry.startedAt < olderThanMs) continue
      entry.marked = true
      completer.submit(entry.claimed, "Started")
    }
  }

  return {
    accept,
    giveBack,
    startBuffered,
    releaseBuffer,
    stopAll,
    cancel,
    awaitIdle,
    markStarted,
    capacity,
    buffered: () => buffered(state)
  }
}

export type Executor = ReturnType<typeof make>
