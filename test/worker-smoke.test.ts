import { assert, describe, layer } from "@effect/vitest"
import { Effect, Fiber, Layer, Schema, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { Cuckmq, JobDefinition, Worker } from "../src/index.js"
import { PgWithSchema, uniqueSchema } from "./support/pg.js"

const schema = uniqueSchema("smoke")
const seen = new Set<number>()
const Ping = JobDefinition.make({
  name: "ping",
  payload: Schema.Struct({ n: Schema.Int }),
  handler: (p) => Effect.sync(() => { seen.add(p.n) })
})
const Ctx = Cuckmq.layer({ schema, definitions: [Ping] }).pipe(Layer.provideMerge(PgWithSchema(schema)))

describe("worker smoke", () => {
  layer(Ctx, { excludeTestServices: true })((it) => {
    it.effect("runs 100 jobs", () => Effect.gen(function*() {
      const cuckmq = yield* Cuckmq.Cuckmq
      const events = yield* cuckmq.subscribe
      const done = yield* events.pipe(Stream.filter((e) => e._tag === "WORKER_JOB_RUN_SUCCESS"), Stream.take(100), Stream.runCollect, Effect.forkChild)
      yield* Ping.enqueueMany(Array.from({ length: 100 }, (_, n) => ({ payload: { n } })))
      yield* Effect.gen(function*() {
        yield* Layer.build(Worker.layer({ concurrency: 10 }))
        yield* Fiber.join(done)
      }).pipe(Effect.scoped)
      assert.strictEqual(seen.size, 100)
      const sql = yield* SqlClient.SqlClient
      const [r] = yield* sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql(`${schema}.job_finalized`)} WHERE succeeded`
      assert.strictEqual(Number(r!.n), 100)
      const [w] = yield* sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql(`${schema}.worker`)}`
      assert.strictEqual(Number(w!.n), 0)
    }).pipe(Effect.scoped))
  })
})
