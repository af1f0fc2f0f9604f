/**
 * Orchestrators do the queue's maintenance: they enqueue repeating jobs when due, delete finalized jobs past
 * their retention and job groups no job refers to, and take back the jobs and group locks of dead workers.
 * Run one next to your workers, or several: every step takes its rows with `SKIP LOCKED` and repeating jobs
 * are scheduled in a transaction that moves the definition's due time, so nothing is done twice, and when
 * one orchestrator dies the others simply carry on (there is no leader to elect).
 *
 * @example
 * ```ts
 * const Daemons = Layer.mergeAll(Worker.layer(), Orchestrator.layer()).pipe(Layer.provide(CuckmqLive))
 * ```
 *
 * @since 0.1.0
 */
import { Duration, Effect, Layer } from "effect"
import { Cuckmq } from "./Cuckmq.js"
import { InvalidOptions, type StorageError } from "./CuckmqError.js"
import * as Definition from "./internal/definition.js"
import * as Maintenance from "./internal/maintenance.js"

/**
 * Options of an orchestrator.
 *
 * @since 0.1.0
 */
export interface Options {
  /**
   * Seconds between looks for due repeating jobs. The orchestrator also wakes up when the next known
   * definition is due, so a repeat shorter than this is still kept. Defaults to 5.
   */
  readonly jobSchedulePollSecs?: number | undefined
  /** Seconds between rescues of dead workers' jobs and group locks. Defaults to 5. */
  readonly rescueIntervalSecs?: number | undefined
  /** Seconds between retention passes (finalized jobs, unreferenced groups). Defaults to 60. */
  readonly cleanupIntervalSecs?: number | undefined
  /** Rows deleted per statement by a retention pass (each batch is its own short transaction). Defaults to 1000. */
  readonly deleteBatchSize?: number | undefined
}

/**
 * The defaults of every option.
 *
 * @since 0.1.0
 */
export const defaults = {
  jobSchedulePollSecs: 5,
  rescueIntervalSecs: 5,
  cleanupIntervalSecs: 60,
  deleteBatchSize: 1000
} as const

const scheduleBatch = 100

/** One scheduling pass; returns seconds until the next known definition is due (if any). */
const schedule = (cuckmq: Cuckmq["Service"], known: ReadonlySet<string>) =>
  Effect.gen(function*() {
    while (true) {
      const result = yield* cuckmq.store.scheduleDue(known, Definition.advance, scheduleBatch)
      const timestamp = new Date()
      for (const job of result.scheduled) {
        cuckmq.publish(() => ({
          _tag: "ORCHESTRATOR_JOB_SCHEDULE",
          timestamp,
          jobId: job.jobId,
          definitionName: job.definitionName,
          scheduledFor: job.scheduledFor
        }))
      }
      for (const name of result.orphans) {
        cuckmq.publish(() => ({ _tag: "ORCHESTRATOR_JOB_SCHEDULE_ORPHAN", timestamp, definitionName: name }))
      }
      if (result.scheduled.length < scheduleBatch) return result.nextDueInSecs
    }
  })

/** One retention pass: delete in bounded batches until nothing is left. */
const cleanup = (cuckmq: Cuckmq["Service"], batch: number): Effect.Effect<void, StorageError> =>
  Effect.gen(function*() {
    while (true) {
      const deleted = yield* cuckmq.store.deleteFinalized(cuckmq.settings.jobPostFinalizeDeleteSecs, batch)
      const timestamp = new Date()
      for (const job of deleted) {
        cuckmq.publish(() => ({ _tag: "ORCHESTRATOR_JOB_DELETE", timestamp, jobId: job.id, definitionName: job.name }))
      }
      if (deleted.length < batch) break
      yield* Effect.yieldNow
    }
    while (true) {
      const groups = yield* cuckmq.store.deleteUnreferencedGroups(batch)
      const timestamp = new Date()
      for (const jobGroup of groups) {
        cuckmq.publish(() => ({ _tag: "ORCHESTRATOR_JOB_GROUP_DELETE", timestamp, jobGroup }))
      }
      if (groups.length < batch) break
      yield* Effect.yieldNow
    }
  })

/** Repeats `step` forever, `every` seconds apart (or what `step` returns, if sooner), logging failures. */
const loop = <E>(
  name: string,
  everySecs: number,
  step: Effect.Effect<number | undefined | void, E>
): Effect.Effect<never> =>
  Effect.gen(function*() {
    while (true) {
      const result = yield* Effect.result(step)
      let wait = everySecs
      if (result._tag === "Failure") {
        yield* Effect.logWarning(`cuckmq: orchestrator ${name} failed; retrying`, result.failure)
      } else if (typeof result.success === "number") {
        wait = Math.min(everySecs, Math.max(0.01, result.success))
      }
      yield* Effect.sleep(Duration.seconds(wait))
    }
  }).pipe(Effect.annotateLogs({ cuckmq: "orchestrator", task: name }))

/**
 * An orchestrator as a Layer: its loops run in the layer's scope until it closes.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<never, InvalidOptions, Cuckmq> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const cuckmq = yield* Cuckmq
    const config = {
      jobSchedulePollSecs: options.jobSchedulePollSecs ?? defaults.jobSchedulePollSecs,
      rescueIntervalSecs: options.rescueIntervalSecs ?? defaults.rescueIntervalSecs,
      cleanupIntervalSecs: options.cleanupIntervalSecs ?? defaults.cleanupIntervalSecs,
      deleteBatchSize: options.deleteBatchSize ?? defaults.deleteBatchSize
    }
    const problems = Object.entries(config).filter(([key, value]) =>
      !(typeof value === "number" && Number.isFinite(value) && value > 0 &&
        (key !== "deleteBatchSize" || Number.isInteger(value)))
    )
    if (problems.length > 0) {
      return yield* new InvalidOptions({
        message: `Invalid orchestrator options: ${
          problems.map(([k, v]) => `${k} must be a number > 0${k === "deleteBatchSize" ? " (an integer)" : ""}, got ${String(v)}`)
            .join("; ")
        }`
      })
    }
    const known = new Set(
      Array.from(cuckmq.definitions.values()).filter((r) => r.definition.repeat !== undefined).map((r) => r.definition.name)
    )
    yield* Effect.forkScoped(loop("schedule", config.jobSchedulePollSecs, schedule(cuckmq, known)))
    yield* Effect.forkScoped(loop("rescue", config.rescueIntervalSecs, Maintenance.rescue(cuckmq).pipe(Effect.asVoid)))
    yield* Effect.forkScoped(loop("cleanup", config.cleanupIntervalSecs, cleanup(cuckmq, config.deleteBatchSize)))
  }))
