/**
 * Attempt control: retry delays from a definition's `Schedule`, a handler's own retry delay or snooze, and
 * per-attempt time limits. Pure helpers, shared by the worker and the test backend (through execute.ts).
 *
 * Retry policy semantics: the delay before the k-th retry (after the k-th failed attempt) is the delay of the
 * k-th step of the schedule run from its start, each step given the current failure as input (the failure
 * that ended this attempt: the typed error, or the defect), and, as `now`, the end of this attempt plus the
 * delays of the steps before (as if the earlier retries had waited exactly their delays). The schedule is
 * never stored: it is replayed from its start at every failure, so it must be pure (no services, no
 * failure) and cheap to step `numAttempts` times. A schedule that ends before its k-th step stops the
 * retries: the job is finalized as failed though attempts remain.
 */
import { Duration, Effect, Exit, Pull, Result, Schedule } from "effect"
import { maxSecs } from "./definition.js"
import * as TimeOption from "./duration.js"

/** The schedule type a definition's `retry` takes: any output, the failure as input, pure. */
export type RetryPolicy = Schedule.Schedule<unknown, unknown, never, never>

/** The default bound on a job's snoozes (`maxSnoozes`). */
export const defaultMaxSnoozes = 100

/** The largest `maxSnoozes`. */
export const maxMaxSnoozes = 1_000_000_000

/** Clamps a delay in seconds to [0, 100 years] (NaN: 0). */
const clampSecs = (secs: number): number => (Number.isNaN(secs) ? 0 : Math.min(Math.max(secs, 0), maxSecs))

/**
 * The delay in seconds before retry `k` (k >= 1) of `policy`, given the failure `input` and the attempt's end
 * `now` (ms); `undefined` when the schedule ended before its k-th step; `"invalid"` when stepping it failed
 * otherwise (it needed services, went asynchronous, failed or died), so the caller falls back to the
 * definition's `timeout`.
 */
export const retryDelaySecs = (
  policy: RetryPolicy,
  k: number,
  input: unknown,
  now: number
): number | undefined | "invalid" => {
  const exit = Effect.runSyncExit(Effect.gen(function*() {
    const step = yield* Schedule.toStep(policy)
    let t = now
    let delayMs = 0
    for (let i = 0; i < k; i++) {
      const [, delay] = yield* step(t, input)
      delayMs = Duration.isFinite(delay) ? Duration.toMillis(delay) : Number.POSITIVE_INFINITY
      t += delayMs
    }
    return delayMs
  }))
  if (Exit.isSuccess(exit)) return clampSecs(exit.value / 1000)
  return Pull.isDoneCause(exit.cause) ? undefined : "invalid"
}

/** Resolves a handler's snooze or retry delay (a `Duration.Input`) to seconds, or explains why it cannot be. */
export const delaySecs = (name: string, delay: Duration.Input): Result.Result<number, string> =>
  Result.map(TimeOption.resolve({ name, secsName: `${name}Secs`, min: 0 }, delay, undefined, 0), (r) => r.secs)

/** The time limit spec: `timeLimit`, > 0, at most 100 years. */
export const timeLimitSpec: TimeOption.Spec = { name: "timeLimit", secsName: "timeLimitSecs", min: 0, minExclusive: true }

/** Checks `maxSnoozes`, or undefined when it is valid. */
export const checkMaxSnoozes = (value: unknown): string | undefined =>
  typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= maxMaxSnoozes
    ? undefined
    : `maxSnoozes must be an integer in [0, ${maxMaxSnoozes.toLocaleString("en-US")}] (0: a snooze always fails the attempt), got ${
      String(value)
    }`
