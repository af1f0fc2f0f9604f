/** BullMQ on its PostgreSQL backend (`withBackend(createPostgresBackend)`), on defaults except concurrency and pool size. */
import { createPostgresBackend, withBackend } from "bullmq"
import type { Adapter, SystemDefinition } from "./types.js"
import { indexOf, installedVersion } from "./util.js"

const QUEUE = "bench"
const { Queue, Worker } = withBackend(createPostgresBackend)

export const system: SystemDefinition = {
  name: "bullmq-pg",
  label: "BullMQ (PostgreSQL)",
  backend: "postgres",
  packageVersion: () => `bullmq ${installedVersion("bullmq")} (PostgreSQL backend), pg ${installedVersion("pg")}`,
  settings: ({ poolSize }) => [
    "`const { Queue, Worker } = withBackend(createPostgresBackend)` (BullMQ 6's PostgreSQL backend: schema `bullmq`, `FOR UPDATE SKIP LOCKED` claims, LISTEN/NOTIFY wake-ups)",
    `connection \`{ connectionString, max: ${poolSize}, migrate: true }\`: each Queue and each Worker builds its own \`pg.Pool\` (max ${poolSize}) plus a dedicated LISTEN connection; \`migrate: true\` only creates the schema on first use`,
    "`new Worker(\"bench\", processor, { connection, concurrency })`; all other options default (completed jobs kept)",
    "single: `queue.add(\"bench\", payload)`; bulk: `queue.addBulk(jobs)`",
    "between workloads: `queue.obliterate({ force: true })`"
  ],
  make: async (ctx) => {
    const connection = { connectionString: ctx.databaseUrl, max: ctx.poolSize, migrate: true }
    const queue = new Queue(QUEUE, { connection })
    await queue.waitUntilReady()
    const adapter: Adapter = {
      enqueue: async (i) => {
        await queue.add("bench", { i })
      },
      enqueueBulk: async (is) => {
        await queue.addBulk(is.map((i) => ({ name: "bench", data: { i } })))
      },
      startWorkers: async (concurrency, onJob) => {
        const worker = new Worker(QUEUE, async (job) => {
          onJob(indexOf(job.data))
        }, { connection, concurrency })
        worker.on("error", (e) => console.error(`[bullmq-pg] worker error: ${e.message}`))
        await worker.waitUntilReady()
        return { stop: () => worker.close() }
      },
      purge: () => queue.obliterate({ force: true }),
      close: () => queue.close()
    }
    return adapter
  }
}
