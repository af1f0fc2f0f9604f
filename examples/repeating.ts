/**
 * Repeating jobs: one every N seconds, one on a cron schedule in a time zone. The Orchestrator enqueues them
 * when due, exactly once per due time however many orchestrators run.
 *
 *   npx tsx examples/repeating.ts
 */
import { Effect, Layer } from "effect"
import { NodeRuntime } from "@effect/platform-node"
import { Cuckmq, JobDefinition, Orchestrator, Worker } from "@cuckmq/effect"
import { exampleSchema, PgLive } from "../tools/database.js"

// Everything this example writes (cuckmq's tables) lives in a schema of its own, dropped when it ends, also on
// a failure or Ctrl-C, so it never touches data that is not its own. An app passes the schema its queue lives
// in (or keeps cuckmq's default, "_cuckmq") and provides its own `PgClient.layer`.
const schema = exampleSchema("repeating")

let heartbeats = 0
let crons = 0

// repeatSecs (and cron) only type-check for the empty payload
const Heartbeat = JobDefinition.make({
  name: "heartbeat",
  repeatSecs: 1,
  handler: (_, { scheduledFor }) => Effect.sync(() => void heartbeats++).pipe(
    Effect.andThen(Effect.log(`heartbeat due at ${scheduledFor?.toISOString()}`))
  )
})

// six fields: seconds first; here every 2 seconds, evaluated in Berlin time
const Cleanup = JobDefinition.make({
  name: "cleanup",
  cron: "*/2 * * * * *",
  cronTimeZone: "Europe/Berlin",
  handler: (_, { scheduledFor }) => Effect.sync(() => void crons++).pipe(
    Effect.andThen(Effect.log(`cron cleanup due at ${scheduledFor?.toISOString()}`))
  )
})

const program = Effect.gen(function*() {
  while (heartbeats < 4 || crons < 2) yield* Effect.sleep("100 millis")
  yield* Effect.log(`ran ${heartbeats} heartbeats and ${crons} cron cleanups`)
})

program.pipe(
  Effect.provide(
    Layer.merge(Worker.layer(), Orchestrator.layer()).pipe(
      Layer.provideMerge(Cuckmq.layer({ schema, definitions: [Heartbeat, Cleanup] })),
      // the database, with the example's schema: created now, dropped (CASCADE) when the program ends
      Layer.provide(PgLive({ scratchSchema: schema }))
    )
  ),
  NodeRuntime.runMain
)
