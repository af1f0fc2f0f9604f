/**
 * The storage contract: every read and write cuckmq makes goes through this service, so the Worker,
 * Orchestrator and enqueue code never see SQL. Two backends implement it: PostgreSQL (the real one) and an
 * in-memory store for users' unit tests (`@cuckmq/effect/testing`). One conformance suite, with concurrent
 * cases, runs against both.
 *
 * The model every backend implements:
 * - A job is waiting (`workerId` unset) or claimed by one worker. Every claim increments the job's `claims`
 *   counter, which never decreases: `(id, claim)` is the fencing token of that claim, and every write a
 *   worker makes about the job (start mark, settlement, release) applies only while the token is current.
 * - An attempt is a handler start. `attempts` counts the starts the store has recorded. A worker records a
 *   start only after the handler started: with the job's settlement, or a `Started` mark for a job still
 *   running (sent at once for a job that has been taken back from a dead worker before, `crashes > 0`). A
 *   job whose start was never recorded is never finalized as failed, unless it has crashed its workers
 *   `maxAttempts + 4` times (a job that kills its process before its start can ever be recorded).
 * - Job groups have a concurrency (1 by default: a mutex). A claimed job of a named group holds one of the
 *   group's slots until it is settled, released, rescued, or held past the `jobGroupUnlockSecs` ceiling.
 *   A waiting job of a group that was full when a claim met it is *held*: out of the claimable set until a
 *   slot frees, when the group's oldest held jobs (per channel) become claimable again, behind the jobs
 *   already waiting (round-robin across groups). So a group's backlog costs claims nothing.
 * - Claim order is `sortAt` (the run time, or the time a held job became claimable again) moved earlier by
 *   `priority x priorityAgingSecs` (the claim's aging), then id: a job of priority p is claimed as if it had
 *   waited p aging periods longer, so a higher priority goes first among jobs waiting for less than the
 *   difference, and nothing starves. A job is claimable only once it is due (`runAt <= now`).
 * - Flow control, all enforced by the claim itself:
 *   - a group's concurrency is its explicit setting (`setGroupLimits`) if any, else its jobs' definitions'
 *     `groupConcurrency` (the smallest, when definitions with different settings share a group);
 *   - a group's rate limit (claims per period) likewise: explicit, else the definitions'; a group whose
 *     budget is spent has its candidates held, and is *blocked* until its window ends (`promoteGroups`
 *     makes its held jobs claimable again then);
 *   - a channel may be paused (no claims from it) or rate limited (at most `limit` claims per window of
 *     `periodSecs`, across every worker);
 *   - windows are fixed: a window starts at the first claim after the previous one ended and lasts
 *     `periodSecs`, so any interval of T seconds sees at most `limit x (ceil(T / periodSecs) + 1)` claims.
 * - A grouped job is held at enqueue when its group's slots taken, plus its waiting unheld due jobs, plus
 *   the job's rank among the call's jobs of the group (by run time) exceed the group's concurrency: only a
 *   group's head is claimable, so a tenant's backlog never delays another group's job by more than the
 *   heads ahead of it (fairness across groups).
 *
 * Times: the PostgreSQL backend uses the database clock at the statement (`statement_timestamp()`), so that
 * workers on machines with skewed clocks agree and a long transaction does not shorten a delay; the memory
 * backend uses Effect's `Clock` (and so `TestClock`).
 *
 * @since 0.1.0
 */
import { Context, type Effect, type Option, type Scope, type Stream } from "effect"
import type { JobDefinitionInUse, JobDefinitionNotDeployed, StorageError } from "./CuckmqError.js"

/**
 * How a definition repeats: every `secs` seconds, or on a cron schedule in a time zone.
 *
 * @since 0.1.0
 */
export type Repeat =
  | { readonly _tag: "Every"; readonly secs: number }
  | { readonly _tag: "Cron"; readonly expression: string; readonly tz: string | undefined }

/**
 * A definition's metadata as stored by `deploy`.
 *
 * @since 0.1.0
 */
