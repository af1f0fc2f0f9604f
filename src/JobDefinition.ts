/**
 * Job definitions: a name, a payload Schema and a handler, plus the settings every job of the definition
 * inherits (channel, attempts, retry timeout, repeat schedule, priority, the limits of its job groups). A
 * definition is a plain value; deploying, enqueueing and running it need the `Cuckmq` service.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobDefinition } from "@cuckmq/effect"
 *
 * export const SendEmail = JobDefinition.make({
 *   name: "send-email",
 *   payload: Schema.Struct({ to: Schema.String, subject: Schema.String }),
 *   numAttempts: 3,
 *   timeout: "30 seconds",
 *   handler: (payload, { attempt }) => Effect.log(`sending to ${payload.to} (attempt ${attempt})`)
 * })
 *
 * // a program that needs the Cuckmq context (Cuckmq.layer) to run:
 * export const program = Effect.gen(function*() {
 *   const jobId = yield* SendEmail.enqueue({ to: "a@example.com", subject: "hi" }, { delay: "1 minute" })
 *   yield* Effect.log(`enqueued job ${jobId}`)
 * })
 * ```
 *
 * @since 0.1.0
 */
import { Cause, Duration, Effect, type Exit, Result, Schedule, Schema } from "effect"
import { Cuckmq, type RateLimit, type RateLimitOptions } from "./Cuckmq.js"
import {
  type AwaitError,
  type EnqueueError,
  InvalidEnqueueOptions,
  type InvalidJobDefinition,
  InvalidPayload,
  JobRetryAfter,
  JobSnooze,
  type StorageError
} from "./CuckmqError.js"
import * as Attempts from "./internal/attempts.js"
import * as internal from "./internal/definition.js"
import * as Engine from "./internal/engine.js"
import * as TimeOption from "./internal/duration.js"
import * as Execute from "./internal/execute.js"
import * as Uniqueness from "./internal/uniqueness.js"
import * as Results from "./internal/results.js"
import type * as JobStore from "./JobStore.js"

/**
 * The key that marks a value as a job definition (see `isJobDefinition`).
 *
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: "~@cuckmq/effect/JobDefinition" = internal.TypeId

/**
 * What a handler learns about the job it runs.
 *
 * @since 0.1.0
 */
export interface JobMetadata {
  readonly jobId: string
  readonly definitionName: string
  /** The attempt being made, starting at 1. */
  readonly attempt: number
  /** The definition's `numAttempts` when the job was enqueued. */
  readonly maxAttempts: number
  readonly channel: string
  /** The job's named group, or `undefined` when it is in its own group. */
  readonly jobGroup: string | undefined
  /** The job's priority (higher is claimed first), as enqueued. */
  readonly priority: number
  readonly enqueuedAt: Date
  /** When the job became available (after its delay or retry timeout). */
  readonly runAt: Date
  /** For a repeating job: the due time it was enqueued for. */
  readonly scheduledFor: Date | undefined
  readonly workerId: string
}

/**
 * Options of one enqueued job.
 *
 * @since 0.1.0
 */
export interface EnqueueOptions {
  /**
   * Do not run the job before this long from now (the preferred form): `"30 seconds"`, `Duration.minutes(5)`.
   * A plain number is milliseconds, as everywhere in Effect. At most 100 years; give it or `delaySecs`, not
   * both. Defaults to no delay.
   */
  readonly delay?: Duration.Input | undefined
  /** The seed's form of `delay`: do not run the job before this many seconds from now. Defaults to 0. */
  readonly delaySecs?: number | undefined
  /**
   * The job's group: at most the group's concurrency (1 unless set: no two jobs of one group at the same
   * time) of its jobs run at once, anywhere, and its rate limit applies. Defaults to the job's own group (it
   * runs concurrently with everything).
   */
  readonly jobGroup?: string | undefined
  /**
   * The job's priority, an integer in [-1000, 1000]: higher is claimed first, with aging (see the worker's
   * `priorityAging`), so a lower priority is delayed, never starved. Defaults to the definition's `priority`.
   */
  readonly priority?: number | undefined
  /**
   * This job's limit on one attempt's run time (stored with the job), instead of the definition's
   * `timeLimit`: `"5 minutes"`, `Duration.seconds(30)`; > 0, at most 100 years. Defaults to the definition's.
   */
  readonly timeLimit?: Duration.Input | undefined
}

