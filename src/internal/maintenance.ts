/**
 * Maintenance shared by workers and orchestrators: the rescue of dead workers' jobs and group slots, and
 * the loop shape every background task uses.
 *
 * Every worker and orchestrator runs the rescue loop; the store lets one call at a time do the work, at
 * most every half interval across all processes, so the cost does not grow with the number of workers.
 */
import { Cause, Clock, Duration, Effect, Schedule } from "effect"
import type { Engine } from "./engine.js"
import type { StorageError } from "../CuckmqError.js"

export const defaults = {
  /** Seconds between rescue attempts of one worker or orchestrator. */
  rescueIntervalSecs: 1,
  /**
   * Seconds a worker's liveness session must have been gone before it is declared dead. Its process stops
   * its jobs within `reacquireMs` (1.5 s) of the last moment its session was known alive, which is
   * before the moment it was found gone: this leaves a second of margin.
   */
  sessionGraceSecs: 2.5,
  /** Jobs (and group slots) per rescue. */
  rescueLimit: 1000,
  /** Groups looked at per promotion round. */
  promoteLimit: 100,
  /** A rescue never takes longer than this (a slow one must not pile up behind itself). */
  rescueTimeoutSecs: 30
} as const

/** One rescue; publishes JOB_RESCUE and JOB_GROUP_UNLOCK. Returns how much it did. */
export const rescue = (
  cuckmq: Engine,
  minIntervalSecs: number = defaults.rescueIntervalSecs / 2
): Effect.Effect<number, StorageError> =>
  Effect.flatMap(
    cuckmq.store.rescue({
      jobGroupUnlockSecs: cuckmq.settings.jobGroupUnlockSecs,
      sessionGraceSecs: defaults.sessionGraceSecs,
      limit: defaults.rescueLimit,
      minIntervalSecs
    }),
    ({ groups, jobs }) => Effect.map(Clock.currentTimeMillis, (now) => {
      const timestamp = new Date(now)
      for (const job of jobs) {
        // a job finalized by the rescue failed (its attempts are spent): counted for the admin's statistics
        if (job.finalized) cuckmq.outcomes.failed(job.definitionName, now)
        cuckmq.publish(() => ({
          _tag: "JOB_RESCUE",
          timestamp,
          jobId: job.jobId,
          definitionName: job.definitionName,
          workerId: job.workerId,
          finalized: job.finalized
        }))
      }
      for (const group of groups) {
        cuckmq.publish(() => ({
          _tag: "JOB_GROUP_UNLOCK",
          timestamp,
          jobGroup: group.jobGroup,
          jobId: group.jobId,
          reason: group.reason
        }))
      }
      return jobs.length + groups.length
    })
  )

/**
 * Runs `step` forever, `everySecs` apart (from the end of one round to the start of the next: `Schedule.spaced`),
 * in a loop that survives anything: a failure or a defect of one round is logged and the loop carries on (a
 * defect of a maintenance step must never end it silently); only interruption stops it. A step that returns
 * a number of seconds is run again after at most that long, and at least 10 ms later (repeating jobs due
 * sooner than the poll). With `jitter`, each wait is spread over 80 % to 120 % of the interval
 * (`Schedule.jittered`), so that the processes started together do not do their rounds in step; a wait the
 * step asked for is kept exact.
 */
export const forever = <E>(
  task: string,
  everySecs: number,
  step: Effect.Effect<number | undefined | void, E>,
  options: { readonly jitter?: boolean | undefined } = {}
): Effect.Effect<never> => {
  const round: Effect.Effect<number | undefined | void> = Effect.catchCause(step, (cause) =>
    Cause.hasInterruptsOnly(cause)
      ? Effect.failCause(cause as Cause.Cause<never>)
      : Effect.as(Effect.logWarning(`cuckmq: ${task} failed; carrying on`, cause), undefined))
  const spaced = Schedule.spaced(Duration.seconds(everySecs))
  // the schedule's input is what the round returned: a number is the step asking to run sooner
  const schedule = (options.jitter ? Schedule.jittered(spaced) : spaced).pipe(
    Schedule.modifyDelay(({ duration, input }) =>
      Effect.succeed(
        typeof input === "number" ? Duration.seconds(Math.min(everySecs, Math.max(0.01, input))) : duration
      )
    )
  )
  return round.pipe(
    Effect.repeat(schedule),
    // a Schedule.spaced never ends: this is only reached if it did, and must not end the loop either
    Effect.andThen(Effect.never),
    Effect.annotateLogs({ cuckmq: "maintenance", task })
  )
}

/**
 * The rescue loop of one worker or orchestrator. Each round also promotes held jobs of groups that can take
 * them (`promoteGroups`): rate windows that ended while no worker was waiting for them, and the safety net
 * for a promotion lost with a process that died between an enqueue's commit and its promotion.
 */
export const rescueLoop = (cuckmq: Engine, everySecs: number): Effect.Effect<never> =>
  forever(
    "rescue",
    everySecs,
    rescue(cuckmq, everySecs / 2).pipe(
      Effect.andThen(cuckmq.store.promoteGroups(defaults.promoteLimit)),
      Effect.asVoid,
      Effect.timeoutOrElse({
        duration: Duration.seconds(defaults.rescueTimeoutSecs),
        orElse: () => Effect.logWarning("cuckmq: a rescue timed out")
      })
    ),
    { jitter: true }
  )
