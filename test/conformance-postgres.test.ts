/** The storage contract on PostgreSQL (real time: `advance` sleeps), through the public `PgJobStore.layer`. */
import { describe, layer } from "@effect/vitest"
import { Duration, Effect, Layer } from "effect"
import { PgJobStore } from "../src/index.js"
import { conformance } from "./support/conformance.js"
import { PgWithSchema, uniqueSchema } from "./support/pg.js"

const schema = uniqueSchema("conformance")

// migrates the fresh schema, then builds the store on it
const PgStoreLive = PgJobStore.layer({ schema, keepFinalized: true }).pipe(Layer.orDie, Layer.provideMerge(PgWithSchema(schema)))

describe("JobStore conformance: postgres", () => {
  layer(PgStoreLive, { excludeTestServices: true })((it) => {
    conformance(it, (secs) => Effect.sleep(Duration.seconds(secs)), "pg")
  })
})
