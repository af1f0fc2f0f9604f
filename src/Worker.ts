/**
 * Workers claim jobs and run their handlers. A worker is a Layer: its scope owns supervised fibers
 * (producer, executor, completer, heartbeat) and closing the scope stops it gracefully. Run several in one
 * process and many processes on one database.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { NodeRuntime } from "@effect/platform-node"
 * import { type Cuckmq, Worker } from "@cuckmq/effect"
 *
 * declare const CuckmqLive: Layer.Layer<Cuckmq.Cuckmq> // Cuckmq.layer(...) with its PgClient
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
import { Effect, Layer } from "effect"
import { Cuckmq } from "./Cuckmq.js"
import { InvalidOptions } from "./CuckmqError.js"
import * as internal from "./internal/worker/index.js"

/**
 * Options of a worker.
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
   * Seconds between polls when no wake-up arrives. Wake-ups come by LISTEN/NOTIFY, so polling is the
   * fallback, and what makes delayed and retried jobs start once due. Defaults to 1.
   */
  readonly pollIntervalSecs?: number | undefined
  /** Seconds running jobs get to finish when the worker stops, before they are interrupted. Defaults to 15. */
  readonly gracePeriodSecs?: number | undefined
  /** Seconds between heartbeats. Defaults to 5. */
  readonly heartbeatSecs?: number | undefined
  /**
   * Seconds a heartbeat keeps the worker alive. A worker whose lease expires is dead to the others: the
   * orchestrator takes back its jobs and group locks. A worker that cannot renew its lease in time interrupts
   * its own jobs first, so no job ever runs twice at once. Defaults to 20 (must exceed twice `heartbeatSecs`).
   */
  readonly leaseSecs?: number | undefined
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
  leaseSecs: 20
} as const

const positive = (name: string, value: unknown, min: number, integer = false) =>
  typeof value === "number" && Number.isFinite(value) && value >= min && (!integer || Number.isInteger(value))
    ? undefined
    : `${name} must be ${integer ? "an integer" : "a number"} >= ${min}, got ${String(value)}`

/** Resolves and checks options against the context. */
const resolve = (options: Options, cuckmq: Cuckmq["Service"]) =>
  Effect.gen(function*() {
    const config: internal.Config = {
      name: options.name ?? defaults.name,
      channels: options.channels ?? Array.from(new Set(Array.from(cuckmq.definitions.values(), (r) => r.definition.channel))),
      concurrency: options.concurrency ?? defaults.concurrency,
      prefetch: options.prefetch ?? defaults.prefetch,
      pollIntervalSecs: options.pollIntervalSecs ?? defaults.pollIntervalSecs,
      gracePeriodSecs: options.gracePeriodSecs ?? defaults.gracePeriodSecs,
      heartbeatSecs: options.heartbeatSecs ?? defaults.heartbeatSecs,
      leaseSecs: options.leaseSecs ?? defaults.leaseSecs
    }
    const problems = [
      positive("concurrency", config.concurrency, 1, true),
      positive("prefetch", config.prefetch, 0, true),
      positive("pollIntervalSecs", config.pollIntervalSecs, 0.001),
      positive("gracePeriodSecs", config.gracePeriodSecs, 0),
      positive("heartbeatSecs", config.heartbeatSecs, 0.001),
      positive("leaseSecs", config.leaseSecs, 0.001),
      config.leaseSecs > 2 * config.heartbeatSecs ? undefined : "leaseSecs must exceed twice heartbeatSecs",
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
 * lets running jobs finish for `gracePeriodSecs`, interrupts the rest (which go back to the queue with no
 * attempt spent) and releases every lock it holds. Database failures never stop it: it logs them and retries
 * with backoff.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<never, InvalidOptions, Cuckmq> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const cuckmq = yield* Cuckmq
    const config = yield* resolve(options, cuckmq)
    yield* internal.run(cuckmq, config)
  }))
