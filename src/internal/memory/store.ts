/**
 * An in-memory implementation of the JobStore contract, for tests of users' job code: the same semantics
 * as PostgreSQL (claim order with priorities, claim tokens, recorded starts, group slots and held backlogs,
 * flow control: group and channel rate limits, channel pauses; leases, liveness sessions, rescue, repeating
 * jobs, retention), with every time taken from Effect's `Clock`, so `TestClock` drives delays, retries,
 * repeats, aging and rate-limit windows. The conformance suite (test/support/conformance.ts) runs the same
 * checks, concurrent ones included, against both backends.
 *
 * Every operation is one synchronous step, so operations from concurrent fibers interleave like
 * serializable statements. It is not transactional: `onCommit` runs right after the insert.
 *
 * Rules the flow-control spec leaves open, chosen here as the PostgreSQL backend does them:
 * - A rate window `[start, start + periodSecs)` has ended at `now >= start + periodSecs`, with the period the
 *   limit has now. A changed limit keeps the current window and its count (claims made in it count against
 *   the new limit: changing a limit never admits a burst); a group's change also lifts its block.
 * - A claim that takes a slot of a group, or is blocked by its rate budget, writes the group row (creating
 *   it): the defaults it computed from the candidates' definitions (promotions use these: concurrency 1 and
 *   no rate limit before), the window, and `blockedUntil` (set, or cleared when not blocked). A job whose
 *   definition is no longer deployed counts as concurrency 1, no rate limit.
 * - A promotion gives each of its groups a row, clears a block that has ended and skips a group still blocked.
 * - `promoteGroups(limit)` promotes the groups whose block ended (oldest first, at most `limit`) and the
 *   groups with held jobs named after a cursor (at most `limit`, by name, wrapping around).
 * - `deleteUnreferencedGroups` also keeps a group whose rate window has not ended (deleting it would forget
 *   the claims spent in it and let a new job exceed the limit).
 * - A promotion after an enqueue that held jobs wakes every worker (`Any`) when it promoted something.
 */
import { Clock, Deferred, Effect, Exit, Option, PubSub, Stream } from "effect"
import { JobDefinitionInUse, JobDefinitionNotDeployed } from "../../CuckmqError.js"
import type * as JobStore from "../../JobStore.js"
import * as Uniqueness from "../uniqueness.js"

export interface Definition {
  record: JobStore.DefinitionRecord
  nextRunAt: number | undefined
}

export interface Job {
  readonly id: number
  readonly name: string
  readonly channel: string
  readonly jobGroup: string | undefined
  readonly payload: unknown
  readonly priority: number
  runAt: number
  sortAt: number
  attempts: number
  readonly maxAttempts: number
  readonly timeoutSecs: number
  /** The attempt time limit given at enqueue (seconds), if any. */
  readonly timeLimitSecs: number | undefined
  /** How many times a handler snoozed the job. */
  snoozes: number
  workerId: string | undefined
  claims: number
  started: boolean
  crashes: number
  held: boolean
  groupSlot: boolean
  claimedAt: number | undefined
  lockedUntil: number | undefined
  lastError: unknown
  /** Its cancellation was requested while it was claimed (it never goes back to the queue). */
  cancelRequested?: boolean
  readonly scheduledFor: number | undefined
  readonly traceId: string | undefined
  readonly spanId: string | undefined
  readonly createdAt: number
}

export interface Finalized {
  readonly job: Job
  readonly succeeded: boolean
  readonly finalizedAt: number
  readonly lastError: unknown
  /** Finalized as cancelled (`succeeded` is false). */
  readonly cancelled?: boolean
  /** The handler's encoded value (succeeded jobs of definitions with a `success` Schema). */
  readonly result?: unknown
}

/** A fixed rate window: `used` claims since `start` (undefined: no window yet). */
interface Window {
  start: number | undefined
  used: number
}

interface Group {
  running: number
  /** Explicit settings (`setGroupLimits`): they win over the definitions' defaults. */
  concurrency: number | undefined
  rateLimit: JobStore.RateLimit | undefined
  /** The definitions' defaults the last claim that met the group computed (promotions use them). */
  defaultConcurrency: number | undefined
  defaultRateLimit: JobStore.RateLimit | undefined
  readonly window: Window
  /** The rate budget held candidates back until then (`promoteGroups` finds the group by it). */
  blockedUntil: number | undefined
}

export interface Channel {
  paused: boolean
  rateLimit: JobStore.RateLimit | undefined
  readonly window: Window
}

export interface Worker {
  expiresAt: number
  readonly sessionKey: number | undefined
  suspectedAt: number | undefined
  /** What it registered with, and when (for the admin's worker list). */
  readonly registration: JobStore.WorkerRegistration
  readonly startedAt: number
  heartbeatAt: number
}

/** A channel a claim takes jobs from: its settings, its rate budget and its ready jobs. */
interface OpenChannel {
  readonly state: Channel | undefined
  readonly budget: number
  readonly pool: Array<Job>
}

/** A snapshot of the store's contents, for assertions in tests. */
export interface MemorySnapshot {
  readonly waiting: ReadonlyArray<JobStore.JobInfo>
  readonly running: ReadonlyArray<JobStore.JobInfo>
  readonly finalized: ReadonlyArray<JobStore.JobInfo>
}

/** A group row, for assertions. */
export interface MemoryGroup {
  /** Slots taken. */
  readonly running: number
  /** The concurrency a promotion applies: the explicit one, else the definitions' default last recorded, else 1. */
  readonly concurrency: number
  /** The rate limit a promotion applies (explicit, else the definitions' last recorded). */
  readonly rateLimit: JobStore.RateLimit | undefined
  /** The explicit settings only (`setGroupLimits`). */
  readonly explicit: { readonly concurrency: number | undefined; readonly rateLimit: JobStore.RateLimit | undefined }
  /** The current (or last) rate window: its start and the claims spent in it. */
  readonly windowStart: Date | undefined
  readonly windowUsed: number
  readonly blockedUntil: Date | undefined
}

/** The key of the admin's view of the store's state (on the store object; copied by a spread). */
export const AdminState: unique symbol = Symbol.for("@cuckmq/effect/internal/memory/AdminState")

