/**
 * Operating the queue: statistics, job listings and details, actions on jobs and channels, and the workers
 * alive, as one typed Effect service that the code, the `cuckmq` command line and the dashboard share.
 *
 * - **Statistics** (`statistics`) are cheap at any size: no refresh counts the job tables.
 *   - Waiting and delayed per channel are counted on the ready index with a `LIMIT`, priority level by
 *     priority level against one budget per channel and state (`countCap + 1` entries in all, however many
 *     levels): exact up to `countCap` (10,000 by default), `atLeast` beyond it ("10,000+"). Per definition,
 *     the same scans count by name: exact while the channel's count is, a lower bound beyond (its jobs among
 *     the channel's first `countCap + 1`). Totals are exact when every part is (even beyond the cap), and
 *     `atLeast` the cap when some part is. Held jobs are counted on the held index up to `countCap` in all:
 *     exact per channel and definition while the whole held backlog is under the cap, lower bounds beyond.
 *     Running is exact (claimed jobs, bounded by the workers' concurrency). No backend reports `estimate`
 *     today (the accuracy is part of the type for backends that would use planner estimates).
 *   - The oldest waiting age comes from the ready index (one probe per channel and priority level).
 *   - The channels are those of the deployed definitions, those with settings, and those with jobs (on
 *     PostgreSQL, a skip scan of the ready index finds the channels with ready jobs), on both backends.
 *   - Succeeded, failed and errored per minute over the last hour, throughput and mean run time come from
 *     counters that every process keeps, whatever layers it runs: each `Cuckmq` context counts its own
 *     workers' outcomes (and the jobs its rescues finalize) in memory, synchronously as it settles them, and
 *     flushes them through its store into rows of its own 5 seconds after the first outcome since the last
 *     flush (a fixed interval; an idle process writes nothing), and once more when the context is released:
 *     no row is shared by two processes, and nothing is written per job. The reader sums the rows. The
 *     figures are exact up to each process's last flush; a process that crashes loses at most its last 5
 *     seconds, and a flush that fails keeps its counts for the next one (those older than the rows'
 *     retention, 3 hours, are dropped). Where the counters' table cannot be written (a schema before
 *     migration 4, or a role without the runtime privileges) the process warns once and keeps trying
 *     quietly. `statistics` flushes the calling context's counters first, so its own work shows at once.
 *     Minutes are the recording process's clock. Jobs cancelled by an operator are not counted as failed.
 *   - On PostgreSQL a refresh is a handful of statements in one read transaction (with `jit` off: the
 *     planner prices the capped scans as whole ranges and would JIT-compile them; and a `statement_timeout`
 *     of 30 seconds, so a caller that gives up on a slow refresh does not leave its query running). Measured
 *     on 1,000,000 waiting jobs in one channel shared by two definitions: about 800 shared buffers with one
 *     priority level, 2,100 with three (see the README's "Admin API").
 * - **Listing** (`listJobs`) is keyset-paginated (a cursor of the sort key and the id), so a page never
 *   repeats or skips a job because jobs were inserted meanwhile.
 * - **Actions** by id or by filter (at most `limit` jobs per call, in one statement; `more` says whether to
 *   call again): retry a failed job, cancel or delete a waiting one, delete a finalized one, run a delayed
 *   one now, purge finalized jobs, pause and resume a channel. Each publishes an event (`ADMIN_JOB_RETRY`,
 *   ..., `CHANNEL_UPDATE`), and an action by id that does not apply is refused with a typed error
 *   (`JobActionRefused`, `JobNotFound`, `ChannelNotFound`).
 * - A retried job keeps its id and payload; its attempts start again at 0, with its definition's current
 *   channel, attempts, timeout and priority (a finalized job's own priority is not kept: an enqueue that gave
 *   another priority is retried at the definition's), and behind its job group's live jobs like a new enqueue
 *   (held while the group is full). A retry by filter skips failed jobs whose definition is no longer
 *   deployed (by id, such a job is refused with `JobDefinitionNotDeployed`). A cancelled job is finalized as failed with the error
 *   `{ _tag: "Cancelled", message, cancelledAt }` (or deleted, when finalized jobs are not kept).
 * - Cancelling a **running** job is refused (`JobActionRefused`): cancellation of running jobs is not
 *   implemented yet, and a job's **result** is not stored yet, so `JobDetail` has none. Both will plug in here.
 * - The PostgreSQL admin needs migration 4 (`4_admin_statistics`: the counters' table) and runs no DDL.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Redacted } from "effect"
 * import { PgClient } from "@effect/sql-pg"
 * import { Cuckmq, CuckmqAdmin } from "@cuckmq/effect"
 *
 * const Pg = PgClient.layer({ url: Redacted.make(process.env.DATABASE_URL!) })
 * const AdminLive = CuckmqAdmin.layer().pipe(
 *   Layer.provideMerge(Cuckmq.layer({ migrate: false, deploy: false })),
 *   Layer.provideMerge(Pg)
 * )
 *
 * export const report = Effect.gen(function*() {
 *   const admin = yield* CuckmqAdmin.CuckmqAdmin
 *   const stats = yield* admin.statistics
 *   for (const c of stats.channels) yield* Effect.log(c.channel, CuckmqAdmin.formatCount(c.waiting))
 *   const failed = yield* admin.listJobs({ state: "failed", limit: 20 })
 *   yield* admin.retryJobs({ definition: "send-email" })
 *   return failed.jobs.length
 * }).pipe(Effect.provide(AdminLive))
 * ```
 *
 * @since 0.2.0
 */
