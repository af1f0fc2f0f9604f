/**
 * The worker engine's one state record, and what every part shares (the environment). The parts:
 *
 * - lease (lease.ts): the worker's registration, its heartbeat lease, its liveness session, and the fence
 *   that stops every job of a registration that is (or is about to be) declared dead;
 * - producer (producer.ts): claims, wake-ups, the in-process fast path's reservations, and reconciling what
 *   the store says the worker holds with what it knows it holds;
 * - executor (executor.ts): the prefetch buffer, running handlers, recording their starts, the group deadline;
 * - completer (completer.ts): settlements, written in batches;
 * - shutdown (shutdown.ts): the order of a graceful stop.
 *
 * Who owns what: a claimed job belongs to the registration that claimed it (`claimedBy`). From its claim to
 * its settlement it is in exactly one of: the buffer, `running` (its handler started), or the
 * completer's queue; throughout, `owned` maps its id to its claim token, and reconciliation never releases
 * an owned job. Only the registration that claimed a job may start it.
 */
import type { Clock, Context, Fiber, Queue, Scope } from "effect"
import type { Engine } from "../engine.js"
import type * as JobStore from "../../JobStore.js"
import type { InterruptReason } from "../execute.js"

/** Resolved worker settings (all validated). */
export interface Config {
  readonly name: string
  readonly channels: ReadonlyArray<string>
  readonly concurrency: number
  readonly prefetch: number
  readonly pollIntervalSecs: number
  readonly gracePeriodSecs: number
  readonly heartbeatSecs: number
  readonly leaseSecs: number
  /** One priority level is worth this many seconds of waiting in the claim order (the claims' `priorityAgingSecs`). */
  readonly priorityAgingSecs: number
  /**
   * Internal (tests): a claim or fast-path insert still in flight after this long is given up on (see
   * producer.ts). Defaults to `stuckAfterMs(leaseSecs)`.
   */
  readonly stuckAfterMs?: number | undefined
}

/**
 * How long a claim or a fast-path insert may be in flight before the worker gives up on it: the lease, at
 * least 10 s. Far beyond any statement that is merely slow (a slow one given up on costs only the release of
 * what it brings); what it bounds is a statement whose answer never comes, which would otherwise hold back
 * reconciling, and so the release of the jobs of a lost claim, forever.
 */
export const stuckAfterMs = (leaseSecs: number): number => Math.max(10_000, leaseSecs * 1000)

/** A job as its worker holds it. */
export interface Claimed {
  readonly job: JobStore.ClaimedJob
  /** The registration (worker id) that claimed it. */
  readonly claimedBy: string
  /** When the claim was sent (local clock, ms): the group ceiling counts from here. */
  readonly claimedAt: number
}

/** A job with a slot: running its handler. */
export interface Running {
  readonly claimed: Claimed
  /** The handler's fiber, once started. */
  fiber: Fiber.Fiber<void> | undefined
  /** Set when the worker itself stops the job (shutdown, lost lease): the attempt is refunded. */
  reason: InterruptReason | undefined
  /** When the handler started (local clock, ms), once it has. */
  startedAt: number | undefined
  /** A `Started` mark was sent for it. */
  marked: boolean
}

export interface State {
  // ---- lease ----
  workerId: string
  registered: boolean
  /** A registration being written (its row may exist before `registered` is set): deregistered on shutdown. */
  registering: string | undefined
  /** The moment (local clock) the worker must have stopped its jobs unless a heartbeat lands. */
  leaseDeadline: number
  stopping: boolean
  // ---- producer ----
  /** A wake-up arrived since the last claim. */
  rung: boolean
  /** The last claim came back full (or held jobs back): more jobs are probably waiting. */
  moreLikely: boolean
  /** Claims in flight, not counting those given up on (`abandoned`). */
  claimsInFlight: number
  /** Room that claims in flight may fill. */
  requested: number
  /** Slots reserved by the fast path (a job being inserted for this worker), not counting those given up on. */
  reserved: number
  /**
   * Claims and fast-path inserts given up on, still in flight (stuck: see producer.ts); what they bring is
   * given back, never run.
   */
  abandoned: number
  claimFailures: number
  retryAt: number
  /** The end of the earliest rate window that refused a claim jobs (local clock), 0 for none. */
  refillAt: number
  /** A channel of this worker is rate limited, as the last claim that could tell said (undefined: ask). */
  rateLimited: boolean | undefined
  /** The store may hold jobs for this worker that it does not know of: release them before claiming. */
  needsReconcile: boolean
  /**
   * A release of unowned jobs is in flight: it was sent with `owned` as it was then, so nothing may be claimed
   * for this worker (no claim, no fast-path insert) until it returns, or it could release a job the worker runs.
   */
  reconciling: boolean
  /** When the producer last reconciled (local clock; the worker's start until it first does). */
  reconciledAt: number
  // ---- executor ----
  /** Claimed jobs waiting for a slot, consumed from `bufferHead` (no O(n) shifts). */
  buffer: Array<Claimed>
  bufferHead: number
  running: Map<string, Running>
  /** Handler durations, a moving average: how far ahead the buffer looks. */
  avgDurationMs: number
  /** Definition names this process does not know: not claimed any more. */
  readonly excludeNames: Set<string>
  // ---- completer ----
  /** Every job held, with its claim token, until its settlement is written. */
  readonly owned: Map<string, number>
  /** Settlements queued or being written. */
  unsettled: number
}