/**
 * The uniqueness rule of a definition (`JobDefinition.make({ unique })`).
 *
 * An enqueue is a duplicate when the job that last took its key (same definition, same key) is in one of
 * `states` and, with a `period`, was enqueued less than `period` ago. A job that gave its key away (it ran
 * while `running` is not among the states, and a new job took the key) does not take it back when it is
 * retried: at most one waiting job holds a key at a time.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobDefinition } from "@cuckmq/effect"
 *
 * // one reindex per document waiting at a time; a new request while one waits pushes it back 10 s
 * export const Reindex = JobDefinition.make({
 *   name: "reindex",
 *   payload: Schema.Struct({ documentId: Schema.String }),
 *   unique: { key: ({ documentId }) => documentId, states: ["waiting"], onConflict: "debounce" },
 *   handler: ({ documentId }) => Effect.log(`reindexing ${documentId}`)
 * })
 *
 * export const documentChanged = (documentId: string) => Reindex.enqueue({ documentId }, { delay: "10 seconds" })
 * ```
 *
 * @since 0.2.0
 */
export interface UniqueOptions<A> {
  /** The job's key, from its payload: a non-empty string of at most 1,000 bytes in UTF-8. */
  readonly key: (payload: A) => string
  /**
   * With a period, only a job enqueued less than `period` ago holds its key (and a job finalized, then
   * deleted, still does until then); e.g. `period: "1 hour", states: ["waiting", "running", "succeeded"]`:
   * at most one successful run per key per hour. > 0. Defaults to none (a job holds its key while in one of
   * the states).
   */
  readonly period?: Duration.Input | undefined
  /**
   * The states in which a job holds its key: `"waiting"` (not claimed: due, delayed, retrying or held by
   * its group), `"running"`, `"succeeded"`, `"failed"` (finalized, while finalized jobs are kept: see
   * `jobPostFinalizeDeleteSecs`). Non-empty. Defaults to `["waiting", "running"]`, and with a `period` to
   * `["waiting", "running", "succeeded"]`.
   */
  readonly states?: ReadonlyArray<JobStore.UniqueState> | undefined
  /**
   * What a duplicate does: `"keep"` the existing job (nothing written), `"replace"` its payload, run time,
   * priority and time limit with the new job's, or `"debounce"`: move its run time to the new job's (now
   * plus the new delay), keeping its payload. `replace` and `debounce` change a waiting job only; a
   * duplicate of a running or finalized job keeps it. Defaults to `"keep"`.
   */
  readonly onConflict?: JobStore.UniqueConflict | undefined
}

/**
 * What an enqueue did (`enqueueWithOutcome`): `inserted` a new job, or met a duplicate (`id` is the existing
 * job's) and `kept` it unchanged, `replaced` it or `debounced` it (see `UniqueOptions`). Without a
 * uniqueness rule every job is `inserted`.
 *
 * @since 0.2.0
 */
export type EnqueueOutcome = JobStore.UniqueOutcome

/**
 * Options of `awaitResult` (and `enqueueAndAwait`).
 *
 * @since 0.2.0
 */
export interface AwaitOptions {
  /**
   * Fail with `JobResultTimeout` if the job has not finished within this long (the job is untouched).
   * Defaults to 1 minute.
   */
  readonly timeout?: Duration.Input | undefined
  /**
   * Re-read the job this often while no notification says it finished (the fallback of LISTEN/NOTIFY).
   * Defaults to 1 second.
   */
  readonly pollInterval?: Duration.Input | undefined
}

/**
 * One job for `enqueueMany`.
 *
 * @since 0.1.0
 */
export interface EnqueueItem<A> extends EnqueueOptions {
  readonly payload: A
}

/**
 * A job definition. `A` is the payload type, `E` and `R` the handler's error and requirements (the
 * requirements are provided by the app's Layers when the definition is registered with `Cuckmq.layer`), `O`
 * the type of the handler's value, its result (`make` infers it from the `success` Schema: `void` without
 * one; left out in a type, any result is accepted).
 *
 * @since 0.1.0
 */
