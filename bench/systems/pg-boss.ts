/** pg-boss: batchSize 10, burst fetching while batches come back full, LISTEN/NOTIFY wake-ups on. */
import type { Adapter, SystemDefinition } from "./types.js"
import { adminQuery, indexOf, installedVersion } from "./util.js"

/**
 * The part of pg-boss's API used here. pg-boss 12.38.0's published .d.ts files reference a type that
 * types.d.ts does not export (`ResolvedConstructorOptions`), which fails type-checking under this repo's
 * `skipLibCheck: false`; so the module is loaded through an untyped import and this interface (checked
 * against node_modules/pg-boss/dist/index.d.ts and types.d.ts).
 */
interface PgBoss {
  on(event: "error" | "warning", listener: (error: unknown) => void): unknown
  start(): Promise<unknown>
  stop(options?: { graceful?: boolean; close?: boolean; timeout?: number }): Promise<void>
  createQueue(name: string, options?: { notify?: boolean; deleteAfterSeconds?: number }): Promise<void>
  deleteQueue(name: string): Promise<void>
  getQueue(name: string): Promise<object | null>
  send(name: string, data?: object | null, options?: { group?: { id: string } }): Promise<string | null>
  insert(name: string, jobs: ReadonlyArray<{ data?: object; group?: { id: string }; startAfter?: Date }>): Promise<Array<string> | null>
  work(
    name: string,
    options: { batchSize?: number; localConcurrency?: number; burstWhenBatchFull?: boolean; groupConcurrency?: number },
    handler: (jobs: ReadonlyArray<{ readonly id: string; readonly data: unknown }>) => Promise<unknown>
  ): Promise<string>
  offWork(name: string, options?: { id?: string; wait?: boolean }): Promise<void>
}
interface PgBossModule {
  readonly PgBoss: new(
    options: { connectionString: string; max?: number; useListenNotify?: boolean; maintenanceIntervalSeconds?: number }
  ) => PgBoss
}
const pgBossSpecifier: string = "pg-boss"

const QUEUE = "bench"
/** The queue of the flow-control workloads (grouped jobs and the trickle beside them). */
const FLOW_QUEUE = "flow"
const BATCH_SIZE = 10

