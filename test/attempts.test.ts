/**
 * Attempt control (issue 13 items 2-4): retry policies from an Effect `Schedule`, `retryAfter`, snoozes and
 * their bound, per-attempt time limits; on the in-memory backend under TestClock (exact run times) and on
 * real PostgreSQL with the real Worker (counted, with lower bounds on the waits only).
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Clock, Duration, Effect, Exit, Fiber, Layer, Metric, Option, Schedule, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Cuckmq, CuckmqError, CuckmqMetrics, JobDefinition, Worker } from "../src/index.js"
import * as Engine from "../src/internal/engine.js"
import { CuckmqTest } from "../src/testing.js"
import { collect, startWorker, withContext } from "./support/harness.js"
import { PgTest } from "./support/pg.js"

/** The job's state through the context's store. */
const jobState = (id: string) =>
  Effect.flatMap(Cuckmq.Cuckmq, (cuckmq) => Effect.map(Engine.get(cuckmq).store.getJob(id), Option.getOrThrow))

/** Seconds from now (the Clock) until the job is due. */
const dueIn = (id: string) =>
  Effect.gen(function*() {
    const job = yield* jobState(id)
    return (job.runAt!.getTime() - (yield* Clock.currentTimeMillis)) / 1000
  })

describe("attempt control: memory backend, TestClock", () => {
  it.effect("an exponential policy's run times: 1 s, 2 s, 4 s after each failure, then finalized at numAttempts", () => {
    const Flaky = JobDefinition.make({
      name: "exp",
      numAttempts: 4,
      timeout: "1 hour",
      retry: Schedule.exponential("1 second"),
      handler: () => Effect.fail("boom" as const)
    })
    return Effect.gen(function*() {
      const test = yield* CuckmqTest
      const id = yield* Flaky.enqueue({})
      const delays: Array<number> = []
      for (let i = 0; i < 3; i++) {
        assert.deepStrictEqual(yield* test.drain, { succeeded: 0, retried: 1, failed: 0 })
        const d = yield* dueIn(id)
        delays.push(d)
        yield* TestClock.adjust(Duration.seconds(d - 0.001))
        assert.deepStrictEqual(yield* test.drain, { succeeded: 0, retried: 0, failed: 0 }, "not before its run time")
        yield* TestClock.adjust("1 millis")
      }
      assert.deepStrictEqual(delays, [1, 2, 4])
      assert.deepStrictEqual(yield* test.drain, { succeeded: 0, retried: 0, failed: 1 })
      assert.deepInclude(yield* jobState(id), { state: "failed", attempts: 4 })
    }).pipe(Effect.provide(CuckmqTest.layer({ definitions: [Flaky] })))
  })

  it.effect("a capped policy (min of exponential and spaced), a custom function of the attempt, and a schedule that ends", () => {
    const capped = JobDefinition.make({
      name: "capped",
      numAttempts: 5,
      retry: Schedule.min([Schedule.exponential("1 second"), Schedule.spaced("3 seconds")]),
      handler: () => Effect.fail("boom")
    })
    const custom = JobDefinition.make({
      name: "custom",
      numAttempts: 4,
      retry: Schedule.forever.pipe(Schedule.modifyDelay(({ attempt }) => Effect.succeed(Duration.seconds(attempt * 10)))),
      handler: () => Effect.fail("boom")
    })
    const ending = JobDefinition.make({
      name: "ending",
      numAttempts: 10,
      retry: Schedule.spaced("5 seconds").pipe(Schedule.upTo({ times: 1 })),
      handler: () => Effect.fail("boom")
    })
    const sequence = (definition: JobDefinition.Any, n: number) =>
      Effect.gen(function*() {
        const test = yield* CuckmqTest
        const id = yield* definition.enqueue({})
        const delays: Array<number> = []
        for (let i = 0; i < n; i++) {
          const result = yield* test.drain
          if (result.failed === 1) break
          const d = yield* dueIn(id)
          delays.push(d)
          yield* TestClock.adjust(Duration.seconds(d))
        }
        return { delays, job: yield* jobState(id) }
      })
    return Effect.gen(function*() {
      const a = yield* sequence(capped, 10)
      assert.deepStrictEqual(a.delays, [1, 2, 3, 3])
      assert.deepInclude(a.job, { state: "failed", attempts: 5 })
      const b = yield* sequence(custom, 10)
      assert.deepStrictEqual(b.delays, [10, 20, 30])
      const c = yield* sequence(ending, 10)
      assert.deepStrictEqual(c.delays, [5], "the schedule's second step ends it: finalized though attempts remain")
      assert.deepInclude(c.job, { state: "failed", attempts: 2 })
    }).pipe(Effect.provide(CuckmqTest.layer({ definitions: [capped, custom, ending] })))
  })

  it.effect("retryAfter chooses the delay (over the policy) and spends the attempt; the event says when", () => {
    const Limited = JobDefinition.make({
      name: "retry-after",
      numAttempts: 2,
      retry: Schedule.spaced("1 second"),
      handler: () => JobDefinition.retryAfter("45 seconds", "HTTP 429")
    })
    return Effect.gen(function*() {
      const test = yield* CuckmqTest
      const cuckmq = yield* Cuckmq.Cuckmq
      const errors = yield* collect(cuckmq, "WORKER_JOB_RUN_ERROR", 2)
      const id = yield* Limited.enqueue({})
      const t0 = yield* Clock.currentTimeMillis
      yield* test.drain
      assert.strictEqual(yield* dueIn(id), 45)
      assert.deepInclude(yield* jobState(id), { attempts: 1 })
      yield* TestClock.adjust("45 seconds")
      yield* test.drain
      const job = yield* jobState(id)
      assert.deepInclude(job, { state: "failed", attempts: 2 })
      assert.deepInclude(job.lastError as object, { message: "HTTP 429", tag: "JobRetryAfter" })
      const events = yield* Fiber.join(errors)
      assert.deepStrictEqual(
        events.map((e) => e._tag === "WORKER_JOB_RUN_ERROR" && [e.willRetry, e.retryAt?.getTime()]),
        [[true, t0 + 45_000], [false, undefined]]
      )
    }).pipe(Effect.scoped, Effect.provide(CuckmqTest.layer({ definitions: [Limited] })))
  })

  it.effect("snooze: no attempt spent, counted in the job, events and the metric; beyond maxSnoozes it fails the attempt", () => {
    let runs = 0
    const Waiting = JobDefinition.make({
      name: "snoozy",
      numAttempts: 2,
      timeout: "5 seconds",
      maxSnoozes: 2,
      handler: () => Effect.suspend(() => (runs++, JobDefinition.snooze("10 seconds")))
    })
    return Effect.gen(function*() {
      const test = yield* CuckmqTest
      const cuckmq = yield* Cuckmq.Cuckmq
      const snoozes = yield* collect(cuckmq, "WORKER_JOB_SNOOZE", 2)
      const errors = yield* collect(cuckmq, "WORKER_JOB_RUN_ERROR", 2)
      const id = yield* Waiting.enqueue({})
      for (const n of [1, 2]) {
        assert.deepStrictEqual(yield* test.drain, { succeeded: 0, retried: 1, failed: 0 })
        assert.deepInclude(yield* jobState(id), { state: "waiting", attempts: 0, snoozes: n })
        assert.strictEqual(yield* dueIn(id), 10)
        yield* TestClock.adjust("10 seconds")
      }
      const snoozed = yield* Fiber.join(snoozes)
      assert.deepStrictEqual(snoozed.map((e) => e._tag === "WORKER_JOB_SNOOZE" && [e.attempt, e.snoozes, e.delaySecs]), [
        [1, 1, 10],
        [1, 2, 10]
      ])
      // the third snooze is beyond the bound: a failed attempt (retried after the timeout), then the last one
      assert.deepStrictEqual(yield* test.drain, { succeeded: 0, retried: 1, failed: 0 })
      assert.deepInclude(yield* jobState(id), { state: "waiting", attempts: 1, snoozes: 2 })
      assert.strictEqual(yield* dueIn(id), 5)
      yield* TestClock.adjust("5 seconds")
      assert.deepStrictEqual(yield* test.drain, { succeeded: 0, retried: 0, failed: 1 })
      const job = yield* jobState(id)
      assert.deepInclude(job, { state: "failed", attempts: 2, snoozes: 2 })
      assert.deepInclude(job.lastError as object, { tag: "JobSnoozeLimitExceeded" })
      const failed = yield* Fiber.join(errors)
      assert.isTrue(failed.every((e) => e._tag === "WORKER_JOB_RUN_ERROR" && CuckmqError.isJobSnoozeLimitExceeded(e.error)))
      assert.strictEqual(runs, 4)
      const snoozedMetric = yield* Metric.value(Metric.withAttributes(CuckmqMetrics.jobsSnoozed, { definition: "snoozy" }))
      assert.strictEqual(snoozedMetric.count, 2, "the snoozes within the bound")
      const failedMetric = yield* Metric.value(Metric.withAttributes(CuckmqMetrics.jobsFailed, { definition: "snoozy" }))
      assert.strictEqual(failedMetric.count, 2, "the snoozes beyond it are failed attempts")
    }).pipe(Effect.scoped, Effect.provide(CuckmqTest.layer({ definitions: [Waiting] })))
  })

  it.effect("a time limit interrupts the handler (the real Worker under TestClock) and the retry that follows succeeds", () => {
    const interrupted: Array<number> = []
    const Slow = JobDefinition.make({
      name: "slow",
      numAttempts: 2,
      timeout: "30 seconds",
      timeLimit: "10 seconds",
      handler: (_, meta) =>
        meta.attempt === 1
          ? Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => void interrupted.push(meta.attempt))))
          : Effect.void
    })
    return Effect.gen(function*() {
      const test = yield* CuckmqTest
      const cuckmq = yield* Cuckmq.Cuckmq
      const errors = yield* collect(cuckmq, "WORKER_JOB_RUN_ERROR", 1)
      const id = yield* Slow.enqueue({})
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(Worker.layer({ pollIntervalSecs: 1 }), scope)
      yield* TestClock.adjust("9 seconds")
      assert.deepStrictEqual(interrupted, [])
      assert.deepInclude(yield* jobState(id), { state: "running" })
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(interrupted, [1])
      const [error] = yield* Fiber.join(errors)
      assert.isTrue(error?._tag === "WORKER_JOB_RUN_ERROR" && CuckmqError.isJobTimeLimitExceeded(error.error) && error.willRetry)
      yield* TestClock.adjust("31 seconds")
      yield* Scope.close(scope, Exit.void)
      const { finalized } = yield* test.jobs
      assert.deepInclude(finalized.find((j) => j.id === id), { state: "succeeded", attempts: 2 })
    }).pipe(Effect.scoped, Effect.provide(CuckmqTest.layer({ definitions: [Slow] })))
  })

  it.effect("bad attempt options are typed errors with readable messages, and nothing is enqueued", () => {
    const NegativeLimit = JobDefinition.make({ name: "neg-limit", timeLimit: -1, handler: () => Effect.void })
    const ZeroLimit = JobDefinition.make({ name: "zero-limit", timeLimit: "0 seconds", handler: () => Effect.void })
    const NegativeSnoozes = JobDefinition.make({ name: "neg-snoozes", maxSnoozes: -1, handler: () => Effect.void })
    const FractionSnoozes = JobDefinition.make({ name: "frac-snoozes", maxSnoozes: 1.5, handler: () => Effect.void })
    const NotSchedule = JobDefinition.make({ name: "not-schedule", retry: "1 second" as never, handler: () => Effect.void })
    const Fine = JobDefinition.make({ name: "fine", handler: () => Effect.void })
    return Effect.gen(function*() {
      const test = yield* CuckmqTest
      const messages: Array<string> = []
      for (const bad of [NegativeLimit, ZeroLimit, NegativeSnoozes, FractionSnoozes, NotSchedule]) {
        const error = yield* Effect.flip(bad.deploy)
        assert.strictEqual(error._tag, "InvalidJobDefinition")
        messages.push(error.message)
      }
      assert.match(messages[0]!, /neg-limit.*timeLimit must be a finite Duration > 0 seconds/)
      assert.match(messages[1]!, /timeLimit must be a finite Duration > 0 seconds.*got "0 seconds"/)
      assert.match(messages[2]!, /maxSnoozes must be an integer in \[0, 1,000,000,000\].*got -1/)
      assert.match(messages[3]!, /maxSnoozes must be an integer.*got 1.5/)
      assert.match(messages[4]!, /retry must be a Schedule/)
      yield* Fine.deploy
      const enqueueError = yield* Effect.flip(Fine.enqueue({}, { timeLimit: "-5 seconds" }))
      assert.strictEqual(enqueueError._tag, "InvalidEnqueueOptions")
      assert.match(enqueueError.message, /timeLimit must be/)
      const many = yield* Effect.flip(Fine.enqueueMany([{ payload: {} }, { payload: {}, timeLimit: Number.NaN }]))
      assert.match(many.message, /timeLimit must be a Duration.Input.*\(job 1\)/)
      assert.deepStrictEqual(yield* test.enqueued(), [])
    }).pipe(Effect.provide(CuckmqTest.layer({ definitions: [] })))
  })
})

