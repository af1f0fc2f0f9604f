/** BullMQ on the local Redis, on defaults (except concurrency), under a unique key prefix per run. */
import { Queue, Worker } from "bullmq"
import type { Adapter, SystemDefinition } from "./types.js"
import { indexOf, installedVersion } from "./util.js"

const QUEUE = "bench"

export const system: SystemDefinition = {
  name: "bullmq",
  label: "BullMQ (Redis)",
  backend: "redis",
  packageVersion: () => `bullmq ${installedVersion("bullmq")}, ioredis ${installedVersion("ioredis")}`,
  settings: () => [
    "`new Queue(\"bench\", { connection: { host, port }, prefix })` and `new Worker(\"bench\", processor, { connection: { host, port }, prefix, concurrency })`: BullMQ creates its own ioredis connections; all other options default (completed jobs kept, no rate limit, stalled check 30 s)",
    "`prefix` is unique per run (`bench-<run id>-<n>`); the run's keys are deleted afterwards",
    "single: `queue.add(\"bench\", payload)`; bulk: `queue.addBulk(jobs)`",
    "between workloads: `queue.obliterate({ force: true })`"
  ],
  make: async (ctx) => {
    const connection = { host: ctx.redis.host, port: ctx.redis.port }
    const prefix = ctx.redis.prefix
    const queue = new Queue(QUEUE, { connection, prefix })
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
        }, { connection, prefix, concurrency })
        worker.on("error", (e) => console.error(`[bullmq] worker error: ${e.message}`))
        await worker.waitUntilReady()
        return { stop: () => worker.close() }
      },
      purge: () => queue.obliterate({ force: true }),
      close: () => queue.close()
    }
    return adapter
  }
}
