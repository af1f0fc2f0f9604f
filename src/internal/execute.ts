/**
 * Running one claimed job, shared by the worker and the test backend's `drain`: the handler (with the
 * attempt's time limit and the group-lock ceiling), the outcome it leads to (retry delays from the
 * definition's policy or the handler's `retryAfter`, snoozes and their bound: see attempts.ts), and the
 * events that report it.
 */
import { Cause, Duration, Effect, Exit, Option, Tracer } from "effect"
import { isJobRetryAfter, isJobSnooze, JobSnoozeLimitExceeded, JobTimeLimitExceeded } from "../CuckmqError.js"
import * as Attempts from "./attempts.js"
import { internals } from "./definition.js"
import type { Engine } from "./engine.js"
import type { JobMetadata } from "../JobDefinition.js"
import type * as JobStore from "../JobStore.js"

/** Why a worker interrupted a job itself (`cancelled`: its cancellation was requested). */
export type InterruptReason = "shutdown" | "lease-lost" | "cancelled"

const safeJson = (u: unknown): string => {
  try {
    return JSON.stringify(u) ?? String(u)
  } catch {
    return String(u)
  }
}

/** A string PostgreSQL's jsonb accepts: well-formed UTF-16 and no NUL characters. */
const clean = (text: string): string =>
  text
    .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD")
    .replace(/\u0000/g, "")

/** A failure as JSON, for the job row's `last_error` and the event. */
export const describeCause = (cause: Cause.Cause<unknown>): { readonly message: string; readonly json: unknown } => {
  const error = Cause.squash(cause)
  const message = error instanceof Error
    ? error.message || error.name
    : typeof error === "object" && error !== null && "message" in error
    ? String((error as { message: unknown }).message)
    : typeof error === "object" && error !== null
    ? safeJson(error)
    : String(error)
  const tag = typeof error === "object" && error !== null && "_tag" in error ? String((error as { _tag: unknown })._tag) : undefined
  return {
    message,
    json: {
      message: clean(message),
      ...(tag !== undefined ? { tag: clean(tag) } : {}),
      defect: Cause.hasDies(cause),
      pretty: clean(Cause.pretty(cause).slice(0, 4000))
    }
  }
}

/** What a handler learns about the job it runs. */
export const metadata = (job: JobStore.ClaimedJob, workerId: string): JobMetadata => ({
  jobId: job.id,
  definitionName: job.name,
  attempt: job.attempt,
  maxAttempts: job.maxAttempts,
  channel: job.channel,
  jobGroup: job.jobGroup,
  priority: job.priority,
  enqueuedAt: job.createdAt,
  runAt: job.runAt,
  scheduledFor: job.scheduledFor,
  workerId
})

/**
 * The margin before the `jobGroupUnlockSecs` ceiling at which a worker stops a job of a named group: at the
 * ceiling any rescue frees the group's slot, and the job must not still be running then.
 */
export const ceilingMarginSecs = (ceilingSecs: number): number => Math.min(60, Math.max(0.5, ceilingSecs * 0.1))

/** The ceiling stopped a job: it held its group's slot for nearly `jobGroupUnlockSecs`. */
export class GroupCeilingError extends Error {
  readonly _tag = "GroupCeilingError"
  constructor(jobGroup: string, ceilingSecs: number) {
    super(`the job held a slot of its group ${JSON.stringify(jobGroup)} for nearly jobGroupUnlockSecs ` +
      `(${ceilingSecs} s, counted from its claim) and was stopped`)
    this.name = "GroupCeilingError"
  }
}

/**
 * The job's handler (decode, then run). An attempt with a time limit (the job's own, given at enqueue, else
 * its definition's) is interrupted at the limit and fails with `JobTimeLimitExceeded`. A job of a named group
 * is stopped, as a failure, at `deadline` (a `Clock` time in ms): shortly before it would hold its group's
 * slot for `jobGroupUnlockSecs` counted from its claim, the point at which a rescue frees the slot.
 */