const fast = { pollIntervalSecs: 0.2, heartbeatSecs: 0.5, leaseSecs: 5 } as const

describe("attempt control: PostgreSQL", () => {
  layer(PgTest({ maxConnections: 20 }), { excludeTestServices: true })((it) => {
    it.effect("an exponential policy: each retry's run_at is its delay after the failed attempt, not timeoutSecs", () => {
      const runs: Array<{ attempt: number; runAt: number; end: number }> = []
      const Flaky = JobDefinition.make({
        name: "pg-exp",
        numAttempts: 4,
        timeout: "1 hour", // a retry after the timeout would outlast the test
        retry: Schedule.exponential("200 millis"),
        handler: (_, meta) =>
          Effect.suspend(() => {
            runs.push({ attempt: meta.attempt, runAt: meta.runAt.getTime(), end: Date.now() })
            return Effect.fail("boom")
          })
      })
      return withContext("attempts_exp", { definitions: [Flaky] }, ({ cuckmq }) =>
        Effect.gen(function*() {
          const expired = yield* collect(cuckmq, "WORKER_JOB_EXPIRE", 1)
          const id = yield* Flaky.enqueue({})
          const stop = yield* startWorker(fast)
          yield* Fiber.join(expired)
          yield* stop
          assert.deepStrictEqual(runs.map((r) => r.attempt), [1, 2, 3, 4])
          const gaps = runs.slice(1).map((r, i) => r.runAt - runs[i]!.end)
          // run_at = the settlement's statement time + the delay: at least the delay after the handler ended
          // (same host, one clock), and far from the hour of timeoutSecs
          ;[200, 400, 800].forEach((delay, i) => {
            assert.isAtLeast(gaps[i]!, delay - 20, `retry ${i + 1}`)
            assert.isBelow(gaps[i]!, delay + 2000, `retry ${i + 1}`)
          })
          assert.deepInclude(yield* jobState(id), { state: "failed", attempts: 4 })
        }).pipe(Effect.scoped))
    })

    it.effect("retryAfter on PostgreSQL: the handler's delay, an attempt spent, grouped job too", () => {
      const runs: Array<{ attempt: number; start: number }> = []
      const Limited = JobDefinition.make({
        name: "pg-retry-after",
        numAttempts: 2,
        timeout: "1 hour",
        handler: (_, meta) =>
          Effect.suspend(() => {
            runs.push({ attempt: meta.attempt, start: Date.now() })
            return meta.attempt === 1 ? JobDefinition.retryAfter("300 millis") : Effect.void
          })
      })
      return withContext("attempts_after", { definitions: [Limited] }, ({ cuckmq }) =>
        Effect.gen(function*() {
          const done = yield* collect(cuckmq, "WORKER_JOB_RUN_SUCCESS", 2)
          const a = yield* Limited.enqueue({})
          const b = yield* Limited.enqueue({}, { jobGroup: "tenant-1" })
          const stop = yield* startWorker(fast)
          yield* Fiber.join(done)
          yield* stop
          for (const id of [a, b]) assert.deepInclude(yield* jobState(id), { state: "succeeded", attempts: 2 })
          assert.strictEqual(runs.length, 4)
        }).pipe(Effect.scoped))
    })

    it.effect("snooze on PostgreSQL: no attempt spent, snoozes counted and kept; beyond maxSnoozes a failed attempt", () => {
      const runs = new Map<string, number>()
      const Later = JobDefinition.make({
        name: "pg-snooze",
        numAttempts: 1,
        maxSnoozes: 2,
        payload: Schema.Struct({ snoozes: Schema.Int }),
        handler: ({ snoozes }, meta) =>
          Effect.suspend(() => {
            const n = runs.get(meta.jobId) ?? 0
            runs.set(meta.jobId, n + 1)
            assert.strictEqual(meta.attempt, 1, "a snooze spends no attempt")
            return n < snoozes ? JobDefinition.snooze("100 millis") : Effect.void
          })
      })
      return withContext("attempts_snooze", { definitions: [Later] }, ({ cuckmq }) =>
        Effect.gen(function*() {
          const snoozed = yield* collect(cuckmq, "WORKER_JOB_SNOOZE", 6)
          const ended = yield* collect(cuckmq, "WORKER_JOB_RUN_SUCCESS", 2)
          const expired = yield* collect(cuckmq, "WORKER_JOB_EXPIRE", 1)
          const plain = yield* Later.enqueue({ snoozes: 2 })
          const grouped = yield* Later.enqueue({ snoozes: 2 }, { jobGroup: "tenant-1" })
          const tooMany = yield* Later.enqueue({ snoozes: 5 })
          const stop = yield* startWorker(fast)
          yield* Fiber.join(ended)
          yield* Fiber.join(expired)
          yield* stop
          assert.deepInclude(yield* jobState(plain), { state: "succeeded", attempts: 1, snoozes: 2 })
          assert.deepInclude(yield* jobState(grouped), { state: "succeeded", attempts: 1, snoozes: 2 })
          const failed = yield* jobState(tooMany)
          assert.deepInclude(failed, { state: "failed", attempts: 1, snoozes: 2 })
          assert.deepInclude(failed.lastError as object, { tag: "JobSnoozeLimitExceeded" })
          const events = yield* Fiber.join(snoozed)
          assert.deepStrictEqual(
            events.filter((e) => e._tag === "WORKER_JOB_SNOOZE" && e.jobId === plain).map((e) =>
              e._tag === "WORKER_JOB_SNOOZE" && e.snoozes
            ),
            [1, 2]
          )
        }).pipe(Effect.scoped))
    })

    it.effect("a time limit (the definition's, or the enqueue's) interrupts the handler; the attempt is retried", () => {
      const interrupted: Array<string> = []
      const Slow = JobDefinition.make({
        name: "pg-slow",
        numAttempts: 2,
        timeout: "100 millis",
        timeLimit: "300 millis",
        handler: (_, meta) =>
          meta.attempt === 1
            ? Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => void interrupted.push(meta.jobId))))
            : Effect.void
      })
      const Unlimited = JobDefinition.make({
        name: "pg-unlimited",
        numAttempts: 2,
        timeout: "100 millis",
        handler: (_, meta) =>
          meta.attempt === 1
            ? Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => void interrupted.push(meta.jobId))))
            : Effect.void
      })
      return withContext("attempts_limit", { definitions: [Slow, Unlimited] }, ({ cuckmq }) =>
        Effect.gen(function*() {
          const errors = yield* collect(cuckmq, "WORKER_JOB_RUN_ERROR", 3)
          const done = yield* collect(cuckmq, "WORKER_JOB_RUN_SUCCESS", 3)
          const stop = yield* startWorker(fast)
          const a = yield* Slow.enqueue({})
          const b = yield* Unlimited.enqueue({}, { timeLimit: "200 millis" })
          const c = yield* Slow.enqueue({}, { timeLimit: "250 millis", jobGroup: "g" })
          yield* Fiber.join(done)
          yield* stop
          assert.sameMembers(interrupted, [a, b, c])
          const failures = yield* Fiber.join(errors)
          for (const e of failures) {
            assert.isTrue(e._tag === "WORKER_JOB_RUN_ERROR" && CuckmqError.isJobTimeLimitExceeded(e.error) && e.willRetry)
          }
          const limits = new Map(
            failures.map((e) => e._tag === "WORKER_JOB_RUN_ERROR" ? [e.jobId, (e.error as { limitSecs?: number }).limitSecs] : ["", 0])
          )
          assert.deepStrictEqual([limits.get(a), limits.get(b), limits.get(c)], [0.3, 0.2, 0.25])
          for (const id of [a, b, c]) assert.deepInclude(yield* jobState(id), { state: "succeeded", attempts: 2 })
        }).pipe(Effect.scoped))
    })
  })
})
