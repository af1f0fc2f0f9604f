/**
 * The producer: claims as many jobs as the worker has room for, in one store call. Room is the free slots
 * plus a prefetch buffer (executor.ts), so that the next claim's round trip (a commit, so an fsync) overlaps
 * the jobs in hand, with up to two claims in flight. It claims again right away while claims come back full
 * (or hold back jobs of full groups), otherwise it waits for a wake-up (LISTEN/NOTIFY, a freed group slot,
 * the poll timer).
 *
 * Reconciling: a claim (or a fast-path insert) whose result never reached the worker (a connection lost
 * mid-statement) may have committed, so the store may hold jobs for this worker that it does not know of.
 * After any such failure, and every minute, the producer asks the store to release the jobs it holds for
 * this worker that are not owned, but only while no claim and no fast-path insert is in flight, and no new
 * one starts until the release returns: every job the worker might still receive is then either owned or
 * lost, and a released job is never one it runs.
 *
 * The in-process fast path (Cuckmq `localClaim`): an enqueue in this process may reserve a free slot, and its
 * job, claimed in its own INSERT, is delivered straight to the executor.
 *
 * Stuck statements: a claim or fast-path insert whose answer has not come `stuckAfterMs` after it was sent
 * (a statement the driver never answers) is given up on: it stops counting as in flight (so it no longer
 * holds back reconciling, nor takes room), the worker reconciles (it may have committed), and whatever it
 * brings if it ever answers is given back untouched, never run (a reconcile may already have released it,
 * and another worker may be running it).
 */
import { Duration, Effect, Option, Queue, Stream } from "effect"
import type * as JobStore from "../../JobStore.js"
import type { Executor } from "./executor.js"
import type { Lease } from "./lease.js"
import { backoffMs, buffered, type Env, stuckAfterMs } from "./state.js"

/** How often a worker reconciles what it holds with what the store says it holds. */
const reconcileEveryMs = 60_000

/** Groups promoted per call when a rate window ends. */
const promoteLimit = 100

/** A claim or fast-path insert in flight: when it was sent, the room it counts, whether it was given up on. */
interface InFlight {
  readonly kind: "claim" | "fast-path insert"
  readonly sentAt: number
  readonly room: number
  abandoned: boolean
}