/** The admin's view: the store's maps (mutated in place, one synchronous step at a time) and its helpers. */
export interface AdminStateView {
  readonly keepFinalized: boolean
  readonly definitions: Map<string, Definition>
  readonly jobs: Map<number, Job>
  readonly finalized: Map<number, Finalized>
  readonly channels: ReadonlyMap<string, Channel>
  readonly workers: ReadonlyMap<string, Worker>
  /**
   * The outcome counters' rows (`recordOutcomes`), by `${processId}\0${definition}\0${minute}`: one per
   * process, definition and minute, as PostgreSQL's `stats_minute`.
   */
  readonly counters: ReadonlyMap<string, JobStore.OutcomeCounts>
  /** Promotes the held jobs of `groups` where they can run now (as after a slot freed). */
  readonly promote: (groups: ReadonlySet<string>, now: number) => void
  /** Wakes every worker. */
  readonly wakeAll: () => void
}

/** The memory store plus test-only inspection and fault injection. */
type StoreService = JobStore.JobStore["Service"]
export interface MemoryStore extends StoreService {
  /** The state and helpers `CuckmqAdmin` works on (src/internal/memory/admin.ts). */
  readonly [AdminState]: AdminStateView
  readonly snapshot: Effect.Effect<MemorySnapshot>
  /** The group rows, for assertions: slots taken, limits and rate window. */
  readonly groups: Effect.Effect<ReadonlyMap<string, MemoryGroup>>
  /** Simulates the process's liveness session dying (its connection closed for good). */
  readonly killSession: Effect.Effect<void>
}

const json = (value: unknown): unknown => value === undefined ? undefined : JSON.parse(JSON.stringify(value))

const byRunAt = (a: Job, b: Job) => a.runAt - b.runAt || a.id - b.id

/** The window of a group with no row yet (never written). */
const noWindow: Window = { start: undefined, used: 0 }

/** The end of a window under `rate` (undefined: no window started, or no limit). */
const windowEnd = (w: Window, rate: JobStore.RateLimit | undefined) =>
  w.start === undefined || rate === undefined ? undefined : w.start + rate.periodSecs * 1000

/** The window is still open at `now` (it ends at `start + periodSecs`, exclusive). */
const windowOpen = (w: Window, rate: JobStore.RateLimit | undefined, now: number) => {
  const end = windowEnd(w, rate)
  return end !== undefined && now < end
}

/** Claims left in the current window (`limit` once it ended; infinite with no limit). */
const budgetOf = (w: Window, rate: JobStore.RateLimit | undefined, now: number) =>
  rate === undefined ? Number.POSITIVE_INFINITY : Math.max(0, rate.limit - (windowOpen(w, rate, now) ? w.used : 0))

/** Spends `n` claims: the first claim after a window ended starts the next one. */
const spend = (w: Window, rate: JobStore.RateLimit | undefined, n: number, now: number) => {
  if (rate === undefined || n === 0) return
  if (windowOpen(w, rate, now)) w.used += n
  else {
    w.start = now
    w.used = n
  }
}

/** The most restrictive of several definitions' group rate limits: the smallest limit, the largest period. */
const strictest = (limits: ReadonlyArray<JobStore.RateLimit | undefined>): JobStore.RateLimit | undefined => {
  let out: JobStore.RateLimit | undefined
  for (const r of limits) {
    if (r === undefined) continue
    out = out === undefined
      ? r
      : { limit: Math.min(out.limit, r.limit), periodSecs: Math.max(out.periodSecs, r.periodSecs) }
  }
  return out
}

/**
 * A record as stored: tolerates records built without the flow-control fields (by hand, in older tests),
 * so that `deploy`'s "changed" comparison and the defaults see one shape.
 */
const normalise = (record: JobStore.DefinitionRecord): JobStore.DefinitionRecord => ({
  ...record,
  priority: record.priority ?? 0,
  groupConcurrency: record.groupConcurrency ?? 1,
  groupRateLimit: record.groupRateLimit ?? undefined
})

const died = { message: "the worker running this job died" }

/** The error recorded on a cancelled job. */
export const cancelledError = { message: "the job was cancelled", tag: "JobCancelled" }

/** A repeating job as `scheduleDue` writes it (with its definition's priority). */
const scheduledJob: JobStore.NewJob = {
  payloadJson: "{}",
  delaySecs: 0,
  priority: 0,
  jobGroup: undefined,
  traceId: undefined,
  spanId: undefined
}

