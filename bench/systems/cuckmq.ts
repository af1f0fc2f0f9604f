/**
 * cuckmq (this repository), imported from its source (../../src): default settings except the worker concurrency. Also
 * `cuckmq-baseline`: the same adapter over the library of another commit (`--baseline=<git ref>`, checked
 * out by run.ts), so that the cost of a change is measured side by side in one run.
 */
import { Effect, Exit, Layer, ManagedRuntime, Redacted, Schema, Scope } from "effect"
import { PgClient } from "@effect/sql-pg"
import * as Library from "../../src/index.js"
import type { Adapter, OnJob, SystemDefinition } from "./types.js"
import { adminQuery, installedVersion } from "./util.js"

/** The adapter over a cuckmq library module (this repository's, or a baseline commit's). */
const adapterOf = async (lib: typeof Library, ctx: Parameters<SystemDefinition["make"]>[0]): Promise<Adapter> => {
  const { Cuckmq, JobDefinition, Worker } = lib
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
  return {
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
}

/** The baseline's library: `src/index.ts` of the checkout in CUCKMQ_BASELINE_DIR (set by run.ts). */
export const baseline: SystemDefinition = {
  name: "cuckmq-baseline",
  label: `cuckmq @ ${process.env.CUCKMQ_BASELINE_REF ?? "baseline"}`,
  backend: "postgres",
  packageVersion: () => `@cuckmq/effect at ${process.env.CUCKMQ_BASELINE_REF ?? "?"} (a worktree of this repository)`,
  settings: () => ["the same adapter and settings as cuckmq, over the library of the baseline commit"],
  make: async (ctx) => {
    const dir = process.env.CUCKMQ_BASELINE_DIR
    if (dir === undefined) throw new Error("cuckmq-baseline runs with --baseline=<git ref>")
    return adapterOf(await import(`${dir}/src/index.ts`) as typeof Library, ctx)
  }
}

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
  make: (ctx) => adapterOf(Library, ctx)
}