export interface DefinitionRecord {
  readonly name: string
  readonly channel: string
  readonly numAttempts: number
  readonly timeoutSecs: number
  readonly repeat: Repeat | undefined
  /** The priority of the jobs the orchestrator enqueues for the repeat (enqueues give their own). */
  readonly priority: number
  /** The concurrency of the groups of this definition's jobs, unless a group has its own (default 1). */
  readonly groupConcurrency: number
  /** The rate limit of each group of this definition's jobs, unless a group has its own. */
  readonly groupRateLimit: RateLimit | undefined
}

/**
 * A rate limit: at most `limit` claims per window of `periodSecs` seconds.
 *
 * @since 0.2.0
 */
export interface RateLimit {
  readonly limit: number
  readonly periodSecs: number
}

/**
 * A channel's flow control: paused, and its rate limit.
 *
 * @since 0.2.0
 */
export interface ChannelState {
  readonly channel: string
  readonly paused: boolean
  readonly rateLimit: RateLimit | undefined
}

/**
 * A change of a channel's flow control: `undefined` fields are left as they are; `rateLimit: null` removes
 * the limit. A changed limit keeps the current window and its count: the claims already made in it count
 * against the new limit, so changing a limit never admits a burst.
 *
 * @since 0.2.0
 */
export interface ChannelUpdate {
  readonly paused?: boolean | undefined
  readonly rateLimit?: RateLimit | null | undefined
}

/**
 * A job group's explicit limits (they win over its definitions' defaults) and its state.
 *
 * @since 0.2.0
 */
export interface GroupState {
  readonly jobGroup: string
  /** The explicit concurrency, or undefined: the definitions' `groupConcurrency` applies. */
  readonly concurrency: number | undefined
  /** The explicit rate limit, or undefined: the definitions' `groupRateLimit` applies. */
  readonly rateLimit: RateLimit | undefined
  /** Slots taken now. */
  readonly running: number
}

/**
 * A change of a group's explicit limits: `undefined` fields are left as they are; `null` removes the
 * explicit setting (the definitions' defaults apply again).
 *
 * @since 0.2.0
 */
export interface GroupUpdate {
  readonly concurrency?: number | null | undefined
  readonly rateLimit?: RateLimit | null | undefined
}

/**
 * The first due time of a repeat as seen at `now` (the store's clock): for a new definition (`fresh`) and
 * for one whose repeat changed (the earlier of this and its current due time is kept, so two versions
 * deploying in turn never schedule extra runs).
 *
 * @since 0.1.0
 */
export type FirstDue = (repeat: Repeat, now: Date) => { readonly fresh: Date; readonly changed: Date }

/**
 * One job to insert. `payloadJson` is the payload as encoded by the definition's Schema, serialised to JSON
 * once, at enqueue (and already checked to be storable).
 *
 * @since 0.1.0
 */
export interface NewJob {
  readonly payloadJson: string
  readonly delaySecs: number
  /** An integer in [-1000, 1000]; higher is claimed first (see the claim order). */
  readonly priority: number
  readonly jobGroup: string | undefined
  readonly traceId: string | undefined
  readonly spanId: string | undefined
  /**
   * The limit on one attempt's run time given at enqueue, in seconds (> 0), stored with the job; undefined:
   * the definition's `timeLimit` (if any) applies.
   */
  readonly timeLimitSecs?: number | undefined
}

/**
 * A state of a job for uniqueness: `waiting` (not claimed, whether due, delayed, retrying or held), `running`
 * (claimed by a worker), `succeeded`, `failed` (finalized).
 *
 * @since 0.2.0
 */
export type UniqueState = "waiting" | "running" | "succeeded" | "failed"

/**
 * What an enqueue of a job whose key is taken does: `keep` the existing job (nothing written), `replace` its
 * payload, run time, priority and time limit with the new job's, or `debounce`: push its run time to the new
 * job's (now plus the new delay), keeping its payload. `replace` and `debounce` change only a waiting job; a
 * duplicate of a job in another state is kept.
 *
 * @since 0.2.0
 */
export type UniqueConflict = "keep" | "replace" | "debounce"

/**
 * A definition's uniqueness rule: an enqueue is a duplicate when a job of the same definition and key exists
 * in one of `states` and, with a period, was enqueued less than `periodSecs` ago (a job gone from the store,
 * finalized then deleted, counts as finalized for a period).
 *
 * @since 0.2.0
 */
