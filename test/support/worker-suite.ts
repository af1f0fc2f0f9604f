/**
 * The worker suite: worker semantics on real PostgreSQL, checked by counting (retries, expiry, defects,
 * channels, delays, orphans, decode failures, job groups, graceful shutdown, dropped connections, events),
 * written once and run directly (test/worker.test.ts) and through PgBouncer (test/pgbouncer.test.ts).
 */
import { assert, layer } from "@effect/vitest"
import { Cause, Deferred, Effect, Fiber, Layer, Option, Redacted, Schema, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Cuckmq, JobDefinition } from "../../src/index.js"
import { collect, count, startWorker, waitUntil, withContext as withContextOn } from "./harness.js"
import { ClientSettings, type Connection } from "./pg.js"
import * as Engine from "../../src/internal/engine.js"

const fast = { pollIntervalSecs: 0.2, heartbeatSecs: 0.5, leaseSecs: 5 } as const

const finalized = (schema: string, succeeded: boolean) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* count(sql<{ n: bigint }>`
      SELECT count(*) AS n FROM ${sql(`${schema}.job_finalized`)} WHERE succeeded = ${succeeded}`)
  })


/** Registers the worker suite, connecting as `connection` says. */
export const workerSuite = (connection: Connection) => {
  const withContext: typeof withContextOn = (prefix, options, body) => withContextOn(prefix, { ...connection.store, ...options }, body)
  layer(connection.layer({ maxConnections: 20 }), { excludeTestServices: true })((it) => {
    it.effect("retries: fails twice then succeeds with numAttempts 3, and each retry waits at least timeoutSecs", () => {
      const runs: Array<{ attempt: number; start: number; end: number }> = []
      const Flaky = JobDefinition.make({
        name: "flaky",
        numAttempts: 3,
        timeoutSecs: 0.5,
        handler: (_, meta) =>
          Effect.gen(function*() {
            const start = Date.now()
            runs.push({ attempt: meta.attempt, start, end: start })
            if (meta.attempt < 3) return yield* Effect.fail({ _tag: "Boom", attempt: meta.attempt } as const)
          })
      })
      return withContext("retry", { definitions: [Flaky] }, ({ cuckmq, schema }) =>
        Effect.gen(function*() {
          const errors = yield* collect(cuckmq, "WORKER_JOB_RUN_ERROR", 2)
          const success = yield* collect(cuckmq, "WORKER_JOB_RUN_SUCCESS", 1)
          const id = yield* Flaky.enqueue({})
          const stop = yield* startWorker(fast)
          yield* Fiber.join(success)
          yield* stop
          const errs = yield* Fiber.join(errors)
          assert.deepStrictEqual(errs.map((e) => e._tag === "WORKER_JOB_RUN_ERROR" && [e.attempt, e.willRetry, e.message]), [
            [1, true, JSON.stringify({ _tag: "Boom", attempt: 1 })],
            [2, true, JSON.stringify({ _tag: "Boom", attempt: 2 })]
          ])
          assert.deepStrictEqual(runs.map((r) => r.attempt), [1, 2, 3])
          for (let i = 1; i < runs.length; i++) {
            assert.isAtLeast(runs[i]!.start - runs[i - 1]!.end, 500 - 5, "a retry must wait timeoutSecs")
          }
          const job = Option.getOrThrow(yield* Engine.get(cuckmq).store.getJob(id))
          assert.strictEqual(job.state, "succeeded")
          assert.strictEqual(job.attempts, 3)
          assert.strictEqual(yield* finalized(schema, true), 1)
        }).pipe(Effect.scoped))
    })

    it.effect("expiry: a job that exhausts numAttempts 2 is finalized failed with WORKER_JOB_EXPIRE and its error kept", () => {
      let attempts = 0
      const Doomed = JobDefinition.make({
        name: "doomed",
        numAttempts: 2,
        timeoutSecs: 0,
        handler: () =>
          Effect.suspend(() => {
            attempts++
            return Effect.die(new Error(`defect ${attempts}`))
          })
      })
      return withContext("expire", { definitions: [Doomed] }, ({ cuckmq, schema }) =>
        Effect.gen(function*() {
          const expired = yield* collect(cuckmq, "WORKER_JOB_EXPIRE", 1)
          const id = yield* Doomed.enqueue({})
          const stop = yield* startWorker(fast)
          const [event] = yield* Fiber.join(expired)
          yield* stop
          assert.deepInclude(event, { _tag: "WORKER_JOB_EXPIRE", jobId: id, attempts: 2 })
          assert.strictEqual(attempts, 2)
          const job = Option.getOrThrow(yield* Engine.get(cuckmq).store.getJob(id))
          assert.strictEqual(job.state, "failed")
          assert.strictEqual((job.lastError as { message: string; defect: boolean }).message, "defect 2")
          assert.strictEqual((job.lastError as { defect: boolean }).defect, true)
          assert.strictEqual(yield* finalized(schema, false), 1)
        }).pipe(Effect.scoped))
    })

    it.effect("channels: a worker takes only its channels", () => {
      const ran: Array<string> = []
      const A = JobDefinition.make({ name: "on-a", channel: "a", handler: () => Effect.sync(() => ran.push("a")) })
      const B = JobDefinition.make({ name: "on-b", channel: "b", handler: () => Effect.sync(() => ran.push("b")) })
      return withContext("channels", { definitions: [A, B] }, ({ schema }) =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* A.enqueueMany(Array.from({ length: 20 }, () => ({ payload: {} })))
          const bIds = yield* B.enqueueMany(Array.from({ length: 20 }, () => ({ payload: {} })))
          const stop = yield* startWorker({ ...fast, channels: ["a"] })
          yield* waitUntil("channel a is drained", Effect.map(finalized(schema, true), (n) => n === 20))
          yield* stop
          assert.deepStrictEqual(ran, Array(20).fill("a"))
          const waitingB = yield* count(sql<{ n: bigint }>`
            SELECT count(*) AS n FROM ${sql(`${schema}.job`)} WHERE channel = 'b' AND attempts = 0 AND worker_id IS NULL`)
          assert.strictEqual(waitingB, 20)
          // a default worker (all channels of the context's definitions) takes b too
          const stop2 = yield* startWorker(fast)
          yield* waitUntil("channel b is drained", Effect.map(finalized(schema, true), (n) => n === 40))
          yield* stop2
          assert.strictEqual(ran.filter((c) => c === "b").length, bIds.length)
        }))
    })

    it.effect("delays: a delayed job does not start before its delay", () => {
      const started: Array<{ id: string; at: number }> = []
      const Later = JobDefinition.make({
        name: "later",
        handler: (_, meta) => Effect.sync(() => started.push({ id: meta.jobId, at: Date.now() }))
      })
      return withContext("delay", { definitions: [Later] }, ({ schema }) =>
        Effect.gen(function*() {
          const stop = yield* startWorker(fast)
          const before = Date.now()
          const delayed = yield* Later.enqueue({}, { delaySecs: 1.5 })
          const now = yield* Later.enqueue({})
          yield* waitUntil("both ran", Effect.map(finalized(schema, true), (n) => n === 2))
          yield* stop
          assert.deepStrictEqual(started.map((s) => s.id), [now, delayed])
          assert.isAtLeast(started[1]!.at - before, 1500 - 5)
        }))
    })

    it.effect("orphans: a job this process cannot run goes back with no attempt spent; a process that knows it runs it", () => {
      const Known = JobDefinition.make({ name: "known", handler: () => Effect.void })
      let newRuns = 0
      const New = JobDefinition.make({ name: "new-in-v2", handler: () => Effect.sync(() => void newRuns++) })
      return withContext("orphan", { definitions: [Known] }, ({ cuckmq, schema }) =>
        Effect.gen(function*() {
          const orphans = yield* collect(cuckmq, "WORKER_JOB_ORPHAN", 1)
          yield* New.deploy // deployed by a newer version of the app
          const id = yield* New.enqueue({})
          const knownIds = yield* Known.enqueueMany(Array.from({ length: 5 }, () => ({ payload: {} })))
          const stop = yield* startWorker(fast) // this process (v1) knows only "known"
          const [orphan] = yield* Fiber.join(orphans)
          yield* waitUntil("known jobs ran", Effect.map(finalized(schema, true), (n) => n === knownIds.length))
          yield* Effect.sleep("600 millis") // a few poll cycles: the orphan must not be claimed again
          yield* stop
          assert.deepInclude(orphan, { _tag: "WORKER_JOB_ORPHAN", jobId: id, definitionName: "new-in-v2" })
          const waiting = Option.getOrThrow(yield* Engine.get(cuckmq).store.getJob(id))
          assert.strictEqual(waiting.state, "waiting")
          assert.strictEqual(waiting.attempts, 0)
          // v2 knows it
          const v2 = yield* Layer.build(Cuckmq.layer({ ...connection.store, schema, definitions: [Known, New] }))
          const close = yield* startWorker(fast).pipe(Effect.provideContext(v2))
          yield* waitUntil("v2 ran the job", Effect.map(Engine.get(cuckmq).store.getJob(id), (j) => Option.getOrThrow(j).state === "succeeded"))
          yield* close
          assert.strictEqual(newRuns, 1)
          assert.strictEqual(Option.getOrThrow(yield* Engine.get(cuckmq).store.getJob(id)).attempts, 1)
        }).pipe(Effect.scoped))
    })

    it.effect("decode failures: a stored payload that no longer decodes fails that attempt with PayloadDecodeError; the worker carries on", () => {
      let good = 0
      const Typed = JobDefinition.make({
        name: "typed",
        payload: Schema.Struct({ n: Schema.Int }),
        handler: () => Effect.sync(() => void good++)
      })
      return withContext("decode", { definitions: [Typed] }, ({ cuckmq, schema }) =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const errors = yield* collect(cuckmq, "WORKER_JOB_RUN_ERROR", 1)
          // a payload written by an older version of the app, before `n` became an integer
          const [bad] = yield* sql<{ id: bigint }>`
            INSERT INTO ${sql(`${schema}.job`)} (name, channel, payload, max_attempts, timeout_secs, sort_at)
            VALUES ('typed', '_default', '{"n": "one"}'::jsonb, 1, 1, now()) RETURNING id`
          yield* Typed.enqueueMany([{ payload: { n: 1 } }, { payload: { n: 2 } }])
          const stop = yield* startWorker(fast)
          const [error] = yield* Fiber.join(errors)
          yield* waitUntil("good jobs ran", Effect.map(finalized(schema, true), (n) => n === 2))
          yield* stop
          assert.strictEqual(error!._tag, "WORKER_JOB_RUN_ERROR")
          if (error!._tag !== "WORKER_JOB_RUN_ERROR") return
          assert.strictEqual(error.jobId, String(bad!.id))
          assert.strictEqual((error.error as { _tag: string })._tag, "PayloadDecodeError")
          assert.include(error.message, "does not decode")
          assert.strictEqual(good, 2)
          assert.strictEqual(Option.getOrThrow(yield* Engine.get(cuckmq).store.getJob(String(bad!.id))).state, "failed")
        }).pipe(Effect.scoped))
    })

    it.effect("job groups: 200 jobs in 5 groups over 40 slots never overlap within a group, and all run", () => {
      const active = new Map<string, number>()
      let overlaps = 0
      let concurrentNow = 0
      let maxConcurrent = 0
      const ran = new Set<number>()
      const Grouped = JobDefinition.make({
        name: "grouped",
        payload: Schema.Struct({ i: Schema.Int }),
        handler: (p, meta) =>
          Effect.gen(function*() {
            const g = meta.jobGroup!
            const n = (active.get(g) ?? 0) + 1
            active.set(g, n)
            if (n > 1) overlaps++
            concurrentNow++
            maxConcurrent = Math.max(maxConcurrent, concurrentNow)
            yield* Effect.sleep(`${1 + (p.i % 4)} millis`)
            concurrentNow--
            active.set(g, active.get(g)! - 1)
            ran.add(p.i)
          })
      })
      return withContext("groups", { definitions: [Grouped] }, ({ schema }) =>
        Effect.gen(function*() {
          yield* Grouped.enqueueMany(Array.from({ length: 200 }, (_, i) => ({ payload: { i }, jobGroup: `g${i % 5}` })))
          const stops = yield* Effect.all(Array.from({ length: 4 }, (_, w) => startWorker({ ...fast, name: `w${w}`, concurrency: 10 })))
          yield* waitUntil("all 200 ran", Effect.map(finalized(schema, true), (n) => n === 200))
          yield* Effect.all(stops, { concurrency: "unbounded" })
          assert.strictEqual(overlaps, 0)
          assert.strictEqual(ran.size, 200)
          assert.isAbove(maxConcurrent, 1, "different groups must run in parallel")
          assert.isAtMost(maxConcurrent, 5)
          const sql = yield* SqlClient.SqlClient
          const locked = yield* count(sql<{ n: bigint }>`
            SELECT count(*) AS n FROM ${sql(`${schema}.job_group`)} WHERE running > 0`)
          assert.strictEqual(locked, 0)
        }))
    })

    it.effect("shutdown: an in-flight job finishes before the worker's scope closes", () => {
      const Slow = JobDefinition.make({ name: "slow", handler: () => Effect.sleep("400 millis") })
      return withContext("drain", { definitions: [Slow] }, ({ cuckmq }) =>
        Effect.gen(function*() {
          const started = yield* collect(cuckmq, "WORKER_JOB_RUN", 1)
          const log: Array<string> = []
          yield* cuckmq.addEventHandler((e) => Effect.sync(() => log.push(e._tag)))
          const id = yield* Slow.enqueue({})
          const stop = yield* startWorker({ ...fast, gracePeriodSecs: 30 })
          yield* Fiber.join(started)
          yield* stop
          assert.strictEqual(Option.getOrThrow(yield* Engine.get(cuckmq).store.getJob(id)).state, "succeeded")
          yield* waitUntil("the handler saw the success", Effect.sync(() => log.includes("WORKER_JOB_RUN_SUCCESS")))
          assert.notInclude(log, "WORKER_JOB_INTERRUPT")
        }).pipe(Effect.scoped))
    })

    it.effect("shutdown: a job longer than the grace period is interrupted, released with no attempt spent, and completed later by another worker", () => {
      let runs = 0
      let interrupted = 0
      const Long = JobDefinition.make({
        name: "long",
        numAttempts: 1,
        handler: () =>
          Effect.suspend(() => {
            runs++
            return runs === 1 ? Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => void interrupted++))) : Effect.void
          })
      })
      return withContext("grace", { definitions: [Long] }, ({ cuckmq, schema }) =>
        Effect.gen(function*() {
          const started = yield* collect(cuckmq, "WORKER_JOB_RUN", 1)
          const interrupts = yield* collect(cuckmq, "WORKER_JOB_INTERRUPT", 1)
          const id = yield* Long.enqueueMany([{ payload: {}, jobGroup: "exclusive" }]).pipe(Effect.map((ids) => ids[0]!))
          const stop = yield* startWorker({ ...fast, gracePeriodSecs: 0.3 })
          yield* Fiber.join(started)
          yield* stop
          const [interrupt] = yield* Fiber.join(interrupts)
          assert.deepInclude(interrupt, { _tag: "WORKER_JOB_INTERRUPT", jobId: id, reason: "shutdown" })
          assert.strictEqual(interrupted, 1)
          const released = Option.getOrThrow(yield* Engine.get(cuckmq).store.getJob(id))
          assert.strictEqual(released.state, "waiting")
          assert.strictEqual(released.attempts, 0)
          const sql = yield* SqlClient.SqlClient
          assert.strictEqual(yield* count(sql<{ n: bigint }>`
            SELECT count(*) AS n FROM ${sql(`${schema}.job_group`)} WHERE running > 0`), 0)
          const stop2 = yield* startWorker(fast)
          yield* waitUntil("another worker completed it", Effect.map(Engine.get(cuckmq).store.getJob(id), (j) => Option.getOrThrow(j).state === "succeeded"))
          yield* stop2
          assert.strictEqual(runs, 2)
          assert.strictEqual(Option.getOrThrow(yield* Engine.get(cuckmq).store.getJob(id)).attempts, 1)
        }).pipe(Effect.scoped))
    })

    it.effect("dropped connections: pg_terminate_backend on the worker's connections mid-run; the worker recovers and every job completes", () => {
      const ran = new Set<number>()
      const Work = JobDefinition.make({
        name: "work",
        payload: Schema.Struct({ i: Schema.Int }),
        handler: (p) => Effect.sleep("2 millis").pipe(Effect.andThen(Effect.sync(() => ran.add(p.i))))
      })
      const app = `cuckmq-victim-${Math.random().toString(36).slice(2, 8)}`
      return Effect.gen(function*() {
        const client = yield* ClientSettings
        const VictimPg = PgClient.layer({ url: Redacted.make(client.url), prepare: client.prepare, applicationName: app, maxConnections: 4 })
        const sql = yield* SqlClient.SqlClient
        const kill = sql`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = ${app}`
        yield* withContext("terminate", { definitions: [Work] }, ({ schema }) =>
          Effect.gen(function*() {
            const victim = yield* Layer.build(
              Cuckmq.layer({ ...connection.store, schema, definitions: [Work], migrate: false }).pipe(Layer.provide(VictimPg))
            )
            const stop = yield* startWorker({ ...fast, concurrency: 5 }).pipe(Effect.provideContext(victim))
            // waves of 100 jobs, each drained with one kill of the worker's connections while it runs (tried
            // until a connection of the worker was there to kill: through a transaction pooler a server
            // connection exists only while a statement runs), until five kills have landed
            let kills = 0
            let total = 0
            while (kills < 5) {
              assert.isBelow(total, 100 * 100, `only ${kills} kills landed in 100 waves`)
              yield* Work.enqueueMany(Array.from({ length: 100 }, (_, i) => ({ payload: { i: total + i } })))
              total += 100
              let killed = false
              while ((yield* finalized(schema, true)) < total) {
                if (!killed) {
                  const [row] = yield* kill
                  if ((row as { n: number }).n > 0) {
                    killed = true
                    kills++
                  }
                }
                yield* Effect.sleep("5 millis")
              }
            }
            yield* stop
            assert.strictEqual(ran.size, total)
            assert.strictEqual(yield* count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql(`${schema}.job`)}`), 0)
          }).pipe(Effect.scoped))
      })
    })

    it.effect("metadata and events: the handler sees its job; DEQUEUE, RUN, RUN_SUCCESS are published in order", () => {
      const seen: Array<JobDefinition.JobMetadata> = []
      const Meta = JobDefinition.make({
        name: "meta",
        channel: "meta-channel",
        numAttempts: 4,
        payload: Schema.Struct({ x: Schema.String }),
        handler: (_, meta) => Effect.sync(() => seen.push(meta))
      })
      return withContext("meta", { definitions: [Meta] }, ({ cuckmq }) =>
        Effect.gen(function*() {
          const events = yield* cuckmq.subscribe
          const all = yield* events.pipe(
            Stream.filter((e) => "jobId" in e),
            Stream.take(4),
            Stream.runCollect,
            Effect.forkChild
          )
          const id = yield* Meta.enqueue({ x: "y" }, { jobGroup: "g1" })
          const stop = yield* startWorker(fast)
          const got = yield* Fiber.join(all)
          yield* stop
          assert.deepStrictEqual(got.map((e) => e._tag), [
            "JOB_DEFINITION_JOB_ENQUEUE",
            "WORKER_JOB_DEQUEUE",
            "WORKER_JOB_RUN",
            "WORKER_JOB_RUN_SUCCESS"
          ])
          assert.isTrue(got.every((e) => "jobId" in e && e.jobId === id))
          assert.deepInclude(seen[0], {
            jobId: id,
            definitionName: "meta",
            attempt: 1,
            maxAttempts: 4,
            channel: "meta-channel",
            jobGroup: "g1"
          })
        }).pipe(Effect.scoped))
    })

    it.effect("a subscriber that never reads loses events but never slows the workers", () => {
      let n = 0
      const Quick = JobDefinition.make({ name: "quick", handler: () => Effect.sync(() => void n++) })
      return withContext("slowsub", { definitions: [Quick], eventBufferSize: 16 }, ({ cuckmq, schema }) =>
        Effect.gen(function*() {
          const stuck = yield* cuckmq.subscribe // subscribed, never pulled
          const blocked = yield* Deferred.make<void>()
          yield* cuckmq.addEventHandler(() => Deferred.await(blocked)) // pulls one event and blocks forever
          yield* Quick.enqueueMany(Array.from({ length: 1000 }, () => ({ payload: {} })))
          const stop = yield* startWorker({ ...fast, concurrency: 20 })
          yield* waitUntil("all ran", Effect.map(finalized(schema, true), (x) => x === 1000))
          yield* stop
          assert.strictEqual(n, 1000)
          // the stuck subscriber kept only its last 16 events
          const kept = yield* stuck.pipe(Stream.take(16), Stream.runCollect)
          assert.strictEqual(kept.length, 16)
          assert.isTrue(kept.every((e) => e._tag.startsWith("WORKER_")), JSON.stringify(kept.map((e) => e._tag)))
        }).pipe(Effect.scoped))
    })

    it.effect("a failing handler's defect is reported, never thrown, and other jobs keep running", () => {
      let ok = 0
      const Mixed = JobDefinition.make({
        name: "mixed",
        payload: Schema.Struct({ fail: Schema.Boolean }),
        handler: (p) => p.fail ? Effect.sync(() => { throw new Error("sync throw") }) : Effect.sync(() => void ok++)
      })
      return withContext("mixed", { definitions: [Mixed] }, ({ cuckmq, schema }) =>
        Effect.gen(function*() {
          const errors = yield* collect(cuckmq, "WORKER_JOB_RUN_ERROR", 10)
          yield* Mixed.enqueueMany(Array.from({ length: 30 }, (_, i) => ({ payload: { fail: i % 3 === 0 } })))
          const stop = yield* startWorker(fast)
          yield* waitUntil("all finalized", Effect.map(
            Effect.all([finalized(schema, true), finalized(schema, false)]),
            ([s, f]) => s + f === 30
          ))
          yield* stop
          const errs = yield* Fiber.join(errors)
          assert.strictEqual(ok, 20)
          assert.isTrue(errs.every((e) => e._tag === "WORKER_JOB_RUN_ERROR" && e.message === "sync throw"))
          assert.isTrue(errs.every((e) => e._tag === "WORKER_JOB_RUN_ERROR" && Cause.isCause(e.error) === false))
        }).pipe(Effect.scoped))
    })

    it.effect("in-process fast path: a single job enqueued outside a transaction for an idle local worker is claimed in its INSERT; in a transaction, delayed or grouped it is not", () => {
      const started: Array<string> = []
      let release: Deferred.Deferred<void> | undefined
      const Fast = JobDefinition.make({
        name: "fast",
        handler: (_, meta) => Effect.sync(() => void started.push(meta.jobId)).pipe(Effect.andThen(Deferred.await(release!)))
      })
      return withContext("fastpath", { definitions: [Fast] }, ({ schema }) =>
        Effect.gen(function*() {
          release = yield* Deferred.make<void>()
          const sql = yield* SqlClient.SqlClient
          const stop = yield* startWorker(fast)
          yield* waitUntil("the worker registered", Effect.map(
            count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql(`${schema}.worker`)}`),
            (n) => n === 1
          ))
          const direct = yield* Fast.enqueue({})
          const inTx = yield* sql.withTransaction(Fast.enqueue({}))
          const delayed = yield* Fast.enqueue({}, { delaySecs: 0.2 })
          const grouped = yield* Fast.enqueue({}, { jobGroup: "g" })
          yield* waitUntil("all four started", Effect.sync(() => started.length === 4))
          // claimed in the INSERT: the claim carries the insert's own transaction timestamp
          const rows = yield* sql<{ id: bigint; in_insert: boolean }>`
            SELECT id, claimed_at = created_at AS in_insert FROM ${sql(`${schema}.job`)} ORDER BY id`
          assert.deepStrictEqual(rows.map((r) => [String(r.id), r.in_insert]), [
            [direct, true],
            [inTx, false],
            [delayed, false],
            [grouped, false]
          ])
          yield* Deferred.succeed(release, undefined)
          yield* waitUntil("all finalized", Effect.map(
            count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql(`${schema}.job_finalized`)} WHERE succeeded AND attempts = 1`),
            (n) => n === 4
          ))
          yield* stop
        }))
    })
  })
}
