/**
 * The backlog workloads (issue 14, item 1): what a standing backlog costs the jobs that do run.
 *
 * - `backlog-0`, `backlog-100k`, `backlog-1m`: 0, 100,000 or 1,000,000 jobs waiting in the measured queue,
 *   scheduled a year ahead (what a real user has when a queue holds reminders, trial-end mails, retries with
 *   long backoffs: jobs that are in the table, in the queue's indexes, but not due). They are inserted with
 *   the bulk API, 10,000 per call (untimed; the time is in the notes), and must never run (one that does is
 *   counted as unexpected). Beside them, the three measurements of a user's day:
 *   1. enqueue-single: `jobs` jobs, one call each, from `callers` concurrent callers, no workers running;
 *   2. those jobs drained by workers at c=10 in the same process (timed from the start of the workers to the
 *      last handler call), with the CPU of the Node process and of the database server per 1,000 jobs;
 *   3. idle latency: workers at `latencyConcurrency`, idle for 1 s, then `latencyJobs` jobs enqueued one at
 *      a time at `latencyRate`/s; enqueue-call start to handler start.
 *   A due backlog would make (3) meaningless (idle workers need an empty queue) and (2) a measure of claim
 *   order, not of table size: the existing `drain-backlog` (200,000 due jobs, all drained) covers that, and
 *   bench/backlog-plans.ts shows the claim's plan and buffers with 1,000,000 due jobs.
 * - `finalized-1m`: the same three with no waiting backlog but 1,000,000 finished (succeeded) jobs in the
 *   system's table of finished jobs, at retention (spread over the last 23 h, none due for removal), written
 *   with SQL (running a million jobs would take minutes). cuckmq: `job_finalized`; pg-boss: completed rows
 *   of `pgboss.job`; graphile-worker keeps none (n/a); BullMQ: not filled (n/a).
 *
 * Sizes are multiplied by `sizes.backlogScale` (`--quick`: 1/100).
 */
import { performance } from "node:perf_hooks"
import type { Check, Outcome } from "./protocol.js"
import { enqueueConcurrently, enqueuePaced, type Env, gc, percentile, sleep, sortedFinite, Tally, within } from "./workloads.js"

/** Payload indices of the backlog's jobs: far above any measured index, so one that runs is "unexpected". */
const BACKLOG_BASE = 10_000_000
const FILL_BATCH = 10_000
/** How far ahead the backlog is scheduled. */
const AHEAD_MS = 365 * 24 * 3600 * 1000

const sum = (checks: ReadonlyArray<Check>): Check => ({
  duplicates: checks.reduce((a, c) => a + c.duplicates, 0),
  missing: checks.reduce((a, c) => a + c.missing, 0),
  unexpected: checks.reduce((a, c) => a + c.unexpected, 0)
})

/** One backlog workload: `waiting` jobs scheduled ahead and `finished` finished jobs, then the three measurements. */
export const backlogWorkload = async (env: Env, waitingFull: number, finishedFull: number): Promise<Outcome> => {
  const backlog = env.adapter.backlog
  if (backlog === undefined) return { kind: "na", reason: "the backlog workloads are not implemented in this system's adapter" }
  if ("unsupported" in backlog) return { kind: "na", reason: backlog.unsupported }
  const fillFinished = backlog.fillFinished
  if (finishedFull > 0 && "unsupported" in fillFinished) return { kind: "na", reason: fillFinished.unsupported }
  const waiting = Math.round(waitingFull * env.sizes.backlogScale)
  const finished = Math.round(finishedFull * env.sizes.backlogScale)
  const n = env.sizes.jobs
  await env.prepare("purge")

  // the standing backlog (untimed)
  const tFill = performance.now()
  const notes: Array<string> = []
  if (waiting > 0) {
    const runAt = new Date(Date.now() + AHEAD_MS)
    for (let k = 0; k < waiting; k += FILL_BATCH) {
      const size = Math.min(FILL_BATCH, waiting - k)
      await backlog.enqueueScheduled(Array.from({ length: size }, (_, j) => BACKLOG_BASE + k + j), runAt)
    }
    notes.push(`${waiting.toLocaleString("en-US")} jobs waiting, scheduled a year ahead (bulk API, ${FILL_BATCH.toLocaleString("en-US")} per call)`)
  }
  if (finished > 0 && !("unsupported" in fillFinished)) notes.push(await fillFinished(finished))
  const fillSecs = (performance.now() - tFill) / 1000
  if (notes.length === 0) notes.push("no backlog")
  const note = `${notes.join("; ")}; filled in ${fillSecs.toFixed(1)} s`
  await env.prepare("tidy")

  // 1. enqueue-single, no workers
  gc()
  const tEnqueue = performance.now()
  await enqueueConcurrently(env.adapter, n, env.sizes.callers)
  const enqueuePerSec = n / ((performance.now() - tEnqueue) / 1000)
  await env.prepare("tidy")

  // 2. those jobs drained at c=10
  gc()
  const tally = new Tally(n)
  const done = tally.until(n)
  const cpu0 = process.cpuUsage()
  const server0 = env.serverCpu?.()
  const tDrain = performance.now()
  const workers = await env.adapter.startWorkers(10, tally.onJob)
  const drained = await within(done, env.sizes.timeoutSecs * 1000)
  const drainMs = performance.now() - tDrain
  const cpu = process.cpuUsage(cpu0)
  const server1 = env.serverCpu?.()
  await sleep(env.sizes.settleMs)
  await workers.stop()
  if (!drained) {
    return { kind: "error", message: `drain timed out after ${env.sizes.timeoutSecs} s with ${tally.total} of ${n} handler calls (${note})`, check: tally.check() }
  }
  const perK = n / 1000
  const cost = {
    nodeCpuPer1k: (cpu.user + cpu.system) / 1e6 / perK,
    serverCpuPer1k: server0 !== undefined && server1 !== undefined ? (server1 - server0) / perK : undefined
  }

  // 3. idle latency
  const m = env.sizes.latencyJobs
  const starts = new Float64Array(m)
  const latencies = new Float64Array(m).fill(NaN)
  const lat = new Tally(m)
  const latDone = lat.until(m)
  const onJob = (i: number) => {
    if (Number.isInteger(i) && i >= 0 && i < m && lat.counts[i] === 0) latencies[i] = performance.now() - starts[i]!
    lat.onJob(i)
  }
  const idle = await env.adapter.startWorkers(env.sizes.latencyConcurrency, onJob)
  await sleep(1000)
  gc()
  await enqueuePaced(env.adapter, m, env.sizes.latencyRate, starts)
  const latFinished = await within(latDone, env.sizes.timeoutSecs * 1000)
  await sleep(env.sizes.settleMs)
  await idle.stop()
  const check = sum([tally.check(), lat.check()])
  if (!latFinished) return { kind: "error", message: `latency timed out with ${lat.total} of ${m} handler calls (${note})`, check }
  const sorted = sortedFinite(latencies)
  return {
    kind: "backlog",
    waiting,
    finished,
    fillSecs,
    note,
    enqueuePerSec,
    drainPerSec: n / (drainMs / 1000),
    cost,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    check
  }
}

/** The backlog workloads by name, for bench/child.ts. */
export const backlogWorkloads = (env: Env) => ({
  "backlog-0": () => backlogWorkload(env, 0, 0),
  "backlog-100k": () => backlogWorkload(env, 100_000, 0),
  "backlog-1m": () => backlogWorkload(env, 1_000_000, 0),
  "finalized-1m": () => backlogWorkload(env, 0, 1_000_000)
})
