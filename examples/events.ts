/**
 * Consuming the event Stream: count what the queue did, by event, and log every failure. A slow consumer
 * never slows the workers; it loses its oldest events instead (see `eventBufferSize`).
 *
 *   npx tsx examples/events.ts
 */
import { Effect, Layer, Option, Schema, Stream } from "effect"
import { NodeRuntime } from "@effect/platform-node"
import { Cuckmq, CuckmqEvent, JobDefinition, Worker } from "@cuckmq/effect"
import { exampleSchema, PgLive } from "../tools/database.js"

// Everything this example writes (cuckmq's tables) lives in a schema of its own, dropped when it ends, also on
// a failure or Ctrl-C, so it never touches data that is not its own. An app passes the schema its queue lives
// in (or keeps cuckmq's default, "_cuckmq") and provides its own `PgClient.layer`.
const schema = exampleSchema("events")

const Flaky = JobDefinition.make({
  name: "flaky",
  payload: Schema.Struct({ n: Schema.Int }),
  numAttempts: 2,
  timeoutSecs: 0,
  handler: ({ n }, { attempt }) => n % 5 === 0 && attempt === 1 ? Effect.fail(`job ${n} failed once`) : Effect.void
})

const program = Effect.gen(function*() {
  const cuckmq = yield* Cuckmq.Cuckmq

  // 1. a handler for every event (runs in its own fiber for the life of the scope)
  yield* cuckmq.addEventHandler((event) =>
    event._tag === "WORKER_JOB_RUN_ERROR"
      ? Effect.logWarning(`job ${event.jobId} failed (attempt ${event.attempt}, retry: ${event.willRetry}): ${event.message}`)
      : Effect.void
  )

  // 2. the Stream itself: count events by tag until 20 jobs succeeded
  const stream = yield* cuckmq.subscribe
  yield* Flaky.enqueueMany(Array.from({ length: 20 }, (_, n) => ({ payload: { n } })))
  const counts = yield* stream.pipe(
    Stream.filter(CuckmqEvent.is("JOB_DEFINITION_JOB_ENQUEUE", "WORKER_JOB_RUN_SUCCESS", "WORKER_JOB_RUN_ERROR")),
    Stream.scan((): Record<string, number> => ({}), (acc, e) => ({ ...acc, [e._tag]: (acc[e._tag] ?? 0) + 1 })),
    Stream.takeUntil((acc) => acc.WORKER_JOB_RUN_SUCCESS === 20),
    Stream.runLast
  )
  yield* Effect.log("events by type:", Option.getOrElse(counts, () => ({})))
})

program.pipe(
  Effect.scoped,
  Effect.provide(
    Worker.layer().pipe(
      Layer.provideMerge(Cuckmq.layer({ schema, definitions: [Flaky] })),
      // the database, with the example's schema: created now, dropped (CASCADE) when the program ends
      Layer.provide(PgLive({ scratchSchema: schema }))
    )
  ),
  NodeRuntime.runMain
)