export interface JobDefinition<in out A, out E = never, out R = never, out O = any> {
  readonly [TypeId]: typeof TypeId
  readonly name: string
  /** The payload Schema (stored as its JSON encoding). */
  readonly payload: Schema.Codec<A, any>
  readonly channel: string
  readonly numAttempts: number
  /** The retry delay and crashed-job lease in seconds, whichever form (`timeout` or `timeoutSecs`) gave it. */
  readonly timeoutSecs: number
  /** The repeat schedule: `Every` (in seconds, from `repeatEvery` or `repeatSecs`) or `Cron`. */
  readonly repeat: JobStore.Repeat | undefined
  /** The priority of the definition's jobs unless an enqueue gives one (0 unless set; higher is claimed first). */
  readonly priority: number
  /** The concurrency of every job group of the definition's jobs that has no concurrency of its own (1 unless set). */
  readonly groupConcurrency: number
  /** The rate limit of every job group of the definition's jobs that has no rate limit of its own. */
  readonly groupRateLimit: RateLimit | undefined
  /** The retry policy: the delays between attempts (undefined: `timeoutSecs` every time). */
  readonly retry: Schedule.Schedule<unknown, unknown> | undefined
  /** How many times a job may snooze; a snooze beyond fails the attempt (100 unless set). */
  readonly maxSnoozes: number
  /** The limit on one attempt's run time, unless an enqueue gives its own (undefined: none). */
  readonly timeLimit: Duration.Duration | undefined
  /** The uniqueness rule, as given (undefined: none). */
  readonly unique: UniqueOptions<A> | undefined
  /** The Schema of the handler's value, stored (encoded) with the succeeded job; undefined: nothing stored. */
  readonly success: Schema.Codec<O, any> | undefined
  /** Runs one attempt of a job: its decoded payload and what the worker knows about the job. */
  readonly handler: (payload: A, metadata: JobMetadata) => Effect.Effect<O, E, R>
  /**
   * Upserts the definition's metadata (channel, attempts, timeout, repeat, group limits) into the database. A definition
   * whose settings changed is updated; jobs already enqueued keep the settings they were enqueued with.
   */
  readonly deploy: Effect.Effect<void, InvalidJobDefinition | StorageError, Cuckmq>
  /**
   * Enqueues one job and returns its id. The payload is encoded with the Schema first (a bad payload fails
   * with `InvalidPayload`, nothing inserted). Inside `sql.withTransaction` it joins that transaction: a
   * rollback leaves no job.
   */
  readonly enqueue: (payload: A, options?: EnqueueOptions) => Effect.Effect<string, EnqueueError, Cuckmq>
  /**
   * Enqueues many jobs in one INSERT statement and returns their ids in input order. All-or-nothing: if one
   * payload or option is invalid, nothing is inserted.
   */
  readonly enqueueMany: (jobs: Iterable<EnqueueItem<A>>) => Effect.Effect<ReadonlyArray<string>, EnqueueError, Cuckmq>
  /**
   * Enqueues one job and says what happened: with a uniqueness rule, whether it was inserted or met a
   * duplicate (then `id` is the existing job's) and what it did to it. `enqueue` returns the same `id`.
   */
  readonly enqueueWithOutcome: (payload: A, options?: EnqueueOptions) => Effect.Effect<EnqueueOutcome, EnqueueError, Cuckmq>
  /** `enqueueWithOutcome` for many jobs (as `enqueueMany`), one outcome per job in input order. */
  readonly enqueueManyWithOutcome: (
    jobs: Iterable<EnqueueItem<A>>
  ) => Effect.Effect<ReadonlyArray<EnqueueOutcome>, EnqueueError, Cuckmq>
  /**
   * Waits for the job `jobId` of this definition to finish, from any process, and returns its result (the
   * handler's value decoded with the `success` Schema; `undefined` without one), or fails with the job's
   * end: `JobFailed` (its last error), `JobCancelled`, or `JobNotFound` (no such job of this definition, or
   * it was finalized and deleted since: see `jobPostFinalizeDelete`), or `JobResultTimeout` once
   * `timeout` passed. A job that finished before the call is answered at once. Woken by a notification
   * from the settling worker (PostgreSQL: LISTEN/NOTIFY), with a poll every `pollInterval` as a fallback.
   */
  readonly awaitResult: (jobId: string, options?: AwaitOptions) => Effect.Effect<O, AwaitError, Cuckmq>
  /** Enqueues one job (as `enqueue`), then waits for its result (as `awaitResult`). */
  readonly enqueueAndAwait: (
    payload: A,
    options?: EnqueueOptions & AwaitOptions
  ) => Effect.Effect<O, EnqueueError | AwaitError, Cuckmq>
}

/**
 * A definition of any payload, error and requirements.
 *
 * @since 0.1.0
 */
export type Any = JobDefinition<any, any, any, any>

/**
 * The requirements of a definition's handler.
 *
 * @since 0.1.0
 */
export type Requirements<D> = D extends JobDefinition<any, any, infer R> ? R : never

/**
 * The payload type of a definition.
 *
 * @since 0.1.0
 */
export type Payload<D> = D extends JobDefinition<infer A, any, any> ? A : never

/** Repeat options are only allowed where the payload is the empty struct (there is no one to supply one). */
type RepeatOptions<T> = [keyof T] extends [never] ? {
    /**
     * Enqueue a job this often (run by the Orchestrator), the preferred form: `"5 minutes"`,
     * `Duration.hours(1)`. A plain number is milliseconds. Give `repeatEvery`, `repeatSecs` or `cron`, only
     * one. (Not named `repeat`: that is the definition's resolved schedule, so `make({ ...definition })` works.)
     */
    readonly repeatEvery?: Duration.Input | undefined
    /** The seed's form of `repeatEvery`: enqueue a job every this many seconds (run by the Orchestrator). */
    readonly repeatSecs?: number | undefined
    /** Enqueue a job on this cron schedule (5 or 6 fields), run by the Orchestrator. */
    readonly cron?: string | undefined
    /** The IANA time zone of `cron`. Defaults to UTC. */
    readonly cronTimeZone?: string | undefined
  }
  : {
    readonly repeatEvery?: never
    readonly repeatSecs?: never
    readonly cron?: never
    readonly cronTimeZone?: never
  }

