/**
 * Leases and fencing on real PostgreSQL: a worker declared dead stops its own jobs; a shutdown longer
 * than the lease keeps the lease alive; an error the database cannot store never blocks settlements.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Option, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { JobDefinition, Orchestrator } from "../src/index.js"
import { collect, count, startWorker, waitUntil, withContext } from "./support/harness.js"
import { PgTest } from "./support/pg.js"
import * as Engine from "../src/internal/engine.js"


describe("Worker leases", () => {
  layer(PgTest({ maxConnections: 20 }), { excludeTestServices: true })((it) => {
    it.effect("a worker the database declares dead interrupts its own job (lease-lost), and the job runs again later", () => {
      let runs = 0
      const Long = JobDefinition.make({
        name: "long",
        numAttempts: 3,
        timeoutSecs: 0,
        handler: () => Effect.suspend(() => (++runs === 1 ? Effect.never : Effect.void))
      })
      return withContext("fence", { definitions: [Long] }, ({ cuckmq, schema }) =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const interrupts = yield* collect(cuckmq, "WORKER_JOB_INTERRUPT", 1)
          const started = yield* collect(cuckmq, "WORKER_JOB_RUN", 1)
          const id = yield* Long.enqueue({})
          const stop = yield* startWorker({ pollIntervalSecs: 0.1, heartbeatSecs: 0.2, leaseSecs: 2 })
          yield* Fiber.join(started)
          // the database declares the worker dead (as a rescue would after its lease expired)
          yield* sql`DELETE FROM ${sql(`${schema}.worker`)}`
          const [interrupt] = yield* Fiber.join(interrupts)
          assert.deepInclude(interrupt, { _tag: "WORKER_JOB_INTERRUPT", jobId: id, reason: "lease-lost" })
          // the worker re-registers under a new id; the job (its old worker gone) is rescued and runs again
          yield* waitUntil("the job succeeded", Effect.map(Engine.get(cuckmq).store.getJob(id), (j) => Option.getOrThrow(j).state === "succeeded"))
          yield* stop
          assert.strictEqual(runs, 2)
          assert.strictEqual(yield* count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql(`${schema}.worker`)}`), 0)
        }).pipe(Effect.scoped))
    })

    it.effect("a graceful stop longer than the lease keeps heartbeating: the finishing job is never rescued or doubled", () => {
      let runs = 0
      const Slow = JobDefinition.make({
        name: "slow-stop",
        timeoutSecs: 0,
        handler: () => Effect.sync(() => void runs++).pipe(Effect.andThen(Effect.sleep("3 seconds")))
      })
      return withContext("long_stop", { definitions: [Slow] }, ({ cuckmq }) =>
        Effect.gen(function*() {
          const started = yield* collect(cuckmq, "WORKER_JOB_RUN", 1)
          const seen: Array<string> = []
          yield* cuckmq.addEventHandler((e) => Effect.sync(() => void seen.push(e._tag)))
          const id = yield* Slow.enqueue({}, { jobGroup: "g" })
          const lease = { pollIntervalSecs: 0.1, heartbeatSecs: 0.2, leaseSecs: 1 }
          const stop = yield* startWorker({ ...lease, gracePeriodSecs: 10 })
          yield* Fiber.join(started)
          // a rescuer running all the time: another worker and an orchestrator
          const other = yield* startWorker(lease)
          const scope = yield* Scope.make()
          yield* Layer.buildWithScope(Orchestrator.layer({ rescueIntervalSecs: 0.1 }), scope)
          yield* stop // waits for the 3 s job: three leases long
          yield* other
          yield* Scope.close(scope, Exit.void)
          assert.strictEqual(runs, 1)
          const job = Option.getOrThrow(yield* Engine.get(cuckmq).store.getJob(id))
          assert.deepInclude(job, { state: "succeeded", attempts: 1 })
          assert.notInclude(seen, "JOB_RESCUE")
          assert.notInclude(seen, "JOB_GROUP_UNLOCK")
          assert.notInclude(seen, "WORKER_JOB_INTERRUPT")
        }).pipe(Effect.scoped))
    })

    it.effect("an error the database cannot store (NUL, lone surrogate) does not block later settlements", () => {
      let ok = 0
      const Weird = JobDefinition.make({
        name: "weird",
        handler: () => Effect.fail({ message: "bad \u0000 byte and a lone \uD83D surrogate" })
      })
      const Fine = JobDefinition.make({ name: "fine", handler: () => Effect.sync(() => void ok++) })
      return withContext("poison", { definitions: [Weird, Fine] }, ({ cuckmq }) =>
        Effect.gen(function*() {
          const weird = yield* Weird.enqueue({})
          yield* Fine.enqueueMany(Array.from({ length: 20 }, () => ({ payload: {} })))
          const stop = yield* startWorker({ pollIntervalSecs: 0.1 })
          yield* waitUntil("all settled", Effect.gen(function*() {
            const w = Option.getOrThrow(yield* Engine.get(cuckmq).store.getJob(weird))
            return w.state === "failed" && ok === 20
          }))
          yield* stop
          const w = Option.getOrThrow(yield* Engine.get(cuckmq).store.getJob(weird))
          assert.include((w.lastError as { message: string }).message, "bad  byte and a lone \uFFFD surrogate")
        }))
    })
  })
})
