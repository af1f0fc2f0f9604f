/**
 * Orchestrators do the queue's maintenance: they enqueue repeating jobs when due, delete finalized jobs past
 * their retention and job groups no job refers to, and take back the jobs and group locks of dead workers.
 * Run one next to your workers, or several: every step takes its rows with `SKIP LOCKED` and repeating jobs
 * are scheduled in a transaction that moves the definition's due time, so nothing is done twice, and when
 * one orchestrator dies the others simply carry on (there is no leader to elect).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { type Cuckmq, Orchestrator, Worker } from "@cuckmq/effect"
 *
 * declare const CuckmqLive: Layer.Layer<Cuckmq.Cuckmq> // Cuckmq.layer(...) with its PgClient
 *
 * const Daemons = Layer.mergeAll(Worker.layer(), Orchestrator.layer()).pipe(Layer.provide(CuckmqLive))
 * ```
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
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
  /**
   * Seconds between rescues of dead workers' jobs and group slots (workers rescue too; across all processes
   * at most one rescue runs per half interval). Defaults to 1.
   */
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
  rescueIntervalSecs: 1,
  cleanupIntervalSecs: 60,
  deleteBatchSize: 1000
} as const

const scheduleBatch = 100

/**
 * One scheduling pass; returns seconds until the next known definition is due (if any). A due definition
 * this process does not know is reported once per due time (`seen` remembers), not on every pass.
 */
const schedule = (cuckmq: Cuckmq["Service"], known: ReadonlySet<string>, seen: Map<string, number>) =>
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
      for (const orphan of result.orphans) {
        if (seen.get(orphan.definitionName) === orphan.dueAt.getTime()) continue
        seen.set(orphan.definitionName, orphan.dueAt.getTime())
        cuckmq.publish(() => ({
          _tag: "ORCHESTRATOR_JOB_SCHEDULE_ORPHAN",
          timestamp,
          definitionName: orphan.definitionName
        }))
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

/**
 * An orchestrator as a Layer: its loops run in the layer's scope until it closes. Each loop survives any
 * failure or defect of a pass (logged), and carries on.
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
    const seen = new Map<string, number>()
    const annotate = Effect.annotateLogs({ cuckmq: "orchestrator" })
    yield* Effect.forkScoped(annotate(Maintenance.forever("schedule", config.jobSchedulePollSecs, schedule(cuckmq, known, seen))))
    yield* Effect.forkScoped(annotate(Maintenance.rescueLoop(cuckmq, config.rescueIntervalSecs)))
    yield* Effect.forkScoped(annotate(Maintenance.forever("cleanup", config.cleanupIntervalSecs, cleanup(cuckmq, config.deleteBatchSize))))
  }))
