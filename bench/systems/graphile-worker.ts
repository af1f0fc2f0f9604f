/** graphile-worker on defaults (except concurrency and the shared pool of 20). Also the base of the batched variant. */
import { Logger, makeWorkerUtils, run, runMigrations } from "graphile-worker"
import pg from "pg"
import type { Adapter, SystemDefinition } from "./types.js"
import { adminQuery, indexOf, installedVersion } from "./util.js"

/** Extra `preset.worker` options (the batched variant). */
export type GraphilePresetOptions = GraphileConfig.WorkerOptions

const silent = new Logger(() => () => {})

export const makeGraphileSystem = (options: {
  readonly name: string
  readonly label: string
  readonly presetWorker: GraphilePresetOptions | undefined
  readonly describePreset: string
}): SystemDefinition => ({
  name: options.name,
  label: options.label,
  backend: "postgres",
  packageVersion: () => `graphile-worker ${installedVersion("graphile-worker")}, pg ${installedVersion("pg")}`,
  settings: ({ poolSize }) => [
    `one \`pg.Pool({ max: ${poolSize} })\` per process, passed as \`pgPool\` to \`makeWorkerUtils\` (enqueue) and \`run\` (workers); the LISTEN client comes out of it`,
    "`run({ pgPool, concurrency, taskList: { bench }, noHandleSignals: true, logger: silent })`: `concurrency` = the workload's; everything else default (pollInterval 2000 ms, LISTEN on `jobs:insert`, prepared statements on)",
    options.describePreset,
    "single: `workerUtils.addJob(\"bench\", payload)`; bulk: `workerUtils.addJobs(specs)` (defaults: 25 max attempts)",
    "groups: named queues (`queueName` = the group, task `flow`): jobs of one named queue run one at a time, graphile-worker's only per-key limit, so the group workloads run it at limit 1 (and say so); workers `run({ ..., taskList: { flow } })`",
    "rate limit: none"
  ],
  make: async (ctx) => {
    const pool = new pg.Pool({ connectionString: ctx.databaseUrl, max: ctx.poolSize })
    pool.on("error", (e) => console.error(`[${options.name}] pool error: ${e.message}`))
    pool.on("connect", (client) => {
      client.on("error", (e) => console.error(`[${options.name}] client error: ${e.message}`))
    })
    await runMigrations({ pgPool: pool, logger: silent })
    const utils = await makeWorkerUtils({ pgPool: pool, logger: silent })
    const adapter: Adapter = {
      enqueue: async (i) => {
        await utils.addJob("bench", { i })
      },
      enqueueBulk: async (is) => {
        await utils.addJobs(is.map((i) => ({ identifier: "bench", payload: { i } })))
      },
      startWorkers: async (concurrency, onJob) => {
        const runner = await run({
          pgPool: pool,
          concurrency,
          noHandleSignals: true,
          logger: silent,
          taskList: {
            bench: async (payload) => {
              onJob(indexOf(payload))
            }
          },
          ...(options.presetWorker ? { preset: { worker: options.presetWorker } } : {})
        })
        return { stop: () => runner.stop() }
      },
      groups: {
        effectiveLimit: () => 1,
        enqueueBulk: async (jobs) => {
          await utils.addJobs(jobs.map(({ group, i }) => ({ identifier: "flow", payload: { i }, ...(group ? { queueName: group } : {}) })))
        },
        enqueue: async ({ group, i }) => {
          await utils.addJob("flow", { i }, group ? { queueName: group } : {})
        },
        startWorkers: async (concurrency, _limit, handler) => {
          const runner = await run({
            pgPool: pool,
            concurrency,
            noHandleSignals: true,
            logger: silent,
            taskList: {
              flow: async (payload) => {
                await handler(indexOf(payload))
              }
            },
            ...(options.presetWorker ? { preset: { worker: options.presetWorker } } : {})
          })
          return { stop: () => runner.stop() }
        }
      },
      rateLimited: { unsupported: "no rate limit" },
      // backlog workloads (bench/backlog.ts)
      backlog: {
        enqueueScheduled: async (is, runAt) => {
          await utils.addJobs(is.map((i) => ({ identifier: "bench", payload: { i }, runAt })))
        },
        fillFinished: { unsupported: "deletes a job when it completes: no table of finished jobs" }
      },
      purge: () =>
        adminQuery(ctx.databaseUrl, "TRUNCATE graphile_worker._private_jobs, graphile_worker._private_job_queues CASCADE"),
      close: async () => {
        await utils.release()
        await pool.end()
      }
    }
    return adapter
  }
})

export const system: SystemDefinition = makeGraphileSystem({
  name: "graphile-worker",
  label: "graphile-worker",
  presetWorker: undefined,
  describePreset: "no preset: batching off (`localQueue.size` -1, `completeJobBatchDelay` -1, `failJobBatchDelay` -1)"
})