import { Context, Duration, Effect, Layer } from "effect"
import type { PgClient } from "@effect/sql-pg"
import type * as CuckmqModule from "./Cuckmq.js"
import { Cuckmq } from "./Cuckmq.js"
import type {
  ChannelNotFound,
  InvalidOptions,
  JobActionRefused,
  JobDefinitionNotDeployed,
  JobNotFound,
  StorageError
} from "./CuckmqError.js"
import * as Internal from "./internal/admin/service.js"

/**
 * A job's state as the admin reports it. A waiting job is `waiting` when it is due and claimable,
 * `delayed` when its run time is still ahead, and `held` when it waits behind a full job group.
 *
 * @since 0.2.0
 */
export type JobState = "waiting" | "delayed" | "held" | "running" | "succeeded" | "failed"

/**
 * Every state, in lifecycle order.
 *
 * @since 0.2.0
 */
export const jobStates: ReadonlyArray<JobState> = ["waiting", "delayed", "held", "running", "succeeded", "failed"]

/**
 * A count and how it was obtained: `exact`; `atLeast` (counted up to the cap and stopped, or counted in a
 * capped sample: the true count is `value` or more, shown "10,000+"); or `estimate` (an estimate, shown
 * "~52,000"; not produced by the current backends).
 *
 * @since 0.2.0
 */
export interface Count {
  readonly value: number
  readonly accuracy: "exact" | "atLeast" | "estimate"
}

/**
 * A count as people read it: `"12"`, `"10,000+"` (at least), `"~52,000"` (estimate).
 *
 * @since 0.2.0
 */
export const formatCount = (count: Count): string => {
  const text = count.value.toLocaleString("en-US")
  return count.accuracy === "atLeast" ? `${text}+` : count.accuracy === "estimate" ? `~${text}` : text
}

/**
 * Jobs by live state.
 *
 * @since 0.2.0
 */
export interface LiveCounts {
  /** Due and claimable now (paused channels included). */
  readonly waiting: Count
  /** Waiting for their run time (delays, retries' backoff). */
  readonly delayed: Count
  /** Waiting behind a full job group (claimable when a slot frees). */
  readonly held: Count
  /** Claimed by a worker. Exact. */
  readonly running: Count
}

/**
 * Outcomes over a period, from the processes' counters (exact up to each process's last flush).
 *
 * @since 0.2.0
 */
export interface Outcomes {
  /** Jobs finalized as succeeded. */
  readonly succeeded: number
  /** Jobs finalized as failed (last attempt spent, or taken back from a dead worker with no attempt left). */
  readonly failed: number
  /** Attempts that failed, retried or not. */
  readonly errored: number
  /** The mean run time of the attempts that ended, in milliseconds (undefined: none ended). */
  readonly meanRunMs: number | undefined
}

/**
 * One minute of outcomes.
 *
 * @since 0.2.0
 */
export interface Minute extends Outcomes {
  /** The start of the minute. */
  readonly minute: Date
}

/**
 * A channel's statistics.
 *
 * @since 0.2.0
 */