export const system: SystemDefinition = {
  name: "pg-boss",
  label: "pg-boss",
  backend: "postgres",
  packageVersion: () => `pg-boss ${installedVersion("pg-boss")}`,
  settings: ({ poolSize }) => [
    `\`new PgBoss({ connectionString, max: ${poolSize}, useListenNotify: true })\`, one instance per process for enqueue and workers (the LISTEN connection is a dedicated extra one); all other constructor options default (supervise, schedule, migrate on)`,
    "`createQueue(\"bench\", { notify: true })` (NOTIFY on job creation; policy `standard`, retryLimit 2 and other queue options default)",
    `\`work("bench", { batchSize: ${BATCH_SIZE}, localConcurrency: concurrency, burstWhenBatchFull: true }, handler)\`: \`localConcurrency\` = the workload's concurrency, so up to ${BATCH_SIZE}×concurrency jobs are fetched at once; the handler gets a batch and calls onJob for each; polling defaults (pollingIntervalSeconds 2, notifyPollingIntervalSeconds 30)`,
    "single: `boss.send(\"bench\", payload)`; bulk: `boss.insert(\"bench\", jobs)`",
    `groups: queue \`flow\` (created as \`bench\`), each job with \`group: { id }\`; workers \`work("flow", { batchSize: ${BATCH_SIZE}, localConcurrency: concurrency, burstWhenBatchFull: true, groupConcurrency: limit }, handler)\` (\`groupConcurrency\`: the global per-group limit, counted in the database across nodes); the handler runs the batch's jobs one after the other`,
    "rate limit: none (pg-boss throttles and debounces enqueues with `singletonSeconds`, but has no limit on job starts)",
    "soak workloads only: queues created with `deleteAfterSeconds` = `--soak-retention-secs`, and `maintenanceIntervalSeconds: 60` (deletion runs in maintenance; its default interval is 24 h)",
    "between workloads the queues are deleted and created again (`deleteQueue` + `createQueue`)"
  ],
  make: async (ctx) => {
    const { PgBoss } = (await import(pgBossSpecifier)) as PgBossModule
    // the soak workloads: completed jobs deleted after ctx.retentionSecs, by a maintenance pass every 60 s
    const soak = ctx.retentionSecs !== undefined
    const boss = new PgBoss({
      connectionString: ctx.databaseUrl,
      max: ctx.poolSize,
      useListenNotify: true,
      ...(soak ? { maintenanceIntervalSeconds: 60 } : {})
    })
    const queueOptions = { notify: true, ...(ctx.retentionSecs !== undefined ? { deleteAfterSeconds: ctx.retentionSecs } : {}) }
    boss.on("error", (e) => console.error(`[pg-boss] error: ${e instanceof Error ? e.message : String(e)}`))
    boss.on("warning", (w) => console.error(`[pg-boss] warning: ${JSON.stringify(w)}`))
    await boss.start()
    const createQueues = async () => {
      await boss.createQueue(QUEUE, queueOptions)
      await boss.createQueue(FLOW_QUEUE, queueOptions)
    }
    for (const name of [QUEUE, FLOW_QUEUE]) {
      if (!(await boss.getQueue(name))) await boss.createQueue(name, queueOptions)
    }
    const adapter: Adapter = {
      enqueue: async (i) => {
        await boss.send(QUEUE, { i })
      },
      enqueueBulk: async (is) => {
        await boss.insert(QUEUE, is.map((i) => ({ data: { i } })))
      },
      startWorkers: async (concurrency, onJob) => {
        const id = await boss.work(
          QUEUE,
          { batchSize: BATCH_SIZE, localConcurrency: concurrency, burstWhenBatchFull: true },
          async (jobs) => {
            for (const job of jobs) onJob(indexOf(job.data))
          }
        )
        return { stop: () => boss.offWork(QUEUE, { id, wait: true }) }
      },
      groups: {
        effectiveLimit: (requested) => requested,
        enqueueBulk: async (jobs) => {
          await boss.insert(FLOW_QUEUE, jobs.map(({ group, i }) => ({ data: { i }, ...(group ? { group: { id: group } } : {}) })))
        },
        enqueue: async ({ group, i }) => {
          await boss.send(FLOW_QUEUE, { i }, group ? { group: { id: group } } : {})
        },
        startWorkers: async (concurrency, limit, handler) => {
          const id = await boss.work(
            FLOW_QUEUE,
            { batchSize: BATCH_SIZE, localConcurrency: concurrency, burstWhenBatchFull: true, groupConcurrency: limit },
            async (jobs) => {
              for (const job of jobs) await handler(indexOf(job.data))
            }
          )
          return { stop: () => boss.offWork(FLOW_QUEUE, { id, wait: true }) }
        }
      },
      rateLimited: { unsupported: "no rate limit on job starts (singletonSeconds throttles enqueues)" },
      // backlog workloads (bench/backlog.ts)
      backlog: {
        enqueueScheduled: async (is, runAt) => {
          await boss.insert(QUEUE, is.map((i) => ({ data: { i }, startAfter: runAt })))
        },
        fillFinished: async (n) => {
          // completed jobs stay in pgboss.job (the queue's partition) until deletion_seconds after completion
          // (default 7 days): completed over the last 23 h, none due for deletion
          await adminQuery(
            ctx.databaseUrl,
            `INSERT INTO pgboss.job (name, data, state, policy, created_on, started_on, completed_on, keep_until)
             SELECT '${QUEUE}', jsonb_build_object('i', 20000000 + k), 'completed', 'standard',
               now() - make_interval(secs => 82800.0 * (${n} - k) / ${n}) - interval '10 ms',
               now() - make_interval(secs => 82800.0 * (${n} - k) / ${n}) - interval '5 ms',
               now() - make_interval(secs => 82800.0 * (${n} - k) / ${n}),
               now() + interval '14 days'
             FROM generate_series(1, ${n}) AS k`
          )
          return `${n.toLocaleString("en-US")} completed jobs in pgboss.job (queue \`${QUEUE}\`'s partition), completed over the last 23 h (deletion after 7 days by default)`
        }
      },
      purge: async () => {
        await boss.deleteQueue(QUEUE)
        await boss.deleteQueue(FLOW_QUEUE)
        await createQueues()
      },
      close: () => boss.stop({ graceful: true, close: true })
    }
    return adapter
  }
}
