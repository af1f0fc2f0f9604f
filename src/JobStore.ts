/**
 * The storage contract: every read and write cuckmq makes goes through this service, so the Worker,
 * Orchestrator and enqueue code never see SQL. Two backends implement it: PostgreSQL (`layerPostgres`,
 * the real one) and an in-memory store for users' unit tests (`@cuckmq/effect/testing`). One conformance
 * suite runs against both.
 *
 * Times: the PostgreSQL backend uses the database clock (`now()`) for every timestamp, so that workers on
 * machines with skewed clocks agree; the memory backend uses Effect's `Clock` (and so `TestClock`).
 *
 * @since 0.1.0
 */
import { Context, type Effect, type Option, type Scope, type Stream } from "effect"
import type { JobDefinitionNotDeployed, StorageError } from "./CuckmqError.js"

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
  /** For a cron repeat: the first due time (the first match after now). */
  readonly firstDue: Date | undefined
}

/**
 * One job to insert. `payload` is already encoded to JSON by the definition's Schema.
 *
 * @since 0.1.0
 */
export interface NewJob {
  /** The payload as encoded by the definition's Schema, as JSON text (serialised once, at enqueue). */
  readonly payloadJson: string
  readonly delaySecs: number
  readonly jobGroup: string | undefined
  readonly traceId: string | undefined
  readonly spanId: string | undefined
}

/**
 * A job as a worker claimed it. `attempt` is the attempt being made (already counted).
 *
 * @since 0.1.0
 */
export interface ClaimedJob {
  readonly id: string
  readonly name: string
  readonly channel: string
  readonly jobGroup: string | undefined
  readonly payload: unknown
  readonly attempt: number
  readonly maxAttempts: number
  readonly timeoutSecs: number
  readonly runAt: Date
  readonly createdAt: Date
  readonly scheduledFor: Date | undefined
  readonly traceId: string | undefined
  readonly spanId: string | undefined
}

/**
 * How a claimed job ended, reported by its worker:
 * - `Succeeded`: finalize as succeeded.
 * - `Retry`: the attempt failed and attempts remain: available again `timeoutSecs` from now.
 * - `Expired`: the last attempt failed: finalize as failed.
 * - `Released`: not run to an end (orphan, shutdown, lost lease): back to the queue, attempt refunded.
 *
 * A settlement only applies while the job is still claimed by that worker for that attempt; otherwise
 * (the job was rescued and claimed elsewhere) it changes nothing.
 *
 * @since 0.1.0
 */
export interface Settlement {
  readonly id: string
  readonly attempt: number
  readonly outcome: "Succeeded" | "Retry" | "Expired" | "Released"
  /** The failure, as JSON, recorded on the job (`Retry`/`Expired`). */
  readonly error?: unknown
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
  /** At most this many jobs (the worker's free slots). */
  readonly limit: number
}

/**
 * A worker's registration row: identity plus a heartbeat lease.
 *
 * @since 0.1.0
 */
export interface WorkerRegistration {
  readonly id: string
  readonly name: string
  readonly hostname: string
  readonly pid: number
  readonly channels: ReadonlyArray<string>
  readonly leaseSecs: number
}

/**
 * A wake-up for workers: jobs may be available on `channel`, or (`Any`) on any channel: a group lock was
 * released, a repeating job was scheduled, or the listener reconnected and notifications may have been missed.
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
 * A job the orchestrator took back from a dead worker.
 *
 * @since 0.1.0
 */
export interface RescuedJob {
  readonly jobId: string
  readonly definitionName: string
  readonly workerId: string
  readonly finalized: boolean
}

/**
 * A group lock the orchestrator released.
 *
 * @since 0.1.0
 */
export interface UnlockedGroup {
  readonly jobGroup: string
  readonly jobId: string
  readonly reason: "worker-dead" | "ceiling"
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
  readonly state: "waiting" | "running" | "succeeded" | "failed"
  readonly attempts: number
  readonly maxAttempts: number
  readonly runAt: Date | undefined
  readonly lastError: unknown
  readonly workerId: string | undefined
  readonly createdAt: Date
  readonly finalizedAt: Date | undefined
  /** For a repeating job: the due time it was enqueued for. */
  readonly scheduledFor: Date | undefined
}

/**
 * Given a repeat, the due time being scheduled and the current time, returns the next due time: the first
 * one strictly after `now` (missed due times are coalesced into the one being scheduled).
 *
 * @since 0.1.0
 */
