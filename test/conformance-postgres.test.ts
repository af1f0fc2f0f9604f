/** The storage contract on PostgreSQL (real time: `advance` sleeps). */
import { describe, layer } from "@effect/vitest"
import { Duration, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import * as PgStore from "../src/internal/pg/store.js"
import { JobStore } from "../src/JobStore.js"
import { Migrations } from "../src/index.js"
import { conformance } from "./support/conformance.js"
import { PgWithSchema, uniqueSchema } from "./support/pg.js"

const schema = uniqueSchema("conformance")

const PgStoreLive = Layer.effect(
  JobStore,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* Migrations.migrate(schema).pipe(Effect.provideService(SqlClient.SqlClient, sql))
    return yield* PgStore.make({ schema, keepFinalized: true })
  }).pipe(Effect.orDie)
).pipe(Layer.provideMerge(PgWithSchema(schema)))

describe("JobStore conformance: postgres", () => {
  layer(PgStoreLive, { excludeTestServices: true })((it) => {
    conformance(it, (secs) => Effect.sleep(Duration.seconds(secs)), "pg")
  })
})
