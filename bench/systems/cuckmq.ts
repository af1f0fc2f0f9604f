/**
 * cuckmq (this repository), imported from its source (../../src): default settings except the worker concurrency. Also
 * `cuckmq-baseline`: the same adapter over the library of another commit (`--baseline=<git ref>`, checked
 * out by run.ts), so that the cost of a change is measured side by side in one run.
 */
import { Duration, Effect, Exit, Layer, ManagedRuntime, Redacted, Schema, Scope, Stream } from "effect"
import { PgClient } from "@effect/sql-pg"
import * as Library from "../../src/index.js"
import type { Adapter, FlowHandler, OnJob, SystemDefinition } from "./types.js"
import { adminQuery, installedVersion } from "./util.js"

/** The channels of the flow-control workloads, apart from the plain workloads' `_default`. */
const FLOW_CHANNEL = "flow"
const RATED_CHANNEL = "rated"

/**
 * The adapter over a cuckmq library module (this repository's, or a baseline commit's). `flowControl`: the
 * library has the flow-control API (definition `groupConcurrency`, channel rate limits); without it (a
 * baseline commit of unknown age) only the job group mutex of every version is used: limit 1, no rate limit.
 */
const adapterOf = async (
  lib: typeof Library,
  ctx: Parameters<SystemDefinition["make"]>[0],
  flowControl: boolean,
  /** Keep finalized jobs (the default 24 h); false: `jobPostFinalizeDeleteSecs: 0`, nothing archived. */
  archive = true
): Promise<Adapter> => {
  const { Cuckmq, JobDefinition, Worker } = lib
  let onJob: OnJob = () => {}
  let flowHandler: FlowHandler = () => Promise.resolve()
  const payload = Schema.Struct({ i: Schema.Number })
  const Bench = JobDefinition.make({
    name: "bench",
    payload,
    handler: ({ i }) => Effect.sync(() => onJob(i))
  })
  const flowRun = ({ i }: { readonly i: number }) => Effect.promise(() => flowHandler(i))
  // one definition per group limit: the limit is the definition's `groupConcurrency` (default 1)
  const Grouped1 = JobDefinition.make({ name: "flow-group-1", channel: FLOW_CHANNEL, payload, handler: flowRun })
  const Grouped2 = flowControl
    ? JobDefinition.make({ name: "flow-group-2", channel: FLOW_CHANNEL, payload, groupConcurrency: 2, handler: flowRun })
    : undefined
  const Rated = JobDefinition.make({ name: "flow-rated", channel: RATED_CHANNEL, payload, handler: flowRun })
  const byLimit = (limit: number) => {
    const definition = limit === 1 ? Grouped1 : limit === 2 ? Grouped2 : undefined
    if (definition === undefined) throw new Error(`the cuckmq adapter has no definition with groupConcurrency ${limit}`)
    return definition
  }
  const Pg = PgClient.layer({ url: Redacted.make(ctx.databaseUrl), maxConnections: ctx.poolSize })
  const definitions = [Bench, Grouped1, ...(Grouped2 ? [Grouped2] : []), Rated]
  // the soak workloads: a short retention of finalized jobs, and the orchestrator whose cleanup deletes them
  const soak = ctx.retentionSecs !== undefined
  const Context = (soak
    ? Layer.provideMerge(
      lib.Orchestrator.layer(),
      Cuckmq.layer({ definitions, jobPostFinalizeDeleteSecs: archive ? ctx.retentionSecs : 0 })
    )
    : Cuckmq.layer({ definitions, ...(archive ? {} : { jobPostFinalizeDeleteSecs: 0 }) })).pipe(Layer.provideMerge(Pg))
  const runtime = ManagedRuntime.make(Context)
  await runtime.runPromise(Effect.void) // build the context: connect, migrate, deploy
  /** Starts one worker on `channels` in a scope of its own; `stop` closes the scope (graceful shutdown). */
  const startWorker = async (concurrency: number, channels: ReadonlyArray<string>) => {
    const scope = await runtime.runPromise(Scope.make())
    await runtime.runPromise(Layer.buildWithScope(Worker.layer({ concurrency, channels }), scope))
    return () => runtime.runPromise(Scope.close(scope, Exit.void))
  }
  const setRateLimit = (limit: { readonly limit: number; readonly period: Duration.Input } | null) =>
    runtime.runPromise(Effect.gen(function*() {
      const cuckmq = yield* Cuckmq.Cuckmq
      yield* cuckmq.setChannelRateLimit(RATED_CHANNEL, limit)
    }))
  return {
    enqueue: (i) => runtime.runPromise(Effect.asVoid(Bench.enqueue({ i }))),
    enqueueBulk: (is) => runtime.runPromise(Effect.asVoid(Bench.enqueueMany(is.map((i) => ({ payload: { i } }))))),
    startWorkers: async (concurrency, handler) => {
      onJob = handler
      const stop = await startWorker(concurrency, ["_default"])
      return {
        stop: async () => {
          await stop()
          onJob = () => {}
        }
      }
    },
    groups: {
      effectiveLimit: (requested) => {
        if (!flowControl) return 1
        byLimit(requested)
        return requested
      },
      enqueueBulk: (jobs, limit) =>
        runtime.runPromise(Effect.asVoid(
          byLimit(limit).enqueueMany(jobs.map(({ group, i }) => ({ payload: { i }, jobGroup: group })))
        )),
      enqueue: ({ group, i }, limit) => runtime.runPromise(Effect.asVoid(byLimit(limit).enqueue({ i }, { jobGroup: group }))),
      startWorkers: async (concurrency, _limit, handler) => {
        flowHandler = handler
        const stop = await startWorker(concurrency, [FLOW_CHANNEL])
        return { stop }
      }
    },
    rateLimited: flowControl
      ? {
        enqueueBulk: (is) => runtime.runPromise(Effect.asVoid(Rated.enqueueMany(is.map((i) => ({ payload: { i } }))))),
        startWorkers: async (concurrency, { max, periodMs }, handler) => {
          flowHandler = handler
          await setRateLimit({ limit: max, period: Duration.millis(periodMs) })
          const stop = await startWorker(concurrency, [RATED_CHANNEL])
          return {
            stop: async () => {
              await stop()
              await setRateLimit(null)
            }
          }
        }
      }
      : { unsupported: "not measured for the baseline (its commit may have no channel rate limits)" },
    subscribe: async (reads) => {
      // a subscription in a scope of its own: `cuckmq.subscribe` (a Stream from that moment), read by a
      // fiber that counts the events, or never read at all
      let read = 0
      const scope = await runtime.runPromise(Scope.make())
      await runtime.runPromise(Effect.gen(function*() {
        const cuckmq = yield* Cuckmq.Cuckmq
        const events = yield* cuckmq.subscribe
        if (reads) {
          yield* Effect.forkIn(Stream.runForEach(events, () => Effect.sync(() => {
            read++
          })), scope)
        }
      }).pipe(Scope.provide(scope)))
      return {
        stop: async () => {
          await runtime.runPromise(Scope.close(scope, Exit.void))
          return read
        }
      }
    },
    // backlog workloads (bench/backlog.ts)
    backlog: {
      enqueueScheduled: (is, runAt) => {
        const delaySecs = Math.max(0, (runAt.getTime() - Date.now()) / 1000)
        return runtime.runPromise(Effect.asVoid(Bench.enqueueMany(is.map((i) => ({ payload: { i }, delaySecs })))))
      },
      fillFinished: async (n) => {
        // ids from the job id sequence (as archived jobs keep theirs), finalized over the last 23 h: all
        // within the default retention of 24 h, so the table is what it is at steady state
        await adminQuery(
          ctx.databaseUrl,
          `INSERT INTO "_cuckmq".job_finalized (id, name, channel, payload, attempts, max_attempts, claims, succeeded,
             created_at, finalized_at)
           SELECT nextval(pg_get_serial_sequence('"_cuckmq".job', 'id')), 'bench', '_default',
             jsonb_build_object('i', 20000000 + k), 1, 1, 1, true,
             now() - make_interval(secs => 82800.0 * (${n} - k) / ${n}) - interval '10 ms',
             now() - make_interval(secs => 82800.0 * (${n} - k) / ${n})
           FROM generate_series(1, ${n}) AS k`
        )
        return `${n.toLocaleString("en-US")} succeeded jobs in "_cuckmq".job_finalized, finalized over the last 23 h (retention: the default 24 h)`
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
    return adapterOf(await import(`${dir}/src/index.ts`) as typeof Library, ctx, false)
  }
}

export const system: SystemDefinition = {
  name: "cuckmq",
  label: "cuckmq",
  backend: "postgres",
  packageVersion: () => `@cuckmq/effect (this repo) on effect ${installedVersion("effect")}, @effect/sql-pg ${installedVersion("@effect/sql-pg")}`,
  settings: ({ poolSize }) => [
    `\`PgClient.layer({ url, maxConnections: ${poolSize} })\`, one client per process shared by enqueue and workers`,
    "`Cuckmq.layer({ definitions: [Bench, ...] })` (`...`: the flow-control workloads' definitions, on channels of their own): all defaults (schema `_cuckmq`, finalized jobs kept 24 h, migrate and deploy on start)",
    "`JobDefinition.make({ name: \"bench\", payload: Schema.Struct({ i: Schema.Number }), handler })`: defaults (1 attempt, 60 s timeout)",
    "`Worker.layer({ concurrency, channels: [\"_default\"] })`, one worker per process, all other options default (poll 1 s fallback, LISTEN/NOTIFY wake-ups always on, heartbeat 5 s)",
    "single: `Bench.enqueue(payload)`; bulk: `Bench.enqueueMany(items)`",
    "groups: definitions on channel `flow`, one per limit (`groupConcurrency: 2`, and the default 1), each job with `jobGroup`; workers `Worker.layer({ concurrency, channels: [\"flow\"] })`",
    "soak workloads only: `jobPostFinalizeDeleteSecs` = `--soak-retention-secs`, and `Orchestrator.layer()` (defaults: cleanup every 60 s in batches of 1,000) in the same process",
    "rate limit: a definition on channel `rated`, `cuckmq.setChannelRateLimit(\"rated\", { limit, period })` before the workers start (`Worker.layer({ concurrency, channels: [\"rated\"] })`), removed (`null`) after they stop"
  ],
  make: (ctx) => adapterOf(Library, ctx, true)
}

/**
 * cuckmq with `jobPostFinalizeDeleteSecs: 0`: a finalized job is deleted, not archived in `job_finalized`.
 * Not a default system (run it with `--only=...,cuckmq-no-archive`): it measures what the archive of
 * finished jobs, on by default, costs against the bare loop (which keeps nothing).
 */
export const noArchive: SystemDefinition = {
  name: "cuckmq-no-archive",
  label: "cuckmq, finalized jobs not kept",
  backend: "postgres",
  packageVersion: system.packageVersion,
  settings: (ctx) => [
    "as cuckmq, with `Cuckmq.layer({ definitions, jobPostFinalizeDeleteSecs: 0 })`: a finalized job is deleted, not archived",
    ...system.settings(ctx).slice(0, 1)
  ],
  make: (ctx) => adapterOf(Library, ctx, true, false)
}