export interface ChannelStatistics extends LiveCounts {
  readonly channel: string
  readonly paused: boolean
  readonly rateLimit: CuckmqModule.RateLimit | undefined
  /** The deployed definitions on the channel. */
  readonly definitions: ReadonlyArray<string>
  /** Seconds since the oldest due, claimable job became claimable (undefined: none waiting). */
  readonly oldestWaitingSecs: number | undefined
  /** Outcomes over the last hour. */
  readonly lastHour: Outcomes
  /** Jobs finalized (succeeded or failed) per minute, over the last 5 minutes. */
  readonly throughputPerMinute: number
  /** The last 60 minutes, oldest first (the last one is the current, partial minute). */
  readonly minutes: ReadonlyArray<Minute>
}

/**
 * A definition's statistics.
 *
 * @since 0.2.0
 */
export interface DefinitionStatistics extends LiveCounts {
  readonly definition: string
  readonly channel: string
  /** Deployed now (false: jobs or counters of a definition that was undeployed). */
  readonly deployed: boolean
  readonly lastHour: Outcomes
  readonly throughputPerMinute: number
  readonly minutes: ReadonlyArray<Minute>
}

/**
 * What `statistics` returns.
 *
 * @since 0.2.0
 */
export interface Statistics {
  /** The store's clock when it was read. */
  readonly at: Date
  /** The cap of the `atLeast` counts. */
  readonly countCap: number
  /** Every known channel (used by a deployed definition, with settings, or with jobs), by name. */
  readonly channels: ReadonlyArray<ChannelStatistics>
  /** Every deployed definition, and any other with live jobs or counters, by name. */
  readonly definitions: ReadonlyArray<DefinitionStatistics>
  /** Every definition summed. */
  readonly total: LiveCounts & {
    readonly lastHour: Outcomes
    readonly throughputPerMinute: number
    readonly minutes: ReadonlyArray<Minute>
  }
}

/**
 * Which jobs a listing or an action by filter concerns. Every field left out matches every job.
 *
 * @since 0.2.0
 */
export interface JobFilter {
  /** One state or several. Defaults to every state. */
  readonly state?: JobState | ReadonlyArray<JobState> | undefined
  /** The definition's name. */
  readonly definition?: string | undefined
  readonly channel?: string | undefined
  readonly jobGroup?: string | undefined
}

/**
 * A listing request.
 *
 * @since 0.2.0
 */
export interface JobQuery extends JobFilter {
  /**
   * The sort key: `id` (the default: enqueue order), `runAt` (live states only: due time) or `finalizedAt`
   * (`succeeded` / `failed` only). Ties are broken by id.
   */
  readonly sort?: "id" | "runAt" | "finalizedAt" | undefined
  /** Defaults to `"desc"` for `id` and `finalizedAt` (newest first), `"asc"` for `runAt` (soonest first). */
  readonly direction?: "asc" | "desc" | undefined
  /** Jobs per page: 1 to 1,000. Defaults to 50. */
  readonly limit?: number | undefined
  /** The `next` cursor of the previous page (with the same filters and sort). */
  readonly cursor?: string | undefined
}

/**
 * A job in a listing.
 *
 * @since 0.2.0
 */
export interface JobSummary {
  readonly id: string
  readonly definition: string
  readonly channel: string
  readonly jobGroup: string | undefined
  readonly state: JobState
  /** Recorded handler starts. */
  readonly attempts: number
  readonly maxAttempts: number
  /** Live jobs only (a finalized job's priority is not kept). */
  readonly priority: number | undefined
  /** Live jobs only: when it is (or was) due. */
  readonly runAt: Date | undefined
  readonly createdAt: Date
  readonly finalizedAt: Date | undefined
  /** The last error's message, when it has one (see `JobDetail.lastError` for the whole). */
  readonly lastErrorMessage: string | undefined
}

/**
 * One page of a listing: the jobs, and the cursor of the next page (undefined: this was the last).
 *
 * @since 0.2.0
 */
export interface JobPage {
  readonly jobs: ReadonlyArray<JobSummary>
  readonly next: string | undefined
}

/**
 * One job, in full. Attempts are a count (each attempt's own error is not kept: `lastError` is the latest).
 * There is no `result` yet: results are not stored.
 *
 * @since 0.2.0
 */