export const makeState = (workerId: string): State => ({
  workerId,
  registered: false,
  registering: undefined,
  leaseDeadline: 0,
  stopping: false,
  rung: true,
  moreLikely: true,
  claimsInFlight: 0,
  requested: 0,
  reserved: 0,
  abandoned: 0,
  claimFailures: 0,
  retryAt: 0,
  refillAt: 0,
  rateLimited: undefined,
  needsReconcile: false,
  reconciling: false,
  reconciledAt: 0,
  buffer: [],
  bufferHead: 0,
  running: new Map(),
  // Until measured, assume jobs of 100 ms (a prefetch of half the concurrency); the average follows recent
  // durations quickly, so a fast queue ramps up within a few dozen jobs.
  avgDurationMs: 100,
  excludeNames: new Set(),
  owned: new Map(),
  unsettled: 0
})

/** What the parts share. */
export interface Env {
  readonly cuckmq: Engine
  readonly store: JobStore.JobStore["Service"]
  readonly config: Config
  readonly state: State
  /** The worker's scope: fibers forked here live until the worker stops. */
  readonly scope: Scope.Scope
  readonly clock: Clock.Clock
  readonly now: () => number
  /** Wakes the producer (room changed, a wake-up arrived). */
  readonly ring: () => void
  readonly doorbell: Queue.Queue<void>
  /** The services handler fibers run with (the producer's plus the handlers', merged once). */
  services: Context.Context<never> | undefined
  /** Whether a tracing backend is installed (per-job spans are skipped otherwise). */
  traced: boolean
}

/** Backoff after `failures` consecutive failures: 200 ms doubling, at most 5 s. */
export const backoffMs = (failures: number): number => Math.min(5000, 100 * 2 ** Math.min(Math.max(failures, 1), 6))

/** Claimed jobs in the buffer. */
export const buffered = (state: State): number => state.buffer.length - state.bufferHead

/**
 * A worker's state as plain data, for diagnostics (tests print it when a queue does not drain): counters,
 * and the jobs it holds by where they are.
 */
export interface Snapshot {
  readonly name: string
  readonly workerId: string
  readonly registered: boolean
  readonly registering: string | undefined
  readonly stopping: boolean
  /** Milliseconds left on the lease (negative: past it). */
  readonly leaseLeftMs: number
  readonly claimsInFlight: number
  readonly requested: number
  readonly reserved: number
  readonly abandoned: number
  readonly needsReconcile: boolean
  readonly reconciling: boolean
  /** Milliseconds since the producer last reconciled (or started). */
  readonly sinceReconcileMs: number
  readonly claimFailures: number
  readonly retryInMs: number
  readonly rung: boolean
  readonly moreLikely: boolean
  readonly unsettled: number
  readonly buffer: ReadonlyArray<string>
  readonly running: ReadonlyArray<string>
  readonly owned: ReadonlyArray<string>
}

/** A job as `Snapshot` lists it: `id@claim by <registration prefix>`. */
const describeClaimed = (c: Claimed) => `${c.job.id}@${c.job.claim} by ${c.claimedBy.slice(0, 8)}`

export const snapshot = (env: Env): Snapshot => {
  const { state } = env
  const now = env.now()
  return {
    name: env.config.name,
    workerId: state.workerId,
    registered: state.registered,
    registering: state.registering,
    stopping: state.stopping,
    leaseLeftMs: state.leaseDeadline - now,
    claimsInFlight: state.claimsInFlight,
    requested: state.requested,
    reserved: state.reserved,
    abandoned: state.abandoned,
    needsReconcile: state.needsReconcile,
    reconciling: state.reconciling,
    sinceReconcileMs: now - state.reconciledAt,
    claimFailures: state.claimFailures,
    retryInMs: Math.max(0, state.retryAt - now),
    rung: state.rung,
    moreLikely: state.moreLikely,
    unsettled: state.unsettled,
    buffer: state.buffer.slice(state.bufferHead).map(describeClaimed),
    running: Array.from(state.running.values()).map((r) =>
      `${describeClaimed(r.claimed)} started=${r.startedAt === undefined ? "no" : `${now - r.startedAt}ms ago`}` +
      ` fiber=${r.fiber === undefined ? "none" : r.fiber.pollUnsafe() === undefined ? "live" : "exited"}` +
      (r.reason === undefined ? "" : ` reason=${r.reason}`)
    ),
    owned: Array.from(state.owned.entries()).map(([id, claim]) => `${id}@${claim}`)
  }
}
