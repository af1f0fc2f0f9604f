/**
 * The worker engine. Parts, each with one job:
 * - registration and heartbeat: the worker's row and its lease. The lease deadline is tracked locally from
 *   the time each heartbeat was *sent*, minus a margin, so the worker always stops its jobs before the
 *   database can declare it dead and let another worker take them (fencing).
 * - producer (the claim loop): claims as many jobs as it has room for, in one statement. Room is the free
 *   slots plus a small prefetch buffer, so that the next claim's round trip (a commit, so an fsync) overlaps
 *   the jobs in hand; the buffer shrinks to nothing when jobs are slow (see `prefetchLimit`). It claims
 *   again right away while claims come back full, otherwise it waits for a wake-up (LISTEN/NOTIFY, a
 *   released group lock, the poll timer).
 * - executor: one fiber per job: decode, run the handler, decide the outcome, publish events.
 * - completer: settles outcomes in batches (one statement per batch, up to two in flight), retrying with
 *   backoff while the database is away; a job's slot is free as soon as its handler ends.
 * - shutdown (scope close): stop claiming, give back the prefetched jobs, let running jobs finish within the
 *   grace period, interrupt the rest (they go back to the queue without spending their attempt), flush
 *   settlements, deregister (which releases anything still held).
 */
import * as os from "node:os"
import { randomUUID } from "node:crypto"
import { Clock, Duration, Effect, Fiber, Option, Queue, Scope, Stream } from "effect"
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
  readonly prefetch: number
  readonly pollIntervalSecs: number
  readonly gracePeriodSecs: number
  readonly heartbeatSecs: number
  readonly leaseSecs: number
}

interface Running {
  readonly job: JobStore.ClaimedJob
  readonly workerId: string
  fiber: Fiber.Fiber<void> | undefined
  reason: Execute.InterruptReason | undefined
}

interface Pending {
  readonly workerId: string
  readonly settlement: JobStore.Settlement
}

/**
 * How far ahead prefetching looks: the buffer holds at most the jobs that the worker is expected to start
 * within this many milliseconds, given how long its handlers take (an average over recent runs).
 */
const prefetchHorizonMs = 50

/** How often a worker reconciles what it holds with what the database says it holds. */
const reconcileEveryMs = 60_000