export const make = (env: Env, executor: Executor, lease: Lease) => {
  const { config, state, store } = env
  const channelSet = new Set(config.channels)
  const stuckMs = config.stuckAfterMs ?? stuckAfterMs(config.leaseSecs)
  /** Claims and reservations counted in `claimsInFlight` / `reserved`. */
  const inFlight = new Set<InFlight>()

  /** Stops counting a claim or reservation (once): it answered, or it is given up on. */
  const uncount = (f: InFlight) => {
    if (!inFlight.delete(f)) return
    if (f.kind === "claim") {
      state.claimsInFlight--
      state.requested -= f.room
    } else {
      state.reserved--
    }
  }

  /**
   * Gives up on claims and fast-path inserts in flight for `stuckMs` or more: uncounted, and the worker
   * reconciles (each may have committed); what they bring later is given back. Returns how many.
   */
  const abandonStuck = (): number => {
    if (inFlight.size === 0) return 0
    const at = env.now()
    let n = 0
    for (const f of inFlight) {
      if (at - f.sentAt < stuckMs) continue
      uncount(f)
      f.abandoned = true
      state.abandoned++
      state.needsReconcile = true
      n++
    }
    return n
  }

  const room = () =>
    executor.capacity() - state.running.size - buffered(state) - state.requested - state.reserved
  /** Claim when woken, or while claims come back full once a useful batch (half the room) is free. */
  const worthClaiming = (r: number) =>
    r > 0 && (state.rung || (state.moreLikely && r >= Math.max(1, Math.ceil(executor.capacity() / 2))))

  const claimTask = (limit: number, claimedBy: string, flight: InFlight) =>
    Effect.suspend(() => {
      const sentAt = env.now()
      return store.claim({
        workerId: claimedBy,
        channels: config.channels,
        excludeNames: Array.from(state.excludeNames),
        limit,
        priorityAgingSecs: config.priorityAgingSecs,
        // only while a channel may be rate limited: otherwise the claim is cheaper without it
        reportRefill: state.rateLimited !== false
      })
        .pipe(
          Effect.matchEffect({
            onFailure: (error) => {
              state.claimFailures++
              state.needsReconcile = true // the claim may have committed even so: find out before the next one
              state.rung = true
              const backoff = backoffMs(state.claimFailures)
              state.retryAt = env.now() + backoff
              return Effect.logWarning(`cuckmq: claim failed; retrying in ${backoff} ms`, error.message)
            },
            onSuccess: ({ held, jobs, rateLimited, refillAt }) =>
              Effect.sync(() => {
                if (flight.abandoned) {
                  // given up on: its room is counted no more, and a reconcile may have released its jobs
                  if (jobs.length > 0) executor.giveBack(jobs.map((job) => ({ job, claimedBy, claimedAt: sentAt })))
                  return
                }
                state.claimFailures = 0
                if (rateLimited !== undefined) state.rateLimited = rateLimited
                state.moreLikely = jobs.length === limit || held > 0
                // a rate limit refused jobs: claim again (and promote blocked groups) once its window ends
                if (refillAt !== undefined) {
                  const at = refillAt.getTime()
                  if (state.refillAt === 0 || at < state.refillAt) state.refillAt = at
                }
                if (jobs.length > 0) executor.accept(jobs.map((job) => ({ job, claimedBy, claimedAt: sentAt })))
              })
          })
        )
    })

  /** One step: register, reconcile, start a claim if worth it; false when it should wait. */
  const step = Effect.gen(function*() {
    const stuck = abandonStuck()
    if (stuck > 0) {
      yield* Effect.logWarning(
        `cuckmq: gave up on ${stuck} claim(s) or fast-path insert(s) unanswered after ${stuckMs} ms; reconciling`
      )
    }
    if (env.now() < state.retryAt) {
      yield* Effect.sleep(Duration.millis(state.retryAt - env.now()))
      return true
    }
    if (!state.registered) {
      const ok = yield* Effect.result(lease.register)
      if (ok._tag === "Failure") {
        state.claimFailures++
        state.retryAt = env.now() + backoffMs(state.claimFailures)
        yield* Effect.logWarning("cuckmq: registering the worker failed; retrying", ok.failure.message)
        return true
      }
    }
    if (env.now() >= state.leaseDeadline) {
      yield* lease.fence("its lease deadline passed before claiming")
      return true
    }
    if (state.needsReconcile) {
      // wait until nothing the worker might still receive is in flight, and let nothing new start meanwhile
      if (state.claimsInFlight > 0 || state.reserved > 0) return false
      state.reconciling = true
      const released = yield* Effect.result(store.releaseUnowned(state.workerId, Array.from(state.owned, ([id, claim]) => ({ id, claim })))).pipe(
        Effect.ensuring(Effect.sync(() => {
          state.reconciling = false
        }))
      )
      if (released._tag === "Failure") {
        state.retryAt = env.now() + 1000
        return true
      }
      state.needsReconcile = false
      state.reconciledAt = env.now()
      if (released.success > 0) yield* Effect.logInfo(`cuckmq: released ${released.success} job(s) of a lost claim`)
    }
    const r = room()
    if (state.claimsInFlight >= 2 || !worthClaiming(r)) return false
    // counted and forked in one uninterruptible step, and uncounted by the fiber's observer: however the claim
    // ends (even interrupted before its first step, as the worker stops), the count comes back down, and a
    // stop never waits for a claim that was counted but never ran
    yield* Effect.uninterruptible(Effect.suspend(() => {
      state.rung = false
      state.claimsInFlight++
      state.requested += r
      const flight: InFlight = { kind: "claim", sentAt: env.now(), room: r, abandoned: false }
      inFlight.add(flight)
      return Effect.map(Effect.forkIn(Effect.interruptible(claimTask(r, state.workerId, flight)), env.scope), (fiber) => {
        fiber.addObserver(() => {
          if (flight.abandoned) state.abandoned--
          else uncount(flight)
          env.ring()
        })
      })
    }))
    return true
  })

  const loop = Effect.gen(function*() {
    let lastReconcile = env.now()
    state.reconciledAt = lastReconcile
    while (true) {
      if (env.now() - lastReconcile > reconcileEveryMs) {
        lastReconcile = env.now()
        state.needsReconcile = true
      }
      if (state.refillAt !== 0 && env.now() >= state.refillAt) {
        // a rate window that refused jobs ended: its blocked groups' held jobs become claimable, and claims
        // of its channel find budget again (woken by the window, not by polling hot)
        state.refillAt = 0
        state.rung = true
        yield* Effect.ignore(store.promoteGroups(promoteLimit))
        continue
      }
      if (yield* step) continue
      let waitMs = state.refillAt === 0
        ? config.pollIntervalSecs * 1000
        : Math.min(config.pollIntervalSecs * 1000, Math.max(1, state.refillAt - env.now()))
      // wake up when the oldest statement in flight would be given up on
      for (const f of inFlight) waitMs = Math.min(waitMs, Math.max(1, f.sentAt + stuckMs - env.now()))
      const woke = yield* Queue.take(env.doorbell).pipe(Effect.timeoutOption(Duration.millis(waitMs)))
      if (Option.isNone(woke)) state.rung = true // poll: delayed and retried jobs become due without a notification
    }
  })

  const wakeupLoop = Effect.gen(function*() {
    const wakeups = yield* store.wakeups
    yield* Stream.runForEach(wakeups, (w) =>
      Effect.sync(() => {
        // a channel's flow control may have changed (setChannel wakes every worker): ask the next claim
        if (w._tag === "Any") state.rateLimited = undefined
        if (w._tag === "Any" || channelSet.has(w.channel)) {
          state.rung = true
          env.ring()
        }
      }))
  })

  /** The fast path's view of this worker: a free slot, reserved for a job about to be inserted for it. */
  const reserve = (): JobStore.LocalReservation | undefined => {
    if (!state.registered || state.stopping || state.reconciling || env.now() >= state.leaseDeadline) return undefined
    if (state.running.size + buffered(state) + state.reserved >= config.concurrency) return undefined
    state.reserved++
    const claimedBy = state.workerId
    const claimedAt = env.now()
    const flight: InFlight = { kind: "fast-path insert", sentAt: claimedAt, room: 1, abandoned: false }
    inFlight.add(flight)
    let settled = false
    return {
      workerId: claimedBy,
      channels: config.channels,
      deliver: (job) => {
        if (settled) return
        settled = true
        if (flight.abandoned) {
          // given up on (and reconciled since, perhaps): give the job back, do not run it
          state.abandoned--
          executor.giveBack([{ job, claimedBy, claimedAt }])
          return
        }
        uncount(flight)
        executor.accept([{ job, claimedBy, claimedAt }])
        env.ring()
      },
      cancel: (maybeClaimed) => {
        if (settled) return
        settled = true
        if (flight.abandoned) state.abandoned--
        else uncount(flight)
        if (maybeClaimed) state.needsReconcile = true
        env.ring()
      }
    }
  }

  return { loop, wakeupLoop, reserve, channelSet }
}

export type Producer = ReturnType<typeof make>