/**
 * Options of `make`.
 *
 * @since 0.1.0
 */
export type MakeOptions<S extends Schema.Top, E, R, O extends Schema.Top = Schema.Void> = {
  /** The definition's unique name (its identity in the database). */
  readonly name: string
  /** The payload Schema. Defaults to the empty struct. */
  readonly payload?: S
  /**
   * The Schema of the handler's value (its result): encoded to JSON and stored with the succeeded job, read
   * back by `awaitResult`. A value that does not encode (or is not storable JSON) fails the attempt with
   * `InvalidResult`, retried as any failure is. Defaults to none: the handler returns void, nothing is stored.
   */
  readonly success?: O | undefined
  /** Runs one job. Its failures (typed or defects) fail the attempt; they are reported, never thrown. */
  readonly handler: (payload: S["Type"], metadata: JobMetadata) => Effect.Effect<O["Type"], E, R>
  /** The channel the definition publishes on; workers take only their channels. Defaults to `"_default"`. */
  readonly channel?: string | undefined
  /** How many times a job is attempted before it is finalized as failed. Defaults to 1. */
  readonly numAttempts?: number | undefined
  /**
   * How long after a failed attempt the job is available again (the preferred form): `"30 seconds"`,
   * `Duration.minutes(5)`; a plain number is milliseconds. At most 100 years; give it or `timeoutSecs`, not
   * both. Defaults to 60 seconds.
   */
  readonly timeout?: Duration.Input | undefined
  /** The seed's form of `timeout`, in seconds. Defaults to 60. */
  readonly timeoutSecs?: number | undefined
  /**
   * The priority of the definition's jobs, an integer in [-1000, 1000]: higher is claimed first (with aging:
   * see the worker's `priorityAging`). An enqueue may give its own; repeating jobs (enqueued by the
   * Orchestrator) have it too. Defaults to 0.
   */
  readonly priority?: number | undefined
  /**
   * How many jobs of one job group (of this definition's jobs) may run at once, anywhere: an integer in
   * [1, 1,000,000]. A group's own setting (`Cuckmq.setGroupLimits`) wins; a group shared by definitions with
   * different settings gets the smallest. Defaults to 1 (a group is a mutex).
   */
  readonly groupConcurrency?: number | undefined
  /**
   * At most `limit` claims of one job group's jobs per fixed window of `period` (at least 1 ms, at most 1 day),
   * across every worker. A group's own setting (`Cuckmq.setGroupLimits`) wins. Defaults to none.
   */
  readonly groupRateLimit?: RateLimitOptions | undefined
  /**
   * The retry policy, an Effect `Schedule` of the delays between attempts, e.g.
   * `Schedule.exponential("1 second").pipe(Schedule.jittered)`, or capped:
   * `Schedule.min([Schedule.exponential("1 second"), Schedule.spaced("1 minute")])`. The delay before the
   * k-th retry is the k-th step's delay of the schedule run from its start, with the attempt's failure (the
   * typed error or the defect) as every step's input; the job's next run time is stored, the schedule never
   * is. Attempts stay bounded by `numAttempts`; a schedule that ends first stops the retries (the job is
   * finalized as failed). It must be pure (no services, never failing). A handler's
   * `JobDefinition.retryAfter` wins over it; a job taken back from a crashed worker is retried after
   * `timeout`. Defaults to none: every retry waits `timeout`.
   */
  readonly retry?: Schedule.Schedule<unknown, unknown> | undefined
  /**
   * How many times one job may snooze (`JobDefinition.snooze`: no attempt spent); a snooze beyond this
   * fails the attempt with `JobSnoozeLimitExceeded` (retried while attempts remain). An integer >= 0; 0
   * makes every snooze a failed attempt. Defaults to 100.
   */
  readonly maxSnoozes?: number | undefined
  /**
   * The limit on one attempt's run time: at the limit the handler's fiber is interrupted and the attempt
   * fails with `JobTimeLimitExceeded` (retried per the policy). Independent of the worker's lease: a slow
   * job is never taken away from a live worker. An enqueue may give its own (`EnqueueOptions.timeLimit`).
   * > 0, at most 100 years. Defaults to none.
   */
  readonly timeLimit?: Duration.Input | undefined
  /**
   * Unique jobs: a job whose key (a function of its payload) is taken by a job of this definition in one of
   * the given states is a duplicate, decided by the database (a unique index and a row lock per key, never a
   * check then an insert) in single, bulk and transactional enqueue, across processes. See `UniqueOptions`.
   * Defaults to none.
   */
  readonly unique?: UniqueOptions<S["Type"]> | undefined
} & RepeatOptions<S["Type"]>

