/**
 * Crashes across processes, counted in the database: a SIGKILLed process is found dead through its
 * liveness session (long before any lease could expire), its unstarted jobs are never failed, and a live
 * process is never declared dead: not when its session connection is killed, not when its event loop is
 * blocked for a while.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { Busy, Count, Poison, Sticky } from "./fixtures/definitions.js"
import { count, waitUntil } from "./support/harness.js"
import { databaseUrl, PgTest } from "./support/pg.js"
import { processSchema, spawnFixture } from "./support/processes.js"

const setup = (prefix: string) => processSchema(prefix, [Count, Sticky, Busy, Poison])

describe("crash detection", () => {
  layer(PgTest({ maxConnections: 10 }), { excludeTestServices: true })((it) => {
    it.effect("a SIGKILLed process is declared dead through its liveness session, with hour-long leases: its group runs again", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { context, schema, table } = yield* setup("session_death")
        // leases of an hour: only the liveness session can tell that the process died
        const env = { DATABASE_URL: databaseUrl(), CUCKMQ_SCHEMA: schema, HEARTBEAT_SECS: "60", LEASE_SECS: "3600" }
        const victim = yield* spawnFixture("worker-process.ts", { ...env, HANG_ATTEMPTS: "1" })
        yield* victim.ready
        const first = yield* Sticky.enqueue({}, { jobGroup: "G" }).pipe(Effect.provideContext(context))
        const second = yield* Sticky.enqueue({}, { jobGroup: "G" }).pipe(Effect.provideContext(context))
        yield* waitUntil("the victim started the first job", Effect.map(
          count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${table("runs")} WHERE job_id = ${first}`),
          (n) => n === 1
        ))
        yield* victim.kill("SIGKILL")
        const survivor = yield* spawnFixture("worker-process.ts", { ...env, HANG_ATTEMPTS: "" })
        yield* survivor.ready
        yield* waitUntil("both jobs succeeded", Effect.map(
          count(sql<{ n: bigint }>`
            SELECT count(*) AS n FROM ${table("job_finalized")} WHERE succeeded AND id IN (${first}, ${second})`),
          (n) => n === 2
        ), "60 seconds")
        yield* survivor.kill("SIGTERM")
        yield* survivor.exited
        const [job] = yield* sql<{ crashes: number }>`SELECT crashes FROM ${table("job_finalized")} WHERE id = ${first}`
        assert.strictEqual(job!.crashes, 1)
        assert.strictEqual(yield* count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${table("worker")}`), 0)
      }).pipe(Effect.scoped))

    it.effect("a process SIGKILLed mid-drain with prefetched jobs and numAttempts 1: no job is failed without a handler start", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { context, schema, table } = yield* setup("kill_drain")
        const env = { DATABASE_URL: databaseUrl(), CUCKMQ_SCHEMA: schema, CONCURRENCY: "10" }
        const total = 3_000
        yield* Count.enqueueMany(Array.from({ length: total }, (_, i) => ({ payload: { i } }))).pipe(Effect.provideContext(context))
        const victim = yield* spawnFixture("worker-process.ts", env)
        yield* victim.ready
        yield* waitUntil("the victim is well into the drain", Effect.map(
          count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${table("runs")}`),
          (n) => n >= 500
        ))
        yield* victim.kill("SIGKILL")
        const held = yield* count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${table("job")} WHERE worker_id IS NOT NULL`)
        const survivor = yield* spawnFixture("worker-process.ts", env)
        yield* survivor.ready
        yield* waitUntil("all finalized", Effect.map(
          count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${table("job_finalized")}`),
          (n) => n === total
        ), "2 minutes")
        yield* survivor.kill("SIGTERM")
        yield* survivor.exited
        const [stats] = yield* sql<{ failed_unstarted: bigint; failed: bigint; lost: bigint; rescued: bigint }>`
          SELECT
            (SELECT count(*) FROM ${table("job_finalized")} f
             WHERE NOT succeeded AND NOT EXISTS (SELECT 1 FROM ${table("runs")} r WHERE r.job_id = f.id)) AS failed_unstarted,
            (SELECT count(*) FROM ${table("job_finalized")} WHERE NOT succeeded) AS failed,
            (SELECT count(*) FROM ${table("job")}) AS lost,
            (SELECT count(*) FROM ${table("job_finalized")} WHERE crashes > 0) AS rescued`
        yield* Effect.log(`killed holding ${held} jobs; rescued ${stats!.rescued}, failed ${stats!.failed}`)
        assert.isAbove(held, 10, "the victim held prefetched jobs when it died")
        assert.strictEqual(Number(stats!.failed_unstarted), 0)
        assert.strictEqual(Number(stats!.lost), 0)
      }).pipe(Effect.scoped))

    it.effect("a live process is not declared dead: its session connection killed, then its event loop blocked for 1.5 s at a time", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { context, schema, table } = yield* setup("live_not_dead")
        const env = {
          DATABASE_URL: databaseUrl(),
          CUCKMQ_SCHEMA: schema,
          STICKY_MS: "4000",
          BUSY_MS: "1500"
        }
        const worker = yield* spawnFixture("worker-process.ts", env)
        const rescuer = yield* spawnFixture("worker-process.ts", env) // rescues every second, like any worker
        yield* Effect.all([worker.ready, rescuer.ready])
        // a 4 s job on each; kill each process's session connection while they run
        const long = yield* Effect.forEach([1, 2], () => Sticky.enqueue({}, { jobGroup: "L" }), { concurrency: 1 })
          .pipe(Effect.provideContext(context))
        yield* waitUntil("a long job started", Effect.map(
          count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${table("runs")}`),
          (n) => n >= 1
        ))
        const killed = yield* sql<{ ok: boolean }>`
          SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
          WHERE application_name = ${`cuckmq session ${schema}`.slice(0, 63)}`
        assert.strictEqual(killed.length, 2, "one session connection per process")
        // both sessions are back, holding their locks (a loop blocked before that is the README's caveat)
        yield* waitUntil("both sessions are back", Effect.map(
          count(sql<{ n: bigint }>`
            SELECT count(DISTINCT a.pid) AS n FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'advisory'
            WHERE a.application_name = ${`cuckmq session ${schema}`.slice(0, 63)}`),
          (n) => n === 2
        ))
        // blocked event loops: both processes run some
        const busy = yield* Effect.forEach([1, 2, 3, 4], () => Busy.enqueue({}), { concurrency: 1 }).pipe(Effect.provideContext(context))
        yield* waitUntil("all jobs succeeded", Effect.map(
          count(sql<{ n: bigint }>`
            SELECT count(*) AS n FROM ${table("job_finalized")} WHERE succeeded AND id = ANY(${[...long, ...busy]}::bigint[])`),
          (n) => n === 6
        ), "60 seconds").pipe(Effect.onError(() =>
          Effect.gen(function*() {
            const jobs = yield* sql`SELECT id, worker_id, claims, started, crashes, held, group_slot, claimed_at, run_at FROM ${table("job")}`
            const workers = yield* sql`SELECT * FROM ${table("worker")}`
            const finalized = yield* sql`SELECT id, name, succeeded, attempts, claims, crashes, last_error::text AS last_error FROM ${table("job_finalized")}`
            const runs = yield* sql`SELECT * FROM ${table("runs")}`
            yield* Effect.logError("stuck", { jobs, finalized, runs, workers, worker: worker.output(), rescuer: rescuer.output() })
          }).pipe(Effect.ignore)
        ))
        yield* Effect.all([worker.kill("SIGTERM"), rescuer.kill("SIGTERM")])
        yield* Effect.all([worker.exited, rescuer.exited])
        const [stats] = yield* sql<{ runs: bigint; jobs: bigint; crashes: bigint }>`
          SELECT (SELECT count(*) FROM ${table("runs")}) AS runs,
            (SELECT count(DISTINCT job_id) FROM ${table("runs")}) AS jobs,
            (SELECT coalesce(sum(crashes), 0) FROM ${table("job_finalized")}) AS crashes`
        if (Number(stats!.runs) !== 6 || Number(stats!.crashes) !== 0) {
          // say which job ran again, where, and why (its finalized row), with both processes' output
          const runs = yield* sql`SELECT * FROM ${table("runs")} ORDER BY id`
          const finalized = yield* sql`SELECT id, name, succeeded, attempts, claims, crashes, last_error::text AS last_error FROM ${table("job_finalized")}`
          yield* Effect.logError("a job ran more than once", { runs, finalized, worker: worker.output(), rescuer: rescuer.output() })
        }
        assert.strictEqual(Number(stats!.runs), 6, "every job ran once: none was taken away from its live worker")
        assert.strictEqual(Number(stats!.jobs), 6)
        assert.strictEqual(Number(stats!.crashes), 0)
      }).pipe(Effect.scoped))

    it.effect("a job that kills its process every time it starts is finalized as failed after numAttempts recorded starts, or numAttempts + 4 crashes", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { context, schema, table } = yield* setup("poison")
        const env = { DATABASE_URL: databaseUrl(), CUCKMQ_SCHEMA: schema }
        const id = yield* Poison.enqueue({}).pipe(Effect.provideContext(context)) // numAttempts 2
        const state = sql<{ state: string }>`
          SELECT CASE WHEN EXISTS (SELECT 1 FROM ${table("job_finalized")} WHERE id = ${id}) THEN 'finalized' ELSE 'live' END AS state`
        let processes = 0
        // a fleet that keeps replacing its dead: each process runs the job once, and dies of it
        while ((yield* state)[0]!.state !== "finalized" && processes < 8) {
          const worker = yield* spawnFixture("worker-process.ts", env)
          processes++
          yield* worker.ready
          const ended = yield* Effect.race(
            Effect.as(worker.exited, true),
            Effect.as(waitUntil("finalized", Effect.map(state, (r) => r[0]!.state === "finalized"), "60 seconds"), false)
          )
          if (!ended) yield* worker.kill("SIGTERM")
        }
        const [job] = yield* sql<{ succeeded: boolean; attempts: number; crashes: number }>`
          SELECT succeeded, attempts, crashes FROM ${table("job_finalized")} WHERE id = ${id}`
        const runs = yield* count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${table("runs")} WHERE job_id = ${id}`)
        // Each run records itself, then kills its process. Its start is recorded only after the handler started
        // (for a job with a crash on record, the moment it starts): a run whose start did not reach the database
        // before the kill is not counted. The job fails once two starts were recorded (numAttempts), or at its
        // numAttempts + 4 = 6th crash, whichever comes first: never more runs than that.
        assert.isFalse(job!.succeeded)
        assert.strictEqual(job!.crashes, runs, "every run crashed its process, and was rescued")
        assert.isAtMost(runs, 6)
        assert.isTrue(job!.attempts === 2 || (runs === 6 && job!.attempts < 2), `attempts ${job!.attempts} after ${runs} runs`)
      }).pipe(Effect.scoped))

    it.effect("a frozen process (its connections stay open, no FIN) is found dead by its lease, and stops its job when it thaws", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { context, schema, table } = yield* setup("frozen")
        const env = {
          DATABASE_URL: databaseUrl(),
          CUCKMQ_SCHEMA: schema,
          HEARTBEAT_SECS: "0.3",
          LEASE_SECS: "2",
          STICKY_MS: "3000"
        }
        const frozen = yield* spawnFixture("worker-process.ts", env)
        yield* frozen.ready
        const id = yield* Sticky.enqueue({}, { jobGroup: "F" }).pipe(Effect.provideContext(context))
        yield* waitUntil("the job started", Effect.map(
          count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${table("runs")} WHERE job_id = ${id}`),
          (n) => n === 1
        ))
        yield* frozen.kill("SIGSTOP")
        const other = yield* spawnFixture("worker-process.ts", env)
        yield* other.ready
        yield* waitUntil("the job ran again elsewhere", Effect.map(
          count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${table("runs")} WHERE job_id = ${id}`),
          (n) => n === 2
        ), "60 seconds")
        yield* frozen.kill("SIGCONT")
        yield* waitUntil("it succeeded", Effect.map(
          count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${table("job_finalized")} WHERE id = ${id} AND succeeded`),
          (n) => n === 1
        ), "60 seconds")
        yield* Effect.sleep("4 seconds") // long enough for the thawed run to have finished, had it not been stopped
        yield* Effect.all([frozen.kill("SIGTERM"), other.kill("SIGTERM")])
        yield* Effect.all([frozen.exited, other.exited])
        const rows = yield* sql<{ pid: number; ended: boolean }>`
          SELECT pid, ended_at IS NOT NULL AS ended FROM ${table("runs")} WHERE job_id = ${id} ORDER BY id`
        // the frozen run never finished: on waking, its worker found its lease gone and stopped it
        assert.deepStrictEqual(rows.map((r) => [r.pid === frozen.pid, r.ended]), [[true, false], [false, true]])
      }).pipe(Effect.scoped))
  })
})
