/**
 * Helpers for worker/orchestrator integration tests: a fresh schema and context per test, workers started
 * and stopped in their own scopes, and waiting for a condition with a deadline (the deadline only keeps a
 * broken test from hanging; nothing asserts how long anything took).
 */
import { Cause, Context, type Duration, Effect, Exit, Layer, Scope, Stream, Tracer } from "effect"
import { SqlClient } from "effect/sql"
import type { PgClient } from "@effect/sql-pg"
import { Cuckmq, type CuckmqEvent, type JobDefinition, Orchestrator, Worker } from "../../src/index.js"
import { uniqueSchema } from "./pg.js"

/** Builds a context on a fresh schema for the body, dropping the schema afterwards. */
export const withContext = <A, E, R>(
  prefix: string,
  options: Omit<Cuckmq.Options<ReadonlyArray<JobDefinition.JobDefinition<any, any, never>>>, "schema">,
  body: (ctx: { readonly schema: string; readonly cuckmq: Cuckmq.Cuckmq["Service"] }) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | Cuckmq.LayerError, Exclude<Exclude<R, Cuckmq.Cuckmq>, Scope.Scope> | PgClient.PgClient | SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const schema = uniqueSchema(prefix)
    const sql = yield* SqlClient.SqlClient
    yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`))
    const context = yield* Layer.build(Cuckmq.layer({ ...options, schema }))
    const cuckmq = Context.get(context, Cuckmq.Cuckmq)
    return yield* body({ schema, cuckmq }).pipe(Effect.provideService(Cuckmq.Cuckmq, cuckmq))
  }).pipe(Effect.scoped)

/** Starts a worker in its own scope; the returned effect stops it (gracefully) and waits for that. */
export const startWorker = (options: Worker.Options = {}) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Layer.buildWithScope(Worker.layer(options), scope)
    return Scope.close(scope, Exit.void)
  })

/** Starts an orchestrator in its own scope; the returned effect stops it. */
export const startOrchestrator = (options: Orchestrator.Options = {}) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Layer.buildWithScope(Orchestrator.layer(options), scope)
    return Scope.close(scope, Exit.void)
  })

/**
 * Collects the next `n` events with `tag` in a fiber. It subscribes now, with a subscription of its own: two
 * consumers of one subscription would split its events between them.
 */
export const collect = (cuckmq: Cuckmq.Cuckmq["Service"], tag: CuckmqEvent.Tag, n: number) =>
  Effect.flatMap(cuckmq.subscribe, (events) =>
    events.pipe(Stream.filter((e) => e._tag === tag), Stream.take(n), Stream.runCollect, Effect.forkChild))

/** Polls `condition` every 25 ms until it holds; dies with `what` after `timeout` (a hang guard only). */
export const waitUntil = <E, R>(
  what: string,
  condition: Effect.Effect<boolean, E, R>,
  timeout: Duration.Input = "60 seconds"
): Effect.Effect<void, E, R> =>
  Effect.gen(function*() {
    while (!(yield* condition)) yield* Effect.sleep("25 millis")
  }).pipe(
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () => Effect.die(new Error(`timed out waiting until ${what}`))
    })
  )

/** `SELECT count(*)` of a query fragment. */
export const count = (query: Effect.Effect<ReadonlyArray<{ readonly n: unknown }>, unknown>) =>
  Effect.map(Effect.orDie(query), (rows) => Number(rows[0]?.n ?? 0))

export const squash = (cause: Cause.Cause<unknown>) => Cause.squash(cause)

/** A tracer that records every span it makes, for tests that look at span names, kinds and parents. */
export const recordingTracer = () => {
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span(options) {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
  return { spans, tracer }
}
