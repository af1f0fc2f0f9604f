/**
 * The floored claim on PostgreSQL (src/internal/pg/claim.ts): after full claims, a worker's claims scan each
 * level of the ready index from where its last claim took its first job, skipping the entries of claimed
 * and deleted jobs that a held snapshot keeps from being marked dead (bench/results/soak.md). Jobs that
 * become ready below a floor without a wake-up of all channels (here: a waiting job's place moved into the
 * past by hand, as a transaction that commits late leaves one) are claimed by the next unfloored claim: none
 * is lost, and the conformance suite checks that a job that goes back keeps its place. Counting only.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import * as Definition from "../src/internal/definition.js"
import { JobStore } from "../src/JobStore.js"
import type * as Store from "../src/JobStore.js"
import { PgJobStore } from "../src/index.js"
import { def, newJob, noCommit, worker } from "./support/conformance.js"
import { PgWithSchema, uniqueSchema } from "./support/pg.js"

const schema = uniqueSchema("claim_floor")
const Live = PgJobStore.layer({ schema, keepFinalized: true }).pipe(Layer.orDie, Layer.provideMerge(PgWithSchema(schema, { maxConnections: 12 })))

describe("floored claims on PostgreSQL", () => {
  layer(Live, { excludeTestServices: true })((it) => {
    const claimOf = (workerId: string, channel: string, limit: number) =>
      Effect.flatMap(JobStore, (store) => store.claim({ workerId, channels: [channel], excludeNames: [], limit, priorityAgingSecs: 60 }))
    /** Moves a waiting job's place into the past, below every floor, with no wake-up (a late commit's). */
    const straggle = (id: string) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql`UPDATE ${sql(`${schema}.job`)} SET sort_at = sort_at - interval '1 hour' WHERE id = ${id} AND worker_id IS NULL`)

    it.effect("a job that became ready below a worker's floor is claimed by its next unfloored claim; none lost, none twice", () =>
      Effect.gen(function*() {
        const store = yield* JobStore
        yield* store.deploy([def("floor")], Definition.firstDue)
        const w = worker()
        yield* store.registerWorker(w)
        const ids: Array<string> = []
        for (let i = 0; i < 10; i++) ids.push(...(yield* store.enqueue("floor", [newJob({ i })], noCommit)))
        const seen: Array<string> = []
        const take = Effect.map(claimOf(w.id, "floor", 3), (r) => {
          seen.push(...r.jobs.map((j) => j.id))
          return r.jobs
        })
        assert.strictEqual((yield* take).length, 3)
        assert.strictEqual((yield* take).length, 3)
        // the last job waiting moves to the very front, below the floor of a worker whose claims came back full
        yield* straggle(ids[9]!)
        for (let empty = 0; empty < 2;) empty = (yield* take).length === 0 ? empty + 1 : 0
        assert.deepStrictEqual([...seen].sort(), [...ids].sort(), "every job claimed once")
        yield* store.deregisterWorker(w.id)
      }))

    it.effect("concurrent: 6 workers claim 3,000 jobs while jobs are released and others pushed below the floors: each runs once, none lost", () =>
      Effect.gen(function*() {
        const store = yield* JobStore
        yield* store.deploy([def("floor-many", { timeoutSecs: 30 })], Definition.firstDue)
        const n = 3_000
        const ids: Array<string> = []
        for (let k = 0; k < n; k += 500) {
          ids.push(...(yield* store.enqueue("floor-many", Array.from({ length: 500 }, (_, i) => newJob({ i: k + i })), noCommit)))
        }
        const succeeded = new Map<string, number>()
        let released = 0
        let straggled = 0
        let rng = 12345
        const random = () => (rng = (rng * 1103515245 + 12345) % 2147483648) / 2147483648
        const workers: Array<Store.WorkerRegistration> = Array.from({ length: 6 }, () => worker())
        for (const w of workers) yield* store.registerWorker(w)
        const drain = (w: Store.WorkerRegistration) =>
          Effect.gen(function*() {
            for (let empty = 0; empty < 3;) {
              const { jobs } = yield* claimOf(w.id, "floor-many", 1 + Math.floor(random() * 20))
              if (jobs.length === 0) {
                empty++
                yield* Effect.sleep("20 millis")
                continue
              }
              empty = 0
              const settlements: Array<Store.Settlement> = []
              for (const j of jobs) {
                const roll = random()
                if (roll < 0.05) {
                  released++
                  settlements.push({ id: j.id, claim: j.claim, outcome: "Released" })
                } else {
                  succeeded.set(j.id, (succeeded.get(j.id) ?? 0) + 1)
                  settlements.push({ id: j.id, claim: j.claim, outcome: "Succeeded" })
                }
                // now and then a waiting job (later in the queue) becomes a straggler
                if (roll > 0.97) {
                  straggled++
                  yield* straggle(ids[Math.floor(random() * n)]!)
                }
              }
              yield* store.settle(w.id, settlements)
            }
          })
        yield* Effect.forEach(workers, drain, { concurrency: "unbounded", discard: true })
        assert.isAbove(released, 0)
        assert.isAbove(straggled, 0)
        assert.strictEqual(succeeded.size, n, "every job succeeded")
        assert.deepStrictEqual([...succeeded.values()].filter((k) => k !== 1), [], "none twice")
        const sql = yield* SqlClient.SqlClient
        const left = yield* sql<Record<string, unknown>>`SELECT id::text, name, worker_id, held, claims, sort_at::text FROM ${sql(`${schema}.job`)} WHERE name = 'floor-many'`
        assert.deepStrictEqual(left, [])
        for (const w of workers) yield* store.deregisterWorker(w.id)
      }))
  })
})
