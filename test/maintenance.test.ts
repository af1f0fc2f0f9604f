/**
 * The maintenance loop shape (`Maintenance.forever`, on `Schedule`) under the TestClock: its spacing, the
 * sooner wait a step may ask for, jitter bounds, surviving failures and defects, and stopping only when
 * interrupted.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Ref } from "effect"
import { TestClock } from "effect/testing"
import * as Maintenance from "../src/internal/maintenance.js"

describe("Maintenance.forever", () => {
  it.effect("runs at once, then every interval after each round", () =>
    Effect.gen(function*() {
      const rounds = yield* Ref.make(0)
      const fiber = yield* Effect.forkChild(Maintenance.forever("count", 10, Ref.update(rounds, (n) => n + 1)))
      yield* TestClock.adjust("0 millis")
      assert.strictEqual(yield* Ref.get(rounds), 1)
      yield* TestClock.adjust("9999 millis")
      assert.strictEqual(yield* Ref.get(rounds), 1)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Ref.get(rounds), 2)
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual(yield* Ref.get(rounds), 5)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("survives failures and defects of a round (with the normal wait after them), and stops when interrupted", () =>
    Effect.gen(function*() {
      const rounds = yield* Ref.make(0)
      const step = Effect.flatMap(Ref.updateAndGet(rounds, (n) => n + 1), (n) =>
        n === 2
          ? Effect.fail("a failed round")
          : n === 3
          ? Effect.die(new Error("a defect"))
          : n === 4
          ? Effect.sync(() => {
            throw new Error("a thrown defect")
          })
          : Effect.void)
      const fiber = yield* Effect.forkChild(Maintenance.forever("flaky", 1, step))
      yield* TestClock.adjust("0 millis")
      for (let expected = 2; expected <= 6; expected++) {
        yield* TestClock.adjust("999 millis")
        assert.strictEqual(yield* Ref.get(rounds), expected - 1)
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(yield* Ref.get(rounds), expected)
      }
      yield* Fiber.interrupt(fiber)
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* Ref.get(rounds), 6)
      assert.isTrue(fiber.pollUnsafe() !== undefined)
    }))

  it.effect("a round that returns seconds runs again after that long (at most the interval, at least 10 ms)", () =>
    Effect.gen(function*() {
      const times = yield* Ref.make<Array<number>>([])
      const waits = [0.25, 100, 0, undefined]
      const step = Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const done = yield* Ref.updateAndGet(times, (ts) => [...ts, now])
        return waits[done.length - 1]
      })
      const fiber = yield* Effect.forkChild(Maintenance.forever("schedule", 5, step))
      yield* TestClock.adjust("20 seconds")
      const ts = yield* Ref.get(times)
      const gaps = ts.slice(1, 5).map((t, i) => t - ts[i]!)
      // 0.25 s asked; 100 s asked, capped at the interval; 0 asked, raised to 10 ms; nothing asked: the interval
      assert.deepStrictEqual(gaps, [250, 5000, 10, 5000])
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("with jitter, each wait is within 80 % to 120 % of the interval", () =>
    Effect.gen(function*() {
      const times = yield* Ref.make<Array<number>>([])
      const step = Effect.flatMap(Clock.currentTimeMillis, (now) => Ref.update(times, (ts) => [...ts, now]))
      const fiber = yield* Effect.forkChild(Maintenance.forever("jittered", 1, step, { jitter: true }))
      for (let i = 0; i < 400; i++) yield* TestClock.adjust("50 millis")
      const ts = yield* Ref.get(times)
      const gaps = ts.slice(1).map((t, i) => t - ts[i]!)
      assert.isAtLeast(gaps.length, 15)
      for (const gap of gaps) {
        // the clock moves in 50 ms steps, so a wait shows as the next multiple of 50 ms
        assert.isAtLeast(gap, 800)
        assert.isAtMost(gap, 1250)
      }
      assert.isAbove(new Set(gaps).size, 1, `waits should vary: ${gaps.join(", ")}`)
      yield* Fiber.interrupt(fiber)
    }))
})