export interface UniqueRule {
  readonly states: ReadonlyArray<UniqueState>
  readonly periodSecs: number | undefined
  readonly onConflict: UniqueConflict
}

/**
 * What an enqueue with a unique key did: `inserted` a new job, or met a duplicate (`id` is then the existing
 * job's) and `kept`, `replaced` or `debounced` it.
 *
 * @since 0.2.0
 */
export interface UniqueOutcome {
  readonly id: string
  readonly outcome: "inserted" | "kept" | "replaced" | "debounced"
}

/**
 * A claim a worker knows it holds (`JobStore.releaseUnowned` keeps these): the job and its claim token.
 *
 * @since 0.2.0
 */
export interface OwnedClaim {
  readonly id: string
  /** The fencing token of the claim (`ClaimedJob.claim`). */
  readonly claim: number
}

/**
 * A job as a worker claimed it.
 *
 * @since 0.1.0
 */
export interface ClaimedJob {
  readonly id: string
  /** The fencing token of this claim (the job's claim counter). */
  readonly claim: number
  readonly name: string
  readonly channel: string
  readonly jobGroup: string | undefined
  readonly payload: unknown
  /** The attempt this run would be: recorded starts + 1. */
  readonly attempt: number
  readonly maxAttempts: number
  readonly timeoutSecs: number
  /** How many times the job was taken back from a worker that died holding it. */
  readonly crashes: number
  /** How many times a handler snoozed the job (`Snooze` settlements). */
  readonly snoozes: number
  /** The attempt time limit given at enqueue, in seconds, or undefined (see `NewJob.timeLimitSecs`). */
  readonly timeLimitSecs: number | undefined
  readonly priority: number
  readonly runAt: Date
  readonly sortAt: Date
  readonly createdAt: Date
  readonly scheduledFor: Date | undefined
  readonly traceId: string | undefined
  readonly spanId: string | undefined
}

/**
 * What a worker reports about a claimed job:
 * - `Started`: the handler started (records the attempt; the job stays claimed).
 * - `Succeeded`: finalize as succeeded.
 * - `Retry`: the attempt failed and attempts remain: available again `delaySecs` (default: the job's
 *   `timeoutSecs`) from now.
 * - `Snooze`: the handler asked to run again `delaySecs` from now: back to waiting, its attempt refunded
 *   (a recorded start is given back, as for `Released`), its `snoozes` counter incremented.
 * - `Expired`: the last attempt failed: finalize as failed.
 * - `Released`: not run to an end by no fault of the job (never started, an orphan, the worker stopping or
 *   losing its lease): back to the queue in its place, a recorded start refunded.
 * - `Cancelled`: the job's cancellation was requested and the worker stopped it (its handler interrupted,
 *   or, `ran: false`, never started): finalize as cancelled. A start is recorded only when it ran.
 *
 * A job whose cancellation was requested never goes back to the queue: a `Retry`, `Snooze` or `Released`
 * of it finalizes it as cancelled instead.
 *
 * `Succeeded`, `Retry` and `Expired` record the start too if it was not recorded yet. A settlement applies
 * only while `(id, claim)` is the job's current claim by that worker; otherwise it changes nothing.
 *
 * @since 0.1.0
 */
export interface Settlement {
  readonly id: string
  readonly claim: number
  readonly outcome: "Started" | "Succeeded" | "Retry" | "Snooze" | "Expired" | "Released" | "Cancelled"
  /** The failure, as JSON, recorded on the job (`Retry`/`Expired`). */
  readonly error?: unknown
  /** `Succeeded`: the handler's value as encoded by the definition's `success` Schema (JSON), if it has one. */
  readonly result?: unknown
  /** `Cancelled`: whether the handler started (default true); a job cancelled before it started spends no attempt. */
  readonly ran?: boolean | undefined
  /**
   * `Retry` and `Snooze`: seconds from now (the store's clock) until the job is claimable again, >= 0.
   * A `Retry` without it waits the job's `timeoutSecs`; a `Snooze` without it is due at once.
   */
  readonly delaySecs?: number | undefined
  /**
   * The job belongs to a named group (as claimed). A backend may settle a batch without grouped jobs more
   * cheaply; a settlement that says false for a grouped job changes nothing.
   */
  readonly grouped?: boolean
}

