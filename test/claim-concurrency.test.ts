/**
 * The claim does not serialise across processes (issue 14, "Many processes"). Another process's claim in
 * flight holds row locks on the jobs it is taking (and, for grouped jobs, on their groups' rows) until it
 * commits. Here a transaction on another connection holds exactly those locks, open for as long as the test
 * likes, while a worker drains the rest of the queue: it must run every job not locked (it would hang if a
 * claim, a settlement or anything else of the worker waited for those locks), each once, and the locked ones
 * once the transaction ends. Counting only: nothing asserts how long anything took.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { JobDefinition } from "../src/index.js"
import { startWorker, waitUntil, withContext } from "./support/harness.js"
import { PgTest } from "./support/pg.js"

const fast = { pollIntervalSecs: 0.2, heartbeatSecs: 0.5, leaseSecs: 5 } as const

describe("claims across processes", () => {
  layer(PgTest({ maxConnections: 20 }), { excludeTestServices: true })((it) => {
    const runs = new Map<number, number>()
    const Plain = JobDefinition.make({
      name: "plain",
      payload: Schema.Struct({ i: Schema.Number }),
      handler: ({ i }) => Effect.sync(() => void runs.set(i, (runs.get(i) ?? 0) + 1))
    })
    const Grouped = JobDefinition.make({
      name: "grouped",
      payload: Schema.Struct({ i: Schema.Number }),
      groupConcurrency: 1000,
      handler: ({ i }) => Effect.sync(() => void runs.set(i, (runs.get(i) ?? 0) + 1))
    })

    /**
     * Holds `lock` (a locking query) in a transaction of its own until the returned effect is run, which
     * ends it (rolled back: a claim that failed, its locks released) and waits for that.
     */
    const holdLocks = (lock: (sql: SqlClient.SqlClient) => Effect.Effect<ReadonlyArray<{ readonly i: number }>, unknown>) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const locked = yield* Deferred.make<ReadonlyArray<number>>()
        const release = yield* Deferred.make<void>()
        const holder = yield* sql.withTransaction(Effect.gen(function*() {
          const rows = yield* lock(sql)
          yield* Deferred.succeed(locked, rows.map((r) => Number(r.i)))
          yield* Deferred.await(release)
          return yield* Effect.fail("rolled back" as const)
        })).pipe(Effect.ignore, Effect.forkChild)
        const end = Effect.andThen(Deferred.succeed(release, undefined), Fiber.join(holder))
        // a failing test ends it too, before its schema is dropped (which would wait for these locks)
        yield* Effect.addFinalizer(() => end)
        const ids = yield* Deferred.await(locked)
        return { ids, end }
      })

    it.effect("a worker drains everything but the jobs another claim in flight has locked, and those after it ends", () =>
      withContext("claim_locks", { definitions: [Plain] }, ({ schema }) =>
        Effect.gen(function*() {
          runs.clear()
          const n = 1_000
          yield* Plain.enqueueMany(Array.from({ length: n }, (_, i) => ({ payload: { i } })))
          // the head of the queue, locked as a claim locks it (FOR UPDATE of the first ready rows)
          const held = yield* holdLocks((sql) =>
            sql<{ i: number }>`
              SELECT (payload->>'i')::int AS i FROM ${sql(`${schema}.job`)}
              WHERE worker_id IS NULL AND NOT held ORDER BY sort_at, id LIMIT 100 FOR UPDATE`
          )
          assert.strictEqual(held.ids.length, 100)
          const stop = yield* startWorker({ ...fast, concurrency: 10 })
          yield* waitUntil(`the ${n - 100} unlocked jobs ran`, Effect.sync(() => runs.size >= n - 100))
          for (const i of held.ids) assert.isFalse(runs.has(i), `job ${i} ran while another claim held it`)
          yield* held.end
          yield* waitUntil("every job ran", Effect.sync(() => runs.size >= n))
          yield* stop
          assert.strictEqual(runs.size, n)
          for (const [i, times] of runs) assert.strictEqual(times, 1, `job ${i} ran ${times} times`)
        })))

    it.effect("a claim in flight holding one group's row holds up no claim of other groups' jobs", () =>
      withContext("claim_group_locks", { definitions: [Grouped] }, ({ schema }) =>
        Effect.gen(function*() {
          runs.clear()
          // one job of group "x" first, so that its group row exists; then 500 jobs of 50 other groups
          yield* Grouped.enqueue({ i: -1 }, { jobGroup: "x" })
          const stopFirst = yield* startWorker({ ...fast, concurrency: 1 })
          yield* waitUntil("x's job ran", Effect.sync(() => runs.has(-1)))
          yield* stopFirst
          const n = 500
          yield* Grouped.enqueueMany(Array.from({ length: n }, (_, i) => ({ payload: { i }, jobGroup: `g${i % 50}` })))
          // another process's claim of x's jobs in flight: x's group row locked (FOR UPDATE), as the claim locks it
          const held = yield* holdLocks((sql) =>
            sql<{ i: number }>`SELECT -1 AS i FROM ${sql(`${schema}.job_group`)} WHERE name = 'x' FOR UPDATE`
          )
          assert.strictEqual(held.ids.length, 1)
          const stop = yield* startWorker({ ...fast, concurrency: 10 })
          yield* waitUntil(`the ${n} jobs of other groups ran`, Effect.sync(() => runs.size >= n + 1))
          yield* held.end
          yield* stop
          assert.strictEqual(runs.size, n + 1)
          for (const [i, times] of runs) assert.strictEqual(times, 1, `job ${i} ran ${times} times`)
        })))
  })
})
