/**
 * Consuming the event Stream: count what the queue did, by event, log every failure, and ship failures as
 * JSON (events are Schema values) to decode them back. A slow consumer never slows the workers; it loses
 * its oldest events instead (see `eventBufferSize`).
 *
 *   npx tsx examples/events.ts
 */
import { Effect, Layer, Match, Option, Schema, Stream } from "effect"
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

  // 1. a handler for every event (runs in its own fiber for the life of the scope), matching on the tag
  yield* cuckmq.addEventHandler(
    Match.type<CuckmqEvent.CuckmqEvent>().pipe(
      Match.tag("WORKER_JOB_RUN_ERROR", (e) =>
        Effect.logWarning(`job ${e.jobId} failed (attempt ${e.attempt}, retry: ${e.willRetry}): ${e.message}`)),
      Match.orElse(() => Effect.void)
    )
  )

  // 2. the Stream itself: count events by tag until 20 jobs succeeded, and ship each failure as JSON
  //    (to a log, a broker, a webhook: here an array)
  const shipped: Array<string> = []
  const stream = yield* cuckmq.subscribe
  yield* Flaky.enqueueMany(Array.from({ length: 20 }, (_, n) => ({ payload: { n } })))
  const counts = yield* stream.pipe(
    Stream.filter(CuckmqEvent.is("JOB_DEFINITION_JOB_ENQUEUE", "WORKER_JOB_RUN_SUCCESS", "WORKER_JOB_RUN_ERROR")),
    Stream.tap((event) =>
      Effect.sync(() => {
        if (CuckmqEvent.is("WORKER_JOB_RUN_ERROR")(event)) {
          shipped.push(JSON.stringify(Schema.encodeSync(CuckmqEvent.CuckmqEvent)(event)))
        }
      })
    ),
    Stream.scan((): Record<string, number> => ({}), (acc, e) => ({ ...acc, [e._tag]: (acc[e._tag] ?? 0) + 1 })),
    Stream.takeUntil((acc) => acc.WORKER_JOB_RUN_SUCCESS === 20),
    Stream.runLast
  )

  // 3. where the JSON arrives: decoded back into event class instances
  const received = shipped.map((line) => Schema.decodeUnknownSync(CuckmqEvent.CuckmqEvent)(JSON.parse(line)))
  const failures = received.filter(CuckmqEvent.is("WORKER_JOB_RUN_ERROR"))
  yield* Effect.log(`shipped ${shipped.length} failures as JSON, e.g. ${shipped[0]}`)
  yield* Effect.log(`decoded ${failures.length} WORKER_JOB_RUN_ERROR, retries at ${failures.map((e) => e.retryAt?.toISOString()).join(", ")}`)
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