/**
 * What a worker asks for when it claims.
 *
 * @since 0.1.0
 */
export interface ClaimRequest {
  readonly workerId: string
  /** The channels to take jobs from (never empty). */
  readonly channels: ReadonlyArray<string>
  /** Definition names this worker will not take (known orphans). */
  readonly excludeNames: ReadonlyArray<string>
  /** At most this many jobs. */
  readonly limit: number
  /** One priority level is worth this many seconds of waiting in the claim order (> 0). */
  readonly priorityAgingSecs: number
  /**
   * Report `refillAt` and `rateLimited` even when the claim takes nothing (default true). A backend may
   * answer a claim with `false` more cheaply, and then leaves them undefined when it took nothing; a worker
   * asks for them while its channels may be rate limited.
   */
  readonly reportRefill?: boolean | undefined
}

/**
 * What a claim returned: the jobs, in claim order, and whether it held back jobs of full groups (so that
 * the claim window was not all used: claiming again at once may find more).
 *
 * @since 0.1.0
 */
export interface ClaimResult {
  readonly jobs: ReadonlyArray<ClaimedJob>
  readonly held: number
  /**
   * The earliest end of a rate-limit window that refused this claim jobs (a channel's budget spent, or a
   * group blocked): claiming again before then finds nothing more of them. Undefined when no limit refused.
   */
  readonly refillAt: Date | undefined
  /**
   * Whether a channel of the claim is rate limited, or undefined when the claim cannot tell (it took nothing
   * and `reportRefill` was false).
   */
  readonly rateLimited?: boolean | undefined
}

/**
 * A worker's registration row: identity, the liveness session it belongs to, and a heartbeat lease.
 *
 * @since 0.1.0
 */
export interface WorkerRegistration {
  readonly id: string
  readonly name: string
  readonly hostname: string
  readonly pid: number
  readonly channels: ReadonlyArray<string>
  /** Jobs the worker runs at once (for the admin's worker list). */
  readonly concurrency?: number | undefined
  readonly leaseSecs: number
  /** The key of the liveness session (see `Session`), or undefined to rely on the lease alone. */
  readonly sessionKey: number | undefined
}

/**
 * A liveness session: held by the process for as long as its dedicated database session lives (PostgreSQL:
 * a session-level advisory lock on the LISTEN connection). When the process dies its connections close,
 * the lock is free, and a rescue declares its workers dead within `sessionGraceSecs`, long before their lease
 * expires. `lost` completes once the session is gone for good (the worker must stop its jobs then: its
 * registration is about to be declared dead); a brief reconnection that takes the same key again in time
 * does not complete it.
 *
 * @since 0.1.0
 */
export interface Session {
  readonly key: number
  readonly lost: Effect.Effect<void>
}

/**
 * A wake-up for workers: jobs may be available on `channel`, or (`Any`) on any channel: a group slot freed,
 * a repeating job was scheduled, or the listener reconnected and notifications may have been missed.
 *
 * @since 0.1.0
 */
export type Wakeup =
  | { readonly _tag: "Channel"; readonly channel: string }
  | { readonly _tag: "Any" }

/**
 * A repeating job the orchestrator enqueued.
 *
 * @since 0.1.0
 */
export interface ScheduledJob {
  readonly definitionName: string
  readonly jobId: string
  readonly scheduledFor: Date
}

/**
 * A due repeating definition that this process does not know.
 *
 * @since 0.1.0
 */
export interface OrphanSchedule {
  readonly definitionName: string
  readonly dueAt: Date
}

/**
 * A job taken back from a dead worker.
 *
 * @since 0.1.0
 */
export interface RescuedJob {
  readonly jobId: string
  readonly definitionName: string
  readonly workerId: string
  /** Finalized as failed: its start was recorded and no attempt is left. */
  readonly finalized: boolean
}

/**
 * A group slot a rescue released: its holder's worker was dead, or it was held past the ceiling.
 *
 * @since 0.1.0
 */
export interface UnlockedGroup {
  readonly jobGroup: string
  readonly jobId: string
  readonly reason: "worker-dead" | "ceiling"
}

