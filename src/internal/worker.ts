/**
 * The worker engine. Parts, each with one job:
 * - registration and heartbeat: the worker's row and its lease. The lease deadline is tracked locally from
 *   the time each heartbeat was *sent*, minus a margin, so the worker always stops its jobs before the
 *   database can declare it dead and let the orchestrator hand them to someone else (fencing).
 * - producer (the claim loop): claims as many jobs as there are free slots, in one statement; claims again
 *   right away while claims come back full; otherwise waits for a wake-up (LISTEN/NOTIFY, a released group
 *   lock, the poll timer).
 * - executor: one fiber per job: decode, run the handler, decide the outcome, publish events.
 * - completer: settles outcomes in batches (one statement per batch), retrying with backoff when the
 *   database is away; a job's slot is free as soon as its handler ends.
 * - shutdown (scope close): stop claiming, let running jobs finish within the grace period, interrupt the
 *   rest (they go back to the queue without spending the attempt), flush settlements, deregister (which
 *   releases anything still held).
 */
import * as os from "node:os"
import { randomUUID } from "node:crypto"
import { Clock, Duration, Effect, Fiber, Option, Queue, Schedule, Scope, Stream } from "effect"
import type { Cuckmq } from "../Cuckmq.js"
import type { StorageError } from "../CuckmqError.js"
import type * as JobStore from "../JobStore.js"
import * as Execute from "./execute.js"
import * as Maintenance from "./maintenance.js"

/** Resolved worker settings (all validated). */
export interface WorkerConfig {
  readonly name: string
  readonly channels: ReadonlyArray<string>
  readonly concurrency: number
  readonly pollIntervalSecs: number
  readonly gracePeriodSecs: number
  readonly heartbeatSecs: number
  readonly leaseSecs: number
}

type InterruptReason = Execute.InterruptReason

interface Running {
  readonly job: JobStore.ClaimedJob
  readonly workerId: string
  fiber: Fiber.Fiber<void> | undefined
  reason: InterruptReason | undefined
}

interface Pending {
  readonly workerId: string
  readonly settlement: JobStore.Settlement
}

/** Exponential from 100 ms, capped at 5 s, jittered. */
const retrySchedule = Schedule.min([Schedule.exponential("100 millis", 2), Schedule.spaced("5 seconds")]).pipe(
  Schedule.jittered
)

