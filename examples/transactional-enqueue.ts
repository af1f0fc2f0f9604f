/**
 * Transactional enqueue: a job enqueued inside the app's own transaction exists exactly when the app's row
 * does. A rolled-back transaction leaves neither the row nor the job.
 *
 *   npx tsx examples/transactional-enqueue.ts
 */
import { Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { NodeRuntime } from "@effect/platform-node"
import { Cuckmq, JobDefinition } from "@cuckmq/effect"
import { PgLive } from "../tools/database.js"

const WelcomeEmail = JobDefinition.make({
  name: "welcome-email",
  payload: Schema.Struct({ email: Schema.String }),
  handler: ({ email }) => Effect.log(`welcome, ${email}`)
})

const signUp = (email: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql`INSERT INTO app_user (email) VALUES (${email})`
      // joins the open transaction: committed together with the user row, or not at all
      return yield* WelcomeEmail.enqueue({ email })
    }))
  })

const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS app_user (email text PRIMARY KEY)`
  yield* sql`TRUNCATE app_user`

  const jobId = yield* signUp("ada@example.com")
  yield* Effect.log(`committed: user and job ${jobId}`)

  // the second sign-up with the same email violates the primary key: the job is rolled back with the row
  const failed = yield* Effect.flip(signUp("ada@example.com"))
  yield* Effect.log(`rolled back: ${failed._tag}`)

  const [users] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM app_user`
  const [jobs] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM _cuckmq.job WHERE name = 'welcome-email'`
  yield* Effect.log(`users: ${users!.n}, welcome-email jobs: ${jobs!.n}`) // users: 1, welcome-email jobs: 1
  yield* sql`DELETE FROM _cuckmq.job WHERE name = 'welcome-email'`
})

program.pipe(
  Effect.provide(Cuckmq.layer({ definitions: [WelcomeEmail] }).pipe(Layer.provideMerge(PgLive()))),
  NodeRuntime.runMain
)