/**
 * Options of a rescue.
 *
 * @since 0.1.0
 */
export interface RescueOptions {
  /** A group slot held longer than this (seconds since the claim) is released. */
  readonly jobGroupUnlockSecs: number
  /** A worker whose liveness session has been gone this long (seconds) is dead. */
  readonly sessionGraceSecs: number
  /** At most this many jobs (and as many group slots) per rescue. */
  readonly limit: number
  /** Skip the rescue when one ran (anywhere) less than this many seconds ago; 0 never skips. */
  readonly minIntervalSecs: number
}

/**
 * The state of one job, for inspection and tests.
 *
 * @since 0.1.0
 */
export interface JobInfo {
  readonly id: string
  readonly name: string
  readonly channel: string
  readonly jobGroup: string | undefined
  readonly payload: unknown
  readonly state: "waiting" | "running" | "succeeded" | "failed" | "cancelled"
  /** Recorded handler starts. */
  readonly attempts: number
  readonly maxAttempts: number
  /** How many times the job was claimed (its fencing token). */
  readonly claims: number
  /** How many times the job was taken back from a worker that died holding it. */
  readonly crashes: number
  /** How many times a handler snoozed the job (kept once finalized, except after a rescue finalized it). */
  readonly snoozes: number
  /** Waiting only: held behind a full group. */
  readonly held: boolean
  /** Live jobs only (a finalized job's priority is not kept): undefined once finalized. */
  readonly priority: number | undefined
  readonly runAt: Date | undefined
  readonly lastError: unknown
  readonly workerId: string | undefined
  readonly createdAt: Date
  readonly finalizedAt: Date | undefined
  /** For a repeating job: the due time it was enqueued for. */
  readonly scheduledFor: Date | undefined
  /** A succeeded job: its handler's value as its definition's `success` Schema encoded it (undefined: none). */
  readonly result?: unknown
  /** A live job: its cancellation was requested (its worker is stopping it). */
  readonly cancelRequested?: boolean | undefined
}

/**
 * What the store tells waiters and workers beyond wake-ups:
 * - `Finalized`: a job that someone awaits (`markAwaited`) was finalized (a backend may also report others);
 * - `CancelRequested`: a running job's cancellation was requested (its worker stops it);
 * - `Reset`: notices may have been missed (the listener reconnected): re-read what you wait for.
 *
 * @since 0.2.0
 */
export type Notice =
  | { readonly _tag: "Finalized"; readonly id: string }
  | { readonly _tag: "CancelRequested"; readonly id: string }
  | { readonly _tag: "Reset" }

/**
 * Which jobs to cancel: the jobs with these ids, or the live jobs of a definition and/or a job group (every
 * field given must match). At least one field is given; ids are decimal strings.
 *
 * @since 0.2.0
 */
export interface CancelFilter {
  readonly ids?: ReadonlyArray<string> | undefined
  readonly definition?: string | undefined
  readonly jobGroup?: string | undefined
}

/**
 * What a cancellation did: the waiting jobs it finalized as cancelled at once (they never run), and the
 * claimed ones whose cancellation it requested (their workers stop them and finalize them as cancelled).
 *
 * @since 0.2.0
 */
export interface CancelResult {
  readonly cancelled: ReadonlyArray<{ readonly id: string; readonly name: string }>
  readonly cancelling: ReadonlyArray<{ readonly id: string; readonly name: string; readonly workerId: string }>
}

/**
 * Given a repeat, the due time being scheduled and the current time, returns the next due time: the first
 * one strictly after `now` (missed due times are coalesced into the one being scheduled).
 *
 * @since 0.1.0
 */
export type Advance = (repeat: Repeat, due: Date, now: Date) => Date

/**
 * A free slot of an idle worker in this process, reserved for a job about to be enqueued (the in-process
 * fast path: the job is claimed for that worker in its own INSERT, and handed to it, one round trip from
 * enqueue to handler instead of two).
 *
 * Exactly one of `deliver` and `cancel` is called, whatever happens to the enqueuing caller (the insert runs
 * in a fiber of the store, not of the caller).
 *
 * @since 0.1.0
 */
