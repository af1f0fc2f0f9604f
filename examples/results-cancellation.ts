/**
 * Results and cancellation: a definition with a `success` Schema whose handler's value is stored with the
 * job and read back, typed, by `awaitResult` (here through `enqueueAndAwait`), a failed job's typed failure,
 * and a running job cancelled: its handler is interrupted (its finalizer runs), it is finalized as
 * cancelled, and the next job of its group runs.
 *
 *   npx tsx examples/results-cancellation.ts
 */
import { Deferred, Effect, Layer, Schema } from "effect"
import { NodeRuntime } from "@effect/platform-node"
import { Cuckmq, JobDefinition, Worker } from "@cuckmq/effect"
import { exampleSchema, PgLive } from "../tools/database.js"

// Everything this example writes (cuckmq's tables) lives in a schema of its own, dropped when it ends.
const schema = exampleSchema("results-cancellation")

// ---- 1. a result: the handler's value, encoded with `success` and stored with the job ----
const Resize = JobDefinition.make({
  name: "resize-image",
  payload: Schema.Struct({ url: Schema.String, width: Schema.Int }),
  success: Schema.Struct({ url: Schema.String, bytes: Schema.Int }),
  handler: ({ url, width }) =>
    width <= 0
      ? Effect.fail(`cannot resize to width ${width}`)
      : Effect.succeed({ url: `${url}?w=${width}`, bytes: width * 100 })
})

// ---- 2. a long job, cancelled while it runs ----
const exportStarted = Deferred.makeUnsafe<void>()
const Export = JobDefinition.make({
  name: "export-report",
  handler: () =>
    Effect.andThen(Effect.log("export started"), Deferred.succeed(exportStarted, undefined)).pipe(
      Effect.andThen(Effect.never),
      Effect.onInterrupt(() => Effect.log("export interrupted: temporary files removed"))
    )
})
const Notify = JobDefinition.make({
  name: "notify-tenant",
  handler: () => Effect.log("tenant notified (the group's lock was released by the cancelled export)")
})

const program = Effect.gen(function*() {
  const resized = yield* Resize.enqueueAndAwait({ url: "https://example.com/cat.png", width: 320 }, { timeout: "10 seconds" })
  yield* Effect.log(`resized: ${resized.url} (${resized.bytes} bytes)`)

  const failure = yield* Effect.flip(Resize.enqueueAndAwait({ url: "https://example.com/cat.png", width: 0 }))
  yield* Effect.log(`resize failed: ${failure._tag}: ${failure.message}`)

  const exportId = yield* Export.enqueue({}, { jobGroup: "tenant-7" })
  const notifyId = yield* Notify.enqueue({}, { jobGroup: "tenant-7" }) // waits for the export: same group
  yield* Deferred.await(exportStarted)
  const outcome = yield* Cuckmq.cancel(exportId)
  yield* Effect.log(`cancel: ${outcome}`) // "cancelling": it runs; its worker interrupts it
  const cancelled = yield* Effect.flip(Export.awaitResult(exportId))
  yield* Effect.log(`export: ${cancelled._tag}`)
  yield* Notify.awaitResult(notifyId)
  yield* Effect.log("done")
})

program.pipe(
  Effect.provide(
    Worker.layer({ pollInterval: "50 millis" }).pipe(
      Layer.provideMerge(Cuckmq.layer({ schema, definitions: [Resize, Export, Notify] })),
      Layer.provide(PgLive({ scratchSchema: schema }))
    )
  ),
  NodeRuntime.runMain
)
