/**
 * A worker "host" across a network: a worker process in a network namespace of its own (bench/netns.ts: a
 * veth pair, a TCP forwarder to the database in the root namespace, 5 ms added round-trip time) drains jobs
 * enqueued from the root namespace, and survives its link going down (for 3 s plus the start of a worker in
 * the root namespace, which carries on meanwhile: long enough that the remote session may be given up) and
 * coming back while it holds jobs: nothing lost, never two runs of one job at once, and the jobs enqueued
 * afterwards run exactly once on it. Skipped (with the reason) where `ip netns add` is not permitted.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { createNetwork, execIn, netnsUnavailable } from "../bench/netns.js"
import { Count } from "./fixtures/definitions.js"
import { count, waitUntil } from "./support/harness.js"
import { databaseUrl, PgTest } from "./support/pg.js"
import { processSchema, spawnFixture } from "./support/processes.js"

const unavailable = await netnsUnavailable()
if (unavailable !== undefined) {
  // eslint-disable-next-line no-console
  console.warn(`[cuckmq tests] test/netns.test.ts skipped: ${unavailable}`)
}

/** One host with 5 ms added RTT and a forwarder to the test database; the URL that reaches it from inside. */
const host = Effect.acquireRelease(
  Effect.promise(async () => {
    const network = await createNetwork({ hosts: 1, rttMs: 5 })
    const url = new URL(databaseUrl())
    const target = await network.forward(network.hosts[0]!, { host: url.hostname, port: Number(url.port || 5432) })
    url.hostname = target.host
    url.port = String(target.port)
    return { network, host: network.hosts[0]!, url: url.toString() }
  }),
  ({ network }) => Effect.promise(() => network.close())
)