export interface LocalReservation {
  readonly workerId: string
  /** The channels the worker takes: the job is claimed at insert only if its deployed channel is one. */
  readonly channels: ReadonlyArray<string>
  /** Hands the job, claimed at insert by `workerId`, to the worker. */
  readonly deliver: (job: ClaimedJob) => void
  /**
   * Gives the slot back: the job was not claimed at insert, or (`maybeClaimed`) the insert's outcome is
   * unknown (a lost connection), so the worker must reconcile what it holds.
   */
  readonly cancel: (maybeClaimed: boolean) => void
}

/**
 * The in-process fast path, as the store sees it: a reservation for a single job enqueued outside a
 * transaction, with no delay and no group.
 *
 * @since 0.1.0
 */
export interface LocalClaim {
  /** Reserves a free slot of an idle local worker that runs `definitionName`, if there is one. */
  readonly reserve: (definitionName: string) => LocalReservation | undefined
}

/**
 * What `undeploy` does with the definition's waiting jobs:
 * - `"fail"`: refuse (`JobDefinitionInUse`, nothing changed) while the definition has any live job, waiting
 *   or running;
 * - `"delete"`: delete its waiting jobs (held ones included);
 * - `"keep"`: leave them: a worker that still knows the definition runs them (a drain), others give them
 *   back as orphans.
 *
 * In every mode, running jobs are left to end their current attempt on their workers.
 *
 * @since 0.1.0
 */
export type UndeployWaiting = "delete" | "keep" | "fail"

/**
 * What `undeploy` did.
 *
 * @since 0.1.0
 */
export interface UndeployResult {
  /** The definition was deployed (false: it was not; `undeploy` is idempotent). */
  readonly undeployed: boolean
  /** Waiting jobs deleted (`"delete"`). */
  readonly deleted: number
  /** Waiting jobs left in place (`"keep"`). */
  readonly kept: number
  /** Jobs running at the time, left to their workers. */
  readonly running: number
}

/**
 * One process's outcomes of one definition in one minute, as its counters flush them (`recordOutcomes`).
 *
 * @since 0.2.0
 */
export interface OutcomeCounts {
  readonly definition: string
  /** The definition's channel as the process knows it ("" for a definition it does not know). */
  readonly channel: string
  /** The minute's start. */
  readonly minute: Date
  /** Jobs that succeeded. */
  readonly succeeded: number
  /** Jobs finalized as failed (their last attempt failed, or a rescue found none left). */
  readonly failed: number
  /** Attempts that failed (retried or not). */
  readonly errored: number
  /** Milliseconds of the attempts run, in all. */
  readonly runMs: number
  /** Attempts run (succeeded or errored). */
  readonly attempts: number
}

/**
 * The storage contract.
 *
 * @since 0.1.0
 */