/** The time options of definitions and enqueue, in their two forms (see internal/duration.ts). */
const timeoutSpec: TimeOption.Spec = { name: "timeout", secsName: "timeoutSecs", min: 0 }
const repeatSpec: TimeOption.Spec = { name: "repeatEvery", secsName: "repeatSecs", min: 0, minExclusive: true }
const delaySpec: TimeOption.Spec = { name: "delay", secsName: "delaySecs", min: 0 }

/**
 * Builds a job definition. Settings are checked when the definition is deployed or registered
 * (`InvalidJobDefinition`), not here, so that defining one never throws.
 *
 * `repeatEvery`, `repeatSecs` and `cron` type-check only when the payload is the empty struct (or omitted).
 * Time options take a `Duration.Input` (`timeout`, `repeatEvery`: preferred) or the seed's seconds (`timeoutSecs`,
 * `repeatSecs`); giving both forms of one option is an `InvalidJobDefinition` when it is deployed or registered.
 *
 * Flow control: `priority` (higher is claimed first), and the limits of the job groups of its jobs,
 * `groupConcurrency` and `groupRateLimit`, which apply to a group that has no limits of its own
 * (`Cuckmq.setGroupLimits`).
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobDefinition } from "@cuckmq/effect"
 *
 * // per tenant (the job group): at most 2 syncs at once and 10 per minute; ahead of priority-0 work
 * export const SyncTenant = JobDefinition.make({
 *   name: "sync-tenant",
 *   payload: Schema.Struct({ tenant: Schema.String }),
 *   priority: 5,
 *   groupConcurrency: 2,
 *   groupRateLimit: { limit: 10, period: "1 minute" },
 *   handler: ({ tenant }) => Effect.log(`syncing ${tenant}`)
 * })
 *
 * export const syncNow = (tenant: string) => SyncTenant.enqueue({ tenant }, { jobGroup: tenant, priority: 10 })
 * ```
 *
 * @since 0.1.0
 */
export const make = <
  S extends Schema.Top & { readonly DecodingServices: never; readonly EncodingServices: never } = Schema.Struct<{}>,
  E = never,
  R = never,
  O extends Schema.Top & { readonly DecodingServices: never; readonly EncodingServices: never } = Schema.Void
