/**
 * The engine's view of a cuckmq context: the storage backend, event publishing, metrics, the handlers'
 * services and the in-process fast path. Workers, orchestrators and enqueue need these; users do not, so
 * they are not part of the public `Cuckmq` service shape.
 *
 * How it is reached: the public service carries the engine under `EngineId`, a symbol that the package
 * does not export (only this internal module names it). So every layer that provides `Cuckmq` provides the
 * engine with it (they are built together and can never disagree), the public requirement types stay
 * `Cuckmq` (a `Worker.layer` requires `Cuckmq`, not an internal tag), and the engine's shape can change in
 * any release without changing the public API.
 */
import { Context, Effect } from "effect"
import type { Settings } from "../Cuckmq.js"
import type * as JobDefinition from "../JobDefinition.js"
import type { JobStore, LocalClaim, LocalReservation } from "../JobStore.js"
import type * as Events from "./events.js"
import type * as Metrics from "./metrics.js"
import type * as Outcomes from "./outcomes.js"

/** The key of the engine on the public service. Not exported by the package. */
export const EngineId: unique symbol = Symbol.for("@cuckmq/effect/internal/Engine")

/** A definition as registered in a context, with its decode-and-run. */
export interface Registered {
  readonly definition: JobDefinition.Any
  /**
   * Decodes the stored payload (failing with `PayloadDecodeError`), runs the handler and encodes its value
   * with the definition's `success` Schema (failing with `InvalidResult`; undefined without a Schema). The
   * handler's services are not provided here: run it with `withHandlerServices` (workers do that once per fiber).
   */
  readonly run: (job: { readonly id: string; readonly payload: unknown }, metadata: JobDefinition.JobMetadata) => Effect.Effect<unknown, unknown>
}

/** A worker of this process as the in-process fast path sees it. */
export interface LocalWorker {
  readonly channels: ReadonlySet<string>
  /** Reserves a free slot now, if the worker has one and holds a live lease. */
  readonly reserve: () => LocalReservation | undefined
}

/** The engine. */
export interface Engine {
  readonly schema: string
  readonly settings: Settings
  /** The definitions this process knows, by name, with their decode-and-run. */
  readonly definitions: ReadonlyMap<string, Registered>
  /** The storage backend. */
  readonly store: JobStore["Service"]
  /**
   * Publishes an event whose plain fields `make` returns; `make` is only called, and the event class instance
   * only built from its fields, when someone is subscribed.
   */
  readonly publish: (make: () => Events.EventFields) => void
  /** Whether anyone is subscribed to events (so that hot paths can skip building them). */
  readonly hasSubscribers: () => boolean
  /** Metric updates (see `CuckmqMetrics`), synchronous for the hot paths; attempts' outcomes also go to `outcomes`. */
  readonly metrics: Metrics.Recorder
  /**
   * This process's outcome counters for `CuckmqAdmin`'s statistics: counted by `metrics` (attempts) and by
   * the rescue (jobs it finalizes), flushed through the store by the context layer (and by `flush`).
   */
  readonly outcomes: Outcomes.Outcomes
  /**
   * The services the definitions' handlers require, captured when the layer was built, merged under
   * `context` (whose own services win).
   */
  readonly handlerContext: (context: Context.Context<never>) => Context.Context<never>
  /** The in-process fast path: idle local workers take jobs enqueued here in the INSERT itself. */
  readonly localClaim: LocalClaim
  /** Makes a worker of this process available to the fast path; returns its removal. */
  readonly addLocalWorker: (worker: LocalWorker) => () => void
}

/** Anything that carries an engine (the `Cuckmq` service). */
export interface HasEngine {
  readonly [EngineId]: Engine
}

/** The engine of a context. */
export const get = (cuckmq: HasEngine): Engine => cuckmq[EngineId]

/** Provides the handlers' services (captured by the context layer) to an effect that runs handlers. */
export const withHandlerServices = <A, E, R>(
  engine: Engine,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.updateContext(effect, (current: Context.Context<any>) => engine.handlerContext(current) as Context.Context<any>)
