/**
 * Orchestrator semantics on real PostgreSQL, by counting: repeating jobs under several orchestrators,
 * retention in bounded batches, crash recovery of dead workers, and an orchestrator killed mid-cycle.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Option, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { Cuckmq, type CuckmqEvent, JobDefinition, Migrations } from "../src/index.js"
import { Count, Sticky, ticks } from "./fixtures/definitions.js"
import { count, startOrchestrator, startWorker, waitUntil, withContext } from "./support/harness.js"
import { databaseUrl, PgTest, uniqueSchema } from "./support/pg.js"
import { spawnFixture } from "./support/processes.js"
import * as Engine from "../src/internal/engine.js"

/** Scheduled due times of a definition, in order, from live and finalized jobs. */
const scheduledTimes = (schema: string, name: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ t: Date }>`
      SELECT scheduled_for AS t FROM ${sql(`${schema}.job`)} WHERE name = ${name} AND scheduled_for IS NOT NULL
      UNION ALL
      SELECT scheduled_for FROM ${sql(`${schema}.job_finalized`)} WHERE name = ${name} AND scheduled_for IS NOT NULL
      ORDER BY 1`
    return rows.map((r) => r.t.getTime())
  })

const assertEveryDueTimeOnce = (times: ReadonlyArray<number>, intervalMs: number) => {
  assert.strictEqual(new Set(times).size, times.length, "a due time was enqueued twice")
  for (let i = 1; i < times.length; i++) {
    assert.strictEqual(times[i]! - times[i - 1]!, intervalMs, `gap between due times ${i - 1} and ${i}`)
  }
}