export const make = (options: { readonly keepFinalized: boolean }): Effect.Effect<MemoryStore> =>
  Effect.gen(function*() {
    const definitions = new Map<string, Definition>()
    const jobs = new Map<number, Job>()
    const finalized = new Map<number, Finalized>()
    /** Unique keys (`${definition}\0${key}`): the job that last took each, as PostgreSQL's `job_unique`. */
    const uniques = new Map<string, { jobId: number; createdAt: number; holdUntil: number | undefined }>()
    const groups = new Map<string, Group>()
    const channels = new Map<string, Channel>()
    const workers = new Map<string, Worker>()
    const counters = new Map<string, JobStore.OutcomeCounts>()
    const liveSessions = new Set<number>()
    let session: { key: number; lost: Deferred.Deferred<void> } | undefined
    let nextId = 1
    let nextSessionKey = 1
    let lastRescueAt = Number.NEGATIVE_INFINITY
    // promoteGroups' safety net: the last group name it scanned (it resumes after it)
    let promoteCursor = ""
    const hub = yield* PubSub.unbounded<JobStore.Wakeup>()
    const wake = (w: JobStore.Wakeup) => PubSub.publishUnsafe(hub, w)
    const wakeAll = () => wake({ _tag: "Any" })

    const info = (job: Job, fin?: Finalized): JobStore.JobInfo => ({
      id: String(job.id),
      name: job.name,
      channel: job.channel,
      jobGroup: job.jobGroup,
      payload: json(job.payload),
      state: fin
        ? (fin.succeeded ? "succeeded" : fin.cancelled === true ? "cancelled" : "failed")
        : job.workerId === undefined
        ? "waiting"
        : "running",
      attempts: job.attempts,
      maxAttempts: job.maxAttempts,
      claims: job.claims,
      crashes: job.crashes,
      snoozes: job.snoozes,
      held: fin ? false : job.held,
      priority: job.priority,
      runAt: fin ? undefined : new Date(job.runAt),
      lastError: fin ? fin.lastError : job.lastError,
      workerId: fin ? undefined : job.workerId,
      createdAt: new Date(job.createdAt),
      finalizedAt: fin ? new Date(fin.finalizedAt) : undefined,
      scheduledFor: job.scheduledFor === undefined ? undefined : new Date(job.scheduledFor),
      result: fin?.result,
      cancelRequested: fin ? undefined : job.cancelRequested === true
    })

    const claimedOf = (job: Job): JobStore.ClaimedJob => ({
      id: String(job.id),
      claim: job.claims,
      name: job.name,
      channel: job.channel,
      jobGroup: job.jobGroup,
      payload: json(job.payload),
      attempt: job.attempts + 1,
      maxAttempts: job.maxAttempts,
      timeoutSecs: job.timeoutSecs,
      crashes: job.crashes,
      snoozes: job.snoozes,
      timeLimitSecs: job.timeLimitSecs,
      priority: job.priority,
      runAt: new Date(job.runAt),
      sortAt: new Date(job.sortAt),
      createdAt: new Date(job.createdAt),
      scheduledFor: job.scheduledFor === undefined ? undefined : new Date(job.scheduledFor),
      traceId: job.traceId,
      spanId: job.spanId
    })

    const isLive = (workerId: string | undefined, now: number) => {
      if (workerId === undefined) return false
      const w = workers.get(workerId)
      return w !== undefined && w.expiresAt > now
    }

    /** The job's claim by `workerId` under `claim` is current. */
    const holds = (job: Job | undefined, workerId: string, claim: number): job is Job =>
      job !== undefined && job.workerId === workerId && job.claims === claim

    const notices = yield* PubSub.unbounded<JobStore.Notice>()

    const finalize = (
      job: Job,
      succeeded: boolean,
      lastError: unknown,
      now: number,
      extra?: { readonly cancelled?: boolean; readonly result?: unknown }
    ) => {
      jobs.delete(job.id)
      if (options.keepFinalized) finalized.set(job.id, { job, succeeded, finalizedAt: now, lastError, ...extra })
      PubSub.publishUnsafe(notices, { _tag: "Finalized", id: String(job.id) })
    }

    /** Finalizes a job as cancelled (its group slot, if it held one, is the caller's to free). */
    const finalizeCancelled = (job: Job, now: number) => finalize(job, false, cancelledError, now, { cancelled: true })

    /** Back to waiting (the caller sets run time, attempts, errors); returns whether it held a group slot. */
    const giveBack = (job: Job): boolean => {
      const slot = job.groupSlot
      job.workerId = undefined
      job.claimedAt = undefined
      job.lockedUntil = undefined
      job.groupSlot = false
      job.started = false
      return slot
    }

    /** The concurrency and rate limit a promotion applies: explicit, else the defaults a claim recorded. */
    const concurrencyOf = (g: Group | undefined) => g?.concurrency ?? g?.defaultConcurrency ?? 1
    const rateOf = (g: Group | undefined) => g?.rateLimit ?? g?.defaultRateLimit

    /** A job due, unheld and waiting: a claim could take it now. */
    const ready = (job: Job, now: number) => job.workerId === undefined && !job.held && job.sortAt <= now

    /** Per group of `names`: its due unheld waiting jobs (a count) and its held jobs per channel (one scan). */
    const survey = (names: ReadonlySet<string>, now: number) => {
      const out = new Map<string, { due: number; held: Map<string, Array<Job>> }>()
      for (const name of names) out.set(name, { due: 0, held: new Map() })
      for (const job of jobs.values()) {
        const s = job.jobGroup === undefined ? undefined : out.get(job.jobGroup)
        if (s === undefined) continue
        if (job.held) {
          const list = s.held.get(job.channel)
          if (list === undefined) s.held.set(job.channel, [job])
          else list.push(job)
        } else if (ready(job, now)) s.due++
      }
      return out
    }

    /**
     * Promotes the groups `names` (giving each its row, as PostgreSQL's `free_slots_v3` does): a block whose
     * window ended is cleared, a group still blocked is skipped, a group with room whose rate budget is spent
     * is blocked until its window ends, and per channel the k held jobs with the
     * earliest run time become claimable, behind the jobs already waiting (`sortAt` = now), where
     * k = min(concurrency - running - due unheld waiting, budget). Returns the groups that had jobs promoted.
     */
    const promote = (names: ReadonlySet<string>, now: number): Array<string> => {
      for (const name of names) {
        const g = groupRow(name)
        if (g.blockedUntil !== undefined && g.blockedUntil <= now) g.blockedUntil = undefined
      }
      const promoted: Array<string> = []
      for (const [name, s] of survey(names, now)) {
        const g = groups.get(name)!
        if (s.held.size === 0 || g.blockedUntil !== undefined) continue
        const slots = concurrencyOf(g) - g.running - s.due
        const budget = budgetOf(g.window, rateOf(g), now)
        // room, but the rate budget is spent: blocked until the window ends (promoteGroups promotes it then)
        if (slots > 0 && budget <= 0) g.blockedUntil = windowEnd(g.window, rateOf(g))
        const k = Math.min(slots, budget)
        if (k <= 0) continue
        for (const list of s.held.values()) {
          for (const job of list.sort(byRunAt).slice(0, k)) {
            job.held = false
            job.sortAt = Math.max(job.runAt, now)
          }
        }
        promoted.push(name)
      }
      return promoted
    }

    /** free_slots: frees slots (one per entry of `freed`), then promotes those groups and `unhold`. */
    const freeSlots = (freed: ReadonlyArray<string>, now: number, unhold: ReadonlyArray<string> = []) => {
      for (const name of freed) {
        const group = groups.get(name)
        if (group !== undefined) group.running = Math.max(group.running - 1, 0)
      }
      promote(new Set([...freed, ...unhold]), now)
    }

    /** A group's row, created on first use with no explicit setting and nothing recorded. */
    const groupRow = (name: string): Group => {
      let g = groups.get(name)
      if (g === undefined) {
        g = {
          running: 0,
          concurrency: undefined,
          rateLimit: undefined,
          defaultConcurrency: undefined,
          defaultRateLimit: undefined,
          window: { start: undefined, used: 0 },
          blockedUntil: undefined
        }
        groups.set(name, g)
      }
      return g
    }

    const groupState = (name: string): JobStore.GroupState => {
      const g = groups.get(name)
      return { jobGroup: name, concurrency: g?.concurrency, rateLimit: g?.rateLimit, running: g?.running ?? 0 }
    }

    const channelState = (name: string): JobStore.ChannelState => {
      const c = channels.get(name)
      return { channel: name, paused: c?.paused ?? false, rateLimit: c?.rateLimit }
    }

    /**
     * Gives back every job `workerId` holds except under the claims in `keep` (job id to claim token);
     * returns how many went back.
     */
    const release = (workerId: string, keep: ReadonlyMap<string, number>, now: number) => {
      const freed: Array<string> = []
      let released = 0
      for (const job of jobs.values()) {
        if (job.workerId !== workerId || keep.get(String(job.id)) === job.claims) continue
        if (giveBack(job)) freed.push(job.jobGroup!)
        released++
      }
      freeSlots(freed, now)
      if (released > 0) wakeAll()
      return released
    }

    const newJob = (
      definition: Definition,
      j: JobStore.NewJob,
      now: number,
      held: boolean
    ): Job => {
      const runAt = now + j.delaySecs * 1000
      return {
        id: nextId++,
        name: definition.record.name,
        channel: definition.record.channel,
        jobGroup: j.jobGroup,
        payload: JSON.parse(j.payloadJson),
        priority: j.priority ?? 0, // (jobs built by hand without one)
        runAt,
        sortAt: runAt,
        attempts: 0,
        maxAttempts: definition.record.numAttempts,
        timeoutSecs: definition.record.timeoutSecs,
        timeLimitSecs: j.timeLimitSecs,
        snoozes: 0,
        workerId: undefined,
        claims: 0,
        started: false,
        crashes: 0,
        held,
        groupSlot: false,
        claimedAt: undefined,
        lockedUntil: undefined,
        lastError: undefined,
        scheduledFor: undefined,
        traceId: j.traceId,
        spanId: j.spanId,
        createdAt: now
      }
    }

    /**
     * Inserts jobs of a deployed definition now (one synchronous step): the in-process fast path, the held
     * flags of grouped jobs, then the promotion PostgreSQL does after its commit. Returns the ids and what is
     * left to do after the "commit": the caller's `onCommit`, then the local delivery.
     */
    const insertNow = (
      definition: Definition,
      newJobs: ReadonlyArray<JobStore.NewJob>,
      now: number,
      local: JobStore.LocalClaim | undefined,
      onCommit: (ids: ReadonlyArray<string>, channel: string) => Effect.Effect<void>
    ): { readonly ids: ReadonlyArray<string>; readonly after: Effect.Effect<void> } => {
      // the in-process fast path, as with PostgreSQL (no transactions here); never for a channel that is
      // paused or rate limited: the claim is where those are enforced
      const channel = channels.get(definition.record.channel)
      const single = newJobs.length === 1 && newJobs[0]!.delaySecs === 0 && newJobs[0]!.jobGroup === undefined &&
        channel?.paused !== true && channel?.rateLimit === undefined
      const reservation = single && local !== undefined ? local.reserve(definition.record.name) : undefined
      const claimHere = reservation !== undefined && reservation.channels.includes(definition.record.channel) &&
        isLive(reservation.workerId, now)
      if (reservation !== undefined && !claimHere) reservation.cancel(false)
      // a grouped job is held when activeDue(G) + rank > concurrency: activeDue = slots taken + due unheld
      // waiting jobs before this call, rank = its place among this call's jobs of G by (run time, order)
      const rank = new Map<number, number>()
      const byGroup = new Map<string, Array<number>>()
      newJobs.forEach((j, i) => {
        if (j.jobGroup === undefined) return
        const list = byGroup.get(j.jobGroup)
        if (list === undefined) byGroup.set(j.jobGroup, [i])
        else list.push(i)
      })
      for (const list of byGroup.values()) {
        list.sort((a, b) => newJobs[a]!.delaySecs - newJobs[b]!.delaySecs || a - b)
        list.forEach((i, r) => rank.set(i, r + 1))
      }
      const before = survey(new Set(byGroup.keys()), now)
      const heldGroups = new Set<string>()
      const ids = newJobs.map((j, i) => {
        let held = false
        if (j.jobGroup !== undefined) {
          const g = groups.get(j.jobGroup)
          const activeDue = (g?.running ?? 0) + before.get(j.jobGroup)!.due
          held = activeDue + rank.get(i)! > (g?.concurrency ?? definition.record.groupConcurrency)
          if (held) heldGroups.add(j.jobGroup)
        }
        const job = newJob(definition, j, now, held)
        jobs.set(job.id, job)
        return String(job.id)
      })
      if (claimHere) {
        const job = jobs.get(Number(ids[0]))!
        job.workerId = reservation!.workerId
        job.claims = 1
        job.claimedAt = now
        job.lockedUntil = now + job.timeoutSecs * 1000
        return {
          ids,
          after: Effect.andThen(onCommit(ids, definition.record.channel), Effect.sync(() => reservation!.deliver(claimedOf(job))))
        }
      }
      // what PostgreSQL does after the commit, to close the race with a settlement that committed meanwhile
      // (here nothing ran in between, but the group's recorded concurrency may differ from this
      // definition's); done before `onCommit` yields, so that the enqueue stays one step
      const promoted = heldGroups.size > 0 && promote(heldGroups, now).length > 0
      wake({ _tag: "Channel", channel: definition.record.channel })
      if (promoted) wakeAll()
      return { ids, after: onCommit(ids, definition.record.channel) }
    }

    /** The state of job `id` for uniqueness ("gone": in neither map; a cancelled job holds no key). */
    const uniqueStateOf = (id: number): JobStore.UniqueState | "cancelled" | "gone" => {
      const job = jobs.get(id)
      if (job !== undefined) return job.workerId === undefined ? "waiting" : "running"
      const f = finalized.get(id)
      return f === undefined ? "gone" : f.succeeded ? "succeeded" : f.cancelled === true ? "cancelled" : "failed"
    }

    const notDeployed = (definitionName: string) =>
      new JobDefinitionNotDeployed({
        definitionName,
        message: `Job definition ${JSON.stringify(definitionName)} was never deployed: deploy it before enqueueing`
      })

    const store: MemoryStore = {
      deploy: (records, firstDue) =>
        Effect.map(Clock.currentTimeMillis, (now) =>
          records.map((given) => {
            const record = normalise(given)
            const existing = definitions.get(record.name)
            const due = record.repeat === undefined ? undefined : firstDue(record.repeat, new Date(now))
            if (existing === undefined) {
              definitions.set(record.name, { record, nextRunAt: due?.fresh.getTime() })
              return { name: record.name, changed: true }
            }
            if (JSON.stringify(existing.record) === JSON.stringify(record)) return { name: record.name, changed: false }
            const sameRepeat = JSON.stringify(existing.record.repeat) === JSON.stringify(record.repeat)
            const nextRunAt = sameRepeat
              ? existing.nextRunAt
              : due === undefined
              ? undefined
              : Math.min(existing.nextRunAt ?? due.changed.getTime(), due.changed.getTime())
            definitions.set(record.name, { record, nextRunAt })
            return { name: record.name, changed: true }
          })),

      undeploy: (definitionName, waiting) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const live = Array.from(jobs.values()).filter((j) => j.name === definitionName)
          const waitingJobs = live.filter((j) => j.workerId === undefined)
          const running = live.length - waitingJobs.length
          if (waiting === "fail" && live.length > 0) {
            return yield* new JobDefinitionInUse({
              definitionName,
              waiting: waitingJobs.length,
              running,
              message: `Job definition ${JSON.stringify(definitionName)} still has ${waitingJobs.length} waiting and ${running} ` +
                `running job(s): nothing was undeployed (undeploy with waiting: "delete" or "keep", or let them drain first)`
            })
          }
          const undeployed = definitions.delete(definitionName)
          if (waiting === "delete" && waitingJobs.length > 0) {
            for (const job of waitingJobs) jobs.delete(job.id)
            const touched = Array.from(new Set(waitingJobs.flatMap((j) => j.jobGroup === undefined ? [] : [j.jobGroup])))
            freeSlots([], now, touched)
            wakeAll()
          }
          return {
            undeployed,
            deleted: waiting === "delete" ? waitingJobs.length : 0,
            kept: waiting === "keep" ? waitingJobs.length : 0,
            running
          }
        }),

      enqueue: (definitionName, newJobs, onCommit, local) =>
        Effect.gen(function*() {
          if (newJobs.length === 0) return []
          const definition = definitions.get(definitionName)
          if (definition === undefined) return yield* notDeployed(definitionName)
          const now = yield* Clock.currentTimeMillis
          const { after, ids } = insertNow(definition, newJobs, now, local, onCommit)
          yield* after
          return ids
        }),

      enqueueUnique: (definitionName, rule, newJobs, keys, onCommit) =>
        Effect.gen(function*() {
          if (newJobs.length === 0) return []
          const now = yield* Clock.currentTimeMillis
          const definition = definitions.get(definitionName)
          if (definition === undefined) return yield* notDeployed(definitionName)
          // as PostgreSQL: jobs of the call with one key folded in order, then each key resolved against its
          // taker (held when its job is in one of the states and, with a period, younger than it)
          const candidates = Uniqueness.fold(rule, newJobs, keys)
          const finalStates = rule.states.includes("succeeded") || rule.states.includes("failed")
          const settled = new Map<string, JobStore.UniqueOutcome>()
          const insertKeys: Array<string> = []
          let changedChannel: string | undefined
          for (const [key, c] of candidates) {
            const taker = uniques.get(`${definitionName}\0${key}`)
            if (taker !== undefined) {
              const state = uniqueStateOf(taker.jobId)
              const held = (rule.periodSecs === undefined || taker.createdAt + rule.periodSecs * 1000 > now) &&
                (state === "gone"
                  ? rule.periodSecs !== undefined && finalStates
                  : state !== "cancelled" && rule.states.includes(state))
              if (held) {
                const job = jobs.get(taker.jobId)
                if (rule.onConflict === "keep" || state !== "waiting" || job === undefined) {
                  settled.set(key, { id: String(taker.jobId), outcome: "kept" })
                  continue
                }
                const runAt = now + c.job.delaySecs * 1000
                job.runAt = runAt
                job.sortAt = runAt
                if (rule.onConflict === "replace") {
                  Object.assign(job, {
                    payload: JSON.parse(c.job.payloadJson),
                    priority: c.job.priority,
                    timeLimitSecs: c.job.timeLimitSecs
                  })
                }
                changedChannel = job.channel
                settled.set(key, { id: String(job.id), outcome: rule.onConflict === "replace" ? "replaced" : "debounced" })
                continue
              }
            }
            insertKeys.push(key)
          }
          let after: Effect.Effect<void> = Effect.void
          if (insertKeys.length > 0) {
            const indices = insertKeys.map((key) => candidates.get(key)!.indices[0]!)
            const inserted = insertNow(
              definition,
              insertKeys.map((key) => candidates.get(key)!.job),
              now,
              undefined,
              (ids, channel) => onCommit(ids, channel, indices)
            )
            after = inserted.after
            insertKeys.forEach((key, i) => {
              const id = inserted.ids[i]!
              uniques.set(`${definitionName}\0${key}`, {
                jobId: Number(id),
                createdAt: now,
                holdUntil: rule.periodSecs === undefined ? undefined : now + rule.periodSecs * 1000
              })
              settled.set(key, { id, outcome: "inserted" })
            })
          }
          if (changedChannel !== undefined) wake({ _tag: "Channel", channel: changedChannel })
          const outcomes = Uniqueness.outcomes(rule, candidates, settled, newJobs.length)
          yield* after
          return outcomes
        }),

      wakeups: Effect.map(PubSub.subscribe(hub), Stream.fromSubscription),

      session: Effect.sync(() => {
        if (session === undefined) {
          session = { key: nextSessionKey++, lost: Deferred.makeUnsafe<void>() }
          liveSessions.add(session.key)
        }
        return { key: session.key, lost: Deferred.await(session.lost) }
      }),

      killSession: Effect.sync(() => {
        if (session === undefined) return
        liveSessions.delete(session.key)
        Deferred.doneUnsafe(session.lost, Exit.void)
        session = undefined
      }),

      registerWorker: (w) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          workers.set(w.id, {
            expiresAt: now + w.leaseSecs * 1000,
            sessionKey: w.sessionKey,
            suspectedAt: undefined,
            registration: w,
            startedAt: now,
            heartbeatAt: now
          })
        }),

      heartbeat: (workerId, leaseSecs) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const w = workers.get(workerId)
          if (w === undefined || w.expiresAt <= now) return false
          w.expiresAt = now + leaseSecs * 1000
          w.heartbeatAt = now
          return true
        }),

      deregisterWorker: (workerId) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          release(workerId, new Map(), now)
          workers.delete(workerId)
        }),

      claim: (request) =>
        Effect.map(Clock.currentTimeMillis, (now): JobStore.ClaimResult => {
          if (!isLive(request.workerId, now)) return { jobs: [], held: 0, refillAt: undefined }
          // 2. the channels to claim from (not paused), each with its rate budget
          const open = new Map<string, OpenChannel>()
          for (const name of request.channels) {
            const state = channels.get(name)
            if (state?.paused === true || open.has(name)) continue
            const budget = state === undefined ? Number.POSITIVE_INFINITY : budgetOf(state.window, state.rateLimit, now)
            open.set(name, { state, budget, pool: [] })
          }
          // 3. candidates: per channel the due ready jobs with the smallest keys, at most min(limit, budget),
          // merged by key, at most `limit`; key = sortAt - priority x aging, then id
          const agingMs = request.priorityAgingSecs * 1000
          const key = (j: Job) => j.priority === 0 ? j.sortAt : j.sortAt - j.priority * agingMs
          const byKey = (a: Job, b: Job) => key(a) - key(b) || a.id - b.id
          const excluded = new Set(request.excludeNames)
          for (const job of jobs.values()) {
            if (ready(job, now) && !excluded.has(job.name)) open.get(job.channel)?.pool.push(job)
          }
          const candidates = Array.from(open.values())
            .flatMap((c) => c.pool.sort(byKey).slice(0, Math.min(request.limit, c.budget)))
            .sort(byKey)
            .slice(0, request.limit)
          // 4. groups: per group, the first `free` candidates are claimed, the rest held
          const byGroup = new Map<string, Array<Job>>()
          for (const job of candidates) {
            if (job.jobGroup === undefined) continue
            const list = byGroup.get(job.jobGroup)
            if (list === undefined) byGroup.set(job.jobGroup, [job])
            else list.push(job)
          }
          let held = 0
          let refillAt: number | undefined
          const refill = (at: number | undefined) => {
            if (at !== undefined && (refillAt === undefined || at < refillAt)) refillAt = at
          }
          for (const [name, list] of byGroup) {
            // the candidates' definitions' defaults: the smallest concurrency, the strictest rate limit
            const records = list.map((j) => definitions.get(j.name)?.record)
            const defaultConcurrency = Math.min(...records.map((r) => r?.groupConcurrency ?? 1))
            const defaultRateLimit = strictest(records.map((r) => r?.groupRateLimit))
            const found = groups.get(name)
            const rate = found?.rateLimit ?? defaultRateLimit
            const slots = Math.max(0, (found?.concurrency ?? defaultConcurrency) - (found?.running ?? 0))
            const budget = budgetOf(found?.window ?? noWindow, rate, now)
            const free = Math.min(slots, budget)
            const taken = Math.min(free, list.length)
            // the rate budget, not the slots, held candidates back: blocked until the window ends
            const blocked = list.length > free && budget < slots
            for (const job of list.slice(free)) {
              job.held = true
              held++
            }
            // as PostgreSQL, the row is written (defaults recorded, window spent, block set or cleared) only
            // when the claim took a slot or was blocked
            if (taken === 0 && !blocked) continue
            const g = groupRow(name)
            g.defaultConcurrency = defaultConcurrency
            g.defaultRateLimit = defaultRateLimit
            g.running += taken
            for (const job of list.slice(0, taken)) job.groupSlot = true
            spend(g.window, rate, taken, now)
            g.blockedUntil = blocked ? windowEnd(g.window, rate) : undefined
            refill(g.blockedUntil)
          }
          // 5. the claimed jobs, in claim order
          const claimed: Array<JobStore.ClaimedJob> = []
          const perChannel = new Map<string, number>()
          for (const job of candidates) {
            if (job.held) continue
            job.workerId = request.workerId
            job.claims++
            job.started = false
            job.claimedAt = now
            job.lockedUntil = now + job.timeoutSecs * 1000
            perChannel.set(job.channel, (perChannel.get(job.channel) ?? 0) + 1)
            claimed.push(claimedOf(job))
          }
          // 6. channel budgets spent by what was claimed; a channel left with none refills at its window's end
          for (const [name, c] of open) {
            if (c.state?.rateLimit === undefined) continue
            spend(c.state.window, c.state.rateLimit, perChannel.get(name) ?? 0, now)
            if (budgetOf(c.state.window, c.state.rateLimit, now) === 0) {
              refill(windowEnd(c.state.window, c.state.rateLimit))
            }
          }
          // a channel of the claim is rate limited (the memory store can always tell: `reportRefill` is moot)
          const rateLimited = request.channels.some((name) => channels.get(name)?.rateLimit !== undefined)
          return { jobs: claimed, held, refillAt: refillAt === undefined ? undefined : new Date(refillAt), rateLimited }
        }),

      releaseUnowned: (workerId, owned) => Effect.map(Clock.currentTimeMillis, (now) => release(workerId, new Map(owned.map((o) => [o.id, o.claim])), now)),

      settle: (workerId, settlements) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const freed: Array<string> = []
          let requeued = false
          for (const s of settlements) {
            const job = jobs.get(Number(s.id))
            if (!holds(job, workerId, s.claim)) continue
            switch (s.outcome) {
              case "Started":
                if (!job.started) {
                  job.started = true
                  job.attempts++
                }
                break
              case "Succeeded":
              case "Expired":
                job.attempts += job.started ? 0 : 1
                if (job.groupSlot) freed.push(job.jobGroup!)
                finalize(job, s.outcome === "Succeeded", s.outcome === "Expired" ? json(s.error) : job.lastError, now, {
                  result: s.outcome === "Succeeded" ? json(s.result) : undefined
                })
                break
              case "Cancelled":
                job.attempts += job.started || s.ran === false ? 0 : 1
                if (job.groupSlot) freed.push(job.jobGroup!)
                finalizeCancelled(job, now)
                break
              case "Retry":
              case "Snooze":
              case "Released":
                if (job.cancelRequested === true) {
                  // a job whose cancellation was requested never goes back to the queue
                  job.attempts += job.started || s.outcome !== "Retry" ? 0 : 1
                  if (job.groupSlot) freed.push(job.jobGroup!)
                  finalizeCancelled(job, now)
                  continue
                }
            }
            switch (s.outcome) {
              case "Retry": {
                job.attempts += job.started ? 0 : 1
                if (giveBack(job)) freed.push(job.jobGroup!)
                job.runAt = now + (s.delaySecs ?? job.timeoutSecs) * 1000
                job.sortAt = job.runAt
                job.lastError = json(s.error)
                requeued = true
                break
              }
              case "Snooze": {
                // no attempt spent: a recorded start is given back, as for Released
                job.attempts -= job.started ? 1 : 0
                if (giveBack(job)) freed.push(job.jobGroup!)
                job.snoozes++
                job.runAt = now + (s.delaySecs ?? 0) * 1000
                job.sortAt = job.runAt
                requeued = true
                break
              }
              case "Released": {
                job.attempts -= job.started ? 1 : 0
                if (giveBack(job)) freed.push(job.jobGroup!)
                requeued = true
                break
              }
            }
          }
          freeSlots(freed, now)
          if (freed.length > 0 || requeued) wakeAll()
        }),

      scheduleDue: (known, advance, limit) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const scheduled: Array<JobStore.ScheduledJob> = []
          const orphans: Array<JobStore.OrphanSchedule> = []
          const allDue = Array.from(definitions.values())
            .filter((d) => d.nextRunAt !== undefined && d.nextRunAt <= now)
            .sort((a, b) => a.nextRunAt! - b.nextRunAt!)
          for (const d of allDue) {
            if (!known.has(d.record.name)) orphans.push({ definitionName: d.record.name, dueAt: new Date(d.nextRunAt!) })
          }
          const due = allDue.filter((d) => known.has(d.record.name) && d.record.repeat !== undefined).slice(0, limit)
          for (const d of due) {
            const dueAt = d.nextRunAt!
            const job: Job = {
              ...newJob(d, { ...scheduledJob, priority: d.record.priority }, now, false),
              scheduledFor: dueAt
            }
            jobs.set(job.id, job)
            d.nextRunAt = advance(d.record.repeat!, new Date(dueAt), new Date(now)).getTime()
            scheduled.push({ definitionName: d.record.name, jobId: String(job.id), scheduledFor: new Date(dueAt) })
            wake({ _tag: "Channel", channel: d.record.channel })
          }
          const soonest = Array.from(definitions.values())
            .filter((d) => known.has(d.record.name) && d.nextRunAt !== undefined)
            .reduce<number | undefined>((min, d) => (min === undefined || d.nextRunAt! < min ? d.nextRunAt : min), undefined)
          return { scheduled, orphans: orphans.slice(0, 100), nextDueInSecs: soonest === undefined ? undefined : (soonest - now) / 1000 }
        }),

      deleteFinalized: (olderThanSecs, limit) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const cutoff = now - olderThanSecs * 1000
          const deleted: Array<{ id: string; name: string }> = []
          const old = Array.from(finalized.values()).filter((f) => f.finalizedAt < cutoff)
            .sort((a, b) => a.finalizedAt - b.finalizedAt)
          for (const f of old.slice(0, limit)) {
            finalized.delete(f.job.id)
            deleted.push({ id: String(f.job.id), name: f.job.name })
          }
          return deleted
        }),

      deleteStaleUniqueKeys: (limit) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          let swept = 0
          for (const [k, u] of uniques) {
            if (swept >= limit) break
            if ((u.holdUntil === undefined || u.holdUntil <= now) && !jobs.has(u.jobId) && !finalized.has(u.jobId)) {
              uniques.delete(k)
              swept++
            }
          }
          return swept
        }),

      deleteUnreferencedGroups: (limit) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const referenced = new Set(Array.from(jobs.values(), (j) => j.jobGroup))
          const deleted: Array<string> = []
          for (const [name, group] of groups) {
            if (deleted.length >= limit) break
            // explicit settings outlive the group's jobs; an open rate window must not be forgotten
            const kept = group.concurrency !== undefined || group.rateLimit !== undefined ||
              windowOpen(group.window, rateOf(group), now)
            if (group.running === 0 && !referenced.has(name) && !kept) {
              groups.delete(name)
              deleted.push(name)
            }
          }
          return deleted
        }),

      rescue: (o) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const none = { jobs: [], groups: [] }
          if (now - lastRescueAt < o.minIntervalSecs * 1000) return none
          lastRescueAt = now
          for (const w of workers.values()) {
            if (w.sessionKey === undefined) continue
            if (w.suspectedAt === undefined && !liveSessions.has(w.sessionKey)) w.suspectedAt = now
            else if (w.suspectedAt !== undefined && liveSessions.has(w.sessionKey)) w.suspectedAt = undefined
          }
          const dead = new Set<string>()
          for (const [id, w] of workers) {
            if (w.expiresAt <= now || (w.suspectedAt !== undefined && w.suspectedAt <= now - o.sessionGraceSecs * 1000)) {
              dead.add(id)
            }
          }
          for (const job of jobs.values()) {
            if (job.workerId !== undefined && !workers.has(job.workerId)) dead.add(job.workerId)
          }
          const rescued: Array<JobStore.RescuedJob> = []
          const released: Array<JobStore.UnlockedGroup> = []
          const freed: Array<string> = []
          for (const job of Array.from(jobs.values())) {
            if (rescued.length >= o.limit) break
            if (job.workerId === undefined || !dead.has(job.workerId)) continue
            const workerId = job.workerId
            // a recorded start with no attempt left, or the maxAttempts + 4th crash of a job never seen to start
            const spent = job.started ? job.attempts >= job.maxAttempts : job.crashes + 1 >= job.maxAttempts + 4
            if (job.groupSlot) {
              freed.push(job.jobGroup!)
              released.push({ jobGroup: job.jobGroup!, jobId: String(job.id), reason: "worker-dead" })
            }
            if (job.cancelRequested === true) {
              // cancelled while its worker died: finalized as cancelled, never retried
              job.crashes++
              finalizeCancelled(job, now)
            } else if (spent) {
              job.crashes++
              finalize(job, false, job.started ? died : {
                message: `the job crashed its workers ${job.crashes} times before its start could be recorded`,
                crashes: job.crashes
              }, now)
            } else {
              const started = job.started
              const lockedUntil = job.lockedUntil ?? now
              giveBack(job)
              job.crashes++
              if (started) {
                job.runAt = Math.max(now, lockedUntil)
                job.sortAt = job.runAt
                job.lastError = died
              }
            }
            rescued.push({
              jobId: String(job.id),
              definitionName: job.name,
              workerId,
              finalized: spent || !jobs.has(job.id)
            })
          }
          const pastCeiling = Array.from(jobs.values())
            .filter((j) => j.groupSlot && j.claimedAt !== undefined && j.claimedAt < now - o.jobGroupUnlockSecs * 1000)
            .sort((a, b) => a.claimedAt! - b.claimedAt!)
            .slice(0, o.limit)
          for (const job of pastCeiling) {
            job.groupSlot = false
            freed.push(job.jobGroup!)
            released.push({ jobGroup: job.jobGroup!, jobId: String(job.id), reason: "ceiling" })
          }
          freeSlots(freed, now)
          const holding = new Set(Array.from(jobs.values(), (j) => j.workerId))
          for (const id of dead) if (!holding.has(id)) workers.delete(id)
          if (rescued.length > 0 || released.length > 0) wakeAll()
          return { jobs: rescued, groups: released }
        }),

      getJob: (id) =>
        Effect.sync(() => {
          const job = jobs.get(Number(id))
          if (job) return Option.some(info(job))
          const fin = finalized.get(Number(id))
          return fin ? Option.some(info(fin.job, fin)) : Option.none()
        }),

      setChannel: (name, update) =>
        Effect.sync(() => {
          let c = channels.get(name)
          if (c === undefined) {
            c = { paused: false, rateLimit: undefined, window: { start: undefined, used: 0 } }
            channels.set(name, c)
          }
          if (update.paused !== undefined) c.paused = update.paused
          if (update.rateLimit !== undefined) {
            // a changed limit keeps the current window and its count (as on PostgreSQL): claims already made
            // count against the new limit, so changing a limit never admits a burst
            c.rateLimit = update.rateLimit ?? undefined
          }
          wakeAll()
          return channelState(name)
        }),

      getChannel: (name) => Effect.sync(() => channelState(name)),

      setGroupLimits: (name, update) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const g = groupRow(name)
          if (update.concurrency !== undefined) g.concurrency = update.concurrency ?? undefined
          if (update.rateLimit !== undefined) {
            // a changed limit keeps the window's count (claims made count against the new limit until the
            // window ends) and lifts the block: the promotion below applies the new budget
            g.rateLimit = update.rateLimit ?? undefined
            g.blockedUntil = undefined
          }
          promote(new Set([name]), now)
          wakeAll()
          return groupState(name)
        }),

      getGroup: (name) => Effect.sync(() => groupState(name)),

      promoteGroups: (limit) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          // groups whose block ended (oldest first), and (the safety net) groups with held jobs by name after
          // the cursor, wrapping around: at most `limit` of each, as PostgreSQL's promoteGroupsSql
          const blocked = Array.from(groups)
            .filter(([, g]) => g.blockedUntil !== undefined && g.blockedUntil <= now)
            .sort(([a, x], [b, y]) => x.blockedUntil! - y.blockedUntil! || (a < b ? -1 : a > b ? 1 : 0))
            .slice(0, limit)
            .map(([name]) => name)
          const withHeld = new Set<string>()
          for (const job of jobs.values()) {
            if (job.held && job.jobGroup !== undefined && job.jobGroup > promoteCursor) withHeld.add(job.jobGroup)
          }
          const scanned = Array.from(withHeld).sort().slice(0, limit)
          promoteCursor = scanned.length < limit ? "" : scanned[scanned.length - 1]!
          const promoted = promote(new Set([...blocked, ...scanned]), now).length
          if (promoted > 0) wakeAll()
          return promoted
        }),

      recordOutcomes: (processId, counts, retainSecs) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          for (const d of counts) {
            const key = `${processId}\u0000${d.definition}\u0000${d.minute.getTime()}`
            const r = counters.get(key)
            counters.set(key, r === undefined ? d : {
              ...r,
              succeeded: r.succeeded + d.succeeded,
              failed: r.failed + d.failed,
              errored: r.errored + d.errored,
              runMs: r.runMs + d.runMs,
              attempts: r.attempts + d.attempts
            })
          }
          for (const [key, r] of counters) if (r.minute.getTime() < now - retainSecs * 1000) counters.delete(key)
        }),

      notices: Effect.map(PubSub.subscribe(notices), Stream.fromSubscription),

      markAwaited: () => Effect.void, // every finalization is noticed here

      cancel: (filter) =>
        Effect.map(Clock.currentTimeMillis, (now): JobStore.CancelResult => {
          const ids = filter.ids === undefined ? undefined : new Set(filter.ids)
          const cancelled: Array<{ id: string; name: string }> = []
          const cancelling: Array<{ id: string; name: string; workerId: string }> = []
          const touched = new Set<string>()
          for (const job of Array.from(jobs.values()).sort((a, b) => a.id - b.id)) {
            if (ids !== undefined && !ids.has(String(job.id))) continue
            if (filter.definition !== undefined && job.name !== filter.definition) continue
            if (filter.jobGroup !== undefined && job.jobGroup !== filter.jobGroup) continue
            if (job.workerId === undefined) {
              if (job.jobGroup !== undefined && !job.held) touched.add(job.jobGroup)
              finalizeCancelled(job, now)
              cancelled.push({ id: String(job.id), name: job.name })
            } else {
              job.cancelRequested = true
              cancelling.push({ id: String(job.id), name: job.name, workerId: job.workerId })
              PubSub.publishUnsafe(notices, { _tag: "CancelRequested", id: String(job.id) })
            }
          }
          // a group's cancelled head may let its held jobs run
          if (touched.size > 0 && promote(touched, now).length > 0) wakeAll()
          return { cancelled, cancelling }
        }),

      cancelRequests: (workerId) =>
        Effect.sync(() =>
          Array.from(jobs.values()).filter((j) => j.workerId === workerId && j.cancelRequested === true)
            .map((j) => String(j.id))
        ),

      [AdminState]: {
        keepFinalized: options.keepFinalized,
        definitions,
        jobs,
        finalized,
        channels,
        workers,
        counters,
        promote: (names, now) => void promote(names, now),
        wakeAll
      },

      snapshot: Effect.sync(() => {
        const live = Array.from(jobs.values()).sort((a, b) => a.id - b.id)
        return {
          waiting: live.filter((j) => j.workerId === undefined).map((j) => info(j)),
          running: live.filter((j) => j.workerId !== undefined).map((j) => info(j)),
          finalized: Array.from(finalized.values()).sort((a, b) => a.job.id - b.job.id).map((f) => info(f.job, f))
        }
      }),

      groups: Effect.sync(() =>
        new Map(Array.from(groups, ([name, g]): [string, MemoryGroup] => [name, {
          running: g.running,
          concurrency: concurrencyOf(g),
          rateLimit: rateOf(g),
          explicit: { concurrency: g.concurrency, rateLimit: g.rateLimit },
          windowStart: g.window.start === undefined ? undefined : new Date(g.window.start),
          windowUsed: g.window.used,
          blockedUntil: g.blockedUntil === undefined ? undefined : new Date(g.blockedUntil)
        }]))
      )
    }
    return store
  })