export interface JobDetail extends JobSummary {
  /** The payload as stored (JSON). Render it as text. */
  readonly payload: unknown
  /** The last failure as stored (JSON), or undefined. */
  readonly lastError: unknown
  /** How many times the job was claimed. */
  readonly claims: number
  /** How many times it was taken back from a worker that died holding it. */
  readonly crashes: number
  /** Running only: the worker holding it. */
  readonly workerId: string | undefined
  /** A repeating job: the due time it was enqueued for. */
  readonly scheduledFor: Date | undefined
}

/**
 * An action by filter: the jobs matching `JobFilter` that the action applies to, at most `limit` of them
 * per call (1 to 10,000; defaults to 1,000).
 *
 * @since 0.2.0
 */
export interface ActionFilter extends JobFilter {
  readonly limit?: number | undefined
}

/**
 * What an action did: the jobs it changed, and (by filter) whether more matched than its `limit`.
 *
 * @since 0.2.0
 */
export interface ActionResult {
  readonly jobIds: ReadonlyArray<string>
  readonly count: number
  readonly more: boolean
}

/**
 * Options of `purge`.
 *
 * @since 0.2.0
 */
export interface PurgeOptions {
  /** Delete jobs finalized more than this long ago (a `Duration.Input`: `"7 days"`; at least 0). */
  readonly olderThan: Duration.Input
  /** Which finalized jobs. Defaults to both. */
  readonly state?: "succeeded" | "failed" | ReadonlyArray<"succeeded" | "failed"> | undefined
  /** At most this many per call (1 to 100,000; defaults to 10,000); `more` says whether to call again. */
  readonly limit?: number | undefined
}

/**
 * A registered worker.
 *
 * @since 0.2.0
 */
export interface WorkerInfo {
  readonly id: string
  readonly name: string
  readonly hostname: string
  readonly pid: number
  readonly channels: ReadonlyArray<string>
  /** Its concurrency, when the worker recorded it (undefined: registered by a version that does not). */
  readonly concurrency: number | undefined
  /** Jobs it holds now (claimed, running or buffered). */
  readonly inFlight: number
  readonly startedAt: Date
  readonly lastHeartbeatAt: Date
  readonly leaseExpiresAt: Date
  /** Its lease is live and its liveness session is not known to be gone. */
  readonly alive: boolean
}

/**
 * A known channel and its flow control.
 *
 * @since 0.2.0
 */
export interface ChannelInfo extends CuckmqModule.ChannelState {
  /** The deployed definitions on the channel. */
  readonly definitions: ReadonlyArray<string>
}

/**
 * The errors of an action on one job.
 *
 * @since 0.2.0
 */
export type JobActionError = JobNotFound | JobActionRefused | InvalidOptions | StorageError

/**
 * The admin service.
 *
 * @since 0.2.0
 */
