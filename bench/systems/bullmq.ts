/** BullMQ on the local Redis, on defaults (except concurrency), under a unique key prefix per run. */
import { Queue, Worker } from "bullmq"
import type { Adapter, SystemDefinition } from "./types.js"
import { indexOf, installedVersion } from "./util.js"

const QUEUE = "bench"
/** The rate-limited queue of the rate-limited workload. */
const RATED_QUEUE = "rated"

export const system: SystemDefinition = {
  name: "bullmq",
  label: "BullMQ (Redis)",
  backend: "redis",
  packageVersion: () => `bullmq ${installedVersion("bullmq")}, ioredis ${installedVersion("ioredis")}`,
  settings: () => [
    "`new Queue(\"bench\", { connection: { host, port }, prefix })` and `new Worker(\"bench\", processor, { connection: { host, port }, prefix, concurrency })`: BullMQ creates its own ioredis connections; all other options default (completed jobs kept, no rate limit, stalled check 30 s)",
    "`prefix` is unique per run (`bench-<run id>-<n>`); the run's keys are deleted afterwards",
    "single: `queue.add(\"bench\", payload)`; bulk: `queue.addBulk(jobs)`",
    "groups: none (per-group concurrency and group rate limits are BullMQ Pro features)",
    "rate limit: queue `rated`, workers `new Worker(\"rated\", processor, { ..., concurrency, limiter: { max, duration } })` (BullMQ's rate limiter, global for the queue)",
    "between workloads: `queue.obliterate({ force: true })` (both queues)"
  ],
  make: async (ctx) => {
    const connection = { host: ctx.redis.host, port: ctx.redis.port }
    const prefix = ctx.redis.prefix
    const queue = new Queue(QUEUE, { connection, prefix })
    await queue.waitUntilReady()
    // made on first use, so that the plain workloads run beside no extra connections
    let rated: InstanceType<typeof Queue> | undefined
    const ratedQueue = async () => {
      if (rated === undefined) {
        rated = new Queue(RATED_QUEUE, { connection, prefix })
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
        }, { connection, prefix, concurrency })
        worker.on("error", (e) => console.error(`[bullmq] worker error: ${e.message}`))
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
          }, { connection, prefix, concurrency, limiter: { max, duration: periodMs } })
          worker.on("error", (e) => console.error(`[bullmq] worker error: ${e.message}`))
          await worker.waitUntilReady()
          return { stop: () => worker.close() }
        }
      },
      // backlog workloads (bench/backlog.ts)
      backlog: {
        enqueueScheduled: async (is, runAt) => {
          const delay = Math.max(0, runAt.getTime() - Date.now())
          await queue.addBulk(is.map((i) => ({ name: "bench", data: { i }, opts: { delay } })))
        },
        fillFinished: {
          unsupported: "not filled: BullMQ keeps completed jobs in Redis (a sorted set and a hash per job), which this benchmark cannot fill without running them"
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