/** Runs a worker in the current scope until the scope closes. */
export const run = (cuckmq: Cuckmq["Service"], config: WorkerConfig): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const store = cuckmq.store
    const scope = yield* Effect.scope
    const clock = yield* Clock.Clock
    const now = () => clock.currentTimeMillisUnsafe()
    const hostname = os.hostname()
    // The worker stops its jobs a quarter of the lease before the database could declare it dead: slack for
    // a slow statement, a busy event loop or clocks that drift apart.
    const leaseMarginMs = config.leaseSecs * 250

    // ---- state ----
    let workerId = randomUUID()
    let registered = false
    let leaseDeadline = 0
    let stopping = false
    let moreLikely = true // the last claim came back full: more jobs are probably waiting
    let rung = true // a wake-up arrived since the last claim
    // Until measured, assume jobs of 100 ms (a prefetch of half the concurrency); the average follows recent
    // durations quickly (30% weight on each new one), so a fast queue ramps up within a few dozen jobs.
    let avgDurationMs = 100
    const running = new Map<string, Running>()
    // claimed jobs waiting for a slot, consumed from `bufferHead` (no O(n) shifts)
    let buffer: Array<{ readonly job: JobStore.ClaimedJob; readonly workerId: string }> = []
    let bufferHead = 0
    const buffered = () => buffer.length - bufferHead
    const excludeNames = new Set<string>()
    const doorbell = yield* Queue.sliding<void>(1)
    const ring = () => {
      Queue.offerUnsafe(doorbell, undefined)
    }
    const settlements = yield* Queue.unbounded<Pending>()
    let unsettled = 0 // settlements queued or being written
    let idle: (() => void) | undefined // resolves when nothing runs any more (shutdown)
    // Jobs this worker holds in the database as far as it knows: buffered, running, or ended with the
    // settlement not yet written. After a failed claim (whose commit we cannot see) the rest is released.
    const owned = new Map<string, number>() // job id -> attempt
    let needsReconcile = false
    const channelSet = new Set(config.channels)
    const capacity = () => config.concurrency + prefetchLimit()
    /** The prefetch buffer's size: what we expect to start within the horizon, up to `prefetch`. */
    const prefetchLimit = () =>
      Math.min(config.prefetch, Math.floor(config.concurrency * prefetchHorizonMs / Math.max(avgDurationMs, 0.01)))

    // ---- registration and lease ----
    const register = Effect.gen(function*() {
      workerId = randomUUID()
      const sentAt = now()
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

    const submit = (pending: Pending) => {
      unsettled++
      Queue.offerUnsafe(settlements, pending)
    }

    const release = (job: JobStore.ClaimedJob, claimedBy: string) => {
      owned.set(job.id, job.attempt)
      submit({ workerId: claimedBy, settlement: { id: job.id, attempt: job.attempt, outcome: "Released" } })
    }

    /** Gives back the prefetched jobs that have not started. */
    const releaseBuffer = () => {
      const left = buffer.slice(bufferHead)
      buffer = []
      bufferHead = 0
      for (const { job, workerId: claimedBy } of left) release(job, claimedBy)
    }

    /** Stops every job of the current identity: the lease is gone (or about to be). */
    const fence = (why: string) =>
      Effect.gen(function*() {
        if (!registered) return
        registered = false
        yield* Effect.logWarning(`cuckmq: worker lost its lease (${why}); interrupting its jobs and re-registering`)
          .pipe(Effect.annotateLogs("workerId", workerId))
        releaseBuffer()
        const fibers: Array<Fiber.Fiber<void>> = []
        for (const entry of running.values()) {
          entry.reason = "lease-lost"
          if (entry.fiber) fibers.push(entry.fiber)
        }
        // Interrupt without waiting: a handler slow to stop must not hold up the heartbeat or the producer.
        yield* Effect.forkIn(Effect.forEach(fibers, Fiber.interrupt, { discard: true, concurrency: "unbounded" }), scope)
      })

    /** Fences the moment the lease deadline passes, whatever the heartbeat loop is doing. */
    const fenceTimerLoop = Effect.gen(function*() {
      while (true) {
        const wait = registered ? leaseDeadline - now() : config.heartbeatSecs * 1000
        if (registered && wait <= 0) {
          yield* fence("no heartbeat reached the database in time")
          continue
        }
        yield* Effect.sleep(Duration.millis(Math.max(10, wait)))
      }
    })

    const heartbeatLoop = Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(Duration.seconds(config.heartbeatSecs))
        if (!registered) continue
        const sentAt = now()
        const id = workerId
        // A heartbeat that cannot land before the deadline is useless: give up on it then (the fence fires).
        const ok = yield* Effect.result(
          store.heartbeat(id, config.leaseSecs).pipe(
            Effect.timeoutOrElse({
              duration: Duration.millis(Math.max(1, leaseDeadline - sentAt)),
              orElse: () => Effect.succeed(undefined)
            })
          )
        )
        if (id !== workerId || !registered) continue
        if (ok._tag === "Success" && ok.success === true) {
          leaseDeadline = sentAt + config.leaseSecs * 1000 - leaseMarginMs
        } else if (ok._tag === "Success" && ok.success === false) {
          yield* fence("the database declared it dead")
          continue
        } else {
          yield* Effect.logWarning("cuckmq: heartbeat failed", ok._tag === "Failure" ? ok.failure.message : "timed out")
          continue
        }
        // Every live worker also takes back what dead workers held, so crash recovery needs no orchestrator.
        if (!stopping) {
          yield* Maintenance.rescue(cuckmq).pipe(
            Effect.catch((e) => Effect.logWarning("cuckmq: rescuing dead workers' jobs failed", e.message))
          )
        }
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
    /** A writer: takes whatever settlements are queued and writes them, retrying until it succeeds. */
    const completerLoop = Effect.gen(function*() {
      while (true) {
        let batch: ReadonlyArray<Pending> = yield* Queue.takeAll(settlements)
        let failures = 0
        while (true) {
          const result = yield* Effect.result(writeBatch(batch))
          if (result._tag === "Success") break
          failures++
          yield* Effect.logWarning("cuckmq: settling jobs failed; retrying", result.failure.message)
          if (failures === 3) {
            // A failure the database keeps refusing (not an outage) must not block every later settlement:
            // retry with the recorded errors reduced to a plain message.
            batch = batch.map((p) =>
              p.settlement.error === undefined ? p : {
                ...p,
                settlement: { ...p.settlement, error: { message: "the job failed; its error could not be stored" } }
              }
            )
          }
          yield* Effect.sleep(Duration.millis(Math.min(5000, 100 * 2 ** Math.min(failures, 6))))
        }
        let requeued = false
        for (const p of batch) {
          if (owned.get(p.settlement.id) === p.settlement.attempt) owned.delete(p.settlement.id)
          if (p.settlement.outcome === "Retry" || p.settlement.outcome === "Released") requeued = true
        }
        unsettled -= batch.length
        if (requeued) {
          // a retried (timeoutSecs 0) or released job may be available right now
          rung = true
          ring()
        }
      }
    })

    // ---- executor ----
    // A job may complete synchronously inside its fork, and its `finish` starts the next one: without this
    // guard that would recurse once per buffered job (and overflow the stack with a large buffer).
    let starting = false
    const startBuffered = () => {
      if (starting) return // the loop below picks up the slot just freed
      if (now() >= leaseDeadline) return // the fence gives the buffer back
      starting = true
      try {
        while (running.size < config.concurrency && bufferHead < buffer.length) {
          const { job, workerId: claimedBy } = buffer[bufferHead++]!
          if (bufferHead === buffer.length) {
            buffer = []
            bufferHead = 0
          }
          const entry: Running = { job, workerId: claimedBy, fiber: undefined, reason: undefined }
          running.set(job.id, entry)
          entry.fiber = Effect.runForkWith(jobServices)(execute(entry))
        }
      } finally {
        starting = false
      }
      cuckmq.metrics.inFlight(config.name, running.size)
    }

    const finish = (entry: Running, settlement: JobStore.Settlement, durationMs: number) => {
      submit({ workerId: entry.workerId, settlement })
      running.delete(entry.job.id)
      avgDurationMs = avgDurationMs * 0.7 + durationMs * 0.3
      if (!stopping) startBuffered()
      else cuckmq.metrics.inFlight(config.name, running.size)
      if (running.size === 0 && idle) idle()
      ring()
    }

    const execute = (entry: Running): Effect.Effect<void> =>
      Effect.uninterruptibleMask((restore) => {
        const started = now()
        if (entry.reason !== undefined) {
          // fenced or stopped between being started and running: give it back untouched
          finish(entry, { id: entry.job.id, attempt: entry.job.attempt, outcome: "Released" }, 0)
          return Effect.void
        }
        Execute.publishRun(cuckmq, entry.job, entry.workerId, started)
        return Effect.flatMap(Effect.exit(restore(Execute.handler(cuckmq, entry.job, entry.workerId, traced))), (exit) => {
          const ended = now()
          finish(
            entry,
            Execute.conclude(cuckmq, entry.job, entry.workerId, exit, started, ended, entry.reason),
            ended - started
          )
          return Effect.void
        })
      })

    let jobServices: import("effect").Context.Context<never> // the producer's services, for job fibers
    let traced = true

    const dispatch = (jobs: ReadonlyArray<JobStore.ClaimedJob>, claimedBy: string) => {
      const at = new Date()
      for (const job of jobs) {
        cuckmq.publish(() => ({
          _tag: "WORKER_JOB_DEQUEUE",
          timestamp: at,
          jobId: job.id,
          definitionName: job.name,
          workerId: claimedBy,
          attempt: job.attempt
        }))
        if (!cuckmq.definitions.has(job.name)) {
          // A definition this process does not know (rolling deploy): give it back, attempt refunded, and stop
          // claiming it so that a worker that knows it gets it.
          excludeNames.add(job.name)
          release(job, claimedBy)
          cuckmq.publish(() => ({
            _tag: "WORKER_JOB_ORPHAN",
            timestamp: at,
            jobId: job.id,
            definitionName: job.name,
            workerId: claimedBy
          }))
          continue
        }
        if (stopping || claimedBy !== workerId || !registered) {
          release(job, claimedBy) // claimed while stopping or losing the lease: give it back untouched
          continue
        }
        owned.set(job.id, job.attempt)
        buffer.push({ job, workerId: claimedBy })
      }
      startBuffered()
    }

    // ---- producer ----
    // Up to two claims in flight: while one statement (a commit, so an fsync) is on its way, the jobs of the
    // other are running. `requested` counts the room that claims in flight may fill.
    let claimsInFlight = 0
    let reserved = 0 // slots reserved by the in-process fast path (a job being inserted for us)
    let requested = 0
    let claimFailures = 0
    let retryAt = 0
    const room = () => capacity() - running.size - buffered() - requested - reserved
    /** Claim when woken, or while claims come back full once a useful batch (half the room) is free. */
    const worthClaiming = (r: number) => r > 0 && (rung || (moreLikely && r >= Math.max(1, Math.ceil(capacity() / 2))))

    const claimTask = (limit: number, claimedBy: string) =>
      store.claim({ workerId: claimedBy, channels: config.channels, excludeNames: Array.from(excludeNames), limit }).pipe(
        Effect.matchEffect({
          onFailure: (error) => {
            claimFailures++
            // the claim may have committed even so: find out before the next one
            needsReconcile = true
            rung = true
            const backoff = Math.min(5000, 100 * 2 ** Math.min(claimFailures, 6))
            retryAt = now() + backoff
            return Effect.logWarning(`cuckmq: claim failed; retrying in ${backoff} ms`, error.message)
          },
          onSuccess: (jobs) =>
            Effect.sync(() => {
              claimFailures = 0
              moreLikely = jobs.length === limit
              if (jobs.length > 0) dispatch(jobs, claimedBy)
            })
        }),
        Effect.ensuring(Effect.sync(() => {
          claimsInFlight--
          requested -= limit
          ring()
        }))
      )

    /** One step of the producer: register, reconcile, start a claim if worth it; false when it should wait. */
    const step = Effect.gen(function*() {
      if (now() < retryAt) {
        yield* Effect.sleep(Duration.millis(retryAt - now()))
        return true
      }
      if (!registered) {
        const ok = yield* Effect.result(register)
        if (ok._tag === "Failure") {
          claimFailures++
          retryAt = now() + Math.min(5000, 100 * 2 ** Math.min(claimFailures, 6))
          yield* Effect.logWarning("cuckmq: registering the worker failed; retrying", ok.failure.message)
          return true
        }
      }
      if (now() >= leaseDeadline) {
        yield* fence("lease deadline passed before claiming")
        return true
      }
      if (needsReconcile) {
        if (claimsInFlight > 0) return false // wait for the claims in flight to land first
        const released = yield* Effect.result(store.releaseUnowned(workerId, Array.from(owned.keys())))
        if (released._tag === "Failure") {
          retryAt = now() + 1000
          return true
        }
        needsReconcile = false
        if (released.success > 0) yield* Effect.logInfo(`cuckmq: released ${released.success} job(s) of a lost claim`)
      }
      const r = room()
      if (claimsInFlight >= 2 || !worthClaiming(r)) return false
      rung = false
      claimsInFlight++
      requested += r
      yield* Effect.forkIn(claimTask(r, workerId), scope)
      return true
    })

    const producerLoop = Effect.gen(function*() {
      // job fibers run with the producer's services plus the handlers' (merged once, not per job)
      jobServices = cuckmq.handlerContext(yield* Effect.context<never>())
      traced = yield* Execute.isTraced
      let lastReconcile = now()
      while (true) {
        // Now and then (and after any failed claim) release what the database says we hold but we do not
        // know about: a claim whose commit landed after its connection failed on our side.
        if (now() - lastReconcile > reconcileEveryMs) {
          lastReconcile = now()
          needsReconcile = true
        }
        if (yield* step) continue
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

    // ---- in-process fast path: jobs enqueued in this process, claimed in their INSERT for an idle slot ----
    const removeLocal = cuckmq.addLocalWorker({
      channels: channelSet,
      reserve: () => {
        if (!registered || stopping || now() >= leaseDeadline) return undefined
        if (running.size + buffered() + reserved >= config.concurrency) return undefined
        reserved++
        const claimedBy = workerId
        let settled = false
        return {
          workerId: claimedBy,
          channels: config.channels,
          deliver: (job) => {
            if (settled) return
            settled = true
            reserved--
            dispatch([job], claimedBy)
          },
          cancel: () => {
            if (settled) return
            settled = true
            reserved--
            ring()
          }
        }
      }
    })

    // ---- lifecycle ----
    const annotate = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.annotateLogs(effect, { cuckmq: "worker", worker: config.name })
    const heartbeatFiber = yield* Effect.forkIn(annotate(heartbeatLoop), scope)
    const fenceFiber = yield* Effect.forkIn(annotate(fenceTimerLoop), scope)
    // Two writers: while one batch's commit waits for its fsync, the next batch is already on its way.
    const completerFibers = [
      yield* Effect.forkIn(annotate(completerLoop), scope),
      yield* Effect.forkIn(annotate(completerLoop), scope)
    ]
    const wakeupScope = yield* Scope.fork(scope, "sequential")
    const wakeupFiber = yield* Effect.forkIn(Effect.scoped(annotate(wakeupLoop)), wakeupScope)
    const producerFiber = yield* Effect.forkIn(annotate(producerLoop), scope)

    yield* Scope.addFinalizer(scope, Effect.gen(function*() {
      // 1. stop claiming, give back what was prefetched
      stopping = true
      removeLocal()
      yield* Fiber.interrupt(producerFiber)
      yield* Fiber.interrupt(wakeupFiber)
      releaseBuffer()
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
        while (unsettled > 0) yield* Effect.sleep(Duration.millis(5))
      }).pipe(Effect.timeoutOption(Duration.seconds(Math.max(5, config.gracePeriodSecs))))
      yield* Fiber.interruptAll(completerFibers)
      if (registered) {
        yield* store.deregisterWorker(workerId).pipe(
          Effect.catch((e) => Effect.logWarning("cuckmq: deregistering the worker failed (its lease will expire)", e.message))
        )
      }
      // heartbeats (and the fence) run until the very end: a long grace period must not let the lease lapse
      yield* Fiber.interrupt(heartbeatFiber)
      yield* Fiber.interrupt(fenceFiber)
      yield* Effect.logDebug(`cuckmq: worker stopped (in flight at stop: ${inFlight}, interrupted: ${left.length})`)
    }).pipe(annotate))
  })
