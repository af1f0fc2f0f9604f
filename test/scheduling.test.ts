/**
 * Scheduling arithmetic without waiting: the real Orchestrator on the in-memory context, under TestClock.
 * Repeat intervals, cron with time zones (across a DST change), and due times missed while no orchestrator
 * ran (coalesced into one run, then back on the schedule).
 */
import { assert, describe, it } from "@effect/vitest"
import { type Duration, Effect, Exit, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import { JobDefinition, Orchestrator } from "../src/index.js"
import * as Definition from "../src/internal/definition.js"
import { CuckmqTest } from "../src/testing.js"

const at = (iso: string) => new Date(iso).getTime()
const iso = (d: Date | undefined) => d?.toISOString()

/** Builds the test context plus an orchestrator in their own scope; returns the test service and a stopper. */
const start = (definitions: ReadonlyArray<JobDefinition.JobDefinition<any, never, never>>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const ctx = yield* Layer.buildWithScope(
      Orchestrator.layer().pipe(Layer.provideMerge(CuckmqTest.layer({ definitions }))),
      scope
    )
    return { ctx, stop: Scope.close(scope, Exit.void) }
  })

const scheduledFor = (name: string) =>
  Effect.gen(function*() {
    const test = yield* CuckmqTest
    const { waiting } = yield* test.jobs
    return waiting.filter((j) => j.name === name).map((j) => iso(j.scheduledFor))
  })

describe("scheduling arithmetic (TestClock)", () => {
  it("advance keeps an interval's phase and coalesces missed due times", () => {
    const every = { _tag: "Every", secs: 60 } as const
    const due = new Date("2030-01-01T00:00:00Z")
    assert.strictEqual(iso(Definition.advance(every, due, new Date("2030-01-01T00:00:00.500Z"))), "2030-01-01T00:01:00.000Z")
    assert.strictEqual(iso(Definition.advance(every, due, new Date("2030-01-01T00:10:30Z"))), "2030-01-01T00:11:00.000Z")
    assert.strictEqual(iso(Definition.advance(every, due, new Date("2030-01-01T00:01:00Z"))), "2030-01-01T00:02:00.000Z")
    const cron = { _tag: "Cron", expression: "0 9 * * *", tz: "Europe/Berlin" } as const
    // 09:00 in Berlin is 08:00Z in winter and 07:00Z after the switch to summer time (2030-03-31)
    assert.strictEqual(iso(Definition.advance(cron, new Date("2030-03-30T08:00:00Z"), new Date("2030-03-30T08:00:01Z"))), "2030-03-31T07:00:00.000Z")
    assert.strictEqual(iso(Definition.advance(cron, new Date("2030-03-28T08:00:00Z"), new Date("2030-03-30T12:00:00Z"))), "2030-03-31T07:00:00.000Z")
  })

  it.effect("repeatSecs: the orchestrator enqueues every due time once, on its phase, without waiting", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2030-01-01T00:00:00Z"))
      const Tick = JobDefinition.make({ name: "tick", repeatSecs: 60, handler: () => Effect.void })
      const { ctx, stop } = yield* start([Tick])
      yield* TestClock.adjust("5 minutes")
      const times = yield* scheduledFor("tick").pipe(Effect.provideContext(ctx))
      assert.deepStrictEqual(times, [0, 1, 2, 3, 4, 5].map((m) => `2030-01-01T00:0${m}:00.000Z`))
      yield* stop
    }))

  it.effect("missed due times: an orchestrator back after 10 minutes enqueues one job for them, then keeps the schedule", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2030-01-01T00:00:00Z"))
      const Tick = JobDefinition.make({ name: "tick", repeatSecs: 60, handler: () => Effect.void })
      const scope = yield* Scope.make()
      const ctx = yield* Layer.buildWithScope(CuckmqTest.layer({ definitions: [Tick] }), scope)
      const runOrchestrator = (duration: Duration.Input) =>
        Effect.gen(function*() {
          const s = yield* Scope.make()
          yield* Layer.buildWithScope(Orchestrator.layer(), s).pipe(Effect.provideContext(ctx))
          yield* TestClock.adjust(duration)
          yield* Scope.close(s, Exit.void)
        })
      yield* runOrchestrator("90 seconds") // due 00:00 and 00:01
      yield* TestClock.adjust("10 minutes") // no orchestrator: due times 00:02 .. 00:11 are missed
      yield* runOrchestrator("60 seconds") // back at 00:11:30, until 00:12:30
      const times = yield* scheduledFor("tick").pipe(Effect.provideContext(ctx))
      assert.deepStrictEqual(times, [
        "2030-01-01T00:00:00.000Z",
        "2030-01-01T00:01:00.000Z",
        "2030-01-01T00:02:00.000Z", // the missed ones, coalesced into one run
        "2030-01-01T00:12:00.000Z" // then on the 1-minute grid again
      ])
      yield* Scope.close(scope, Exit.void)
    }))

  it.effect("cron with a time zone: 09:00 Berlin, across the switch to summer time", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("2030-03-29T12:00:00Z"))
      const Daily = JobDefinition.make({
        name: "daily",
        cron: "0 9 * * *",
        cronTimeZone: "Europe/Berlin",
        handler: () => Effect.void
      })
      const { ctx, stop } = yield* start([Daily])
      yield* TestClock.adjust("3 days")
      const times = yield* scheduledFor("daily").pipe(Effect.provideContext(ctx))
      assert.deepStrictEqual(times, [
        "2030-03-30T08:00:00.000Z", // 09:00 CET
        "2030-03-31T07:00:00.000Z", // 09:00 CEST
        "2030-04-01T07:00:00.000Z"
      ])
      yield* stop
    }))
})