describe("Orchestrator", () => {
  layer(PgTest({ maxConnections: 20 }), { excludeTestServices: true })((it) => {
    it.effect("3 orchestrators on a 1-second repeat for 10 seconds: every due time enqueued once, no gaps", () => {
      const Tick = JobDefinition.make({ name: "tick", repeatSecs: 1, handler: () => Effect.void })
      return withContext("repeat", { definitions: [Tick] }, ({ cuckmq, schema }) =>
        Effect.gen(function*() {
          const events = yield* cuckmq.subscribe
          const scheduled = yield* events.pipe(
            Stream.filter((e) => e._tag === "ORCHESTRATOR_JOB_SCHEDULE"),
            Stream.take(10),
            Stream.runCollect,
            Effect.forkChild
          )
          // the default poll (5 s) is longer than the repeat: orchestrators wake up when the next one is due
          const stops = yield* Effect.all([startOrchestrator(), startOrchestrator(), startOrchestrator()])
          yield* Fiber.join(scheduled)
          yield* Effect.all(stops)
          const times = yield* scheduledTimes(schema, "tick")
          assert.isAtLeast(times.length, 10)
          assertEveryDueTimeOnce(times, 1000)
        }).pipe(Effect.scoped))
    })

    it.effect("repeating jobs run: a worker and an orchestrator together, metadata carries the due time", () => {
      const seen: Array<Date | undefined> = []
      const Tick = JobDefinition.make({
        name: "tick-run",
        repeatSecs: 0.3,
        handler: (_, meta) => Effect.sync(() => seen.push(meta.scheduledFor))
      })
      return withContext("repeat_run", { definitions: [Tick] }, () =>
        Effect.gen(function*() {
          const stopO = yield* startOrchestrator()
          const stopW = yield* startWorker({ pollIntervalSecs: 0.1 })
          yield* waitUntil("three runs", Effect.sync(() => seen.length >= 3))
          yield* stopO
          yield* stopW
          assert.isTrue(seen.every((d) => d instanceof Date))
          assert.strictEqual(seen[1]!.getTime() - seen[0]!.getTime(), 300)
        }))
    })

    it.effect("retention deletes exactly the finalized jobs past their time and the unreferenced unlocked groups", () => {
      const Job = JobDefinition.make({ name: "retained", handler: () => Effect.void })
      return withContext("retention", { definitions: [Job], jobPostFinalizeDeleteSecs: 3600 }, ({ cuckmq, schema }) =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const fin = sql(`${schema}.job_finalized`)
          const groups = sql(`${schema}.job_group`)
          // 5,000 finalized 2 hours ago (past retention), 300 finalized 10 minutes ago (kept)
          yield* sql`INSERT INTO ${fin} (id, name, channel, payload, attempts, max_attempts, succeeded, created_at, finalized_at)
            SELECT g, 'retained', '_default', '{}', 1, 1, g % 2 = 0, now() - interval '3 hours', now() - interval '2 hours'
            FROM generate_series(1, 5000) g`
          yield* sql`INSERT INTO ${fin} (id, name, channel, payload, attempts, max_attempts, succeeded, created_at, finalized_at)
            SELECT g, 'retained', '_default', '{}', 1, 1, true, now() - interval '1 hour', now() - interval '10 minutes'
            FROM generate_series(5001, 5300) g`
          // groups: one referenced by a waiting job, one with a slot taken, two unreferenced with none taken
          yield* Job.enqueue({}, { jobGroup: "referenced" })
          yield* sql`INSERT INTO ${groups} (name, running)
            VALUES ('referenced', 0), ('locked', 1), ('idle-1', 0), ('idle-2', 0)`
          const events = yield* cuckmq.subscribe
          const deletes = yield* events.pipe(
            Stream.filter((e) => e._tag === "ORCHESTRATOR_JOB_DELETE" || e._tag === "ORCHESTRATOR_JOB_GROUP_DELETE"),
            Stream.take(5002),
            Stream.runCollect,
            Effect.forkChild
          )
          const stop = yield* startOrchestrator({ deleteBatchSize: 100, cleanupIntervalSecs: 3600 })
          const got = yield* Fiber.join(deletes)
          yield* stop
          const jobDeletes = got.filter((e): e is CuckmqEvent.OrchestratorJobDelete => e._tag === "ORCHESTRATOR_JOB_DELETE")
          assert.strictEqual(jobDeletes.length, 5000)
          assert.strictEqual(new Set(jobDeletes.map((e) => Number(e.jobId))).size, 5000)
          assert.isTrue(jobDeletes.every((e) => Number(e.jobId) <= 5000 && e.definitionName === "retained"))
          const left = yield* sql<{ id: bigint }>`SELECT id FROM ${fin} ORDER BY id`
          assert.strictEqual(left.length, 300)
          assert.strictEqual(Number(left[0]!.id), 5001)
          const groupDeletes = got.filter((e) => e._tag === "ORCHESTRATOR_JOB_GROUP_DELETE").map((e) =>
            e._tag === "ORCHESTRATOR_JOB_GROUP_DELETE" && e.jobGroup
          )
          assert.deepStrictEqual(groupDeletes.sort(), ["idle-1", "idle-2"])
          const leftGroups = yield* sql<{ name: string }>`SELECT name FROM ${groups} ORDER BY name`
          assert.deepStrictEqual(leftGroups.map((g) => g.name), ["locked", "referenced"])
          assert.strictEqual(yield* count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql(`${schema}.job`)}`), 1)
        }).pipe(Effect.scoped))
    })

    it.effect("a live worker whose job runs three times longer than its timeoutSecs keeps it: never doubled", () => {
      let runs = 0
      const Slow = JobDefinition.make({
        name: "slow",
        numAttempts: 5,
        timeoutSecs: 1,
        handler: () => Effect.sync(() => void runs++).pipe(Effect.andThen(Effect.sleep("3 seconds")))
      })
      return withContext("slow_not_doubled", { definitions: [Slow] }, ({ cuckmq }) =>
        Effect.gen(function*() {
          const fast = { pollIntervalSecs: 0.1, heartbeatSecs: 0.3, leaseSecs: 1.5 }
          const stopO = yield* startOrchestrator({ rescueIntervalSecs: 0.2 })
          const id = yield* Slow.enqueue({}, { jobGroup: "g" })
          const stops = yield* Effect.all([startWorker(fast), startWorker(fast), startWorker(fast)])
          yield* waitUntil("it succeeded", Effect.map(Engine.get(cuckmq).store.getJob(id), (j) => Option.getOrThrow(j).state === "succeeded"))
          yield* Effect.all(stops, { concurrency: "unbounded" })
          yield* stopO
          assert.strictEqual(runs, 1)
          assert.strictEqual(Option.getOrThrow(yield* Engine.get(cuckmq).store.getJob(id)).attempts, 1)
        }))
    })

    it.effect("a worker process SIGKILLed while holding a group lock: a live worker runs the group's next job, released because the holder died (not by the ceiling)", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const schema = uniqueSchema("dead_lock_holder")
        yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`))
        yield* Migrations.migrate(schema)
        yield* sql`CREATE TABLE ${sql(`${schema}.runs`)} (
          id serial PRIMARY KEY, job_id bigint NOT NULL, pid int NOT NULL, attempt int NOT NULL,
          started_at timestamptz NOT NULL DEFAULT clock_timestamp(), ended_at timestamptz)`
        process.env.CUCKMQ_SCHEMA = schema // the fixtures' handlers record runs in <CUCKMQ_SCHEMA>.runs
        const ctx = yield* Layer.build(Cuckmq.layer({ schema, definitions: [Count, Sticky], jobGroupUnlockSecs: 3600 }))
        const cuckmq = Context.get(ctx, Cuckmq.Cuckmq)
        // the victim uses the default lease (20 s) and heartbeat (5 s): the documented recovery bound
        const victim = yield* spawnFixture("worker-process.ts", {
          DATABASE_URL: databaseUrl(),
          CUCKMQ_SCHEMA: schema,
          HANG_ATTEMPTS: "1"
        })
        yield* victim.ready
        const first = yield* Sticky.enqueue({}, { jobGroup: "G" }).pipe(Effect.provideContext(ctx))
        const next = yield* Count.enqueue({ i: 1 }, { jobGroup: "G" }).pipe(Effect.provideContext(ctx))
        yield* waitUntil("the victim holds G", Effect.map(
          count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql(`${schema}.runs`)} WHERE job_id = ${first}`),
          (n) => n === 1
        ))
        yield* victim.kill("SIGKILL")
        const events = yield* cuckmq.subscribe
        const unlock = yield* events.pipe(
          Stream.filter((e) => e._tag === "JOB_GROUP_UNLOCK"),
          Stream.take(1),
          Stream.runCollect,
          Effect.forkChild
        )
        const killedAt = Date.now()
        // a live worker in this process and an orchestrator
        const stopW = yield* startWorker({ pollIntervalSecs: 0.2 }).pipe(Effect.provideContext(ctx))
        const stopO = yield* startOrchestrator().pipe(Effect.provideContext(ctx))
        yield* waitUntil("the group's next job ran", Effect.map(
          count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql(`${schema}.runs`)} WHERE job_id = ${next} AND ended_at IS NOT NULL`),
          (n) => n === 1
        ), "2 minutes")
        const recoveredMs = Date.now() - killedAt
        const [event] = yield* Fiber.join(unlock)
        yield* stopW
        yield* stopO
        assert.deepInclude(event, { _tag: "JOB_GROUP_UNLOCK", jobGroup: "G", jobId: first, reason: "worker-dead" })
        // reported, not asserted (no timing assertions): the design bound is leaseSecs + rescue interval = 25 s
        yield* Effect.log(`group G recovered ${recoveredMs} ms after SIGKILL (bound: 25 s with defaults)`)
      }).pipe(Effect.scoped))

    it.effect("an orchestrator process SIGKILLed mid-cycle: a second one carries on and nothing is scheduled twice", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const schema = uniqueSchema("orch_kill")
        yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`))
        yield* Migrations.migrate(schema)
        const env = { DATABASE_URL: databaseUrl(), CUCKMQ_SCHEMA: schema, TICKS: "40", REPEAT_SECS: "0.25" }
        const total = count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql(`${schema}.job`)}`)
        for (let round = 0; round < 3; round++) {
          const a = yield* spawnFixture("orchestrator-process.ts", env)
          yield* a.ready
          const before = yield* total
          yield* waitUntil("it scheduled", Effect.map(total, (n) => n > before + 40))
          yield* a.kill("SIGKILL")
          yield* a.exited
        }
        const b = yield* spawnFixture("orchestrator-process.ts", env)
        yield* b.ready
        const afterKills = yield* total
        yield* waitUntil("the second carries on", Effect.map(total, (n) => n >= afterKills + 200))
        yield* b.kill("SIGTERM")
        yield* b.exited
        const dupes = yield* sql<{ name: string; n: bigint }>`
          SELECT name, count(*) AS n FROM ${sql(`${schema}.job`)} GROUP BY name, scheduled_for HAVING count(*) > 1`
        assert.deepStrictEqual(dupes, [])
        for (const t of ticks(40, 0.25).slice(0, 5)) {
          const times = yield* scheduledTimes(schema, t.name)
          assert.strictEqual(new Set(times).size, times.length)
          // every due time sits on the definition's 250 ms grid
          assert.isTrue(times.every((x) => (x - times[0]!) % 250 === 0))
        }
      }).pipe(Effect.scoped))
  })
})
