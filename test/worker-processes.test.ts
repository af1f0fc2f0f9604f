/**
 * Many processes on one database, counted in the database: exactly-once under load, and recovery from a
 * worker process killed with SIGKILL.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { Count, Sticky } from "./fixtures/definitions.js"
import { count, waitUntil } from "./support/harness.js"
import { databaseUrl, PgTest } from "./support/pg.js"
import { processSchema, spawnFixture } from "./support/processes.js"

const setup = (prefix: string) => processSchema(prefix, [Count, Sticky])

describe("Worker processes", () => {
  layer(PgTest({ maxConnections: 10 }), { excludeTestServices: true })((it) => {
    it.effect("10,000 jobs over 3 workers in 2 processes at concurrency 10: every job runs exactly once", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { context, schema } = yield* setup("exactly_once")
        const env = { DATABASE_URL: databaseUrl(), CUCKMQ_SCHEMA: schema, CONCURRENCY: "10" }
        const a = yield* spawnFixture("worker-process.ts", { ...env, WORKERS: "2" })
        const b = yield* spawnFixture("worker-process.ts", { ...env, WORKERS: "1" })
        yield* Effect.all([a.ready, b.ready])
        // enqueue while they run, in bulk and one by one
        yield* Count.enqueueMany(Array.from({ length: 9_000 }, (_, i) => ({ payload: { i } }))).pipe(Effect.provideContext(context))
        yield* Effect.forEach(Array.from({ length: 1_000 }, (_, i) => i + 9_000), (i) => Count.enqueue({ i }), {
          concurrency: 10,
          discard: true
        }).pipe(Effect.provideContext(context))
        yield* waitUntil("all 10,000 are finalized", Effect.map(
          count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql(`${schema}.job_finalized`)}`),
          (n) => n === 10_000
        ), "5 minutes")
        yield* a.kill("SIGTERM")
        yield* b.kill("SIGTERM")
        const codes = yield* Effect.all([a.exited, b.exited])
        const [stats] = yield* sql<{ runs: bigint; jobs: bigint; pids: bigint; succeeded: bigint }>`
          SELECT count(*) AS runs, count(DISTINCT job_id) AS jobs, count(DISTINCT pid) AS pids,
            (SELECT count(*) FROM ${sql(`${schema}.job_finalized`)} WHERE succeeded AND attempts = 1) AS succeeded
          FROM ${sql(`${schema}.runs`)}`
        assert.strictEqual(Number(stats!.runs), 10_000, "no job ran twice")
        assert.strictEqual(Number(stats!.jobs), 10_000, "no job was lost")
        assert.strictEqual(Number(stats!.pids), 2, "both processes took part")
        assert.strictEqual(Number(stats!.succeeded), 10_000)
        assert.strictEqual(yield* count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql(`${schema}.worker`)}`), 0)
        assert.deepStrictEqual(codes.map((c) => c === 0 || c === 130 || c === 143), [true, true], `exit codes ${codes}`)
      }).pipe(Effect.scoped))

    it.effect("a worker process killed with SIGKILL mid-job: its job group is released and the job runs again; nothing is lost", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { context, schema } = yield* setup("sigkill")
        const env = {
          DATABASE_URL: databaseUrl(),
          CUCKMQ_SCHEMA: schema,
          HEARTBEAT_SECS: "0.5",
          LEASE_SECS: "2",
          HANG_ATTEMPTS: "1"
        }
        const victim = yield* spawnFixture("worker-process.ts", env)
        yield* victim.ready
        const first = yield* Sticky.enqueue({}, { jobGroup: "G" }).pipe(Effect.provideContext(context))
        const second = yield* Sticky.enqueue({}, { jobGroup: "G" }).pipe(Effect.provideContext(context))
        yield* waitUntil("the victim started the first job", Effect.map(
          count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql(`${schema}.runs`)} WHERE job_id = ${first}`),
          (n) => n === 1
        ))
        yield* victim.kill("SIGKILL")
        assert.strictEqual(yield* victim.exited, "SIGKILL")
        // the second job is blocked by the group lock the dead worker holds, until a live worker rescues it
        const rescuer = yield* spawnFixture("worker-process.ts", { ...env, HANG_ATTEMPTS: "" })
        yield* rescuer.ready
        yield* waitUntil("both jobs succeeded", Effect.map(
          count(sql<{ n: bigint }>`
            SELECT count(*) AS n FROM ${sql(`${schema}.job_finalized`)} WHERE succeeded AND id IN (${first}, ${second})`),
          (n) => n === 2
        ), "2 minutes")
        yield* rescuer.kill("SIGTERM")
        yield* rescuer.exited
        const rows = yield* sql<{ job_id: bigint; attempt: number; pid: number; ended: boolean }>`
          SELECT job_id, attempt, pid, ended_at IS NOT NULL AS ended FROM ${sql(`${schema}.runs`)} ORDER BY id`
        // The victim's start of the first job was not recorded yet (its worker records starts with the job's
        // settlement, or at its next heartbeat): the job is not charged an attempt, but it has a crash on record,
        // so the rescuer confirms its start before running it. It runs first (it kept its place in the queue);
        // the group's second job was held behind it, and runs once the first is done.
        assert.deepStrictEqual(rows.map((r) => [String(r.job_id), r.attempt, r.pid === victim.pid, r.ended]), [
          [first, 1, true, false], // killed mid-job
          [first, 1, false, true],
          [second, 1, false, true]
        ])
        const [job] = yield* sql<{ attempts: number; crashes: number }>`
          SELECT attempts, crashes FROM ${sql(`${schema}.job_finalized`)} WHERE id = ${first}`
        assert.deepStrictEqual([job!.attempts, job!.crashes], [1, 1])
        // never two at once in group G: the intervals of finished runs do not overlap
        const [overlaps] = yield* sql<{ n: bigint }>`
          SELECT count(*) AS n FROM ${sql(`${schema}.runs`)} a JOIN ${sql(`${schema}.runs`)} b ON a.id < b.id
          WHERE a.ended_at IS NOT NULL AND b.ended_at IS NOT NULL
            AND tstzrange(a.started_at, a.ended_at) && tstzrange(b.started_at, b.ended_at)`
        assert.strictEqual(Number(overlaps!.n), 0)
      }).pipe(Effect.scoped))
  })
})
