/**
 * Waiting for a job's end (`JobDefinition.awaitResult`), on any backend.
 *
 * No lost wake-up: the waiter subscribes to the store's notices first (PostgreSQL: the LISTEN is in place when
 * the subscription returns), then marks the job awaited (so that its settlement notifies), then reads it. A
 * job that finished before any of this is found by the read; one that finishes after the read is announced.
 * Every `pollInterval` without a notice (or after a `Reset`: the listener reconnected), the job is read again,
 * so a lost notice (a settlement by an older worker, a rescue) delays the answer by a poll at most. The whole
 * wait is bounded by `timeout` (Effect's `Clock`: `TestClock` drives it in tests).
 */
import { Cause, Deferred, Duration, Effect, Option, Stream } from "effect"
import {
  type AwaitError,
  InvalidOptions,
  InvalidResult,
  JobCancelled,
  JobFailed,
  JobNotFound,
  JobResultTimeout
} from "../CuckmqError.js"
import type * as JobDefinition from "../JobDefinition.js"
import type * as JobStore from "../JobStore.js"
import { internals } from "./definition.js"
import type { Engine } from "./engine.js"

/** Defaults of `awaitResult`. */
export const defaults = { timeout: Duration.minutes(1), pollInterval: Duration.seconds(1) } as const

const durationOf = (name: string, input: Duration.Input | undefined, fallback: Duration.Duration) => {
  if (input === undefined) return Effect.succeed(fallback)
  const d = Duration.fromInput(input)
  return Option.isSome(d) && Duration.isFinite(d.value) && Duration.toMillis(d.value) >= 1
    ? Effect.succeed(d.value)
    : Effect.fail(new InvalidOptions({ message: `awaitResult: ${name} must be a finite Duration of at least 1 ms, got ${String(input)}` }))
}

/** The answer for a finalized job (or undefined while it is live). */
const answer = (
  definition: JobDefinition.Any,
  jobId: string,
  info: JobStore.JobInfo
): Effect.Effect<unknown, AwaitError> | undefined => {
  switch (info.state) {
    case "waiting":
    case "running":
      return undefined
    case "cancelled":
      return Effect.fail(new JobCancelled({ definitionName: info.name, jobId, message: `job ${jobId} (${info.name}) was cancelled` }))
    case "failed": {
      const error = info.lastError as { readonly message?: unknown } | undefined
      return Effect.fail(
        new JobFailed({
          definitionName: info.name,
          jobId,
          attempts: info.attempts,
          error: info.lastError,
          message: `job ${jobId} (${info.name}) failed after ${info.attempts} attempt(s)${
            typeof error?.message === "string" ? `: ${error.message}` : ""
          }`
        })
      )
    }
    case "succeeded": {
      const decode = internals(definition).decodeResult
      if (decode === undefined) return Effect.succeed(undefined)
      const decoded = decode(info.result)
      return decoded._tag === "Success" ? Effect.succeed(decoded.value) : Effect.fail(
        new InvalidResult({
          definitionName: info.name,
          jobId,
          message: `the stored result of job ${jobId} (${info.name}) does not decode with its success Schema: ${
            (Cause.squash(decoded.cause) as { message?: string }).message
          }`
        })
      )
    }
  }
}

export const awaitResult = (
  engine: Engine,
  definition: JobDefinition.Any,
  jobId: string,
  options: JobDefinition.AwaitOptions | undefined
): Effect.Effect<unknown, AwaitError> =>
  Effect.gen(function*() {
    const timeout = yield* durationOf("timeout", options?.timeout, defaults.timeout)
    const pollInterval = yield* durationOf("pollInterval", options?.pollInterval, defaults.pollInterval)
    const { store } = engine
    const notFound = (why: string) =>
      new JobNotFound({ jobId: String(jobId), message: `awaitResult: job ${String(jobId)} ${why}` })
    const wait = Effect.scoped(Effect.gen(function*() {
      // subscribe first: a notice sent from now on is seen
      const notices = yield* store.notices
      let signal = Deferred.makeUnsafe<void>()
      yield* Effect.forkScoped(Stream.runForEach(notices, (n) =>
        Effect.sync(() => {
          if (n._tag === "Reset" || (n._tag === "Finalized" && n.id === jobId)) Deferred.doneUnsafe(signal, Effect.void)
        })))
      yield* store.markAwaited(jobId)
      while (true) {
        const found = yield* store.getJob(jobId)
        if (Option.isNone(found)) {
          return yield* notFound("does not exist (never enqueued, or finalized and deleted since: see jobPostFinalizeDelete)")
        }
        if (found.value.name !== definition.name) {
          return yield* notFound(`is a job of ${JSON.stringify(found.value.name)}, not of ${JSON.stringify(definition.name)}`)
        }
        const done = answer(definition, jobId, found.value)
        if (done !== undefined) return yield* done
        yield* Effect.raceFirst(Deferred.await(signal), Effect.sleep(pollInterval))
        signal = Deferred.makeUnsafe<void>()
      }
    }))
    return yield* Effect.timeoutOrElse(wait, {
      duration: timeout,
      orElse: () =>
        Effect.fail(
          new JobResultTimeout({
            jobId: String(jobId),
            timeoutMs: Duration.toMillis(timeout),
            message: `awaitResult: job ${String(jobId)} had not finished after ${Duration.format(timeout)}`
          })
        )
    })
  })