>(options: MakeOptions<S, E, R, O>): JobDefinition<S["Type"], E, R, O["Type"]> => {
  const payload = (options.payload ?? Schema.Struct({})) as unknown as Schema.Codec<S["Type"], any>
  const codec = Schema.toCodecJson(payload)
  const encode = Schema.encodeUnknownExit(codec) // synchronous: payload Schemas need no services
  // time options in either form resolve to seconds here; their problems are reported by validate (on deploy
  // or registration), so that making a definition never throws
  const timeout = TimeOption.resolve(timeoutSpec, options.timeout, options.timeoutSecs, internal.defaults.timeoutSecs)
  const every = options.repeatEvery !== undefined || options.repeatSecs !== undefined
    ? TimeOption.resolve(repeatSpec, options.repeatEvery, options.repeatSecs, 0)
    : undefined
  const problem = Result.isFailure(timeout)
    ? timeout.failure
    : every !== undefined && Result.isFailure(every)
    ? every.failure
    : undefined
  const repeat: JobStore.Repeat | undefined = options.cron !== undefined
    ? { _tag: "Cron", expression: options.cron, tz: options.cronTimeZone }
    : every !== undefined
    ? { _tag: "Every", secs: Result.isSuccess(every) ? every.success.secs : Number.NaN }
    : undefined
  // like the time options, a bad rate limit is reported by validate; the public field keeps what was given
  const groupRateLimit = options.groupRateLimit === undefined
    ? undefined
    : internal.resolveRateLimit("groupRateLimit", options.groupRateLimit)
  // the attempt options: like the others, checked here and reported by validate
  const timeLimit = options.timeLimit === undefined
    ? undefined
    : TimeOption.resolve(Attempts.timeLimitSpec, options.timeLimit, undefined, 0)
  const maxSnoozes = options.maxSnoozes ?? Attempts.defaultMaxSnoozes
  const attemptProblem = timeLimit !== undefined && Result.isFailure(timeLimit)
    ? timeLimit.failure
    : Attempts.checkMaxSnoozes(maxSnoozes) ??
      (options.retry !== undefined && !Schedule.isSchedule(options.retry)
        ? `retry must be a Schedule (e.g. Schedule.exponential("1 second")), got ${String(options.retry)}`
        : undefined)
  const timeLimitSecs = timeLimit !== undefined && Result.isSuccess(timeLimit) ? timeLimit.success.secs : undefined
  const uniqueRule = options.unique === undefined
    ? undefined
    : repeat !== undefined
    ? Result.fail(
      "unique cannot be combined with repeatEvery, repeatSecs or cron: a repeating definition's jobs are enqueued " +
        "once per due time already"
    )
    : Uniqueness.resolve(options.unique)
  // a rule that cannot be used refuses every enqueue (and the deploy) rather than enqueue without it
  const uniqueOf: Uniqueness.UniqueOf<S["Type"]> | string | undefined = uniqueRule === undefined
    ? undefined
    : Result.isFailure(uniqueRule)
    ? uniqueRule.failure
    : { rule: uniqueRule.success, key: options.unique!.key }
  const success = options.success as unknown as Schema.Codec<O["Type"], any> | undefined
  const resultCodec = success === undefined ? undefined : Schema.toCodecJson(success)
  const self: JobDefinition<S["Type"], E, R, O["Type"]> & internal.Internals = {
    [TypeId]: TypeId,
    name: options.name,
    payload,
    channel: options.channel ?? internal.defaults.channel,
    numAttempts: options.numAttempts ?? internal.defaults.numAttempts,
    timeoutSecs: Result.isSuccess(timeout) ? timeout.success.secs : Number.NaN,
    repeat,
    priority: options.priority ?? internal.defaults.priority,
    groupConcurrency: options.groupConcurrency ?? internal.defaults.groupConcurrency,
    groupRateLimit: groupRateLimit === undefined || options.groupRateLimit === undefined
      ? undefined
      : {
        limit: options.groupRateLimit.limit,
        period: Result.isSuccess(groupRateLimit)
          ? Duration.seconds(groupRateLimit.success.periodSecs)
          : Duration.zero // never deployed: validate reports the problem
      },
    retry: options.retry,
    maxSnoozes,
    timeLimit: timeLimitSecs === undefined ? undefined : Duration.seconds(timeLimitSecs),
    unique: options.unique,
    success,
    handler: options.handler,
    [internal.InternalsId]: {
      decode: Schema.decodeUnknownExit(codec),
      encodeResult: resultCodec === undefined ? undefined : Schema.encodeUnknownExit(resultCodec),
      decodeResult: resultCodec === undefined ? undefined : Schema.decodeUnknownExit(resultCodec),
      repeatSecsAndCronBoth: options.cron !== undefined && every !== undefined,
      timeProblem: problem,
      groupRateLimit,
      timeLimitSecs,
      attemptProblem: attemptProblem ?? (uniqueRule !== undefined && Result.isFailure(uniqueRule) ? uniqueRule.failure : undefined)
    },
    get deploy() {
      return deploy(self)
    },
    enqueue: (payload, enqueueOptions) =>
      Effect.map(enqueueItems(self, encode, uniqueOf, [{ payload, ...enqueueOptions }]), (outcomes) => outcomes[0]!.id),
    enqueueMany: (jobs) =>
      Effect.map(enqueueItems(self, encode, uniqueOf, Array.from(jobs)), (outcomes) => outcomes.map((o) => o.id)),
    enqueueWithOutcome: (payload, enqueueOptions) =>
      Effect.map(enqueueItems(self, encode, uniqueOf, [{ payload, ...enqueueOptions }]), (outcomes) => outcomes[0]!),
    enqueueManyWithOutcome: (jobs) => enqueueItems(self, encode, uniqueOf, Array.from(jobs)),
    awaitResult: (jobId, awaitOptions) =>
      Effect.gen(function*() {
        const cuckmq = yield* Cuckmq
        return (yield* Results.awaitResult(Engine.get(cuckmq), self, jobId, awaitOptions)) as O["Type"]
      }),
    enqueueAndAwait: (payload, options) =>
      Effect.flatMap(
        Effect.map(enqueueItems(self, encode, uniqueOf, [{ payload, ...options }]), (outcomes) => outcomes[0]!.id),
        (jobId) => self.awaitResult(jobId, options)
      )
  }
  return self
}

/** `definition.deploy`, in a `cuckmq.deploy` span. */
const deploy = Effect.fn("cuckmq.deploy")(function*(definition: Any) {
  yield* Effect.annotateCurrentSpan("cuckmq.definition", definition.name)
  const cuckmq = Engine.get(yield* Cuckmq)
  const record = yield* internal.validate(definition)
  const [result] = yield* cuckmq.store.deploy([record], internal.firstDue)
  cuckmq.publish(() => ({
    _tag: "JOB_DEFINITION_DEPLOY",
    timestamp: new Date(),
    definitionName: definition.name,
    changed: result?.changed ?? false
  }))
})

