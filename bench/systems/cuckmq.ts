/** cuckmq (this repository), imported as a package: default settings except the worker concurrency. */
import { Effect, Exit, Layer, ManagedRuntime, Redacted, Schema, Scope } from "effect"
import { PgClient } from "@effect/sql-pg"
import { Cuckmq, JobDefinition, Worker } from "@cuckmq/effect"
import type { Adapter, OnJob, SystemDefinition } from "./types.js"
import { adminQuery, installedVersion } from "./util.js"

export const system: SystemDefinition = {
  name: "cuckmq",
  label: "cuckmq",
  backend: "postgres",
  packageVersion: () => `@cuckmq/effect (this repo) on effect ${installedVersion("effect")}, @effect/sql-pg ${installedVersion("@effect/sql-pg")}`,
  settings: ({ poolSize }) => [
    `\`PgClient.layer({ url, maxConnections: ${poolSize} })\`, one client per process shared by enqueue and workers`,
    "`Cuckmq.layer({ definitions: [Bench] })`: all defaults (schema `_cuckmq`, finalized jobs kept 24 h, migrate and deploy on start)",
    "`JobDefinition.make({ name: \"bench\", payload: Schema.Struct({ i: Schema.Number }), handler })`: defaults (1 attempt, 60 s timeout)",
    "`Worker.layer({ concurrency })`, one worker per process, all other options default (poll 1 s fallback, LISTEN/NOTIFY wake-ups always on, heartbeat 5 s)",
    "single: `Bench.enqueue(payload)`; bulk: `Bench.enqueueMany(items)`"
  ],
  make: async (ctx) => {
    let onJob: OnJob = () => {}
    const Bench = JobDefinition.make({
      name: "bench",
      payload: Schema.Struct({ i: Schema.Number }),
      handler: ({ i }) => Effect.sync(() => onJob(i))
    })
    const Pg = PgClient.layer({ url: Redacted.make(ctx.databaseUrl), maxConnections: ctx.poolSize })
    const Context = Cuckmq.layer({ definitions: [Bench] }).pipe(Layer.provideMerge(Pg))
    const runtime = ManagedRuntime.make(Context)
    await runtime.runPromise(Effect.void) // build the context: connect, migrate, deploy
    const adapter: Adapter = {
      enqueue: (i) => runtime.runPromise(Effect.asVoid(Bench.enqueue({ i }))),
      enqueueBulk: (is) => runtime.runPromise(Effect.asVoid(Bench.enqueueMany(is.map((i) => ({ payload: { i } }))))),
      startWorkers: async (concurrency, handler) => {
        onJob = handler
        const scope = await runtime.runPromise(Scope.make())
        await runtime.runPromise(Layer.buildWithScope(Worker.layer({ concurrency }), scope))
        return {
          stop: async () => {
            await runtime.runPromise(Scope.close(scope, Exit.void))
            onJob = () => {}
          }
        }
      },
      purge: () => adminQuery(ctx.databaseUrl, `TRUNCATE "_cuckmq".job, "_cuckmq".job_finalized, "_cuckmq".job_group`),
      close: () => runtime.dispose()
    }
    return adapter
  }
}