export type Advance = (repeat: Repeat, due: Date, now: Date) => Date

/**
 * A free slot of an idle worker in this process, reserved for a job about to be enqueued.
 *
 * @since 0.1.0
 */
export interface LocalReservation {
  readonly workerId: string
  /** The channels the worker takes: the job is claimed at insert only if its deployed channel is one. */
  readonly channels: ReadonlyArray<string>
  /** Hands the job, claimed at insert by `workerId`, to the worker. */
  readonly deliver: (job: ClaimedJob) => void
  /** Gives the slot back (the job was not claimed at insert). */
  readonly cancel: () => void
}

/**
 * The in-process fast path: a single job enqueued outside a transaction (so committed by its own statement),
 * with no delay and no group, is claimed in its INSERT by an idle local worker of its channel, which starts
 * it at once: one round trip from enqueue to handler instead of two.
 *
 * @since 0.1.0
 */
export interface LocalClaim {
  /** Reserves a free slot of an idle local worker that runs `definitionName`, if there is one. */
  readonly reserve: (definitionName: string) => LocalReservation | undefined
}

/**
 * The storage contract.
 *
 * @since 0.1.0
 */
export class JobStore extends Context.Service<JobStore, {
  /** Upserts definitions; `changed` is false where the stored row already matched. */
  readonly deploy: (
    definitions: ReadonlyArray<DefinitionRecord>
  ) => Effect.Effect<ReadonlyArray<{ readonly name: string; readonly changed: boolean }>, StorageError>
  /**
   * Inserts jobs of one definition in one statement and returns their ids in input order. Joins the caller's
   * transaction; `onCommit` runs once it commits (immediately outside a transaction, never on rollback).
   */
  readonly enqueue: (
    definitionName: string,
    jobs: ReadonlyArray<NewJob>,
    onCommit: (ids: ReadonlyArray<string>, channel: string) => Effect.Effect<void>,
    local?: LocalClaim | undefined
  ) => Effect.Effect<ReadonlyArray<string>, JobDefinitionNotDeployed | StorageError>
  /** Wake-ups for workers. The first subscription starts the backend's listener (one per store). */
  readonly wakeups: Effect.Effect<Stream.Stream<Wakeup>, never, Scope.Scope>
  readonly registerWorker: (worker: WorkerRegistration) => Effect.Effect<void, StorageError>
  /** Extends a worker's lease; `false` when its row is gone (it was declared dead). */
  readonly heartbeat: (workerId: string, leaseSecs: number) => Effect.Effect<boolean, StorageError>
  readonly deregisterWorker: (workerId: string) => Effect.Effect<void, StorageError>
  /** Claims up to `limit` available jobs, at most one per named group, locking their groups. */
  readonly claim: (request: ClaimRequest) => Effect.Effect<ReadonlyArray<ClaimedJob>, StorageError>
  /**
   * Releases (attempt refunded) every job the database says `workerId` holds that is not in `owned`: jobs
   * whose claim committed but whose result never reached the worker (a connection lost mid-claim).
   * Returns how many were released.
   */
  readonly releaseUnowned: (workerId: string, owned: ReadonlyArray<string>) => Effect.Effect<number, StorageError>
  /** Applies a batch of settlements in one round trip and releases the group locks the jobs held. */
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
    readonly orphans: ReadonlyArray<string>
    readonly nextDueInSecs: number | undefined
  }, StorageError>
  /** Deletes up to `limit` finalized jobs finalized more than `olderThanSecs` ago. */
  readonly deleteFinalized: (
    olderThanSecs: number,
    limit: number
  ) => Effect.Effect<ReadonlyArray<{ readonly id: string; readonly name: string }>, StorageError>
  /** Deletes up to `limit` unlocked job groups that no live job refers to. */
  readonly deleteUnreferencedGroups: (limit: number) => Effect.Effect<ReadonlyArray<string>, StorageError>
  /**
   * Rescues the jobs and group locks of workers whose lease expired (deleting their rows), and releases
   * group locks held longer than `jobGroupUnlockSecs`.
   */
  readonly rescue: (jobGroupUnlockSecs: number) => Effect.Effect<{
    readonly jobs: ReadonlyArray<RescuedJob>
    readonly groups: ReadonlyArray<UnlockedGroup>
  }, StorageError>
  /** One job by id, waiting, running or finalized. */
  readonly getJob: (id: string) => Effect.Effect<Option.Option<JobInfo>, StorageError>
}>()("cuckmq/JobStore") {}
