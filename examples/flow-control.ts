/**
 * Flow control, all enforced by the claim itself (so it holds across every worker of every process):
 * priorities, a paused channel, a group concurrency (a definition's default and one group's own setting),
 * a group rate limit and a channel rate limit.
 *
 *   npx tsx examples/flow-control.ts
 */
import { Duration, Effect, Layer, Schema } from "effect"
import { NodeRuntime } from "@effect/platform-node"
import { Cuckmq, CuckmqEvent, JobDefinition, Worker } from "@cuckmq/effect"
import { exampleSchema, PgLive } from "../tools/database.js"

// Everything this example writes (cuckmq's tables) lives in a schema of its own, dropped when it ends, also on
// a failure or Ctrl-C, so it never touches data that is not its own. An app passes the schema its queue lives
// in (or keeps cuckmq's default, "_cuckmq") and provides its own `PgClient.layer`.
const schema = exampleSchema("flow-control")

// ---- 1. priorities (and pause/resume): higher is claimed first ----
const ranPriorities: Array<number> = []
const Report = JobDefinition.make({
  name: "build-report",
  channel: "reports",
  payload: Schema.Struct({ id: Schema.Int }),
  handler: (_, { priority }) => Effect.sync(() => void ranPriorities.push(priority))
})

// ---- 2. group concurrency: at most 2 syncs per tenant at once, unless the tenant has its own limit ----
const syncing = new Map<string, number>()
const mostAtOnce = new Map<string, number>()
let synced = 0
const SyncTenant = JobDefinition.make({
  name: "sync-tenant",
  channel: "sync",
  payload: Schema.Struct({ batch: Schema.Int }),
  groupConcurrency: 2,
  handler: (_, { jobGroup }) =>
    Effect.gen(function*() {
      const tenant = jobGroup!
      const now = (syncing.get(tenant) ?? 0) + 1
      syncing.set(tenant, now)
      mostAtOnce.set(tenant, Math.max(mostAtOnce.get(tenant) ?? 0, now))
      yield* Effect.sleep("50 millis") // the tenant's API
      syncing.set(tenant, syncing.get(tenant)! - 1)
      synced++
    })
})

// ---- 3. a group rate limit: at most 2 notifications per tenant per second ----
let notified = 0
const NotifyTenant = JobDefinition.make({
  name: "notify-tenant",
  channel: "notify",
  payload: Schema.Struct({ n: Schema.Int }),
  groupConcurrency: 10, // so that the rate limit, not the concurrency, is what binds
  groupRateLimit: { limit: 2, period: "1 second" },
  handler: () => Effect.sync(() => void notified++)
})

// ---- 4. a channel rate limit: at most 10 partner API calls per second, across every worker ----
let called = 0
const CallPartner = JobDefinition.make({
  name: "call-partner",
  channel: "partner-api",
  payload: Schema.Struct({ n: Schema.Int }),
  handler: () => Effect.sync(() => void called++)
})

const waitFor = (done: () => boolean) => Effect.gen(function*() {
  while (!done()) yield* Effect.sleep("20 millis")
})

const program = Effect.gen(function*() {
  const cuckmq = yield* Cuckmq.Cuckmq
  // every change of a channel's or a group's limits is an event
  yield* cuckmq.addEventHandler((event) =>
    CuckmqEvent.is("CHANNEL_UPDATE", "GROUP_UPDATE")(event)
      ? Effect.log(`${event._tag}: ${event._tag === "CHANNEL_UPDATE" ? event.channel : event.jobGroup}`)
      : Effect.void
  )

  // 1. pause the channel so that the jobs pile up, enqueue low and high priorities mixed, then resume: the
  //    one worker of "reports" (one slot, nothing prefetched) runs them highest first
  const paused = yield* Cuckmq.pauseChannel("reports")
  yield* Effect.log(`reports paused: ${paused.paused}`)
  yield* Report.enqueueMany([0, 10, 0, 5, 10, 0].map((priority, id) => ({ payload: { id }, priority })))
  yield* Effect.sleep("300 millis") // the worker polls meanwhile: a paused channel gives it nothing
  yield* Effect.log(`while paused, reports run: ${ranPriorities.length}`)
  yield* Cuckmq.resumeChannel("reports")
  yield* waitFor(() => ranPriorities.length === 6)
  yield* Effect.log(`reports ran by priority: ${ranPriorities.join(" ")}`)

  // 2. acme has its own limit (it wins over the definition's groupConcurrency: 2)
  const acme = yield* Cuckmq.setGroupLimits("acme", { concurrency: 3 })
  yield* SyncTenant.enqueueMany(
    ["acme", "globex"].flatMap((tenant) => Array.from({ length: 9 }, (_, batch) => ({ payload: { batch }, jobGroup: tenant })))
  )
  yield* waitFor(() => synced === 18)
  yield* Effect.log(
    `18 syncs; most at once: acme ${mostAtOnce.get("acme")} (its own limit ${acme.concurrency}), ` +
      `globex ${mostAtOnce.get("globex")} (the definition's groupConcurrency ${SyncTenant.groupConcurrency})`
  )

  // 3. and 4. at once: a group rate limit and a channel rate limit
  yield* Cuckmq.setChannelRateLimit("partner-api", { limit: 10, period: "1 second" })
  const started = Date.now()
  yield* NotifyTenant.enqueueMany(Array.from({ length: 6 }, (_, n) => ({ payload: { n }, jobGroup: "acme" })))
  yield* CallPartner.enqueueMany(Array.from({ length: 25 }, (_, n) => ({ payload: { n } })))
  yield* waitFor(() => notified === 6 && called === 25)
  const secs = ((Date.now() - started) / 1000).toFixed(1)
  // fixed windows: 6 jobs at 2 per window need 3 windows, 25 at 10 per window too, so at least 2 seconds
  yield* Effect.log(`6 notifications for acme (2 per second) and 25 partner-api calls (10 per second) took ${secs} s`)
  const { rateLimit } = yield* Cuckmq.channel("partner-api")
  if (rateLimit !== undefined) {
    yield* Effect.log(`partner-api rate limit: ${rateLimit.limit} per ${Duration.format(rateLimit.period)}`)
  }
})

const Workers = Layer.merge(
  // one slot and no prefetch, so that the order in which the jobs are claimed is the order they run in
  Worker.layer({ name: "reports", channels: ["reports"], concurrency: 1, prefetch: 0, pollInterval: "100 millis" }),
  Worker.layer({ name: "general", channels: ["sync", "notify", "partner-api"], concurrency: 20, pollInterval: "100 millis" })
)

program.pipe(
  Effect.scoped,
  Effect.provide(
    Workers.pipe(
      Layer.provideMerge(Cuckmq.layer({ schema, definitions: [Report, SyncTenant, NotifyTenant, CallPartner] })),
      // the database, with the example's schema: created now, dropped (CASCADE) when the program ends
      Layer.provide(PgLive({ scratchSchema: schema }))
    )
  ),
  NodeRuntime.runMain
)