describe.skipIf(unavailable !== undefined)(`Worker host in a network namespace${unavailable ? ` (skipped: ${unavailable})` : ""}`, () => {
  layer(PgTest({ maxConnections: 10 }), { excludeTestServices: true })((it) => {
    it.effect("a worker across a 5 ms link drains jobs enqueued from the root namespace, and survives its link down for 3 s or more", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { context, schema, table } = yield* processSchema("netns", [Count])
        const { network, host: h, url } = yield* host
        const env = { CUCKMQ_SCHEMA: schema, CONCURRENCY: "10" }
        const remote = yield* spawnFixture("worker-process.ts", { ...env, DATABASE_URL: url }, { prefix: execIn(h) })
        yield* remote.ready
        const runsOf = (pid: number) => count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${table("runs")} WHERE pid = ${pid}`)
        const finalized = count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${table("job_finalized")}`)
        const enqueue = (from: number, n: number) =>
          Count.enqueueMany(Array.from({ length: n }, (_, k) => ({ payload: { i: from + k } }))).pipe(Effect.provideContext(context))

        yield* enqueue(0, 1_000)
        yield* waitUntil("the remote worker ran 100 jobs", Effect.map(runsOf(remote.pid), (n) => n >= 100))
        // the link goes down while the remote worker holds jobs; a worker in the root namespace carries on
        yield* Effect.promise(() => network.setLink(h, false))
        const local = yield* spawnFixture("worker-process.ts", { ...env, DATABASE_URL: databaseUrl() })
        yield* local.ready
        yield* Effect.sleep("3 seconds")
        yield* Effect.promise(() => network.setLink(h, true))
        yield* waitUntil("all 1,000 are finalized", Effect.map(finalized, (n) => n === 1_000), "2 minutes")
        yield* local.kill("SIGTERM")
        yield* local.exited
        // only the remote worker is left: these run only if it came through the outage
        yield* enqueue(1_000, 100)
        yield* waitUntil("the remote worker finalized 100 more", Effect.map(finalized, (n) => n === 1_100), "2 minutes")
        yield* remote.kill("SIGTERM")
        const code = yield* remote.exited

        // None lost; each finalized once. A job may have run twice: one the remote worker ran whose settlement
        // could not reach the database during the outage, when the remote worker, its session lost, gave up
        // its registration and the local worker rescued the job (at least once). Never two runs at once.
        const [stats] = yield* sql<{ jobs: bigint; late: bigint; lateRemote: bigint }>`
          WITH late AS (SELECT id FROM ${table("job_finalized")} ORDER BY id DESC LIMIT 100)
          SELECT count(DISTINCT job_id) AS jobs,
            count(*) FILTER (WHERE job_id IN (SELECT id FROM late)) AS late,
            count(*) FILTER (WHERE job_id IN (SELECT id FROM late) AND pid = ${remote.pid}) AS "lateRemote"
          FROM ${table("runs")}`
        assert.strictEqual(Number(stats!.jobs), 1_100, "no job was lost")
        assert.strictEqual(yield* finalized, 1_100)
        // A job can fail only as one whose worker was cut off while it ran: the remote worker's handler had
        // started (its start recorded), the outage outlasted its session, and the rescuer counted the crash
        // (Count has one attempt). Never a job that did not run, and none of the late ones.
        const failed = yield* sql<{ id: string; error: string | null; remoteRuns: number; otherRuns: number }>`
          SELECT f.id::text, f.last_error->>'message' AS error,
            (SELECT count(*)::int FROM ${table("runs")} r WHERE r.job_id = f.id AND r.pid = ${remote.pid}) AS "remoteRuns",
            (SELECT count(*)::int FROM ${table("runs")} r WHERE r.job_id = f.id AND r.pid <> ${remote.pid}) AS "otherRuns"
          FROM ${table("job_finalized")} f WHERE NOT f.succeeded ORDER BY f.id`
        for (const f of failed) {
          assert.deepStrictEqual(f, { id: f.id, error: "the worker running this job died", remoteRuns: 1, otherRuns: 0 },
            `a failed job ran on the remote worker and died with it`)
          assert.isAtMost(Number(f.id), 1_000, "no late job failed")
        }
        if (Number(stats!.late) !== 100 || Number(stats!.lateRemote) !== 100) {
          // what ran more than once, and what the remote worker said: the evidence for a failure
          const doubled = yield* sql<Record<string, unknown>>`
            SELECT job_id::text, pid, attempt, started_at::text, ended_at::text FROM ${table("runs")}
            WHERE job_id IN (SELECT job_id FROM ${table("runs")} GROUP BY job_id HAVING count(*) > 1)
            ORDER BY job_id, started_at LIMIT 40`
          const said = remote.output().split("\n").filter((line) => /WARN|ERROR|INFO/.test(line)).slice(-40)
          assert.fail(`the jobs enqueued after the outage ran ${stats!.late} times (${stats!.lateRemote} on the remote worker), not 100:\n${
            JSON.stringify(doubled, null, 1)}\nthe remote worker said:\n${said.join("\n")}`)
        }
        const [overlaps] = yield* sql<{ n: bigint }>`
          SELECT count(*) AS n FROM ${table("runs")} a JOIN ${table("runs")} b ON a.id < b.id AND a.job_id = b.job_id
          WHERE a.ended_at IS NOT NULL AND b.ended_at IS NOT NULL
            AND tstzrange(a.started_at, a.ended_at) && tstzrange(b.started_at, b.ended_at)`
        assert.strictEqual(Number(overlaps!.n), 0, "never two runs of one job at once")
        // nothing is held. A registration fenced during the outage (its session was lost; the worker went on
        // under a new one) may be left to expire: it holds nothing, and only the remote worker's can be left.
        assert.strictEqual(yield* count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${table("job")} WHERE worker_id IS NOT NULL`), 0)
        assert.strictEqual(yield* count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${table("worker")} WHERE pid <> ${remote.pid}`), 0)
        assert.isTrue(code === 0 || code === 130 || code === 143, `exit code ${code}`)
      }).pipe(Effect.scoped))
  })
})