export const handler = (
  cuckmq: Engine,
  job: JobStore.ClaimedJob,
  workerId: string,
  traced: boolean,
  deadline: number | undefined,
  now: number
): Effect.Effect<unknown, unknown> => {
  const registered = cuckmq.definitions.get(job.name)!
  let run = registered.run(job, metadata(job, workerId))
  const limitSecs = job.timeLimitSecs ?? internals(registered.definition).timeLimitSecs
  if (limitSecs !== undefined) {
    run = Effect.timeoutOrElse(run, {
      duration: Duration.seconds(limitSecs),
      orElse: () =>
        Effect.fail(
          new JobTimeLimitExceeded({
            jobId: job.id,
            limitSecs,
            message: `the attempt ran past its time limit (${Duration.format(Duration.seconds(limitSecs))}) and was interrupted`
          })
        )
    })
  }
  if (deadline !== undefined) {
    const ceilingSecs = cuckmq.settings.jobGroupUnlockSecs
    run = Effect.timeoutOrElse(run, {
      duration: Duration.millis(Math.max(0, deadline - now)),
      orElse: () => Effect.die(new GroupCeilingError(job.jobGroup!, ceilingSecs))
    })
  }
  // Each run is the root of its own trace, linked to the span that enqueued the job. With no tracing backend
  // installed (the native tracer), nobody could see the span: skip it (it is a third of a job's CPU).
  if (!traced) return run
  return Effect.withSpan(run, `cuckmq.job ${job.name}`, {
    kind: "consumer",
    root: true,
    captureStackTrace: false,
    attributes: {
      "cuckmq.job.id": job.id,
      "cuckmq.definition": job.name,
      "cuckmq.attempt": job.attempt,
      "cuckmq.channel": job.channel,
      ...(job.jobGroup !== undefined ? { "cuckmq.job_group": job.jobGroup } : {}),
      "cuckmq.worker_id": workerId
    },
    links: job.traceId !== undefined && job.spanId !== undefined
      ? [{ span: Tracer.externalSpan({ traceId: job.traceId, spanId: job.spanId }), attributes: {} }]
      : []
  })
}

/** Whether spans are worth making: a tracing backend is installed (not Effect's in-memory native tracer). */
export const isTraced: Effect.Effect<boolean> = Effect.gen(function*() {
  return (yield* Tracer.Tracer) !== Tracer.nativeTracer
})

/** Publishes JOB_CANCEL for a claimed job its worker finalizes as cancelled (`running`: its handler had started). */
export const publishCancel = (cuckmq: Engine, job: JobStore.ClaimedJob, workerId: string, at: number, running: boolean) =>
  cuckmq.publish(() => ({
    _tag: "JOB_CANCEL",
    timestamp: new Date(at),
    jobId: job.id,
    definitionName: job.name,
    workerId,
    attempt: job.attempt,
    running
  }))

/** Records the queue wait and publishes WORKER_JOB_RUN. */
export const publishRun = (cuckmq: Engine, job: JobStore.ClaimedJob, workerId: string, at: number) => {
  cuckmq.metrics.waited(job.name, Math.max(0, at - job.runAt.getTime()) / 1000)
  cuckmq.publish(() => ({
    _tag: "WORKER_JOB_RUN",
    timestamp: new Date(at),
    jobId: job.id,
    definitionName: job.name,
    workerId,
    attempt: job.attempt
  }))
}

/**
 * Turns a handler's exit into the job's settlement and publishes the events that report it. `interrupted`
 * is set when the worker itself stopped the job (shutdown, lost lease): that is not the job's fault, so the
 * attempt is refunded.
 */
