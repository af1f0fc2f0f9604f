/**
 * Configuration from `Config`, and durations: the context, a worker and an orchestrator read their settings
 * from environment variables (each with a default), and every time option is a `Duration.Input`. A malformed
 * variable (say `WORKER_CONCURRENCY=many`) stops the program at start with a `ConfigError` naming it.
 *
 *   WORKER_CONCURRENCY=4 WORKER_POLL_INTERVAL="200 millis" npx tsx examples/configuration.ts
 *
 * It works in its own schema (`CUCKMQ_SCHEMA`, default `cuckmq_example_configuration`) and drops it at the
 * end, unless that schema existed before it started.
 */
import { Config, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { NodeRuntime } from "@effect/platform-node"
import { Cuckmq, JobDefinition, Orchestrator, Worker } from "@cuckmq/effect"
import { PgLive } from "../tools/database.js"

let reminded = false
let ticks = 0

const Reminder = JobDefinition.make({
  name: "reminder",
  payload: Schema.Struct({ text: Schema.String }),
  numAttempts: 3,
  timeout: "10 seconds", // a failed attempt is retried 10 seconds later
  handler: ({ text }) => Effect.log(`reminder: ${text}`).pipe(Effect.andThen(Effect.sync(() => void (reminded = true))))
})

const Tick = JobDefinition.make({
  name: "tick",
  repeatEvery: "1 second", // the Orchestrator enqueues one every second
  handler: (_, { scheduledFor }) =>
    Effect.log(`tick due at ${scheduledFor?.toISOString()}`).pipe(Effect.andThen(Effect.sync(() => void ticks++)))
})

const schema = Config.String("CUCKMQ_SCHEMA").pipe(Config.withDefault("cuckmq_example_configuration"))

const CuckmqLive = Cuckmq.layerConfig({
  definitions: [Reminder, Tick], // plain values; the settings are Configs
  schema,
  jobPostFinalizeDelete: Config.Duration("CUCKMQ_KEEP_FINALIZED").pipe(Config.withDefault("1 hour"))
})

const Daemons = Layer.merge(
  Worker.layerConfig({
    concurrency: Config.Int("WORKER_CONCURRENCY").pipe(Config.withDefault(10)),
    pollInterval: Config.Duration("WORKER_POLL_INTERVAL").pipe(Config.withDefault("1 second")),
    gracePeriod: Config.Duration("WORKER_GRACE_PERIOD").pipe(Config.withDefault("15 seconds"))
  }),
  Orchestrator.layerConfig({
    jobSchedulePoll: Config.Duration("CUCKMQ_SCHEDULE_POLL").pipe(Config.withDefault("5 seconds"))
  })
)

const program = Effect.gen(function*() {
  yield* Reminder.enqueue({ text: "stand up and stretch" }, { delay: "1 second" })
  while (!reminded || ticks < 2) yield* Effect.sleep("50 millis")
  yield* Effect.log(`the reminder ran after its delay, and ${ticks} ticks ran`)
})

const main = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const name = yield* schema
  const existed = (yield* sql`SELECT 1 FROM pg_namespace WHERE nspname = ${name}`).length > 0
  yield* program.pipe(
    Effect.provide(Daemons.pipe(Layer.provideMerge(CuckmqLive))),
    // after the daemons and the context are released
    Effect.ensuring(existed ? Effect.void : Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(name)} CASCADE`))
  )
})

main.pipe(Effect.provide(PgLive()), NodeRuntime.runMain)
