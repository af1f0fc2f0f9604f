/**
 * Unique jobs (issue 13, item 1) through the public API on real PostgreSQL: the key race across three
 * processes of 50 concurrent enqueuers each (single, bulk and transactional enqueues), transactions (a
 * rolled-back one frees its key; a concurrent enqueue of the key waits for the holder's commit), a worker
 * running unique jobs, and the refusals, which the memory backend shares (CuckmqTest). The store-level rules
 * are in the conformance suite (test/support/conformance-unique.ts), on both backends.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { assert, describe, it, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { JobDefinition, Migrations } from "../src/index.js"
import * as PgStore from "../src/internal/pg/store.js"
import type * as JobStore from "../src/JobStore.js"
import { CuckmqTest } from "../src/testing.js"
import { uniqueDefinitions, UniqueKeep, UniqueReplace } from "./fixtures/unique-definitions.js"
import { count, startWorker, waitUntil, withContext } from "./support/harness.js"
import { databaseUrl, PgTest, uniqueSchema } from "./support/pg.js"
import { processSchema, spawnFixture } from "./support/processes.js"

interface Outcome {
  readonly id: string
  readonly outcome: string
}
interface Round {
  readonly keepOne: Outcome
  readonly replaceOne: Outcome
  readonly keepMany: ReadonlyArray<Outcome>
  readonly replaceMany: ReadonlyArray<Outcome>
}

const Payload = Schema.Struct({ key: Schema.String, n: Schema.Number })

describe("unique jobs on PostgreSQL", () => {
  layer(PgTest({ maxConnections: 12 }), { excludeTestServices: true })((it) => {
    it.effect("3 processes x 50 concurrent enqueuers of one key (single, bulk, in transactions): exactly one job per key", () =>
      Effect.gen(function*() {
        const { context, schema, table } = yield* processSchema("unique_race", [])
        yield* Effect.forEach(uniqueDefinitions, (d) => d.deploy, { discard: true }).pipe(Effect.provide(context))
        const dir = mkdtempSync(path.join(tmpdir(), "cuckmq-unique-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
        const go = path.join(dir, "go")
        const env = { DATABASE_URL: databaseUrl(), CUCKMQ_SCHEMA: schema, GO_FILE: go }
        const children = yield* Effect.forEach([1, 2, 3], () => spawnFixture("unique-enqueuer.ts", env))
        yield* Effect.forEach(children, (c) => c.ready, { discard: true })
        writeFileSync(go, "")
        const codes = yield* Effect.forEach(children, (c) => c.exited)
        const rounds: Array<Round> = []
        for (const c of children) {
          const line = c.output().split("\n").find((l) => l.startsWith("RESULT "))
          assert.isDefined(line, `${codes}: ${c.output()}`)
          rounds.push(...(JSON.parse(line!.slice("RESULT ".length)) as ReadonlyArray<Round>))
        }
        assert.strictEqual(rounds.length, 150)
        const sql = yield* SqlClient.SqlClient
        for (const [name, ones] of [
          [UniqueKeep.name, rounds.flatMap((r) => [r.keepOne, r.keepMany[0]!])],
          [UniqueReplace.name, rounds.flatMap((r) => [r.replaceOne, r.replaceMany[1]!])]
        ] as const) {
          assert.strictEqual(ones.filter((o) => o.outcome === "inserted").length, 1, `${name}: one insert of key "one"`)
          assert.strictEqual(new Set(ones.map((o) => o.id)).size, 1, `${name}: every enqueue of "one" got its id`)
          const jobs = yield* sql<{ key: string; n: number }>`
            SELECT payload->>'key' AS key, count(*)::int AS n FROM ${table("job")} WHERE name = ${name} GROUP BY 1`
          assert.deepStrictEqual(
            jobs.map((j) => [j.key, j.n]).sort(),
            [["k0", 1], ["k1", 1], ["k2", 1], ["k3", 1], ["k4", 1], ["one", 1]],
            `${name}: exactly one job per key`
          )
        }
        const keys = yield* count(sql`SELECT count(*) AS n FROM ${table("job_unique")}`)
        assert.strictEqual(keys, 12)
      }).pipe(Effect.scoped), { timeout: 120_000 })

    it.effect("transactions: a rolled-back enqueue frees its key; a concurrent enqueue of the key waits for the holder", () =>
      withContext("unique_tx", { definitions: [UniqueKeep] }, ({ schema }) =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const job = (key: string) => ({ key, from: "test" })
          // rolled back: nothing written, the key free
          const rolledBack = yield* sql.withTransaction(Effect.gen(function*() {
            const o = yield* UniqueKeep.enqueueWithOutcome(job("a"))
            assert.strictEqual(o.outcome, "inserted")
            return yield* Effect.fail("roll back" as const)
          })).pipe(Effect.flip)
          assert.strictEqual(rolledBack, "roll back")
          const after = yield* UniqueKeep.enqueueWithOutcome(job("a"))
          assert.strictEqual(after.outcome, "inserted")
          // held by an open transaction: a concurrent enqueue waits, then meets the committed job
          const holding = yield* Deferred.make<string>()
          const release = yield* Deferred.make<"commit" | "rollback">()
          const holder = yield* sql.withTransaction(Effect.gen(function*() {
            const [o] = yield* UniqueKeep.enqueueManyWithOutcome([{ payload: job("b") }, { payload: job("c") }])
            yield* Deferred.succeed(holding, o!.id)
            if ((yield* Deferred.await(release)) === "rollback") return yield* Effect.fail("rollback" as const)
            return o!.id
          })).pipe(Effect.forkChild)
          const heldId = yield* Deferred.await(holding)
          const waiter = yield* UniqueKeep.enqueueWithOutcome(job("b")).pipe(Effect.forkChild)
          // the waiter is blocked on the holder's key: PostgreSQL shows it waiting for the lock
          yield* waitUntil(
            "the second enqueue waits for the first one's transaction",
            Effect.map(
              sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
                WHERE wait_event_type = 'Lock' AND query LIKE ${`%${schema}%job_unique%`}`,
              (rows) => rows[0]!.n > 0
            )
          )
          yield* Deferred.succeed(release, "commit")
          assert.strictEqual(yield* Fiber.join(holder), heldId)
          assert.deepStrictEqual(yield* Fiber.join(waiter), { id: heldId, outcome: "kept" })
          // the same, rolled back: the waiter inserts
          const holding2 = yield* Deferred.make<string>()
          const release2 = yield* Deferred.make<void>()
          const holder2 = yield* sql.withTransaction(Effect.gen(function*() {
            const o = yield* UniqueKeep.enqueueWithOutcome(job("d"))
            yield* Deferred.succeed(holding2, o.id)
            yield* Deferred.await(release2)
            return yield* Effect.fail("rollback" as const)
          })).pipe(Effect.forkChild)
          const rolledId = yield* Deferred.await(holding2)
          const waiter2 = yield* UniqueKeep.enqueueWithOutcome(job("d")).pipe(Effect.forkChild)
          yield* waitUntil(
            "the enqueue waits for the transaction that will roll back",
            Effect.map(
              sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
                WHERE wait_event_type = 'Lock' AND query LIKE ${`%${schema}%job_unique%`}`,
              (rows) => rows[0]!.n > 0
            )
          )
          yield* Deferred.succeed(release2, undefined)
          assert.strictEqual(yield* Effect.flip(Fiber.join(holder2)), "rollback")
          const inserted = yield* Fiber.join(waiter2)
          assert.strictEqual(inserted.outcome, "inserted")
          assert.notStrictEqual(inserted.id, rolledId)
          const jobs = yield* sql<{ key: string }>`SELECT payload->>'key' AS key FROM ${sql(`${schema}.job`)} ORDER BY 1`
          assert.deepStrictEqual(jobs.map((j) => j.key), ["a", "b", "c", "d"])
        })), { timeout: 60_000 })

    it.effect("a worker runs a unique job once; once it succeeded its key takes a new job", () =>
      Effect.gen(function*() {
        let runs = 0
        const Once = JobDefinition.make({
          name: "unique-once",
          payload: Payload,
          unique: { key: ({ key }) => key },
          handler: () => Effect.sync(() => void runs++)
        })
        yield* withContext("unique_worker", { definitions: [Once] }, ({ schema }) =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const first = yield* Once.enqueueManyWithOutcome(Array.from({ length: 10 }, (_, n) => ({ payload: { key: "x", n } })))
            assert.deepStrictEqual(first.map((o) => o.outcome), ["inserted", ...Array(9).fill("kept")])
            const stop = yield* startWorker({ concurrency: 2, pollIntervalSecs: 0.05 })
            yield* waitUntil("the job ran", Effect.sync(() => runs >= 1))
            yield* waitUntil(
              "the job is finalized",
              Effect.map(count(sql`SELECT count(*) AS n FROM ${sql(`${schema}.job`)}`), (n) => n === 0)
            )
            const second = yield* Once.enqueueWithOutcome({ key: "x", n: 99 })
            assert.strictEqual(second.outcome, "inserted")
            yield* waitUntil("the second job ran", Effect.sync(() => runs >= 2))
            yield* stop
            assert.strictEqual(runs, 2)
          }))
      }), { timeout: 60_000 })
  })
})

describe("unique jobs: refusals, the same on both backends", () => {
  const Bad = (unique: unknown) =>
    JobDefinition.make({ name: "unique-bad", payload: Payload, unique: unique as never, handler: () => Effect.void })
  const Keyed = JobDefinition.make({
    name: "unique-keyed",
    payload: Payload,
    unique: {
      key: ({ key, n }) => (n < 0 ? (undefined as never) : n === 1001 ? "x".repeat(1001) : n > 1001 ? "é".repeat(600) : key)
    },
    handler: () => Effect.void
  })
  const refusals = Effect.gen(function*() {
    const bad = [
      { key: "not a function" },
      { key: () => "k", states: [] },
      { key: () => "k", states: ["queued"] },
      { key: () => "k", onConflict: "merge" },
      { key: () => "k", period: "-1 second" }
    ]
    const deployErrors = yield* Effect.forEach(bad, (u) => Effect.flip(Bad(u).deploy))
    const enqueueErrors = yield* Effect.forEach(bad, (u) => Effect.flip(Bad(u).enqueue({ key: "k", n: 0 })))
    yield* Keyed.deploy
    const keyErrors = yield* Effect.forEach([-1, 0, 1001, 1002], (n) => Effect.flip(Keyed.enqueue({ key: "", n })))
    const ok = yield* Keyed.enqueueWithOutcome({ key: "fine", n: 1 })
    const repeating = JobDefinition.make({
      name: "unique-repeating",
      repeatEvery: "1 minute",
      unique: { key: () => "k" },
      handler: () => Effect.void
    })
    const repeatError = yield* Effect.flip(repeating.deploy)
    return {
      deploy: deployErrors.map((e) => [e._tag, e.message]),
      enqueue: enqueueErrors.map((e) => e._tag),
      keys: keyErrors.map((e) => [e._tag, e.message]),
      repeat: [repeatError._tag, repeatError.message],
      ok: ok.outcome
    }
  })
  let memory: unknown
  it.effect("memory (CuckmqTest)", () =>
    Effect.gen(function*() {
      memory = yield* refusals
      const r = memory as { deploy: Array<[string, string]>; enqueue: Array<string>; keys: Array<[string, string]>; ok: string }
      assert.deepStrictEqual(r.deploy.map(([t]) => t), Array(5).fill("InvalidJobDefinition"))
      assert.deepStrictEqual(r.enqueue, Array(5).fill("InvalidEnqueueOptions"))
      assert.deepStrictEqual(r.keys.map(([t]) => t), Array(4).fill("InvalidEnqueueOptions"))
      assert.match(r.keys[1]![1], /non-empty string/)
      assert.match(r.keys[2]![1], /1001 bytes \(UTF-8\); at most 1000/)
      assert.match(r.keys[3]![1], /1200 bytes \(UTF-8\); at most 1000/, "600 two-byte characters")
      assert.match(r.deploy[2]![1], /"queued" is not a state/)
      assert.strictEqual(r.ok, "inserted")
      assert.deepStrictEqual((memory as { repeat: [string, string] }).repeat[0], "InvalidJobDefinition")
      assert.match((memory as { repeat: [string, string] }).repeat[1], /unique cannot be combined with repeatEvery/)
    }).pipe(Effect.provide(CuckmqTest.layer({ definitions: [] }))))

  layer(PgTest({ maxConnections: 4 }), { excludeTestServices: true })((it) => {
    it.effect("postgres: the same errors with the same messages", () =>
      withContext("unique_refusals", { definitions: [] }, () =>
        Effect.gen(function*() {
          const pg = yield* refusals
          assert.isDefined(memory, "the memory case ran first")
          assert.deepStrictEqual(pg, memory)
        })))
  })
})

describe("unique jobs: the retention sweep racing takeovers (PostgreSQL)", () => {
  layer(PgTest({ maxConnections: 12 }), { excludeTestServices: true })((it) => {
    it.effect("sweeps of stale keys while enqueues take them over never delete a live job's key", () =>
      Effect.gen(function*() {
        const schema = uniqueSchema("unique_sweep")
        yield* Effect.addFinalizer(() =>
          Effect.flatMap(SqlClient.SqlClient, (sql) => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`)))
        yield* Migrations.migrate(schema)
        const store = yield* PgStore.make({ schema, keepFinalized: true, liveness: false })
        const record: JobStore.DefinitionRecord = {
          name: "sweep",
          channel: "sweep",
          numAttempts: 1,
          timeoutSecs: 1,
          priority: 0,
          repeat: undefined,
          groupConcurrency: 1,
          groupRateLimit: undefined
        }
        const rule: JobStore.UniqueRule = { states: ["waiting", "running"], periodSecs: undefined, onConflict: "keep" }
        const job = (k: string): JobStore.NewJob => ({
          payloadJson: JSON.stringify({ k }),
          delaySecs: 0,
          priority: 0,
          jobGroup: undefined,
          traceId: undefined,
          spanId: undefined
        })
        const keys = Array.from({ length: 20_000 }, (_, i) => `s${i}`)
        yield* store.deploy([record], () => ({ fresh: new Date(), changed: new Date() }))
        yield* store.enqueueUnique("sweep", rule, keys.map(job), keys, () => Effect.void)
        // the jobs go (undeploy deletes waiting jobs): every key is stale, its job gone
        yield* store.undeploy("sweep", "delete")
        yield* store.deploy([record], () => ({ fresh: new Date(), changed: new Date() }))
        // takeovers spread over the table, so that sweeps meet rows taken over since their snapshot
        const order = keys.map((k, i) => [k, (i * 7919) % keys.length] as const).sort((a, b) => a[1] - b[1]).map(([k]) => k)
        let sweeping = true
        const sweeper = Effect.gen(function*() {
          while (sweeping) yield* store.deleteStaleUniqueKeys(1000)
        })
        const takers = Effect.forEach(Array.from({ length: 300 }, (_, i) => order.slice(i * 20, i * 20 + 20)), (mine) =>
          store.enqueueUnique("sweep", rule, mine.map(job), mine, () => Effect.void), { concurrency: 6 })
        const [taken] = yield* Effect.all([
          Effect.ensuring(takers, Effect.sync(() => void (sweeping = false))),
          Effect.all([sweeper, sweeper], { concurrency: "unbounded" })
        ], { concurrency: "unbounded" })
        const takenKeys = order.slice(0, 6000)
        assert.strictEqual(taken.flat().filter((o) => o.outcome === "inserted").length, 6000)
        const sql = yield* SqlClient.SqlClient
        const orphans = yield* count(sql`SELECT count(*) AS n FROM ${sql(`${schema}.job`)} j
          WHERE NOT EXISTS (SELECT 1 FROM ${sql(`${schema}.job_unique`)} u WHERE u.job_id = j.id)`)
        assert.strictEqual(orphans, 0, "every live job still holds its key")
        const again = yield* store.enqueueUnique("sweep", rule, takenKeys.map(job), takenKeys, () => Effect.void)
        assert.strictEqual(again.filter((o) => o.outcome === "kept").length, 6000)
      }).pipe(Effect.scoped), { timeout: 120_000 })
  })
})