const insertItems = <A>(
  definition: JobDefinition<A, any, any>,
  encode: (u: unknown) => Exit.Exit<unknown, Schema.SchemaError>,
  unique: Uniqueness.UniqueOf<A> | string | undefined,
  items: ReadonlyArray<EnqueueItem<A>>,
  traced: boolean
): Effect.Effect<ReadonlyArray<EnqueueOutcome>, EnqueueError, Cuckmq> =>
  Effect.gen(function*() {
    const cuckmq = Engine.get(yield* Cuckmq)
    const parent = traced ? yield* Effect.option(Effect.currentSpan) : undefined
    const traceId = parent?._tag === "Some" ? parent.value.traceId : undefined
    const spanId = parent?._tag === "Some" ? parent.value.spanId : undefined
    if (typeof unique === "string") {
      return yield* new InvalidEnqueueOptions({
        definitionName: definition.name,
        message: `Job definition ${JSON.stringify(definition.name)} has a unique rule that cannot be used: ${unique}`
      })
    }
    const jobs: Array<JobStore.NewJob> = []
    const keys: Array<string> = []
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!
      const where = items.length > 1 ? ` (job ${i})` : ""
      let delaySecs = 0
      if (item.delay !== undefined || item.delaySecs !== undefined) {
        const delay = TimeOption.resolve(delaySpec, item.delay, item.delaySecs, 0)
        if (Result.isFailure(delay)) {
          return yield* new InvalidEnqueueOptions({ definitionName: definition.name, message: `${delay.failure}${where}` })
        }
        delaySecs = delay.success.secs
      }
      let timeLimitSecs: number | undefined
      if (item.timeLimit !== undefined) {
        const limit = TimeOption.resolve(Attempts.timeLimitSpec, item.timeLimit, undefined, 0)
        if (Result.isFailure(limit)) {
          return yield* new InvalidEnqueueOptions({ definitionName: definition.name, message: `${limit.failure}${where}` })
        }
        timeLimitSecs = limit.success.secs
      }
      const badPriority = item.priority === undefined ? undefined : internal.checkPriority("priority", item.priority)
      if (badPriority !== undefined) {
        return yield* new InvalidEnqueueOptions({ definitionName: definition.name, message: `${badPriority}${where}` })
      }
      const badGroup = item.jobGroup === undefined
        ? undefined
        : internal.checkName("jobGroup", item.jobGroup, internal.maxGroupLength)
      if (badGroup !== undefined) {
        return yield* new InvalidEnqueueOptions({
          definitionName: definition.name,
          message: `${badGroup}, when given${where}`
        })
      }
      const invalidPayload = (detail: string | undefined) =>
        new InvalidPayload({
          definitionName: definition.name,
          message: `Invalid payload for job definition ${JSON.stringify(definition.name)}${where}: ${detail}`
        })
      const encoded = encode(item.payload)
      if (encoded._tag === "Failure") {
        return yield* invalidPayload((Cause.squash(encoded.cause) as { message?: string }).message)
      }
      const json = internal.payloadJson(encoded.value)
      if (Result.isFailure(json)) return yield* invalidPayload(json.failure)
      if (unique !== undefined) {
        const key = Uniqueness.keyOf(unique, item.payload)
        if (Result.isFailure(key)) {
          return yield* new InvalidEnqueueOptions({ definitionName: definition.name, message: `${key.failure}${where}` })
        }
        keys.push(key.success)
      }
      jobs.push({
        payloadJson: json.success,
        delaySecs,
        priority: item.priority ?? definition.priority,
        jobGroup: item.jobGroup,
        traceId,
        spanId,
        ...(timeLimitSecs !== undefined ? { timeLimitSecs } : {})
      })
    }
    /** After the commit: the metric and an event per inserted job (`indices[i]`: its job in `jobs`). */
    const announce = (ids: ReadonlyArray<string>, indices?: ReadonlyArray<number>) =>
      Effect.sync(() => {
        cuckmq.metrics.enqueued(definition.name, ids.length)
        if (!cuckmq.hasSubscribers()) return
        const timestamp = new Date()
        for (let i = 0; i < ids.length; i++) {
          const job = jobs[indices === undefined ? i : indices[i]!]!
          cuckmq.publish(() => ({
            _tag: "JOB_DEFINITION_JOB_ENQUEUE",
            timestamp,
            jobId: ids[i]!,
            definitionName: definition.name,
            jobGroup: job.jobGroup,
            delaySecs: job.delaySecs
          }))
        }
      })
    if (unique !== undefined) {
      return yield* cuckmq.store.enqueueUnique(
        definition.name,
        unique.rule,
        jobs,
        keys,
        (ids, _channel, indices) => announce(ids, indices)
      )
    }
    const ids = yield* cuckmq.store.enqueue(definition.name, jobs, (ids) => announce(ids), cuckmq.localClaim)
    return ids.map((id): EnqueueOutcome => ({ id, outcome: "inserted" }))
  })

