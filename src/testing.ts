/**
 * Testing your jobs without a database (`@cuckmq/effect/testing`), in the spirit of Oban.Testing and
 * rivertest: the `Cuckmq` context on an in-memory store with the same semantics as PostgreSQL (the same
 * conformance suite runs against both), driven by Effect's `Clock`, so `TestClock` moves delays, retries
 * and repeating jobs without waiting.
 *
 * Two modes:
 * - `manual` (default): enqueued jobs wait. Assert what was enqueued with `enqueued`, then run what is due
 *   with `drain` (move the `TestClock` first for delayed and retried jobs).
 * - `inline`: a job runs as soon as it is enqueued, if it is due (a delayed job waits for `drain`).
 *
 * The real `Worker` and `Orchestrator` layers also run on this context, under `TestClock`.
 *
 * @example
 * ```ts
 * import { assert, it } from "@effect/vitest"
 * import { Effect, Schema } from "effect"
 * import { JobDefinition } from "@cuckmq/effect"
 * import { CuckmqTest } from "@cuckmq/effect/testing"
 *
 * const WelcomeEmail = JobDefinition.make({
 *   name: "welcome-email",
 *   payload: Schema.Struct({ email: Schema.String }),
 *   handler: ({ email }) => Effect.log(`welcome, ${email}`)
 * })
 * const signUp = (email: string) => WelcomeEmail.enqueue({ email }) // your code, which enqueues WelcomeEmail
 *
 * it.effect("sends a welcome email", () =>
 *   Effect.gen(function*() {
 *     yield* signUp("ada@example.com")
 *     const test = yield* CuckmqTest
 *     const [job] = yield* test.enqueued(WelcomeEmail)
 *     assert.deepStrictEqual(job?.payload, { email: "ada@example.com" })
 *     assert.deepStrictEqual(yield* test.drain, { succeeded: 1, retried: 0, failed: 0 })
 *   }).pipe(Effect.provide(CuckmqTest.layer({ definitions: [WelcomeEmail] }))))
 * ```
 *
 * @since 0.1.0
 */
import { randomUUID } from "node:crypto"
import { Clock, Context, Effect, Layer, Schema } from "effect"
import * as Cuckmq from "./Cuckmq.js"
import { InvalidPayload } from "./CuckmqError.js"
import * as internal from "./internal/definition.js"
import * as Engine from "./internal/engine.js"
import * as TimeOption from "./internal/duration.js"
import * as Execute from "./internal/execute.js"
import * as MemoryStore from "./internal/memory/store.js"
import type * as JobDefinition from "./JobDefinition.js"
import * as JobStore from "./JobStore.js"

/**
 * A waiting job as `enqueued` reports it, with its payload decoded.
 *
 * @since 0.1.0
 */
export interface EnqueuedJob<A> {
  readonly id: string
  readonly definitionName: string
  readonly payload: A
  readonly jobGroup: string | undefined
  readonly runAt: Date
  readonly attempts: number
}

/**
 * What one `drain` did.
 *
 * @since 0.1.0
 */
export interface DrainResult {
  /** Jobs whose handler succeeded. */
  readonly succeeded: number
  /**
   * Jobs that failed with attempts left (waiting again after their retry delay), or that snoozed (waiting
   * again after the snooze, no attempt spent).
   */
  readonly retried: number
  /** Jobs that failed their last attempt: finalized as failed. */
  readonly failed: number
}

/**
 * Options of the test layer: the context's options plus the mode.
 *
 * @since 0.1.0
 */
export interface Options<Defs extends ReadonlyArray<JobDefinition.Any>> extends Omit<Cuckmq.Options<Defs>, "migrate"> {
  /** `"manual"` (jobs wait for `drain`) or `"inline"` (a due job runs as it is enqueued). Defaults to `"manual"`. */
  readonly mode?: "manual" | "inline" | undefined
}

/**
 * The test service.
 *
 * @since 0.1.0
 */
