/**
 * Orchestrators do the queue's maintenance: they enqueue repeating jobs when due, delete finalized jobs past
 * their retention and job groups no job refers to, and take back the jobs and group locks of dead workers.
 * Run one next to your workers, or several: every step takes its rows with `SKIP LOCKED` and repeating jobs
 * are scheduled in a transaction that moves the definition's due time, so nothing is done twice, and when
 * one orchestrator dies the others simply carry on (there is no leader to elect).
 *
 * @example
 * ```ts
 * import { Effect, Layer, Redacted } from "effect"
 * import { PgClient } from "@effect/sql-pg"
 * import { Cuckmq, JobDefinition, Orchestrator, Worker } from "@cuckmq/effect"
 *
 * const Cleanup = JobDefinition.make({ name: "cleanup", repeatSecs: 3600, handler: () => Effect.log("cleaning up") })
 * const CuckmqLive = Cuckmq.layer({ definitions: [Cleanup] }).pipe(
 *   Layer.provide(PgClient.layer({ url: Redacted.make(process.env.DATABASE_URL!) }))
 * )
 *
 * const Daemons = Layer.mergeAll(Worker.layer(), Orchestrator.layer()).pipe(Layer.provide(CuckmqLive))
 * ```
 *
 * @since 0.1.0
 */
import { Config, type Duration, Effect, Layer } from "effect"
import { Cuckmq } from "./Cuckmq.js"
import { InvalidOptions, type StorageError } from "./CuckmqError.js"
import * as Definition from "./internal/definition.js"
import * as Engine from "./internal/engine.js"
import * as TimeOption from "./internal/duration.js"
import * as Maintenance from "./internal/maintenance.js"

/**
 * Options of an orchestrator. Each time option has two forms: a `Duration.Input` (`"5 seconds"`,
 * `Duration.minutes(1)`: the preferred form; a plain number there is milliseconds, as everywhere in Effect)
 * and the seed's `...Secs` number of seconds. Give one form of an option, not both (`InvalidOptions`).
 *
 * @since 0.1.0
 */
export interface Options {
  /**
   * The time between looks for due repeating jobs. The orchestrator also wakes up when the next known
   * definition is due, so a repeat shorter than this is still kept. Defaults to 5 seconds.
   */
  readonly jobSchedulePoll?: Duration.Input | undefined
  /** The seed's form of `jobSchedulePoll`, in seconds. Defaults to 5. */
  readonly jobSchedulePollSecs?: number | undefined
  /**
   * The time between rescues of dead workers' jobs and group slots (workers rescue too; across all processes
   * at most one rescue runs per half interval). Defaults to 1 second.
   */
  readonly rescueInterval?: Duration.Input | undefined
  /** The seed's form of `rescueInterval`, in seconds. Defaults to 1. */
  readonly rescueIntervalSecs?: number | undefined
  /** The time between retention passes (finalized jobs, unreferenced groups). Defaults to 60 seconds. */
  readonly cleanupInterval?: Duration.Input | undefined
  /** The seed's form of `cleanupInterval`, in seconds. Defaults to 60. */
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
const schedule = (cuckmq: Engine.Engine, known: ReadonlySet<string>, seen: Map<string, number>) =>
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
const cleanup = (cuckmq: Engine.Engine, batch: number): Effect.Effect<void, StorageError> =>
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
    while ((yield* cuckmq.store.deleteStaleUniqueKeys(batch)) >= batch) yield* Effect.yieldNow
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
    const cuckmq = Engine.get(yield* Cuckmq)
    const interval = (name: string, duration: Duration.Input | undefined, secs: number | undefined, fallback: number) => ({
      name,
      secsName: `${name}Secs`,
      min: 0,
      minExclusive: true,
      duration,
      secs,
      fallback
    })
    const times = TimeOption.resolveAll({
      jobSchedulePoll: interval(
        "jobSchedulePoll",
        options.jobSchedulePoll,
        options.jobSchedulePollSecs,
        defaults.jobSchedulePollSecs
      ),
      rescueInterval: interval("rescueInterval", options.rescueInterval, options.rescueIntervalSecs, defaults.rescueIntervalSecs),
      cleanupInterval: interval(
        "cleanupInterval",
        options.cleanupInterval,
        options.cleanupIntervalSecs,
        defaults.cleanupIntervalSecs
      )
    })
    const config = {
      jobSchedulePollSecs: times.values.jobSchedulePoll?.secs ?? Number.NaN,
      rescueIntervalSecs: times.values.rescueInterval?.secs ?? Number.NaN,
      cleanupIntervalSecs: times.values.cleanupInterval?.secs ?? Number.NaN,
      deleteBatchSize: options.deleteBatchSize ?? defaults.deleteBatchSize
    }
    const problems = [
      ...times.problems,
      typeof config.deleteBatchSize === "number" && Number.isInteger(config.deleteBatchSize) && config.deleteBatchSize > 0
        ? undefined
        : `deleteBatchSize must be an integer > 0, got ${String(config.deleteBatchSize)}`
    ].filter((p) => p !== undefined)
    if (problems.length > 0) {
      return yield* new InvalidOptions({ message: `Invalid orchestrator options: ${problems.join("; ")}` })
    }
    const known = new Set(
      Array.from(cuckmq.definitions.values()).filter((r) => r.definition.repeat !== undefined).map((r) => r.definition.name)
    )
    const seen = new Map<string, number>()
    const annotate = Effect.annotateLogs({ cuckmq: "orchestrator" })
    yield* Effect.forkScoped(annotate(Maintenance.forever("schedule", config.jobSchedulePollSecs, schedule(cuckmq, known, seen))))
    yield* Effect.forkScoped(annotate(Maintenance.rescueLoop(cuckmq, config.rescueIntervalSecs)))
    yield* Effect.forkScoped(
      annotate(Maintenance.forever("cleanup", config.cleanupIntervalSecs, cleanup(cuckmq, config.deleteBatchSize), { jitter: true }))
    )
  }))

/**
 * `layer` with its options read from `Config` (environment variables by default) when the layer is built:
 * each option as a `Config`, or all of them as one `Config` of `Options`. A missing or malformed value fails
 * the layer with a `ConfigError` naming the key; a value that reads but is out of bounds fails it with
 * `InvalidOptions`, as in `layer`. Use `Config.withDefault` for optional keys.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { Orchestrator } from "@cuckmq/effect"
 *
 * const OrchestratorLive = Orchestrator.layerConfig({
 *   jobSchedulePoll: Config.Duration("CUCKMQ_SCHEDULE_POLL").pipe(Config.withDefault("5 seconds"))
 * })
 * ```
 *
 * @since 0.1.0
 */
export const layerConfig = (
  options: Config.Wrap<Options>
): Layer.Layer<never, InvalidOptions | Config.ConfigError, Cuckmq> =>
  Layer.unwrap(Effect.map(TimeOption.readConfig(options), layer))
