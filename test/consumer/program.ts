/**
 * The consumer test's program (tools/consumer.mjs copies it into a scratch app that installed the packed
 * tarball, compiles it with tsc and runs the JavaScript under plain Node, with no TypeScript loader): in a
 * schema of its own, it enqueues one job, a worker runs it, and the schema is dropped again.
 */
import { Deferred, Effect, Layer, Redacted, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Cuckmq, JobDefinition, Worker } from "@cuckmq/effect"

const url = process.env["DATABASE_URL"]
if (url === undefined || url === "") throw new Error("DATABASE_URL is not set")
const schema = `cuckmq_consumer_${process.pid}_${Date.now().toString(36)}`

const greeted = Deferred.makeUnsafe<string>()

const Greet = JobDefinition.make({
  name: "greet",
  payload: Schema.Struct({ name: Schema.String }),
  handler: ({ name }, { attempt }) => Deferred.succeed(greeted, `hello, ${name} (attempt ${attempt})`)
})

const dropSchema = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
  const left = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = ${schema}`
  console.log(`schema ${schema} dropped: ${left[0]?.n === 0}`)
})

const enqueueAndRun = Effect.gen(function*() {
  yield* Greet.enqueue({ name: "consumer" })
  const greeting = yield* Deferred.await(greeted).pipe(Effect.timeout("30 seconds"))
  console.log(`job ran: ${greeting}`)
}).pipe(
  Effect.provide(Worker.layer({ concurrency: 2 }).pipe(Layer.provideMerge(Cuckmq.layer({ schema, definitions: [Greet] }))))
)

const program = enqueueAndRun.pipe(
  Effect.ensuring(Effect.orDie(dropSchema)),
  Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 4 }))
)

Effect.runPromise(program).then(
  () => console.log("consumer program: ok"),
  (error: unknown) => {
    console.error("consumer program failed:", error)
    process.exitCode = 1
  }
)