export class JobStore extends Context.Service<JobStore, {
  /** Upserts definitions; `changed` is false where the stored row already matched. */
  readonly deploy: (
    definitions: ReadonlyArray<DefinitionRecord>,
    firstDue: FirstDue
  ) => Effect.Effect<ReadonlyArray<{ readonly name: string; readonly changed: boolean }>, StorageError>
  /**
   * Retires a definition: deletes its row (so it is no longer scheduled, and enqueueing it fails with
   * `JobDefinitionNotDeployed`) and treats its waiting jobs as `waiting` says. Idempotent: a definition that
   * is not deployed is not an error (its live jobs are still handled as `waiting` says).
   */
  readonly undeploy: (
    definitionName: string,
    waiting: UndeployWaiting
  ) => Effect.Effect<UndeployResult, JobDefinitionInUse | StorageError>
  /**
   * Inserts jobs of one definition and returns their ids in input order. Joins the caller's transaction;
   * `onCommit` runs once it commits (outside a transaction: once the insert committed, even if the caller
   * was interrupted meanwhile; never on rollback). A grouped job is held at once when its group already runs
   * or has claimable its concurrency's worth (see the module doc); of several jobs of one group in one call,
   * only as many as fit (by run time) are claimable at once, the others held behind them. Held jobs are promoted as slots free (a backend
   * closes the race with a concurrent settlement itself: after the commit, it promotes what it held).
   */
  readonly enqueue: (
    definitionName: string,
    jobs: ReadonlyArray<NewJob>,
    onCommit: (ids: ReadonlyArray<string>, channel: string) => Effect.Effect<void>,
    local?: LocalClaim | undefined
  ) => Effect.Effect<ReadonlyArray<string>, JobDefinitionNotDeployed | StorageError>
  /**
   * Inserts jobs of one definition that carry unique keys (`keys[i]` for `jobs[i]`), race-free across
   * processes: the database decides (a unique index, with a row lock per key), never a check then an insert.
   * Jobs of one call with the same key are applied in order, as consecutive enqueues would be. Joins the
   * caller's transaction like `enqueue` (a rolled-back transaction frees its keys; a concurrent enqueue of the
   * same key waits for it). `onCommit` gets the inserted jobs' ids only, each with the index in `jobs` of the
   * first job of its key. Never the in-process fast path.
   */
  readonly enqueueUnique: (
    definitionName: string,
    rule: UniqueRule,
    jobs: ReadonlyArray<NewJob>,
    keys: ReadonlyArray<string>,
    onCommit: (ids: ReadonlyArray<string>, channel: string, indices: ReadonlyArray<number>) => Effect.Effect<void>
  ) => Effect.Effect<ReadonlyArray<UniqueOutcome>, JobDefinitionNotDeployed | StorageError>
  /** Wake-ups for workers. The first subscription starts the backend's listener (one per store). */
  readonly wakeups: Effect.Effect<Stream.Stream<Wakeup>, never, Scope.Scope>
  /**
   * The current liveness session, waiting for one to be established; `undefined` when the backend has no
   * sessions (workers then rely on their lease alone).
   */
  readonly session: Effect.Effect<Session | undefined>
  /** Records a starting worker: its row, with a lease of `leaseSecs` that `heartbeat` extends. */
  readonly registerWorker: (worker: WorkerRegistration) => Effect.Effect<void, StorageError>
  /** Extends a worker's lease; `false` when its row is gone or its lease already expired. */
  readonly heartbeat: (workerId: string, leaseSecs: number) => Effect.Effect<boolean, StorageError>
  /** Gives back everything the worker still holds (recorded starts stay spent) and deletes its row. */
  readonly deregisterWorker: (workerId: string) => Effect.Effect<void, StorageError>
  /**
   * Claims up to `limit` available jobs in claim order, within group concurrency; jobs of full groups met on
   * the way are held. A worker whose lease is not live claims nothing.
   */
  readonly claim: (request: ClaimRequest) => Effect.Effect<ClaimResult, StorageError>
  /**
   * Releases every job the store says `workerId` holds under a claim that is not in `owned` (claims whose
   * result never reached the worker, e.g. a connection lost mid-statement). A job is kept only while its
   * current claim is the one owned: a job owned under an earlier claim (its settlement not yet confirmed)
   * that a lost claim took again is released. Returns how many were released.
   */
  readonly releaseUnowned: (workerId: string, owned: ReadonlyArray<OwnedClaim>) => Effect.Effect<number, StorageError>
  /**
   * Applies a batch of settlements (at most one per job) in one round trip and frees the group slots of the
   * jobs that leave their worker.
   */
  readonly settle: (workerId: string, settlements: ReadonlyArray<Settlement>) => Effect.Effect<void, StorageError>
  /**
   * Enqueues due repeating jobs of known definitions (exactly once per due time, however many callers),
   * reports due definitions it does not know, and says in how many seconds the next known one is due.
   */
  readonly scheduleDue: (
    known: ReadonlySet<string>,
    advance: Advance,
    limit: number
  ) => Effect.Effect<{
    readonly scheduled: ReadonlyArray<ScheduledJob>
    readonly orphans: ReadonlyArray<OrphanSchedule>
    readonly nextDueInSecs: number | undefined
  }, StorageError>
  /** Deletes up to `limit` finalized jobs finalized more than `olderThanSecs` ago. */
  readonly deleteFinalized: (
    olderThanSecs: number,
    limit: number
  ) => Effect.Effect<ReadonlyArray<{ readonly id: string; readonly name: string }>, StorageError>
  /**
   * Deletes up to `limit` unique keys that can no longer hold: their job is in neither the live nor the
   * finalized jobs and their period (if any) ended. Returns how many.
   */
  readonly deleteStaleUniqueKeys: (limit: number) => Effect.Effect<number, StorageError>
  /** Deletes up to `limit` job groups with no slot taken that no live job refers to. */
  readonly deleteUnreferencedGroups: (limit: number) => Effect.Effect<ReadonlyArray<string>, StorageError>
  /**
   * Declares dead the workers whose lease expired or whose liveness session is gone, takes back their jobs
   * (a job whose start was recorded has spent that attempt: it is retried after its `timeoutSecs` lease, or
   * finalized as failed with no attempt left; a job whose start was not recorded is claimable again at once,
   * in its place, unless this was its `maxAttempts + 4`th crash: then it is finalized as failed) and frees
   * the group slots they held, and frees group slots held past the ceiling (the job
   * itself stays with its live worker, which stops it). Safe from any number of processes at once.
   */
  readonly rescue: (options: RescueOptions) => Effect.Effect<{
    readonly jobs: ReadonlyArray<RescuedJob>
    readonly groups: ReadonlyArray<UnlockedGroup>
  }, StorageError>
  /** One job by id, waiting, running or finalized. */
  readonly getJob: (id: string) => Effect.Effect<Option.Option<JobInfo>, StorageError>
  /**
   * Changes a channel's flow control (creating its settings on first use) and wakes every worker, so that a
   * resume or a raised limit takes effect at once. A pause applies to every claim that starts after it
   * returns; jobs already claimed run to their end. Returns the channel's new state.
   */
  readonly setChannel: (channel: string, update: ChannelUpdate) => Effect.Effect<ChannelState, StorageError>
  /** A channel's flow control (a channel never configured: not paused, no limit). */
  readonly getChannel: (channel: string) => Effect.Effect<ChannelState, StorageError>
  /**
   * Changes a group's explicit limits, then makes as many of its held jobs claimable as the new limits
   * allow, and wakes workers. A group with explicit limits keeps them while it has no job.
   */
  readonly setGroupLimits: (jobGroup: string, update: GroupUpdate) => Effect.Effect<GroupState, StorageError>
  /** A group's explicit limits and slots taken (a group never seen: no explicit limit, nothing running). */
  readonly getGroup: (jobGroup: string) => Effect.Effect<GroupState, StorageError>
  /**
   * Makes held jobs claimable again where their group can take them: groups whose rate window ended, and
   * groups with free slots and held jobs (a safety net: every slot freed promotes at once). At most `limit`
   * groups per call; returns how many groups had jobs promoted (workers are woken when > 0).
   */
  readonly promoteGroups: (limit: number) => Effect.Effect<number, StorageError>
  /**
   * Adds a process's outcome counts to its own rows (one per process, definition and minute: never another
   * process's), and deletes every process's rows older than `retainSecs` (so a crashed process's go too).
   * What `CuckmqAdmin`'s statistics sum.
   */
  readonly recordOutcomes: (
    processId: string,
    counts: ReadonlyArray<OutcomeCounts>,
    retainSecs: number
  ) => Effect.Effect<void, StorageError>
  /**
   * Notices (see `Notice`). Once this returns, the subscription is listening: a notice sent after it is
   * seen. The first subscription starts the backend's listener (shared with `wakeups`).
   */
  readonly notices: Effect.Effect<Stream.Stream<Notice>, never, Scope.Scope>
  /** Asks for a `Finalized` notice when the live job `id` finalizes (nothing for a job that is not live). */
  readonly markAwaited: (id: string) => Effect.Effect<void, StorageError>
  /**
   * Cancels the live jobs the filter selects: a waiting one is finalized as cancelled at once (it never runs;
   * its group's held jobs may be promoted), a claimed one is marked and its worker told (`CancelRequested`).
   */
  readonly cancel: (filter: CancelFilter) => Effect.Effect<CancelResult, StorageError>
  /** The jobs `workerId` holds whose cancellation was requested (a worker's poll, beside the notices). */
  readonly cancelRequests: (workerId: string) => Effect.Effect<ReadonlyArray<string>, StorageError>
}>()("cuckmq/JobStore") {}
