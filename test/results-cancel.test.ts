/**
 * Results and cancellation across processes, on PostgreSQL: a worker in a child process runs the jobs; this
 * process enqueues, awaits results (woken by the worker's NOTIFY: the waits here poll only once a minute) and
 * cancels. Cancellation is shown by what the handler itself wrote (its `Effect.onInterrupt` row), and the
 * group lock's release by the next job of the group running after it: counted, not timed.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { Cuckmq } from "../src/index.js"
import { After, Block, definitions, Sum } from "./fixtures/result-definitions.js"
import { waitUntil } from "./support/harness.js"
import { databaseUrl, PgTest, uniqueSchema } from "./support/pg.js"
import { spawnFixture } from "./support/processes.js"
import { Migrations } from "../src/index.js"

/** Waits only for a notification: the poll fallback comes too late for the test's timeout. */
const notified = { timeout: "30 seconds", pollInterval: "10 minutes" } as const

describe("results and cancellation across processes (PostgreSQL)", () => {
  layer(PgTest({ maxConnections: 4 }), { excludeTestServices: true })((it) => {
    it.effect("awaitResult in another process: finished before the wait, woken by NOTIFY, failed, unknown; cancel a running job", () =>
      Effect.gen(function*() {
        const schema = uniqueSchema("results")
        const sql = yield* SqlClient.SqlClient
        yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`))
        yield* Migrations.migrate(schema)
        const logTable = sql(`${schema}.log`)
        yield* sql`CREATE TABLE ${logTable} (id serial PRIMARY KEY, job_id bigint NOT NULL, event text NOT NULL, pid int NOT NULL)`
        const context = yield* Layer.build(Cuckmq.layer({ schema, definitions }))
        const provide = Effect.provide(context)
        const child = yield* spawnFixture("result-worker.ts", { DATABASE_URL: databaseUrl(), CUCKMQ_SCHEMA: schema })
        yield* child.ready
        const finalized = (id: string) =>
          Effect.map(sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(`${schema}.job_finalized`)} WHERE id = ${id}`,
            (rows) => rows[0]!.n === 1)

        // finished before the wait began: answered from the row
        const early = yield* provide(Sum.enqueue({ a: 1, b: 2 }))
        yield* waitUntil("the first job finished", finalized(early))
        assert.deepStrictEqual(yield* provide(Sum.awaitResult(early, notified)), { sum: 3, at: new Date(0) })
        // waiting as it runs: woken by the settlement's NOTIFY (the poll would come after 10 minutes)
        const results = yield* provide(Effect.forEach([10, 20, 30], (a) => Sum.enqueueAndAwait({ a, b: 1 }, notified), {
          concurrency: "unbounded"
        }))
        assert.deepStrictEqual(results.map((r) => r.sum), [11, 21, 31])
        // a failed job: its typed failure, with its last error
        const failed = yield* provide(Effect.flip(Sum.enqueueAndAwait({ a: -1, b: 0 }, notified)))
        assert.strictEqual(failed._tag, "JobFailed")
        assert.include(failed.message, "a is negative: -1")
        assert.include((failed as { error: { message: string } }).error.message, "a is negative: -1")
        // no such job; a job of another definition
        assert.strictEqual((yield* provide(Effect.flip(Sum.awaitResult("999999999", notified))))._tag, "JobNotFound")
        assert.strictEqual((yield* provide(Effect.flip(Block.awaitResult(early, notified))))._tag, "JobNotFound")

        // cancel a running job in the child process: its handler is interrupted, then the group's next job runs
        const running = yield* provide(Block.enqueue({}, { jobGroup: "tenant-1" }))
        const next = yield* provide(After.enqueue({}, { jobGroup: "tenant-1" }))
        const waiting = yield* provide(Block.enqueue({}, { delay: "1 hour" }))
        const events = (id: string) =>
          Effect.map(sql<{ event: string }>`SELECT event FROM ${logTable} WHERE job_id = ${id} ORDER BY id`, (rows) =>
            rows.map((r) => r.event))
        yield* waitUntil("the blocking job started", Effect.map(events(running), (e) => e.includes("started")))
        const timedOut = yield* provide(Effect.flip(Block.awaitResult(running, { timeout: "200 millis" })))
        assert.strictEqual(timedOut._tag, "JobResultTimeout")
        assert.deepStrictEqual(yield* events(next), []) // the group is held by the running job
        assert.strictEqual(yield* provide(Cuckmq.cancel(running)), "cancelling")
        // the worker learns of it by NOTIFY (its heartbeat, the poll, is 30 s away)
        const cancelled = yield* provide(Effect.flip(Block.awaitResult(running, notified)))
        assert.strictEqual(cancelled._tag, "JobCancelled")
        assert.deepStrictEqual(yield* events(running), ["started", "interrupted"])
        assert.deepStrictEqual(yield* provide(After.awaitResult(next, notified)), undefined)
        const order = yield* sql<{ job_id: string; event: string }>`
          SELECT job_id::text, event FROM ${logTable} WHERE job_id IN (${running}, ${next}) ORDER BY id`
        assert.deepStrictEqual(order.map((r) => `${r.job_id}:${r.event}`), [
          `${running}:started`,
          `${running}:interrupted`,
          `${next}:ran`
        ])
        const [row] = yield* sql<{ cancelled: boolean; succeeded: boolean; attempts: number }>`
          SELECT cancelled, succeeded, attempts FROM ${sql(`${schema}.job_finalized`)} WHERE id = ${running}`
        assert.deepStrictEqual({ ...row }, { cancelled: true, succeeded: false, attempts: 1 })
        // a waiting job: cancelled at once, never runs; cancelling again says it is finalized
        assert.strictEqual(yield* provide(Cuckmq.cancel(waiting)), "cancelled")
        assert.strictEqual(yield* provide(Cuckmq.cancel(waiting)), "finalized")
        assert.strictEqual(yield* provide(Cuckmq.cancel("999999999")), "not-found")
        assert.strictEqual((yield* provide(Effect.flip(Cuckmq.cancel("x'1"))))._tag, "InvalidOptions")
        assert.strictEqual((yield* provide(Effect.flip(Cuckmq.cancelWhere({}))))._tag, "InvalidOptions")
        assert.deepStrictEqual(yield* events(waiting), [])
        // by filter: two running jobs of a definition, in the other process
        const two = yield* provide(Effect.forEach([1, 2], () => Block.enqueue({})))
        yield* waitUntil("both started", Effect.map(Effect.forEach(two, events), (e) => e.every((x) => x.includes("started"))))
        const byDefinition = yield* provide(Cuckmq.cancelWhere({ definition: "block" }))
        assert.deepStrictEqual(byDefinition, { cancelled: [], cancelling: two })
        for (const id of two) {
          assert.strictEqual((yield* provide(Effect.flip(Block.awaitResult(id, notified))))._tag, "JobCancelled")
          assert.deepStrictEqual(yield* events(id), ["started", "interrupted"])
        }
        yield* child.kill("SIGTERM")
        yield* child.exited
      }).pipe(Effect.scoped), 120_000)
  })
})