export class CuckmqAdmin extends Context.Service<CuckmqAdmin, {
  /** Statistics per channel and definition (see the module's notes on what is exact). */
  readonly statistics: Effect.Effect<Statistics, StorageError>
  /** A page of jobs. A bad filter, sort, limit or cursor fails with `InvalidOptions`. */
  readonly listJobs: (query?: JobQuery) => Effect.Effect<JobPage, InvalidOptions | StorageError>
  /** One job by id, live or finalized (`JobNotFound` when no job has it). */
  readonly getJob: (id: string) => Effect.Effect<JobDetail, JobNotFound | InvalidOptions | StorageError>
  /**
   * Retries a failed job (redrive): waiting again, due now, attempts reset, at its definition's priority,
   * keeping its id and payload. Refused (`JobActionRefused`) for any other state; `JobDefinitionNotDeployed`
   * when its definition is gone.
   */
  readonly retryJob: (id: string) => Effect.Effect<ActionResult, JobActionError | JobDefinitionNotDeployed>
  /**
   * Retries the failed jobs matching the filter (the filter's states, if given, must be `failed`), skipping
   * those whose definition is not deployed (they are left failed, and do not count towards `more`).
   */
  readonly retryJobs: (filter?: ActionFilter) => Effect.Effect<ActionResult, InvalidOptions | JobDefinitionNotDeployed | StorageError>
  /**
   * Cancels a waiting (due, delayed or held) job: finalized as failed with a `Cancelled` error, without
   * running. A running job is refused: cancelling running jobs is not supported yet.
   */
  readonly cancelJob: (id: string) => Effect.Effect<ActionResult, JobActionError>
  /** Cancels the waiting jobs matching the filter. */
  readonly cancelJobs: (filter?: ActionFilter) => Effect.Effect<ActionResult, InvalidOptions | StorageError>
  /** Deletes a waiting or finalized job for good. A running job is refused. */
  readonly deleteJob: (id: string) => Effect.Effect<ActionResult, JobActionError>
  /** Deletes the waiting and finalized jobs matching the filter (never running ones). */
  readonly deleteJobs: (filter?: ActionFilter) => Effect.Effect<ActionResult, InvalidOptions | StorageError>
  /** Makes a delayed job due now. Any other state is refused. */
  readonly runJobNow: (id: string) => Effect.Effect<ActionResult, JobActionError>
  /** Makes the delayed jobs matching the filter due now. */
  readonly runJobsNow: (filter?: ActionFilter) => Effect.Effect<ActionResult, InvalidOptions | StorageError>
  /** Deletes finalized jobs older than `olderThan`, at most `limit` per call. */
  readonly purge: (options: PurgeOptions) => Effect.Effect<ActionResult, InvalidOptions | StorageError>
  /** Pauses a known channel (`ChannelNotFound` for an unknown one); see `Cuckmq.pauseChannel`. */
  readonly pauseChannel: (channel: string) => Effect.Effect<CuckmqModule.ChannelState, ChannelNotFound | InvalidOptions | StorageError>
  /** Resumes a known channel. */
  readonly resumeChannel: (channel: string) => Effect.Effect<CuckmqModule.ChannelState, ChannelNotFound | InvalidOptions | StorageError>
  /** The known channels (used by a deployed definition, or with settings) and their flow control. */
  readonly channels: Effect.Effect<ReadonlyArray<ChannelInfo>, StorageError>
  /** The registered workers (alive, or dead and not yet rescued), by name. */
  readonly workers: Effect.Effect<ReadonlyArray<WorkerInfo>, StorageError>
  /**
   * Flushes this context's outcome counters now (every context flushes its own a few seconds after its
   * workers settle jobs anyway; `statistics` does this first).
   */
  readonly flushCounters: Effect.Effect<void, StorageError>
}>()("cuckmq/CuckmqAdmin") {}

/**
 * Options of the admin layers.
 *
 * @since 0.2.0
 */
export interface Options {
  /** Counts stop at this many (`atLeast` beyond): 100 to 1,000,000. Defaults to 10,000. */
  readonly countCap?: number | undefined
}

/**
 * The defaults of the options.
 *
 * @since 0.2.0
 */
export const defaults = {
  countCap: 10_000
} as const

/**
 * The admin service on PostgreSQL, for the `Cuckmq` context's schema, through the `PgClient` (no DDL: the
 * schema must be migrated). The outcome figures are every process's counters (each `Cuckmq` context
 * records its own: no layer to add to worker processes).
 *
 * @since 0.2.0
 */
export const layer = (options: Options = {}): Layer.Layer<CuckmqAdmin, InvalidOptions, Cuckmq | PgClient.PgClient> =>
  Layer.effect(CuckmqAdmin, Internal.makePg(options))

/**
 * The admin service on the memory store (a `Cuckmq` context from `CuckmqTest.layer`, `@cuckmq/effect/testing`);
 * fails with `InvalidOptions` on any other backend.
 *
 * @since 0.2.0
 */
export const layerMemory = (options: Options = {}): Layer.Layer<CuckmqAdmin, InvalidOptions, Cuckmq> =>
  Layer.effect(CuckmqAdmin, Internal.makeMemory(options))

/** Accessor: the statistics, from the `CuckmqAdmin` in context. @since 0.2.0 */
export const statistics: Effect.Effect<Statistics, StorageError, CuckmqAdmin> = CuckmqAdmin.use((a) => a.statistics)

/** Accessor: a page of jobs. @since 0.2.0 */
export const listJobs = (query?: JobQuery): Effect.Effect<JobPage, InvalidOptions | StorageError, CuckmqAdmin> =>
  CuckmqAdmin.use((a) => a.listJobs(query))

/** Accessor: one job. @since 0.2.0 */
export const getJob = (id: string): Effect.Effect<JobDetail, JobNotFound | InvalidOptions | StorageError, CuckmqAdmin> =>
  CuckmqAdmin.use((a) => a.getJob(id))

/** Accessor: the workers. @since 0.2.0 */
export const workers: Effect.Effect<ReadonlyArray<WorkerInfo>, StorageError, CuckmqAdmin> = CuckmqAdmin.use((a) => a.workers)

