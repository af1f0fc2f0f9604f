/**
 * Workers claim jobs and run their handlers. A worker is a Layer: its scope owns supervised fibers
 * (producer, executor, completer, heartbeat) and closing the scope stops it gracefully. Run several in one
 * process and many processes on one database.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Redacted, Schema } from "effect"
 * import { NodeRuntime } from "@effect/platform-node"
 * import { PgClient } from "@effect/sql-pg"
 * import { Cuckmq, JobDefinition, Worker } from "@cuckmq/effect"
 *
 * const Ping = JobDefinition.make({ name: "ping", payload: Schema.String, handler: (message) => Effect.log(message) })
 * const CuckmqLive = Cuckmq.layer({ definitions: [Ping] }).pipe(
 *   Layer.provide(PgClient.layer({ url: Redacted.make(process.env.DATABASE_URL!) }))
 * )
 *
 * const Workers = Layer.mergeAll(
 *   Worker.layer({ concurrency: 20 }),
 *   Worker.layer({ name: "urgent", channels: ["urgent"], concurrency: 5 })
 * ).pipe(Layer.provide(CuckmqLive))
 *
 * Layer.launch(Workers).pipe(NodeRuntime.runMain) // SIGINT/SIGTERM: graceful stop
 * ```
 *
 * @since 0.1.0
 */
import { Config, type Duration, Effect, Layer } from "effect"
import { Cuckmq } from "./Cuckmq.js"
import { InvalidOptions } from "./CuckmqError.js"
import * as Engine from "./internal/engine.js"
import * as TimeOption from "./internal/duration.js"
import * as internal from "./internal/worker/index.js"

/**
 * Options of a worker. Each time option has two forms: a `Duration.Input` (`"500 millis"`,
 * `Duration.seconds(30)`: the preferred form; a plain number there is milliseconds, as everywhere in Effect)
 * and the seed's `...Secs` number of seconds. Give one form of an option, not both (`InvalidOptions`).
 *
 * @since 0.1.0
 */
export interface Options {
  /** A name for logs and the `worker` table. Defaults to `"worker"`. */
  readonly name?: string | undefined
  /** The channels to take jobs from. Defaults to every channel of the context's definitions. */
  readonly channels?: ReadonlyArray<string> | undefined
  /** Jobs run at once by this worker. Defaults to 10. */
  readonly concurrency?: number | undefined
  /**
   * At most this many jobs claimed ahead of free slots, so that the next claim's round trip overlaps the
   * jobs in hand. The buffer adapts to how long jobs take: it holds only the jobs expected to start within
   * 50 ms, so with slow jobs nothing is claimed ahead. Prefetched jobs are given back (no attempt spent) on
   * shutdown. 0 claims strictly for free slots. Defaults to 500.
   */
  readonly prefetch?: number | undefined
  /**
   * The time between polls when no wake-up arrives (at least 1 millisecond). Wake-ups come by LISTEN/NOTIFY,
   * so polling is the fallback, and what makes delayed and retried jobs start once due. Defaults to 1 second.
   */
  readonly pollInterval?: Duration.Input | undefined
  /** The seed's form of `pollInterval`, in seconds. Defaults to 1. */
  readonly pollIntervalSecs?: number | undefined
  /** The time running jobs get to finish when the worker stops, before they are interrupted. Defaults to 15 seconds. */
  readonly gracePeriod?: Duration.Input | undefined
  /** The seed's form of `gracePeriod`, in seconds. Defaults to 15. */
  readonly gracePeriodSecs?: number | undefined
  /** The time between heartbeats (at least 1 millisecond). Defaults to 5 seconds. */
  readonly heartbeat?: Duration.Input | undefined
  /** The seed's form of `heartbeat`, in seconds. Defaults to 5. */
  readonly heartbeatSecs?: number | undefined
  /**
   * How long a heartbeat keeps the worker alive. A worker whose lease expires is dead to the others: the
   * orchestrator takes back its jobs and group locks. A worker that cannot renew its lease in time interrupts
   * its own jobs first, so no job ever runs twice at once. Must exceed twice the heartbeat. Defaults to 20
   * seconds.
   */
  readonly lease?: Duration.Input | undefined
  /** The seed's form of `lease`, in seconds. Defaults to 20. */
  readonly leaseSecs?: number | undefined
  /**
   * What one priority level is worth in waiting time: this worker claims a job of priority p as if it had
   * waited p times this long more, so among due jobs a higher priority goes first unless a lower one has
   * waited longer than the difference times this, and no priority starves (a job of priority p is passed by
   * later work of priority q > p only while it has waited less than (q - p) times this). Must be > 0, at most
   * 1 year. Defaults to 1 minute.
   */
  readonly priorityAging?: Duration.Input | undefined
}

/**
 * The defaults of every option.
 *
 * @since 0.1.0
 */
export const defaults = {
  name: "worker",
  concurrency: 10,
  prefetch: 500,
  pollIntervalSecs: 1,
  gracePeriodSecs: 15,
  heartbeatSecs: 5,
  leaseSecs: 20,
  priorityAgingSecs: 60
} as const