/** Runs a worker in the current scope until the scope closes. */
export const run = (cuckmq: Cuckmq["Service"], config: WorkerConfig): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const store = cuckmq.store
    const scope = yield* Effect.scope
    const jobsScope = yield* Scope.fork(scope, "parallel")
    const hostname = os.hostname()
    const leaseMarginMs = Math.min(5000, config.leaseSecs * 100) // 10% of the lease, at most 5 s

    // ---- state ----
    let workerId = randomUUID()
    let registered = false
    let leaseDeadline = 0
    let stopping = false
    let moreLikely = true // the last claim came back full: more jobs are probably waiting
    let rung = true // a wake-up arrived since the last claim
    const running = new Map<string, Running>()
    const excludeNames = new Set<string>()
    const doorbell = yield* Queue.sliding<void>(1)
    const ring = () => {
      Queue.offerUnsafe(doorbell, undefined)
    }
    const settlements = yield* Queue.unbounded<Pending>()
    let settling = 0 // settlements taken from the queue but not yet written
    // Jobs this worker holds in the database as far as it knows: running, or ended with the settlement not
    // yet written. After a failed claim (whose commit we cannot see) anything else we hold is released.
    const owned = new Map<string, number>() // job id -> attempt
    let needsReconcile = false
    let idle: (() => void) | undefined // resolves when running is empty (shutdown)

    const channelSet = new Set(config.channels)

    // ---- registration and lease ----
    const register = Effect.gen(function*() {
      workerId = randomUUID()
      const sentAt = yield* Clock.currentTimeMillis
      yield* store.registerWorker({
        id: workerId,
        name: config.name,
        hostname,
        pid: process.pid,
        channels: config.channels,
        leaseSecs: config.leaseSecs
      })
      leaseDeadline = sentAt + config.leaseSecs * 1000 - leaseMarginMs
      registered = true
      rung = true
      yield* Effect.logDebug("cuckmq: worker registered").pipe(Effect.annotateLogs("workerId", workerId))
    })

    /** Stops every running job of the current identity: the lease is gone (or about to be). */
    const fence = (why: string) =>
      Effect.gen(function*() {
        if (!registered) return
        registered = false
        yield* Effect.logWarning(`cuckmq: worker lost its lease (${why}); interrupting its jobs and re-registering`)
          .pipe(Effect.annotateLogs("workerId", workerId))
        const fibers: Array<Fiber.Fiber<void>> = []
        for (const entry of running.values()) {
          entry.reason = "lease-lost"
          if (entry.fiber) fibers.push(entry.fiber)
        }
        yield* Effect.forEach(fibers, Fiber.interrupt, { discard: true, concurrency: "unbounded" })
      })

    const heartbeatLoop = Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(Duration.seconds(config.heartbeatSecs))
        if (!registered || stopping) continue
        const now = yield* Clock.currentTimeMillis
        if (now >= leaseDeadline) {
          yield* fence("no heartbeat reached the database in time")
          continue
        }
        const id = workerId
        const ok = yield* Effect.result(store.heartbeat(id, config.leaseSecs))
        if (id !== workerId) continue
        if (ok._tag === "Success") {
          if (ok.success) leaseDeadline = now + config.leaseSecs * 1000 - leaseMarginMs
          else yield* fence("the orchestrator declared it dead")
        } else {
          yield* Effect.logWarning("cuckmq: heartbeat failed", ok.failure.message)
          if ((yield* Clock.currentTimeMillis) >= leaseDeadline) yield* fence("heartbeats failed")
          continue
        }
        // Every live worker also takes back what dead workers held, so crash recovery needs no orchestrator.
        yield* Maintenance.rescue(cuckmq).pipe(
          Effect.catch((e) => Effect.logWarning("cuckmq: rescuing dead workers' jobs failed", e.message))
        )
      }
    })

    // ---- completer ----
    const writeBatch = (batch: ReadonlyArray<Pending>): Effect.Effect<void, StorageError> => {
      const byWorker = new Map<string, Array<JobStore.Settlement>>()
      for (const p of batch) {
        const list = byWorker.get(p.workerId)
        if (list) list.push(p.settlement)
        else byWorker.set(p.workerId, [p.settlement])
      }
      return Effect.forEach(byWorker, ([id, list]) => store.settle(id, list), { discard: true })
    }
    const completerLoop = Effect.gen(function*() {
      while (true) {
        const batch = yield* Queue.takeAll(settlements)
        settling = batch.length
        yield* writeBatch(batch).pipe(
          Effect.tapError((e) => Effect.logWarning("cuckmq: settling jobs failed; retrying", e.message)),
          Effect.retry(retrySchedule),
          Effect.orDie
        )
        for (const p of batch) {
          if (owned.get(p.settlement.id) === p.settlement.attempt) owned.delete(p.settlement.id)
        }
        settling = 0
      }
    })

    // ---- executor ----
    const finish = (entry: Running, settlement: JobStore.Settlement) => {
      Queue.offerUnsafe(settlements, { workerId: entry.workerId, settlement })
      running.delete(entry.job.id)
      cuckmq.metrics.inFlight(config.name, running.size)
      if (running.size === 0 && idle) idle()
      ring()
    }

    const execute = (entry: Running): Effect.Effect<void> => {
      const handler = Execute.handler(cuckmq, entry.job, entry.workerId)
      return Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const started = yield* Clock.currentTimeMillis
          Execute.publishRun(cuckmq, entry.job, entry.workerId, started)
          const exit = yield* Effect.exit(restore(handler))
          const ended = yield* Clock.currentTimeMillis
          finish(entry, Execute.conclude(cuckmq, entry.job, entry.workerId, exit, started, ended, entry.reason))
        })
      )
    }

    const dispatch = (jobs: ReadonlyArray<JobStore.ClaimedJob>, claimedBy: string) =>
      Effect.gen(function*() {
        const now = new Date()
        for (const job of jobs) {
          cuckmq.publish(() => ({
            _tag: "WORKER_JOB_DEQUEUE",
            timestamp: now,
            jobId: job.id,
            definitionName: job.name,
            workerId: claimedBy,
            attempt: job.attempt
          }))
          const entry: Running = { job, workerId: claimedBy, fiber: undefined, reason: undefined }
          if (!cuckmq.definitions.has(job.name)) {
            // A definition this process does not know (rolling deploy): give it back, attempt refunded, and stop
            // claiming it so that a worker that knows it gets it.
            excludeNames.add(job.name)
            owned.set(job.id, job.attempt)
            Queue.offerUnsafe(settlements, {
              workerId: claimedBy,
              settlement: { id: job.id, attempt: job.attempt, outcome: "Released" }
            })
            cuckmq.publish(() => ({
              _tag: "WORKER_JOB_ORPHAN",
              timestamp: now,
              jobId: job.id,
              definitionName: job.name,
              workerId: claimedBy
            }))
            continue
          }
          if (stopping || claimedBy !== workerId || !registered) {
            // claimed while we were stopping or losing the lease: give it back untouched
            owned.set(job.id, job.attempt)
            Queue.offerUnsafe(settlements, {
              workerId: claimedBy,
              settlement: { id: job.id, attempt: job.attempt, outcome: "Released" }
            })
            continue
          }
          running.set(job.id, entry)
          cuckmq.metrics.inFlight(config.name, running.size)
          owned.set(job.id, job.attempt)
          entry.fiber = yield* Effect.forkIn(execute(entry), jobsScope)
        }
      })

    // ---- producer ----
    const claimOnce = Effect.gen(function*() {
      if (!registered) {
        yield* register
      }
      const now = yield* Clock.currentTimeMillis
      if (now >= leaseDeadline) {
        yield* fence("lease deadline passed before claiming")
        return
      }
      const free = config.concurrency - running.size
      if (free <= 0 || !(moreLikely || rung)) return
      rung = false
      const claimedBy = workerId
      if (needsReconcile) {
        const released = yield* store.releaseUnowned(claimedBy, Array.from(owned.keys()))
        needsReconcile = false
        if (released > 0) yield* Effect.logInfo(`cuckmq: released ${released} job(s) claimed by a lost claim`)
      }
      needsReconcile = true // until the claim's result is in our hands
      const jobs = yield* store.claim({
        workerId: claimedBy,
        channels: config.channels,
        excludeNames: Array.from(excludeNames),
        limit: free
      })
      needsReconcile = false
      moreLikely = jobs.length === free
      if (jobs.length > 0) yield* dispatch(jobs, claimedBy)
    })

    const producerLoop = Effect.gen(function*() {
      let failures = 0
      while (true) {
        const result = yield* Effect.result(claimOnce)
        if (result._tag === "Failure") {
          failures++
          const backoff = Math.min(5000, 100 * 2 ** Math.min(failures, 6))
          yield* Effect.logWarning(`cuckmq: claim failed; retrying in ${backoff} ms`, result.failure.message)
          rung = true
          yield* Effect.sleep(Duration.millis(backoff))
          continue
        }
        failures = 0
        const free = config.concurrency - running.size
        if (free > 0 && (moreLikely || rung)) continue
        const woke = yield* Queue.take(doorbell).pipe(Effect.timeoutOption(Duration.seconds(config.pollIntervalSecs)))
        if (Option.isNone(woke)) rung = true // poll: delayed and retried jobs become due without a notification
      }
    })

    const wakeupLoop = Effect.gen(function*() {
      const wakeups = yield* store.wakeups
      yield* Stream.runForEach(wakeups, (w) =>
        Effect.sync(() => {
          if (w._tag === "Any" || channelSet.has(w.channel)) {
            rung = true
            ring()
          }
        }))
    })

    // ---- lifecycle ----
    const annotate = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.annotateLogs(effect, { cuckmq: "worker", worker: config.name })
    const heartbeatFiber = yield* Effect.forkIn(annotate(heartbeatLoop), scope)
    const completerFiber = yield* Effect.forkIn(annotate(completerLoop), scope)
    const wakeupScope = yield* Scope.fork(scope, "sequential")
    const wakeupFiber = yield* Effect.forkIn(Effect.scoped(annotate(wakeupLoop)), wakeupScope)
    const producerFiber = yield* Effect.forkIn(annotate(producerLoop), scope)

    yield* Scope.addFinalizer(scope, Effect.gen(function*() {
      // 1. stop claiming
      stopping = true
      yield* Fiber.interrupt(producerFiber)
      yield* Fiber.interrupt(wakeupFiber)
      // 2. let running jobs finish within the grace period
      const inFlight = running.size
      if (inFlight > 0) {
        yield* Effect.callback<void>((resume) => {
          idle = () => resume(Effect.void)
          if (running.size === 0) resume(Effect.void)
        }).pipe(Effect.timeoutOption(Duration.seconds(config.gracePeriodSecs)))
      }
      // 3. interrupt the rest: they are released without spending their attempt
      const left = Array.from(running.values())
      for (const entry of left) entry.reason = "shutdown"
      yield* Effect.forEach(left, (entry) => entry.fiber ? Fiber.interrupt(entry.fiber) : Effect.void, {
        discard: true,
        concurrency: "unbounded"
      })
      // 4. flush settlements (bounded), then deregister, which also releases anything still held
      yield* Effect.gen(function*() {
        while ((yield* Queue.size(settlements)) > 0 || settling > 0) yield* Effect.sleep(Duration.millis(5))
      }).pipe(Effect.timeoutOption(Duration.seconds(Math.max(5, config.gracePeriodSecs))))
      yield* Fiber.interrupt(completerFiber)
      yield* Fiber.interrupt(heartbeatFiber)
      if (registered) {
        yield* store.deregisterWorker(workerId).pipe(
          Effect.catch((e) => Effect.logWarning("cuckmq: deregistering the worker failed (its lease will expire)", e.message))
        )
      }
      yield* Effect.logDebug(`cuckmq: worker stopped (in flight at stop: ${inFlight}, interrupted: ${left.length})`)
    }).pipe(annotate))
  })
