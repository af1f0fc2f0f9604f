/**
 * Quickstart (the seed's "First Look"): a PING job that logs its payload, two workers, 1,000 jobs.
 *
 *   npm start            (uses DATABASE_URL, or an embedded PostgreSQL when it is unset)
 *
 * It stops by itself, gracefully, once the 1,000 jobs ran; Ctrl-C (SIGINT) or SIGTERM stops it gracefully
 * at any time: workers stop claiming, running jobs finish, and every lock is released.
 */
import { Effect, Fiber, Layer, Schema, Stream } from "effect"
import { NodeRuntime } from "@effect/platform-node"
import { Cuckmq, JobDefinition, Worker } from "@cuckmq/effect"
import { exampleSchema, PgLive } from "../tools/database.js"

// Everything this example writes (cuckmq's tables) lives in a schema of its own, dropped when it ends, also on
// a failure or Ctrl-C, so it never touches data that is not its own. An app passes the schema its queue lives
// in (or keeps cuckmq's default, "_cuckmq") and provides its own `PgClient.layer`.
const schema = exampleSchema("quickstart")

// 1. A job definition: a name, a payload Schema and a handler.
export const Ping = JobDefinition.make({
  name: "ping",
  payload: Schema.Struct({ message: Schema.String }),
  handler: ({ message }, { jobId, attempt }) => Effect.log(`PING job ${jobId} (attempt ${attempt}): ${message}`)
})

// 2. The context: migrates the schema and deploys the definitions it is given. (Here in the example's own
//    schema; leave `schema` out to use the default, "_cuckmq".)
const CuckmqLive = Cuckmq.layer({ schema, definitions: [Ping] })

// 3. Two workers. Each is a Layer whose scope owns its fibers.
const Workers = Layer.merge(
  Worker.layer({ name: "worker-1", concurrency: 10 }),
  Worker.layer({ name: "worker-2", concurrency: 10 })
)

const program = Effect.gen(function*() {
  const cuckmq = yield* Cuckmq.Cuckmq
  const events = yield* cuckmq.subscribe // subscribe before enqueueing, so no event is missed
  const done = yield* events.pipe(
    Stream.filter((event) => event._tag === "WORKER_JOB_RUN_SUCCESS"),
    Stream.take(1000),
    Stream.runCount,
    Effect.forkChild
  )
  // 4. Enqueue 1,000 jobs in one statement.
  yield* Ping.enqueueMany(Array.from({ length: 1000 }, (_, i) => ({ payload: { message: `hello #${i}` } })))
  const ran = yield* Fiber.join(done)
  yield* Effect.log(`all ${ran} PING jobs ran; stopping gracefully`)
})

program.pipe(
  Effect.scoped,
  Effect.provide(
    Workers.pipe(
      Layer.provideMerge(CuckmqLive),
      // the database, with the example's schema: created now, dropped (CASCADE) when the program ends
      Layer.provide(PgLive({ scratchSchema: schema }))
    )
  ),
  NodeRuntime.runMain
)
