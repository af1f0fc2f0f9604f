/**
 * Transactional enqueue: a job enqueued inside the app's own transaction exists exactly when the app's row
 * does. A rolled-back transaction leaves neither the row nor the job.
 *
 *   npx tsx examples/transactional-enqueue.ts
 */
import { Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { NodeRuntime } from "@effect/platform-node"
import { Cuckmq, CuckmqError, JobDefinition } from "@cuckmq/effect"
import { exampleSchema, PgLive } from "../tools/database.js"

// Everything this example writes (cuckmq's tables and the app's own) lives in a schema of its own, dropped
// when it ends, also on a failure or Ctrl-C, so it never touches data that is not its own. An app passes the
// schema its queue lives in (or keeps cuckmq's default, "_cuckmq") and provides its own `PgClient.layer`.
const schema = exampleSchema("transactional-enqueue")
const appUser = `${schema}.app_user` // the app's table

const WelcomeEmail = JobDefinition.make({
  name: "welcome-email",
  payload: Schema.Struct({ email: Schema.String }),
  handler: ({ email }) => Effect.log(`welcome, ${email}`)
})

const signUp = (email: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql`INSERT INTO ${sql(appUser)} (email) VALUES (${email})`
      // joins the open transaction: committed together with the user row, or not at all
      return yield* WelcomeEmail.enqueue({ email })
    }))
  })

const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE ${sql(appUser)} (email text PRIMARY KEY)`

  const jobId = yield* signUp("ada@example.com")
  yield* Effect.log(`committed: user and job ${jobId}`)

  // the second sign-up with the same email violates the primary key: the job is rolled back with the row
  const failed = yield* Effect.flip(signUp("ada@example.com"))
  yield* Effect.log(`rolled back: ${failed._tag}`)

  // an email with a NUL character cannot be stored (jsonb refuses it): refused before anything is written,
  // with a typed error that the guards tell apart from the database's own errors
  const refused = yield* Effect.flip(WelcomeEmail.enqueue({ email: "bad\u0000@example.com" }))
  if (CuckmqError.isInvalidPayload(refused)) yield* Effect.log(`refused: ${refused.message}`) // nothing written
  else if (CuckmqError.isStorageError(refused)) yield* Effect.log(`the database failed: ${refused.message}`)
  else yield* Effect.log(`another cuckmq error: ${refused._tag}`)

  // (cuckmq's tables are not a public interface: read here only to show what the transactions left)
  const [users] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(appUser)}`
  const [jobs] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(`${schema}.job`)} WHERE name = 'welcome-email'`
  yield* Effect.log(`users: ${users!.n}, welcome-email jobs: ${jobs!.n}`) // users: 1, welcome-email jobs: 1
})

program.pipe(
  Effect.provide(
    Cuckmq.layer({ schema, definitions: [WelcomeEmail] }).pipe(
      // the database, with the example's schema: created now, dropped (CASCADE) when the program ends
      Layer.provideMerge(PgLive({ scratchSchema: schema }))
    )
  ),
  NodeRuntime.runMain
)
