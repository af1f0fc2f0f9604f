/**
 * Unique jobs: a key per job from its payload, decided by the database. Duplicates kept (the existing job's
 * id returned), a waiting job's payload replaced, a waiting job debounced, at most one successful run per
 * key per period, and a rolled-back transaction that frees its key.
 *
 *   npx tsx examples/unique-jobs.ts
 */
import { Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { NodeRuntime } from "@effect/platform-node"
import { Cuckmq, CuckmqEvent, JobDefinition, Worker } from "@cuckmq/effect"
import { exampleSchema, PgLive } from "../tools/database.js"

// Everything this example writes (cuckmq's tables) lives in a schema of its own, dropped when it ends.
const schema = exampleSchema("unique-jobs")

// ---- 1. keep: one receipt per order, however many times checkout retries its request ----
const SendReceipt = JobDefinition.make({
  name: "send-receipt",
  payload: Schema.Struct({ orderId: Schema.String }),
  unique: { key: ({ orderId }) => orderId }, // held while waiting or running
  handler: ({ orderId }) => Effect.log(`receipt sent for ${orderId}`)
})

// ---- 2. replace: the latest profile wins while the sync has not started ----
const SyncProfile = JobDefinition.make({
  name: "sync-profile",
  payload: Schema.Struct({ userId: Schema.String, name: Schema.String }),
  unique: { key: ({ userId }) => userId, states: ["waiting"], onConflict: "replace" },
  handler: ({ name, userId }) => Effect.log(`synced ${userId} as ${name}`)
})

// ---- 3. debounce: reindex once edits pause for 300 ms ----
const Reindex = JobDefinition.make({
  name: "reindex",
  payload: Schema.Struct({ documentId: Schema.String }),
  unique: { key: ({ documentId }) => documentId, states: ["waiting"], onConflict: "debounce" },
  handler: ({ documentId }) => Effect.log(`reindexed ${documentId}`)
})

// ---- 4. a period: at most one successful digest per user per hour ----
const Digest = JobDefinition.make({
  name: "hourly-digest",
  payload: Schema.Struct({ userId: Schema.String }),
  unique: { key: ({ userId }) => userId, period: "1 hour", states: ["waiting", "running", "succeeded"] },
  handler: ({ userId }) => Effect.log(`digest sent to ${userId}`)
})

const program = Effect.gen(function*() {
  const cuckmq = yield* Cuckmq.Cuckmq
  const sql = yield* SqlClient.SqlClient
  let done = 0
  yield* cuckmq.addEventHandler((event) => Effect.sync(() => CuckmqEvent.is("WORKER_JOB_RUN_SUCCESS")(event) && done++))
  const waitFor = (n: number) => Effect.gen(function*() {
    while (done < n) yield* Effect.sleep("20 millis")
  })

  // the receipt goes out a moment after checkout, so the retried request below finds it still waiting (an
  // undelayed job could be claimed, run and succeed in between, and then its key is free again)
  const first = yield* SendReceipt.enqueueWithOutcome({ orderId: "o-1" }, { delay: "200 millis" })
  const again = yield* SendReceipt.enqueueWithOutcome({ orderId: "o-1" }, { delay: "200 millis" })
  yield* Effect.log(`receipt: ${first.outcome}, then ${again.outcome} (same job: ${first.id === again.id})`)

  const profile = yield* SyncProfile.enqueueManyWithOutcome([
    { payload: { userId: "u-1", name: "Ada" }, delay: "200 millis" },
    { payload: { userId: "u-1", name: "Ada Lovelace" }, delay: "200 millis" }
  ])
  yield* Effect.log(`profile: ${profile.map((o) => o.outcome).join(", ")}`)

  for (let edit = 1; edit <= 3; edit++) {
    const o = yield* Reindex.enqueueWithOutcome({ documentId: "doc-7" }, { delay: "300 millis" })
    yield* Effect.log(`edit ${edit}: ${o.outcome}`)
  }

  // a transaction that rolls back frees its key: the enqueue after it inserts
  yield* sql.withTransaction(Effect.andThen(Digest.enqueue({ userId: "u-2" }), Effect.fail("rolled back"))).pipe(
    Effect.ignore
  )
  const digest = yield* Digest.enqueueWithOutcome({ userId: "u-2" })
  yield* Effect.log(`digest after a rollback: ${digest.outcome}`)
  yield* waitFor(4)
  const later = yield* Digest.enqueueWithOutcome({ userId: "u-2" })
  yield* Effect.log(`digest again within the hour: ${later.outcome}`)
  yield* Effect.log(`all done: ${done} jobs ran`)
})

program.pipe(
  Effect.scoped,
  Effect.provide(
    Worker.layer({ pollInterval: "50 millis" }).pipe(
      Layer.provideMerge(Cuckmq.layer({ schema, definitions: [SendReceipt, SyncProfile, Reindex, Digest] })),
      Layer.provideMerge(PgLive({ scratchSchema: schema }))
    )
  ),
  NodeRuntime.runMain
)