/** The longest `priorityAging`: 1 year. */
const maxPriorityAgingSecs = 365.25 * 24 * 60 * 60

const positive = (name: string, value: unknown, min: number, integer = false) =>
  typeof value === "number" && Number.isFinite(value) && value >= min && (!integer || Number.isInteger(value))
    ? undefined
    : `${name} must be ${integer ? "an integer" : "a number"} >= ${min}, got ${String(value)}`

/** Resolves and checks options against the context. */
const resolve = (options: Options, cuckmq: Engine.Engine) =>
  Effect.gen(function*() {
    const times = TimeOption.resolveAll({
      pollInterval: {
        name: "pollInterval",
        secsName: "pollIntervalSecs",
        min: 0.001,
        duration: options.pollInterval,
        secs: options.pollIntervalSecs,
        fallback: defaults.pollIntervalSecs
      },
      gracePeriod: {
        name: "gracePeriod",
        secsName: "gracePeriodSecs",
        min: 0,
        duration: options.gracePeriod,
        secs: options.gracePeriodSecs,
        fallback: defaults.gracePeriodSecs
      },
      heartbeat: {
        name: "heartbeat",
        secsName: "heartbeatSecs",
        min: 0.001,
        duration: options.heartbeat,
        secs: options.heartbeatSecs,
        fallback: defaults.heartbeatSecs
      },
      lease: {
        name: "lease",
        secsName: "leaseSecs",
        min: 0.001,
        duration: options.lease,
        secs: options.leaseSecs,
        fallback: defaults.leaseSecs
      },
      priorityAging: {
        name: "priorityAging",
        secsName: "priorityAgingSecs",
        min: 0,
        minExclusive: true,
        // 1000 priority levels of a year each stay far inside PostgreSQL's timestamps
        max: maxPriorityAgingSecs,
        duration: options.priorityAging,
        secs: undefined,
        fallback: defaults.priorityAgingSecs
      }
    })
    const { heartbeat, lease } = times.values
    const config: internal.Config = {
      name: options.name ?? defaults.name,
      channels: options.channels ?? Array.from(new Set(Array.from(cuckmq.definitions.values(), (r) => r.definition.channel))),
      concurrency: options.concurrency ?? defaults.concurrency,
      prefetch: options.prefetch ?? defaults.prefetch,
      pollIntervalSecs: times.values.pollInterval?.secs ?? Number.NaN,
      gracePeriodSecs: times.values.gracePeriod?.secs ?? Number.NaN,
      heartbeatSecs: heartbeat?.secs ?? Number.NaN,
      leaseSecs: lease?.secs ?? Number.NaN,
      priorityAgingSecs: times.values.priorityAging?.secs ?? Number.NaN
    }
    const problems = [
      positive("concurrency", config.concurrency, 1, true),
      positive("prefetch", config.prefetch, 0, true),
      ...times.problems,
      heartbeat === undefined || lease === undefined || lease.secs > 2 * heartbeat.secs
        ? undefined
        : `${lease.name} (${lease.shown}) must exceed twice ${heartbeat.name} (${heartbeat.shown})`,
      config.channels.length > 0 && config.channels.every((c) => typeof c === "string" && c.length > 0)
        ? undefined
        : options.channels === undefined
        ? "the worker has no channel: register job definitions in Cuckmq.layer({ definitions }) or give channels"
        : "channels must be a non-empty list of non-empty strings",
      typeof config.name === "string" && config.name.length > 0 ? undefined : "name must be a non-empty string"
    ].filter((p) => p !== undefined)
    if (problems.length > 0) {
      return yield* new InvalidOptions({ message: `Invalid worker options: ${problems.join("; ")}` })
    }
    return config
  })

/**
 * A worker as a Layer. It starts when the layer is built and stops when its scope closes: it stops claiming,
 * lets running jobs finish for `gracePeriod`, interrupts the rest (which go back to the queue with no
 * attempt spent) and releases every lock it holds. Database failures never stop it: it logs them and retries
 * with backoff.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<never, InvalidOptions, Cuckmq> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const cuckmq = Engine.get(yield* Cuckmq)
    const config = yield* resolve(options, cuckmq)
    yield* internal.run(cuckmq, config)
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
 * import { Worker } from "@cuckmq/effect"
 *
 * const WorkerLive = Worker.layerConfig({
 *   concurrency: Config.Int("WORKER_CONCURRENCY").pipe(Config.withDefault(10)),
 *   gracePeriod: Config.Duration("WORKER_GRACE_PERIOD").pipe(Config.withDefault("15 seconds"))
 * })
 * ```
 *
 * @since 0.1.0
 */
export const layerConfig = (
  options: Config.Wrap<Options>
): Layer.Layer<never, InvalidOptions | Config.ConfigError, Cuckmq> =>
  Layer.unwrap(Effect.map(TimeOption.readConfig(options), layer))
