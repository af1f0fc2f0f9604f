/**
 * Results and cancellation on the in-memory backend (`CuckmqTest`), with `TestClock`: `awaitResult` of a job
 * finished before the wait and of one that finishes later, its timeout and its typed failures, a value that
 * does not encode (a failed attempt), and a running job cancelled under a worker: its handler interrupted,
 * its group's next job run after it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Cuckmq, JobDefinition, Worker } from "../src/index.js"
import { CuckmqTest } from "../src/testing.js"

const Double = JobDefinition.make({
  name: "double",
  payload: Schema.Struct({ n: Schema.Number }),
  success: Schema.Struct({ doubled: Schema.Number, at: Schema.Date }),
  handler: ({ n }) => n < 0 ? Effect.fail("negative") : Effect.succeed({ doubled: n * 2, at: new Date(1000) })
})

const BadValue = JobDefinition.make({
  name: "bad-value",
  success: Schema.Int,
  handler: () => Effect.succeed(1.5)
})

const Plain = JobDefinition.make({ name: "plain", handler: () => Effect.void })

describe("results on the memory backend", () => {
  it.effect("awaitResult: finished before, finished later (woken by the store), timeout, failed, not found, bad value", () =>
    Effect.gen(function*() {
      const test = yield* CuckmqTest
      const early = yield* Double.enqueue({ n: 2 })
      yield* test.drain
      assert.deepStrictEqual(yield* Double.awaitResult(early), { doubled: 4, at: new Date(1000) })
      // a wait that begins before the job runs: woken by the finalization, no clock moved
      const later = yield* Double.enqueue({ n: 5 })
      const waiting = yield* Effect.forkChild(Double.awaitResult(later, { pollInterval: "1 hour", timeout: "2 hours" }))
      yield* Effect.yieldNow
      yield* test.drain
      assert.deepStrictEqual(yield* Fiber.join(waiting), { doubled: 10, at: new Date(1000) })
      // a timeout, by the TestClock
      const never = yield* Double.enqueue({ n: 1 }, { delay: "1 day" })
      const timing = yield* Effect.forkChild(Effect.flip(Double.awaitResult(never, { timeout: "5 seconds" })))
      yield* TestClock.adjust("5 seconds")
      const timedOut = yield* Fiber.join(timing)
      assert.strictEqual(timedOut._tag, "JobResultTimeout")
      // failures
      const failing = yield* Double.enqueue({ n: -1 })
      yield* test.drain
      const failed = yield* Effect.flip(Double.awaitResult(failing))
      assert.strictEqual(failed._tag, "JobFailed")
      assert.include(failed.message, "negative")
      assert.strictEqual((yield* Effect.flip(Double.awaitResult("424242")))._tag, "JobNotFound")
      const bad = yield* BadValue.enqueue({})
      yield* test.drain
      const invalid = yield* Effect.flip(BadValue.awaitResult(bad))
      assert.strictEqual(invalid._tag, "JobFailed")
      assert.strictEqual((invalid as { error: { tag: string } }).error.tag, "InvalidResult")
      // no success Schema: undefined; bad options are typed errors
      const plain = yield* Plain.enqueue({})
      yield* test.drain
      assert.isUndefined(yield* Plain.awaitResult(plain))
      assert.strictEqual((yield* Effect.flip(Plain.awaitResult(plain, { timeout: -1 })))._tag, "InvalidOptions")
      // cancelling a waiting job: it never runs; the wait says so
      const doomed = yield* Double.enqueue({ n: 3 }, { delay: "1 minute" })
      assert.strictEqual(yield* Cuckmq.cancel(doomed), "cancelled")
      assert.strictEqual((yield* Effect.flip(Double.awaitResult(doomed)))._tag, "JobCancelled")
    }).pipe(Effect.provide(CuckmqTest.layer({ definitions: [Double, BadValue, Plain] }))))

  it.effect("cancel a running job under a worker: interrupted, finalized as cancelled, its group's next job runs after it", () => {
    const log: Array<string> = []
    const started = Deferred.makeUnsafe<void>()
    const Long = JobDefinition.make({
      name: "long",
      handler: () =>
        Effect.andThen(Deferred.succeed(started, undefined), Effect.never).pipe(
          Effect.onInterrupt(() => Effect.sync(() => void log.push("long interrupted")))
        )
    })
    const Next = JobDefinition.make({ name: "next", handler: () => Effect.sync(() => void log.push("next ran")) })
    return Effect.gen(function*() {
      const long = yield* Long.enqueue({}, { jobGroup: "g" })
      const next = yield* Next.enqueue({}, { jobGroup: "g" })
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(Worker.layer({ pollIntervalSecs: 1 }), scope)
      yield* Deferred.await(started)
      assert.strictEqual(yield* Cuckmq.cancel(long), "cancelling")
      const cancelled = yield* Effect.flip(Long.awaitResult(long))
      assert.strictEqual(cancelled._tag, "JobCancelled")
      const waitNext = yield* Effect.forkChild(Next.awaitResult(next))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(waitNext)
      assert.deepStrictEqual(log, ["long interrupted", "next ran"])
      const { finalized } = yield* (yield* CuckmqTest).jobs
      assert.deepInclude(finalized.find((j) => j.id === long), { state: "cancelled", attempts: 1 })
      assert.deepStrictEqual(yield* Cuckmq.cancelWhere({ definition: "long" }), { cancelled: [], cancelling: [] })
      yield* Scope.close(scope, Exit.void)
    }).pipe(Effect.provide(CuckmqTest.layer({ definitions: [Long, Next] })))
  })
})
