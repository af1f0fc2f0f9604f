/**
 * Attempt control: a retry policy from an Effect `Schedule` (exponential, capped), a handler that picks its
 * own retry delay (`retryAfter`), a handler that snoozes without spending an attempt (`snooze`, bounded by
 * `maxSnoozes`), and a per-attempt time limit that interrupts a stuck handler.
 *
 *   npx tsx examples/attempt-control.ts
 */
import { Effect, Layer, Schedule, Schema } from "effect"
import { NodeRuntime } from "@effect/platform-node"
import { Cuckmq, CuckmqEvent, JobDefinition, Worker } from "@cuckmq/effect"
import { exampleSchema, PgLive } from "../tools/database.js"

// Everything this example writes (cuckmq's tables) lives in a schema of its own, dropped when it ends.
const schema = exampleSchema("attempt-control")

// ---- 1. a retry policy: 100 ms, 200 ms, 400 ms, ... capped at 300 ms; at most 4 attempts ----
const Flaky = JobDefinition.make({
  name: "flaky-upload",
  numAttempts: 4,
  retry: Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("300 millis")]),
  handler: (_, { attempt }) => attempt < 4 ? Effect.fail(`upload failed (attempt ${attempt})`) : Effect.log("uploaded")
})

// ---- 2. the handler chooses its retry delay (a "Retry-After" from an API) ----
const Throttled = JobDefinition.make({
  name: "call-throttled-api",
  numAttempts: 2,
  timeout: "1 hour", // the definition's fixed delay: retryAfter wins over it
  handler: (_, { attempt }) => attempt === 1 ? JobDefinition.retryAfter("250 millis", "HTTP 429") : Effect.log("API answered")
})

// ---- 3. snooze: "not ready yet, come back later", no attempt spent ----
let checks = 0
const PublishWhenReady = JobDefinition.make({
  name: "publish-when-ready",
  payload: Schema.Struct({ article: Schema.String }),
  maxSnoozes: 10, // beyond: a snooze is a failed attempt (JobSnoozeLimitExceeded)
  handler: ({ article }, { attempt }) =>
    Effect.gen(function*() {
      checks++
      if (checks < 3) return yield* JobDefinition.snooze("100 millis")
      yield* Effect.log(`published ${article} on attempt ${attempt} after ${checks - 1} snoozes`)
    })
})

// ---- 4. a time limit: the first attempt hangs and is interrupted at 200 ms, the retry succeeds ----
const Render = JobDefinition.make({
  name: "render",
  numAttempts: 2,
  timeout: "50 millis",
  timeLimit: "200 millis", // an enqueue may give its own: { timeLimit: "5 seconds" }
  handler: (_, { attempt }) =>
    attempt === 1
      ? Effect.never.pipe(Effect.onInterrupt(() => Effect.log("render attempt 1 interrupted at its time limit")))
      : Effect.log("rendered on attempt 2")
})

const program = Effect.gen(function*() {
  const cuckmq = yield* Cuckmq.Cuckmq
  let done = 0
  yield* cuckmq.addEventHandler((event) => {
    if (CuckmqEvent.is("WORKER_JOB_RUN_SUCCESS")(event)) done++
    if (CuckmqEvent.is("WORKER_JOB_RUN_ERROR")(event)) {
      const delay = event.retryAt === undefined ? "no retry" : `retry in ${event.retryAt.getTime() - event.timestamp.getTime()} ms`
      return Effect.log(`${event.definitionName} attempt ${event.attempt} failed (${event.message}): ${delay}`)
    }
    if (CuckmqEvent.is("WORKER_JOB_SNOOZE")(event)) {
      return Effect.log(`${event.definitionName} snoozed (${event.snoozes} so far), again in ${event.delaySecs * 1000} ms`)
    }
    return Effect.void
  })
  yield* Flaky.enqueue({})
  yield* Throttled.enqueue({})
  yield* PublishWhenReady.enqueue({ article: "launch-post" })
  yield* Render.enqueue({})
  while (done < 4) yield* Effect.sleep("20 millis")
  yield* Effect.log("all 4 jobs done")
})

program.pipe(
  Effect.scoped,
  Effect.provide(
    Worker.layer({ pollInterval: "50 millis" }).pipe(
      Layer.provideMerge(Cuckmq.layer({ schema, definitions: [Flaky, Throttled, PublishWhenReady, Render] })),
      Layer.provide(PgLive({ scratchSchema: schema }))
    )
  ),
  NodeRuntime.runMain
)
