/**
 * Wake-ups across processes on PostgreSQL: workers in another context (another process, as far as wake-ups
 * go), polling hourly, get every job of a producer without a worker of its own, whether it enqueues one job
 * at a time (each insert alone, its wake-up a statement of its own) or many at once (inserts written in
 * batches, their wake-ups coalesced).
 */
import { assert, describe, layer } from "@effect/vitest"
import { Deferred, Effect, Exit, Layer, Redacted, Schema, Scope } from "effect"
import { PgClient } from "@effect/sql-pg"
import { Cuckmq, JobDefinition, Worker } from "../src/index.js"
import { databaseUrl, PgWithSchema, uniqueSchema } from "./support/pg.js"

const schema = uniqueSchema("notify")
const seen = new Map<number, number>()
let ran: (() => void) | undefined
const Ping = JobDefinition.make({ name: "ping", handler: () => Effect.void })
const Count = JobDefinition.make({
  name: "count",
  payload: Schema.Struct({ i: Schema.Number }),
  handler: ({ i }) =>
    Effect.sync(() => {
      seen.set(i, (seen.get(i) ?? 0) + 1)
      ran?.()
    })
})

const TestLive = Cuckmq.layer({ schema, definitions: [Ping, Count] }).pipe(Layer.provideMerge(PgWithSchema(schema)))
const OwnPg = () => PgClient.layer({ url: Redacted.make(databaseUrl()), maxConnections: 4 })

describe("wake-ups across processes", () => {
  layer(TestLive, { excludeTestServices: true })((it) => {
    it.effect("workers in another context, polling hourly, get every job of an idle producer and of a busy one", () =>
      Effect.gen(function*() {
        seen.clear()
        // the workers: a context of their own (another process, as far as wake-ups go)
        const workerScope = yield* Scope.make()
        yield* Effect.addFinalizer(() => Scope.close(workerScope, Exit.void))
        yield* Layer.buildWithScope(
          Worker.layer({ pollIntervalSecs: 3600, concurrency: 10 }).pipe(
            Layer.provide(Cuckmq.layer({ schema, definitions: [Ping, Count] })),
            Layer.provide(OwnPg())
          ),
          workerScope
        )
        yield* Effect.sleep("300 millis") // listening
        const producer = yield* Layer.build(Cuckmq.layer({ schema, definitions: [Ping, Count] }).pipe(Layer.provide(OwnPg())))
        // idle: one at a time, each waited for; a lost wake-up would wait for the hourly poll
        for (let i = 0; i < 30; i++) {
          const done = yield* Deferred.make<void>()
          ran = () => Deferred.doneUnsafe(done, Exit.void)
          yield* Count.enqueue({ i }).pipe(Effect.provideContext(producer))
          yield* Deferred.await(done).pipe(Effect.timeoutOrElse({
            duration: "20 seconds",
            orElse: () => Effect.die(new Error(`job ${i} of the idle producer never ran: its wake-up was lost`))
          }))
        }
        ran = undefined
        // busy: 300 concurrent enqueues (written in batches, woken by the coalesced statement)
        yield* Effect.forEach(Array.from({ length: 300 }, (_, k) => 30 + k), (i) => Count.enqueue({ i }), {
          concurrency: 20,
          discard: true
        }).pipe(Effect.provideContext(producer))
        const deadline = Date.now() + 30_000
        while (seen.size < 330 && Date.now() < deadline) yield* Effect.sleep("20 millis")
        assert.strictEqual(seen.size, 330, "every job ran without a poll")
        assert.isTrue([...seen.values()].every((n) => n === 1), "each once")
      }).pipe(Effect.scoped))
  })
})