export class CuckmqTest extends Context.Service<CuckmqTest, {
  readonly mode: "manual" | "inline"
  /** Waiting jobs, oldest first: all of them, or one definition's with typed payloads. */
  readonly enqueued: {
    <A>(definition: JobDefinition.JobDefinition<A, any, any>): Effect.Effect<ReadonlyArray<EnqueuedJob<A>>>
    (): Effect.Effect<ReadonlyArray<EnqueuedJob<unknown>>>
  }
  /**
   * Runs every job that is due now (by the `Clock`), one at a time, oldest first, as a worker would
   * (attempts, retries, group locks, events), until none is due. Handler failures are results, not errors.
   */
  readonly drain: Effect.Effect<DrainResult>
  /**
   * Runs a definition's handler once with `payload`, as a worker would (the payload goes through its JSON
   * encoding and back), without enqueueing anything. Fails with the handler's own error.
   */
  readonly perform: <A, E, R>(
    definition: JobDefinition.JobDefinition<A, E, R>,
    payload: A,
    metadata?: Partial<JobDefinition.JobMetadata>
  ) => Effect.Effect<void, E | InvalidPayload, R>
  /** Every job in the store: waiting, running and finalized. */
  readonly jobs: Effect.Effect<MemoryStore.MemorySnapshot>
}>()("cuckmq/CuckmqTest") {
  /**
   * The `Cuckmq` context on the in-memory store, plus `CuckmqTest`. Requires the handlers' requirements.
   *
   * @since 0.1.0
   */
  static readonly layer = <const Defs extends ReadonlyArray<JobDefinition.Any> = readonly []>(
    options: Options<Defs> = {}
  ): Layer.Layer<Cuckmq.Cuckmq | CuckmqTest, Cuckmq.LayerError, JobDefinition.Requirements<Defs[number]>> =>
    Layer.unwrap(Effect.gen(function*() {
      const mode = options.mode ?? "manual"
      // (an invalid retention fails Cuckmq.layerStore below)
      const keep = TimeOption.resolve(
        TimeOption.jobPostFinalizeDeleteSpec,
        options.jobPostFinalizeDelete,
        options.jobPostFinalizeDeleteSecs,
        1
      )
      const memory = yield* MemoryStore.make({ keepFinalized: keep._tag === "Failure" || keep.success.secs > 0 })
      let context: Engine.Engine | undefined
      const workerId = randomUUID()
      let registered = false

      const drain: Effect.Effect<DrainResult> = Effect.gen(function*() {
        const cuckmq = context!
        if (!registered) {
          yield* Effect.orDie(
            memory.registerWorker({
              id: workerId,
              name: "test",
              hostname: "test",
              pid: 0,
              channels: [],
              leaseSecs: 1e9,
              sessionKey: undefined
            })
          )
          registered = true
        }
        const channels = Array.from(new Set(Array.from(cuckmq.definitions.values(), (r) => r.definition.channel)))
        const result = { succeeded: 0, retried: 0, failed: 0 }
        while (true) {
          const { jobs: [job] } = yield* Effect.orDie(memory.claim({
            workerId,
            channels,
            excludeNames: [],
            limit: 1,
            // the worker's default (1 minute): the test runs jobs in the order a worker would claim them
            priorityAgingSecs: 60
          }))
          if (job === undefined) return result
          const started = yield* Clock.currentTimeMillis
          Execute.publishRun(cuckmq, job, workerId, started)
          const exit = yield* Effect.exit(
            Engine.withHandlerServices(
              cuckmq,
              Execute.handler(cuckmq, job, workerId, yield* Execute.isTraced, undefined, started)
            )
          )
          const ended = yield* Clock.currentTimeMillis
          const settlement = Execute.conclude(cuckmq, job, workerId, exit, started, ended, undefined)
          yield* Effect.orDie(memory.settle(workerId, [settlement]))
          if (settlement.outcome === "Succeeded") result.succeeded++
          else if (settlement.outcome === "Retry" || settlement.outcome === "Snooze") result.retried++
          else result.failed++
        }
      })

      const store: JobStore.JobStore["Service"] = mode === "inline"
        ? {
          ...memory,
          enqueue: (name, jobs, onCommit) => Effect.tap(memory.enqueue(name, jobs, onCommit), () => drain),
          enqueueUnique: (name, rule, jobs, keys, onCommit) =>
            Effect.tap(memory.enqueueUnique(name, rule, jobs, keys, onCommit), () => drain)
        }
        : memory

      const enqueued = (definition?: JobDefinition.Any) =>
        Effect.gen(function*() {
          const { waiting } = yield* memory.snapshot
          const mine = definition === undefined ? waiting : waiting.filter((j) => j.name === definition.name)
          return yield* Effect.forEach(mine, (j) =>
            Effect.map(
              definition === undefined
                ? Effect.succeed(j.payload)
                : Effect.orDie(internal.internals(definition).decode(j.payload)),
              (payload): EnqueuedJob<unknown> => ({
                id: j.id,
                definitionName: j.name,
                payload,
                jobGroup: j.jobGroup,
                runAt: j.runAt!,
                attempts: j.attempts
              })
            ))
        })

      const perform = <A, E, R>(
        definition: JobDefinition.JobDefinition<A, E, R>,
        payload: A,
        metadata: Partial<JobDefinition.JobMetadata> = {}
      ) =>
        Effect.gen(function*() {
          const codec = Schema.toCodecJson(definition.payload)
          const invalid = (error: Schema.SchemaError) =>
            new InvalidPayload({ definitionName: definition.name, message: error.message })
          const json = yield* Effect.mapError(Schema.encodeUnknownEffect(codec)(payload), invalid)
          const decoded = yield* Effect.mapError(Schema.decodeUnknownEffect(codec)(json), invalid)
          const now = new Date(yield* Clock.currentTimeMillis)
          // suspended: a handler that throws instead of returning an Effect dies, as it would in a worker
          return yield* Effect.suspend(() => definition.handler(decoded as A, {
            jobId: "0",
            definitionName: definition.name,
            attempt: 1,
            maxAttempts: definition.numAttempts,
            channel: definition.channel,
            jobGroup: undefined,
            priority: definition.priority,
            enqueuedAt: now,
            runAt: now,
            scheduledFor: undefined,
            workerId,
            ...metadata
          }))
        })

      const service = CuckmqTest.of({
        mode,
        enqueued: enqueued as CuckmqTest["Service"]["enqueued"],
        drain,
        perform,
        jobs: memory.snapshot
      })

      const contextLayer = Cuckmq.layerStore(options).pipe(
        Layer.tap((ctx) => Effect.sync(() => void (context = Engine.get(Context.get(ctx, Cuckmq.Cuckmq))))),
        Layer.provide(Layer.succeed(JobStore.JobStore, store))
      )
      return Layer.merge(contextLayer, Layer.succeed(CuckmqTest, service))
    }))
}
