/**
 * The consumer test's vitest test (run in the scratch app by tools/consumer.mjs): a job tested with
 * `@cuckmq/effect/testing`, no database.
 */
import { expect, test } from "vitest"
import { Effect, Schema } from "effect"
import { JobDefinition } from "@cuckmq/effect"
import { CuckmqTest } from "@cuckmq/effect/testing"

const greeted: Array<string> = []

const Greet = JobDefinition.make({
  name: "greet",
  payload: Schema.Struct({ name: Schema.String }),
  handler: ({ name }) => Effect.sync(() => void greeted.push(name))
})

test("a greet job is enqueued, then runs on drain", async () => {
  const drained = await Effect.gen(function*() {
    yield* Greet.enqueue({ name: "ada" })
    const cuckmq = yield* CuckmqTest
    const jobs = yield* cuckmq.enqueued(Greet)
    expect(jobs.map((job) => job.payload)).toEqual([{ name: "ada" }])
    return yield* cuckmq.drain
  }).pipe(Effect.provide(CuckmqTest.layer({ definitions: [Greet] })), Effect.runPromise)
  expect(drained).toEqual({ succeeded: 1, retried: 0, failed: 0 })
  expect(greeted).toEqual(["ada"])
})
