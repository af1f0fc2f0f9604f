/**
 * Job groups as a mutex: jobs of one group never run at the same time, anywhere (here: one sync per account
 * at a time), while different groups run in parallel.
 *
 *   npx tsx examples/job-groups.ts
 */
import { Effect, Layer, Schema } from "effect"
import { NodeRuntime } from "@effect/platform-node"
import { Cuckmq, JobDefinition, Worker } from "@cuckmq/effect"
import { exampleSchema, PgLive } from "../tools/database.js"

// Everything this example writes (cuckmq's tables) lives in a schema of its own, dropped when it ends, also on
// a failure or Ctrl-C, so it never touches data that is not its own. An app passes the schema its queue lives
// in (or keeps cuckmq's default, "_cuckmq") and provides its own `PgClient.layer`.
const schema = exampleSchema("job-groups")

const running = new Map<string, number>()
let overlaps = 0
let done = 0

const SyncAccount = JobDefinition.make({
  name: "sync-account",
  payload: Schema.Struct({ account: Schema.String, batch: Schema.Int }),
  handler: ({ account, batch }) =>
    Effect.gen(function*() {
      const now = (running.get(account) ?? 0) + 1
      running.set(account, now)
      if (now > 1) overlaps++
      yield* Effect.sleep("10 millis") // talk to the account's API, which allows one session at a time
      running.set(account, running.get(account)! - 1)
      done++
      if (batch === 9) yield* Effect.log(`${account}: last batch synced`)
    })
})

const program = Effect.gen(function*() {
  const accounts = ["acme", "globex", "initech"]
  // ten batches per account, all enqueued at once; the account is the job group
  yield* SyncAccount.enqueueMany(
    accounts.flatMap((account) => Array.from({ length: 10 }, (_, batch) => ({ payload: { account, batch }, jobGroup: account })))
  )
  while (done < 30) yield* Effect.sleep("50 millis")
  yield* Effect.log(`30 batches synced with 20 worker slots; overlapping syncs of one account: ${overlaps}`)
})

program.pipe(
  Effect.provide(
    Layer.merge(Worker.layer({ concurrency: 10 }), Worker.layer({ concurrency: 10 })).pipe(
      Layer.provideMerge(Cuckmq.layer({ schema, definitions: [SyncAccount] })),
      // the database, with the example's schema: created now, dropped (CASCADE) when the program ends
      Layer.provide(PgLive({ scratchSchema: schema }))
    )
  ),
  NodeRuntime.runMain
)
