/** BullMQ on its PostgreSQL backend (`withBackend(createPostgresBackend)`), on defaults except concurrency and pool size. */
import { createPostgresBackend, withBackend } from "bullmq"
import type { Adapter, SystemDefinition } from "./types.js"
import { indexOf, installedVersion } from "./util.js"

const QUEUE = "bench"
/** The rate-limited queue of the rate-limited workload. */
const RATED_QUEUE = "rated"
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
    "groups: none (per-group concurrency and group rate limits are BullMQ Pro features)",
    "rate limit: queue `rated`, workers `new Worker(\"rated\", processor, { ..., concurrency, limiter: { max, duration } })` (BullMQ's rate limiter, global for the queue)",
    "between workloads: `queue.obliterate({ force: true })` (both queues)"
  ],
  make: async (ctx) => {
    const connection = { connectionString: ctx.databaseUrl, max: ctx.poolSize, migrate: true }
    const queue = new Queue(QUEUE, { connection })
    await queue.waitUntilReady()
    // made on first use, so that the plain workloads run beside no extra connections
    let rated: InstanceType<typeof Queue> | undefined
    const ratedQueue = async () => {
      if (rated === undefined) {
        rated = new Queue(RATED_QUEUE, { connection })
        await rated.waitUntilReady()
      }
      return rated
    }
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
      groups: { unsupported: "groups are a BullMQ Pro feature" },
      rateLimited: {
        enqueueBulk: async (is) => {
          await (await ratedQueue()).addBulk(is.map((i) => ({ name: "rated", data: { i } })))
        },
        startWorkers: async (concurrency, { max, periodMs }, handler) => {
          const worker = new Worker(RATED_QUEUE, async (job) => {
            await handler(indexOf(job.data))
          }, { connection, concurrency, limiter: { max, duration: periodMs } })
          worker.on("error", (e) => console.error(`[bullmq-pg] worker error: ${e.message}`))
          await worker.waitUntilReady()
          return { stop: () => worker.close() }
        }
      },
      purge: async () => {
        await queue.obliterate({ force: true })
        await rated?.obliterate({ force: true })
      },
      close: async () => {
        await queue.close()
        await rated?.close()
      }
    }
    return adapter
  }
}
