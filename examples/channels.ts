/**
 * Channels with a reserved high-priority worker (the seed's example): definitions publish on a channel, and
 * a worker reserved for the "urgent" channel keeps urgent jobs moving however long the default backlog is.
 *
 *   npx tsx examples/channels.ts
 */
import { Effect, Fiber, Layer, Schema, Stream } from "effect"
import { NodeRuntime } from "@effect/platform-node"
import { Cuckmq, JobDefinition, Worker } from "@cuckmq/effect"
import { exampleSchema, PgLive } from "../tools/database.js"

// Everything this example writes (cuckmq's tables) lives in a schema of its own, dropped when it ends, also on
// a failure or Ctrl-C, so it never touches data that is not its own. An app passes the schema its queue lives
// in (or keeps cuckmq's default, "_cuckmq") and provides its own `PgClient.layer`.
const schema = exampleSchema("channels")

let reports = 0

const Report = JobDefinition.make({
  name: "build-report",
  payload: Schema.Struct({ id: Schema.Int }),
  handler: () => Effect.sleep("20 millis").pipe(Effect.andThen(Effect.sync(() => void reports++))) // slow, default channel
})

const PasswordReset = JobDefinition.make({
  name: "password-reset",
  channel: "urgent",
  payload: Schema.Struct({ email: Schema.String }),
  handler: ({ email }, { workerId }) => Effect.log(`reset link sent to ${email} (worker ${workerId.slice(0, 8)})`)
})

const Workers = Layer.mergeAll(
  // takes every channel of the registered definitions
  Worker.layer({ name: "general", concurrency: 4 }),
  // reserved: only urgent jobs, so they never wait behind reports
  Worker.layer({ name: "urgent-only", channels: ["urgent"], concurrency: 2 })
)

const program = Effect.gen(function*() {
  const cuckmq = yield* Cuckmq.Cuckmq
  const events = yield* cuckmq.subscribe
  const resets = yield* events.pipe(
    Stream.filter((e) => e._tag === "WORKER_JOB_RUN_SUCCESS" && e.definitionName === "password-reset"),
    Stream.take(3),
    Stream.runCollect,
    Effect.forkChild
  )
  yield* Report.enqueueMany(Array.from({ length: 500 }, (_, id) => ({ payload: { id } }))) // a backlog
  for (const email of ["ada@example.com", "bob@example.com", "cy@example.com"]) {
    yield* PasswordReset.enqueue({ email })
  }
  yield* Fiber.join(resets)
  const reportsDone = yield* Effect.sync(() => reports)
  yield* Effect.log(`all 3 password resets ran while the report backlog was still waiting (${reportsDone} of 500 done)`)
})

program.pipe(
  Effect.scoped,
  Effect.provide(
    Workers.pipe(
      Layer.provideMerge(Cuckmq.layer({ schema, definitions: [Report, PasswordReset] })),
      // the database, with the example's schema: created now, dropped (CASCADE) when the program ends
      Layer.provide(PgLive({ scratchSchema: schema }))
    )
  ),
  NodeRuntime.runMain
)