export const conclude = (
  cuckmq: Engine,
  job: JobStore.ClaimedJob,
  workerId: string,
  exit: Exit.Exit<unknown, unknown>,
  started: number,
  ended: number,
  interrupted: InterruptReason | undefined
): JobStore.Settlement => {
  const durationMs = ended - started
  // Its cancellation was requested and the worker interrupted it: finalized as cancelled (a handler that
  // ended by itself before the interruption reached it keeps its own outcome).
  if (interrupted === "cancelled" && Exit.isFailure(exit) && Cause.hasInterrupts(exit.cause)) {
    publishCancel(cuckmq, job, workerId, ended, true)
    return { id: job.id, claim: job.claim, outcome: "Cancelled" }
  }
  if (Exit.isSuccess(exit)) {
    cuckmq.metrics.succeeded(job.name, durationMs, ended)
    cuckmq.publish(() => ({
      _tag: "WORKER_JOB_RUN_SUCCESS",
      timestamp: new Date(ended),
      jobId: job.id,
      definitionName: job.name,
      workerId,
      attempt: job.attempt,
      durationMs
    }))
    return exit.value === undefined
      ? { id: job.id, claim: job.claim, outcome: "Succeeded" }
      : { id: job.id, claim: job.claim, outcome: "Succeeded", result: exit.value }
  }
  // Stopped by the worker itself (shutdown, lost lease): not the job's fault, whatever its finalizers did.
  if (interrupted !== undefined && Cause.hasInterrupts(exit.cause)) {
    cuckmq.publish(() => ({
      _tag: "WORKER_JOB_INTERRUPT",
      timestamp: new Date(ended),
      jobId: job.id,
      definitionName: job.name,
      workerId,
      attempt: job.attempt,
      reason: interrupted === "cancelled" ? "shutdown" : interrupted
    }))
    return { id: job.id, claim: job.claim, outcome: "Released" }
  }
  const definition = cuckmq.definitions.get(job.name)?.definition
  const failure = Option.getOrUndefined(Cause.findErrorOption(exit.cause))
  let cause: Cause.Cause<unknown> = exit.cause
  if (isJobSnooze(failure)) {
    const maxSnoozes = definition?.maxSnoozes ?? Attempts.defaultMaxSnoozes
    if (job.snoozes < maxSnoozes) {
      cuckmq.metrics.snoozed(job.name)
      cuckmq.publish(() => ({
        _tag: "WORKER_JOB_SNOOZE",
        timestamp: new Date(ended),
        jobId: job.id,
        definitionName: job.name,
        workerId,
        attempt: job.attempt,
        snoozes: job.snoozes + 1,
        delaySecs: failure.delaySecs,
        runAt: new Date(ended + failure.delaySecs * 1000),
        durationMs
      }))
      return { id: job.id, claim: job.claim, outcome: "Snooze", delaySecs: failure.delaySecs }
    }
    // beyond the bound: a failed attempt
    cause = Cause.fail(
      new JobSnoozeLimitExceeded({
        jobId: job.id,
        snoozes: job.snoozes,
        maxSnoozes,
        message: `the job snoozed ${job.snoozes} times already, its definition's maxSnoozes (${maxSnoozes}): ` +
          `this snooze fails the attempt`
      })
    )
  }
  const { json, message } = describeCause(cause)
  let willRetry = job.attempt < job.maxAttempts
  // the delay before the retry: the handler's own, else the definition's policy, else its timeout
  let delaySecs: number | undefined
  if (willRetry) {
    if (isJobRetryAfter(failure)) delaySecs = failure.delaySecs
    else if (definition?.retry !== undefined) {
      const policy = Attempts.retryDelaySecs(
        definition.retry as Attempts.RetryPolicy,
        job.attempt,
        Cause.squash(cause),
        ended
      )
      if (policy === undefined) willRetry = false // the schedule ended: no more retries
      else if (policy !== "invalid") delaySecs = policy
    }
  }
  cuckmq.metrics.failed(job.name, durationMs, !willRetry, ended)
  cuckmq.publish(() => ({
    _tag: "WORKER_JOB_RUN_ERROR",
    timestamp: new Date(ended),
    jobId: job.id,
    definitionName: job.name,
    workerId,
    attempt: job.attempt,
    error: Cause.squash(cause),
    message,
    willRetry,
    retryAt: willRetry ? new Date(ended + (delaySecs ?? job.timeoutSecs) * 1000) : undefined,
    durationMs
  }))
  if (!willRetry) {
    cuckmq.publish(() => ({
      _tag: "WORKER_JOB_EXPIRE",
      timestamp: new Date(ended),
      jobId: job.id,
      definitionName: job.name,
      workerId,
      attempts: job.attempt
    }))
  }
  return willRetry
    ? { id: job.id, claim: job.claim, outcome: "Retry", error: json, ...(delaySecs !== undefined ? { delaySecs } : {}) }
    : { id: job.id, claim: job.claim, outcome: "Expired", error: json }
}
