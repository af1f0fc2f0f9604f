/**
 * What one dashboard refresh (statistics plus the workers query, as the dashboard's hub runs it) costs on a
 * backlog of 1,000,000 waiting jobs in one channel shared by two definitions: 22 timed refreshes after 3
 * warm-ups, round trips included.
 *
 *     npx tsx bench/dashboard-cost.ts
 */
import { Context, Effect, Layer, Redacted, Schema } from "effect"
import { PgClient } from "@effect/sql-pg"
import { SqlClient } from "effect/sql"
import { Cuckmq, JobDefinition } from "../src/index.js"
import * as Admin from "../src/CuckmqAdmin.js"
import * as Backend from "../src/internal/dashboard/backend.js"

const schema = "dash_cost_1m"
const Bulk = JobDefinition.make({ name: "bulk", channel: "bulk", payload: Schema.Struct({ i: Schema.Int }), handler: () => Effect.void })
const Other = JobDefinition.make({ name: "other", channel: "bulk", payload: Schema.Struct({ i: Schema.Int }), handler: () => Effect.void })
const Pg = PgClient.layer({ url: Redacted.make(process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"), maxConnections: 4 })
const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const ctx = yield* Layer.build(Admin.layer().pipe(Layer.provideMerge(Cuckmq.layer({ schema, definitions: [Bulk, Other] }))))
  const [{ n }] = yield* sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql(`${schema}.job`)}`
  if (Number(n) < 1_000_000) {
    const t0 = Date.now()
    for (let b = Number(n); b < 1_000_000; b += 10_000) {
      const def = b % 20_000 === 0 ? Bulk : Other
      yield* def.enqueueMany(Array.from({ length: 10_000 }, (_, i) => ({ payload: { i: b + i } }))).pipe(Effect.provide(ctx))
    }
    console.log(`enqueued in ${Date.now() - t0} ms`)
    yield* sql`ANALYZE ${sql(`${schema}.job`)}`
  }
  const backend = Backend.make(Context.get(ctx, Admin.CuckmqAdmin))
  const times: Array<number> = []
  for (let i = 0; i < 25; i++) {
    const t = performance.now()
    const s = yield* backend.stats
    times.push(performance.now() - t)
    if (i === 0) console.log(JSON.stringify(s.channels), JSON.stringify(s.definitions))
  }
  const sorted = times.slice(3).sort((a, b) => a - b)
  console.log("refresh ms: median", sorted[Math.floor(sorted.length / 2)]!.toFixed(1), "min", sorted[0]!.toFixed(1), "max", sorted[sorted.length - 1]!.toFixed(1))
}).pipe(Effect.scoped, Effect.provide(Pg))
Effect.runPromise(program).then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