/** `insertItems` in a `cuckmq.enqueue` span: the span that job runs link to. */
const tracedInsert = Effect.fn("cuckmq.enqueue", { kind: "producer" })(function*<A>(
  definition: JobDefinition<A, any, any>,
  encode: (u: unknown) => Exit.Exit<unknown, Schema.SchemaError>,
  unique: Uniqueness.UniqueOf<A> | string | undefined,
  items: ReadonlyArray<EnqueueItem<A>>
): Effect.fn.Return<ReadonlyArray<EnqueueOutcome>, EnqueueError, Cuckmq> {
  yield* Effect.annotateCurrentSpan({ "cuckmq.definition": definition.name, "cuckmq.jobs": items.length })
  return yield* insertItems(definition, encode, unique, items, true)
})

/**
 * Enqueue (one job or many) in a `cuckmq.enqueue` span when a tracing backend is installed; without one the
 * span is skipped, as enqueue is a hot path and Effect's in-memory native tracer has no reader.
 */
const enqueueItems = <A>(
  definition: JobDefinition<A, any, any>,
  encode: (u: unknown) => Exit.Exit<unknown, Schema.SchemaError>,
  unique: Uniqueness.UniqueOf<A> | string | undefined,
  items: ReadonlyArray<EnqueueItem<A>>
): Effect.Effect<ReadonlyArray<EnqueueOutcome>, EnqueueError, Cuckmq> =>
  Effect.flatMap(Execute.isTraced, (traced) =>
    traced
      ? tracedInsert(definition, encode, unique, items)
      : insertItems(definition, encode, unique, items, false))

/**
 * Returns true when `u` is a job definition.
 *
 * @since 0.1.0
 */
export const isJobDefinition = (u: unknown): u is Any => typeof u === "object" && u !== null && TypeId in u

/**
 * Fails a handler's attempt with "not now, run me again in `delay`" (a {@link JobSnooze}): the job goes back
 * to the queue without spending an attempt, to run again `delay` after the attempt ended, and its snooze
 * counter grows (`WORKER_JOB_SNOOZE` event, `cuckmq_jobs_snoozed_total` metric). Beyond the definition's
 * `maxSnoozes` the snooze fails the attempt with `JobSnoozeLimitExceeded` instead. `delay` is a
 * `Duration.Input` >= 0 (at most 100 years); an invalid one is a defect of the attempt (a failed attempt).
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { JobDefinition } from "@cuckmq/effect"
 *
 * const isReady = (_id: string) => Effect.succeed(false)
 * export const Publish = JobDefinition.make({
 *   name: "publish-when-ready",
 *   payload: Schema.Struct({ id: Schema.String }),
 *   handler: ({ id }) =>
 *     Effect.gen(function*() {
 *       if (!(yield* isReady(id))) return yield* JobDefinition.snooze("30 seconds")
 *       yield* Effect.log(`publishing ${id}`)
 *     })
 * })
 * ```
 *
 * @since 0.2.0
 */
export const snooze = (delay: Duration.Input): Effect.Effect<never, JobSnooze> =>
  Effect.suspend(() => {
    const secs = Attempts.delaySecs("snooze delay", delay)
    return Result.isSuccess(secs)
      ? Effect.fail(new JobSnooze({ delaySecs: secs.success, message: `snoozed for ${Duration.format(Duration.seconds(secs.success))}` }))
      : Effect.die(new Error(secs.failure))
  })

/**
 * Fails a handler's attempt and chooses when the retry runs (a {@link JobRetryAfter}): `delay` after the
 * attempt ended, instead of the definition's `retry` policy or `timeout`. The attempt is spent: with none
 * left the job is finalized as failed. `delay` is a `Duration.Input` >= 0 (at most 100 years); an invalid
 * one is a defect of the attempt (retried per the policy). `message` is recorded as the attempt's error.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { JobDefinition } from "@cuckmq/effect"
 *
 * // a rate-limited API said "Retry-After: 120"
 * export const backOff = (retryAfterSecs: number) => JobDefinition.retryAfter(`${retryAfterSecs} seconds`, "HTTP 429")
 * ```
 *
 * @since 0.2.0
 */
export const retryAfter = (delay: Duration.Input, message?: string): Effect.Effect<never, JobRetryAfter> =>
  Effect.suspend(() => {
    const secs = Attempts.delaySecs("retryAfter delay", delay)
    return Result.isSuccess(secs)
      ? Effect.fail(
        new JobRetryAfter({
          delaySecs: secs.success,
          message: message ?? `retry after ${Duration.format(Duration.seconds(secs.success))}`
        })
      )
      : Effect.die(new Error(secs.failure))
  })
