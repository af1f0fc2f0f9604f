/** Effect's own PersistedQueue with its SQL store on @effect/sql-pg (no bulk API). */
import { Effect, Fiber, Layer, ManagedRuntime, Redacted, Schema } from "effect"
import { PersistedQueue } from "effect/persistence"
import { PgClient } from "@effect/sql-pg"
import type { Adapter, SystemDefinition } from "./types.js"
import { adminQuery, installedVersion } from "./util.js"

export const system: SystemDefinition = {
  name: "effect-persisted-queue",
  label: "Effect PersistedQueue",
  backend: "postgres",
  packageVersion: () => `effect ${installedVersion("effect")} (\`effect/persistence\` PersistedQueue), @effect/sql-pg ${installedVersion("@effect/sql-pg")}`,
  settings: ({ poolSize }) => [
    `\`PersistedQueue.layer\` on \`PersistedQueue.layerStoreSql()\` (defaults: table \`effect_queue\`, pollInterval 1 s, lockRefreshInterval 30 s, lockExpiration 2 min) on \`PgClient.layer({ url, maxConnections: ${poolSize} })\``,
    "`PersistedQueue.make({ name: \"bench\", schema: Schema.Struct({ i: Schema.Number }) })` (defaults: maxAttempts 10)",
    "workers: `concurrency` fibers, each `Effect.forever(queue.take(handler))`; a poll claims as many rows as there are waiting takers; an offer in the same process nudges the poller, other processes wait for the 1 s poll",
    "single: `queue.offer(payload)`; bulk: none (n/a); the drains pre-enqueue with 20 concurrent `offer` callers"
  ],
  make: async (ctx) => {
    const Pg = PgClient.layer({ url: Redacted.make(ctx.databaseUrl), maxConnections: ctx.poolSize })
    const Live = PersistedQueue.layer.pipe(Layer.provide(PersistedQueue.layerStoreSql()), Layer.provide(Pg))
    const runtime = ManagedRuntime.make(Live)
    const queue = await runtime.runPromise(
      PersistedQueue.make({ name: "bench", schema: Schema.Struct({ i: Schema.Number }) })
    )
    const adapter: Adapter = {
      enqueue: (i) => runtime.runPromise(Effect.asVoid(queue.offer({ i }))),
      enqueueBulk: undefined,
      startWorkers: async (concurrency, onJob) => {
        const take = queue.take(({ i }) => Effect.sync(() => onJob(i)))
        const fibers = Array.from({ length: concurrency }, () => runtime.runFork(Effect.forever(take)))
        return {
          stop: () => runtime.runPromise(Fiber.interruptAll(fibers))
        }
      },
      groups: { unsupported: "no job groups" },
      rateLimited: { unsupported: "no rate limit" },
      purge: () => adminQuery(ctx.databaseUrl, "TRUNCATE effect_queue"),
      close: () => runtime.dispose()
    }
    return adapter
  }
}
