/**
 * The test backend (`@cuckmq/effect/testing`): manual and inline modes, and the real Worker on the
 * in-memory context under TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Schema, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Cuckmq, JobDefinition, Worker } from "../src/index.js"
import { CuckmqTest } from "../src/testing.js"

describe("CuckmqTest", () => {
  it.effect("Cuckmq.undeploy retires a definition this context does not register: fail, then delete", () => {
    const Kept = JobDefinition.make({ name: "kept", handler: () => Effect.void })
    const Old = JobDefinition.make({ name: "old", handler: () => Effect.void })
    return Effect.gen(function*() {
      const test = yield* CuckmqTest
      yield* Old.deploy
      yield* Old.enqueueMany([{ payload: {} }, { payload: {} }])
      const inUse = yield* Effect.flip(Cuckmq.undeploy("old"))
      assert.deepInclude(inUse, { _tag: "JobDefinitionInUse", definitionName: "old", waiting: 2, running: 0 })
      assert.strictEqual((yield* test.enqueued(Old)).length, 2)
      assert.deepStrictEqual(yield* Cuckmq.undeploy(Old, { waiting: "delete" }), { undeployed: true, deleted: 2, kept: 0, running: 0 })
      assert.deepStrictEqual(yield* test.enqueued(), [])
      assert.strictEqual((yield* Effect.flip(Old.enqueue({})))._tag, "JobDefinitionNotDeployed")
      assert.deepStrictEqual(yield* Cuckmq.undeploy("old"), { undeployed: false, deleted: 0, kept: 0, running: 0 })
      const registered = yield* Effect.flip(Cuckmq.undeploy(Kept, { waiting: "delete" }))
      assert.deepInclude(registered, { _tag: "InvalidJobDefinition", definitionName: "kept" })
      const badMode = yield* Effect.flip(Cuckmq.undeploy("old", { waiting: "drop" as "delete" }))
      assert.match(badMode.message, /waiting must be "fail", "delete" or "keep"/)
    }).pipe(Effect.provide(CuckmqTest.layer({ definitions: [Kept] })))
  })

  it.effect("manual mode: enqueued lists typed payloads; drain runs what is due, one group at a time", () => {
    const ran: Array<number> = []
    const Job = JobDefinition.make({
      name: "job",
      payload: Schema.Struct({ n: Schema.Int, at: Schema.Date }),
      handler: ({ n }) => Effect.sync(() => void ran.push(n))
    })
    return Effect.gen(function*() {
      const test = yield* CuckmqTest
      yield* Job.enqueueMany([
        { payload: { n: 1, at: new Date(0) }, jobGroup: "g" },
        { payload: { n: 2, at: new Date(0) }, jobGroup: "g" },
        { payload: { n: 3, at: new Date(0) }, delaySecs: 5 }
      ])
      const jobs = yield* test.enqueued(Job)
      assert.deepStrictEqual(jobs.map((j) => [j.payload.n, j.payload.at instanceof Date, j.jobGroup]), [
        [1, true, "g"],
        [2, true, "g"],
        [3, true, undefined]
      ])
      assert.strictEqual((yield* test.enqueued()).length, 3)
      assert.deepStrictEqual(yield* test.drain, { succeeded: 2, retried: 0, failed: 0 })
      assert.deepStrictEqual(ran, [1, 2])
      yield* TestClock.adjust("5 seconds")
      assert.deepStrictEqual(yield* test.drain, { succeeded: 1, retried: 0, failed: 0 })
      assert.strictEqual((yield* test.jobs).finalized.length, 3)
    }).pipe(Effect.provide(CuckmqTest.layer({ definitions: [Job] })))
  })

  it.effect("inline mode: a due job runs as it is enqueued; a delayed one waits for drain", () => {
    const ran: Array<string> = []
    const Job = JobDefinition.make({
      name: "inline",
      payload: Schema.Struct({ s: Schema.String }),
      handler: ({ s }, meta) => Effect.sync(() => void ran.push(`${s}:${meta.attempt}`))
    })
    return Effect.gen(function*() {
      const test = yield* CuckmqTest
      assert.strictEqual(test.mode, "inline")
      yield* Job.enqueue({ s: "now" })
      assert.deepStrictEqual(ran, ["now:1"])
      yield* Job.enqueue({ s: "later" }, { delaySecs: 60 })
      assert.deepStrictEqual(ran, ["now:1"])
      yield* TestClock.adjust("1 minute")
      yield* test.drain
      assert.deepStrictEqual(ran, ["now:1", "later:1"])
    }).pipe(Effect.provide(CuckmqTest.layer({ definitions: [Job], mode: "inline" })))
  })

  it.effect("events are published as with PostgreSQL; a definition that is not registered cannot be enqueued", () => {
    const Job = JobDefinition.make({ name: "evented", numAttempts: 1, handler: () => Effect.fail("nope" as const) })
    const Stranger = JobDefinition.make({ name: "stranger", handler: () => Effect.void })
    return Effect.gen(function*() {
      const test = yield* CuckmqTest
      const cuckmq = yield* Cuckmq.Cuckmq
      const events = yield* cuckmq.subscribe
      const tags = yield* events.pipe(Stream.map((e) => e._tag), Stream.take(4), Stream.runCollect, Effect.forkChild)
      yield* Job.enqueue({})
      assert.deepStrictEqual(yield* test.drain, { succeeded: 0, retried: 0, failed: 1 })
      assert.deepStrictEqual(yield* Fiber.join(tags), [
        "JOB_DEFINITION_JOB_ENQUEUE",
        "WORKER_JOB_RUN",
        "WORKER_JOB_RUN_ERROR",
        "WORKER_JOB_EXPIRE"
      ])
      const error = yield* Effect.flip(Stranger.enqueue({}))
      assert.strictEqual(error._tag, "JobDefinitionNotDeployed")
    }).pipe(Effect.scoped, Effect.provide(CuckmqTest.layer({ definitions: [Job] })))
  })

  it.effect("the real Worker runs on the test context under TestClock: delays and retries without waiting", () => {
    const attempts: Array<number> = []
    const Flaky = JobDefinition.make({
      name: "flaky",
      numAttempts: 3,
      timeoutSecs: 30,
      handler: (_, meta) =>
        Effect.suspend(() => {
          attempts.push(meta.attempt)
          return meta.attempt < 3 ? Effect.fail("again") : Effect.void
        })
    })
    return Effect.gen(function*() {
      const test = yield* CuckmqTest
      const id = yield* Flaky.enqueue({}, { delaySecs: 10 })
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(Worker.layer({ pollIntervalSecs: 1 }), scope)
      yield* TestClock.adjust("9 seconds")
      assert.deepStrictEqual(attempts, [])
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(attempts, [1])
      yield* TestClock.adjust("31 seconds")
      assert.deepStrictEqual(attempts, [1, 2])
      yield* TestClock.adjust("31 seconds")
      assert.deepStrictEqual(attempts, [1, 2, 3])
      yield* Scope.close(scope, Exit.void)
      const { finalized } = yield* test.jobs
      assert.deepInclude(finalized.find((j) => j.id === id), { state: "succeeded", attempts: 3 })
    }).pipe(Effect.provide(CuckmqTest.layer({ definitions: [Flaky] })))
  })

  it.effect("a worker with a large prefetch buffer of jobs that complete synchronously runs them all (no deep recursion)", () => {
    let ran = 0
    const Sync = JobDefinition.make({ name: "sync", handler: () => Effect.sync(() => void ran++) })
    return Effect.gen(function*() {
      yield* Sync.enqueueMany(Array.from({ length: 20_000 }, () => ({ payload: {} })))
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(Worker.layer({ concurrency: 1, prefetch: 20_000, pollIntervalSecs: 1 }), scope)
      for (let i = 0; i < 200 && ran < 20_000; i++) yield* TestClock.adjust("1 second")
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(ran, 20_000)
    }).pipe(Effect.provide(CuckmqTest.layer({ definitions: [Sync], jobPostFinalizeDeleteSecs: 0 })))
  })
})
