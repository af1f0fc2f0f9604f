/**
 * The workloads, run by a system's child process against its adapter. Every job's payload is `{ i }` with
 * `i` in 0..n-1, and every handler call is counted per `i`: a drain is done when the number of handler
 * calls reaches n, and afterwards the counts tell duplicates and missing jobs.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { type ChildConfig, type Check, type Cost, errorMessage, type NetHost, type Outcome, type ProducerCommand, type ProducerMessage, type Sizes, type WorkerCommand, type WorkerMessage } from "./protocol.js"
import type { CpuProbe } from "./serverCpu.js"
import type { Adapter, FlowHandler, SystemContext, SystemDefinition } from "./systems/types.js"

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Counts handler calls per job index. */
export class Tally {
  readonly counts: Uint16Array
  total = 0
  unexpected = 0
  private target = Infinity
  private reached: (() => void) | undefined

  constructor(readonly n: number) {
    this.counts = new Uint16Array(n)
  }

  readonly onJob = (i: number): void => {
    if (Number.isInteger(i) && i >= 0 && i < this.n) {
      if (this.counts[i]! < 65535) this.counts[i]!++
    } else {
      this.unexpected++
    }
    this.total++
    if (this.total >= this.target && this.reached) {
      const reached = this.reached
      this.reached = undefined
      reached()
    }
  }

  /** Resolves once `target` handler calls have been counted. */
  until(target: number): Promise<void> {
    if (this.total >= target) return Promise.resolve()
    this.target = target
    return new Promise((resolve) => {
      this.reached = resolve
    })
  }

  /** Adds the counts of another process (base64 of its Uint16Array). */
  merge(base64: string): void {
    const buffer = Buffer.from(base64, "base64")
    const other = new Uint16Array(buffer.buffer, buffer.byteOffset, buffer.byteLength / 2)
    for (let i = 0; i < this.n && i < other.length; i++) {
      this.counts[i] = Math.min(65535, this.counts[i]! + other[i]!)
      this.total += other[i]!
    }
  }

  check(): Check {
    let duplicates = 0
    let missing = 0
    for (let i = 0; i < this.n; i++) {
      const c = this.counts[i]!
      if (c === 0) missing++
      else duplicates += c - 1
    }
    return { duplicates, missing, unexpected: this.unexpected }
  }
}

/** Resolves to false when `ms` passes first. */
export const within = async (promise: Promise<void>, ms: number): Promise<boolean> => {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
  })
  try {
    return await Promise.race([promise.then(() => true), timeout])
  } finally {
    clearTimeout(timer)
  }
}

const range = (from: number, to: number): Array<number> => Array.from({ length: to - from }, (_, k) => from + k)

/** `callers` concurrent loops, each enqueueing the next index with one call. */
export const enqueueConcurrently = async (adapter: Adapter, n: number, callers: number): Promise<void> => {
  let next = 0
  await Promise.all(Array.from({ length: callers }, async () => {
    while (true) {
      const i = next++
      if (i >= n) return
      await adapter.enqueue(i)
    }
  }))
}

/** Enqueues 0..n-1 with the bulk API in batches, one call at a time. */
const enqueueInBatches = async (adapter: Adapter, n: number, batch: number): Promise<void> => {
  const bulk = adapter.enqueueBulk!
  for (let from = 0; from < n; from += batch) {
    await bulk(range(from, Math.min(n, from + batch)))
  }
}

/** Pre-enqueues 0..n-1 for a drain: the bulk API when there is one, else concurrent single enqueues. */
const preEnqueue = (adapter: Adapter, n: number, sizes: Sizes): Promise<void> =>
  adapter.enqueueBulk ? enqueueInBatches(adapter, n, sizes.bulkBatch) : enqueueConcurrently(adapter, n, sizes.callers)

export interface Env {
  readonly adapter: Adapter
  readonly definition: SystemDefinition
  readonly ctx: SystemContext
  readonly sizes: Sizes
  /** Purges the queue and tidies the server (VACUUM ANALYZE, CHECKPOINT) before a timed part. */
  readonly prepare: (what: "purge" | "tidy") => Promise<void>
  readonly serverCpu: CpuProbe | undefined
}

/** A full GC, when the process runs with `--expose-gc`. */
export const gc = (): void => {
  const g = (globalThis as { gc?: () => void }).gc
  if (g) g()
}

const throughput = (jobs: number, ms: number, extra: { check?: Check; cost?: Cost } = {}): Outcome => ({
  kind: "throughput",
  jobs,
  seconds: ms / 1000,
  perSec: jobs / (ms / 1000),
  ...extra
})

export const enqueueSingle = async (env: Env): Promise<Outcome> => {
  const n = env.sizes.jobs
  await env.prepare("purge")
  await env.prepare("tidy")
  gc()
  const t0 = performance.now()
  await enqueueConcurrently(env.adapter, n, env.sizes.callers)
  return throughput(n, performance.now() - t0)
}

export const enqueueBulk = async (env: Env): Promise<Outcome> => {
  if (!env.adapter.enqueueBulk) return { kind: "na", reason: "no bulk enqueue API" }
  const n = env.sizes.jobs
  await env.prepare("purge")
  await env.prepare("tidy")
  gc()
  const t0 = performance.now()
  await enqueueInBatches(env.adapter, n, env.sizes.bulkBatch)
  return throughput(n, performance.now() - t0)
}

/** Pre-enqueues n jobs, starts workers at `concurrency` in this process and times until n handler calls. */
export const drain = async (
  env: Env,
  n: number,
  concurrency: number,
  measureCost: boolean,
  /** An event subscriber in the process during the drain: one that reads ("reads") or one that never does. */
  subscriber?: "reads" | "idle"
): Promise<Outcome> => {
  const subscribe = env.adapter.subscribe
  if (subscriber !== undefined && (subscribe === undefined || "unsupported" in subscribe)) {
    return { kind: "na", reason: subscribe?.unsupported ?? "no event subscription in the adapter" }
  }
  await env.prepare("purge")
  await preEnqueue(env.adapter, n, env.sizes)
  await env.prepare("tidy")
  const subscription = subscriber !== undefined && typeof subscribe === "function" ? await subscribe(subscriber === "reads") : undefined
  gc()
  const tally = new Tally(n)
  const done = tally.until(n)
  const cpu0 = process.cpuUsage()
  const server0 = env.serverCpu?.()
  const t0 = performance.now()
  const workers = await env.adapter.startWorkers(concurrency, tally.onJob)
  const finished = await within(done, env.sizes.timeoutSecs * 1000)
  const ms = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const server1 = env.serverCpu?.()
  await sleep(env.sizes.settleMs)
  await workers.stop()
  const eventsRead = await subscription?.stop()
  const check = tally.check()
  if (!finished) {
    return {
      kind: "error",
      message: `timed out after ${env.sizes.timeoutSecs} s with ${tally.total} of ${n} handler calls`,
      check
    }
  }
  // a reading subscriber that read nothing measured nothing
  if (subscriber === "reads" && !(eventsRead! >= n)) {
    return { kind: "error", message: `the subscriber read ${eventsRead} events for ${n} jobs`, check }
  }
  const perK = n / 1000
  const cost: Cost | undefined = measureCost
    ? {
      nodeCpuPer1k: (cpu.user + cpu.system) / 1e6 / perK,
      serverCpuPer1k: server0 !== undefined && server1 !== undefined ? (server1 - server0) / perK : undefined
    }
    : undefined
  return throughput(n, ms, { check, ...(cost ? { cost } : {}) })
}

const childEntry = path.join(path.dirname(fileURLToPath(import.meta.url)), "child.ts")

interface WorkerProcess {
  readonly child: ChildProcess
  total: number
  warmTotal: number
  final: { total: number; counts: string } | undefined
  readonly ready: Promise<void>
  readonly paused: Promise<void>
  readonly exited: Promise<void>
  readonly finalReceived: Promise<void>
}

/** Starts a worker child; on `host`, inside its network namespace (`ip netns exec`) with its context. */
const startWorkerProcess = (env: Env, n: number, onCount: () => void, host?: NetHost): WorkerProcess => {
  const config: ChildConfig = {
    role: "worker",
    system: env.definition.name,
    ctx: host?.ctx ?? env.ctx,
    concurrency: env.sizes.processConcurrency,
    jobs: n
  }
  const argv = [process.execPath, ...process.execArgv, childEntry, JSON.stringify(config)]
  const command = host ? ["ip", "netns", "exec", host.netns, ...argv] : argv
  const child = spawn(command[0]!, command.slice(1), {
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })
  let readyResolve!: () => void
  let readyReject!: (e: Error) => void
  let finalResolve!: () => void
  let pausedResolve!: () => void
  const proc: WorkerProcess = {
    child,
    total: 0,
    warmTotal: 0,
    final: undefined,
    paused: new Promise<void>((resolve) => {
      pausedResolve = resolve
    }),
    ready: new Promise<void>((resolve, reject) => {
      readyResolve = resolve
      readyReject = reject
    }),
    exited: new Promise<void>((resolve) => child.once("exit", () => resolve())),
    finalReceived: new Promise<void>((resolve) => {
      finalResolve = resolve
    })
  }
  child.on("message", (raw) => {
    const message = raw as WorkerMessage
    switch (message.type) {
      case "ready":
        readyResolve()
        break
      case "count":
        proc.total = message.total
        onCount()
        break
      case "warm-count":
        proc.warmTotal = message.total
        onCount()
        break
      case "paused":
        pausedResolve()
        break
      case "final":
        proc.total = message.total
        proc.final = { total: message.total, counts: message.counts }
        finalResolve()
        break
      case "fatal":
        readyReject(new Error(`worker process failed: ${message.message}`))
        break
    }
  })
  child.once("exit", (code) => {
    readyReject(new Error(`worker process exited (${code}) before it was ready`))
    finalResolve()
    pausedResolve()
  })
  return proc
}

const send = (child: ChildProcess, command: WorkerCommand): void => {
  if (child.connected) child.send(command)
}

/**
 * Pre-enqueues n jobs, then `processes` worker processes drain them; timed from "go" until their counts sum to n.
 * With `hosts` (the network workloads): one worker process on each host instead.
 */
export const drainProcesses = async (env: Env, processes: number, hosts?: ReadonlyArray<NetHost>): Promise<Outcome> => {
  const n = env.sizes.jobs
  const warm = env.sizes.processWarmJobs * processes
  let reached: (() => void) | undefined
  const done = new Promise<void>((resolve) => {
    reached = resolve
  })
  let warmed: (() => void) | undefined
  const warmedUp = new Promise<void>((resolve) => {
    warmed = resolve
  })
  const procs: Array<WorkerProcess> = []
  const onCount = () => {
    if (warmed && procs.reduce((sum, p) => sum + p.warmTotal, 0) >= warm) {
      warmed()
      warmed = undefined
    }
    if (procs.reduce((sum, p) => sum + p.total, 0) >= n && reached) {
      reached()
      reached = undefined
    }
  }
  if (hosts) for (const host of hosts) procs.push(startWorkerProcess(env, n, onCount, host))
  else for (let k = 0; k < processes; k++) procs.push(startWorkerProcess(env, n, onCount))
  try {
    const allReady = within(Promise.all(procs.map((p) => p.ready)).then(() => undefined), 60_000)
    if (!(await allReady)) return { kind: "error", message: "worker processes not ready after 60 s" }
    if (warm > 0) {
      // warm-up, not timed: every process runs jobs until their code is warm, then its workers stop
      await env.prepare("purge")
      await preEnqueue(env.adapter, warm, env.sizes)
      for (const p of procs) send(p.child, { type: "warm" })
      if (!(await within(warmedUp, env.sizes.timeoutSecs * 1000))) {
        return { kind: "error", message: `the warm-up of ${warm} jobs did not finish in ${env.sizes.timeoutSecs} s` }
      }
      for (const p of procs) send(p.child, { type: "pause" })
      if (!(await within(Promise.all(procs.map((p) => p.paused)).then(() => undefined), 60_000))) {
        return { kind: "error", message: "worker processes did not stop their warm-up workers in 60 s" }
      }
    }
    await env.prepare("purge")
    await preEnqueue(env.adapter, n, env.sizes)
    await env.prepare("tidy")
    gc()
    const t0 = performance.now()
    for (const p of procs) send(p.child, { type: "go" })
    const finished = await within(done, env.sizes.timeoutSecs * 1000)
    const ms = performance.now() - t0
    await sleep(env.sizes.settleMs)
    for (const p of procs) send(p.child, { type: "stop" })
    await within(Promise.all(procs.map((p) => p.finalReceived)).then(() => undefined), 60_000)
    const tally = new Tally(n)
    for (const p of procs) if (p.final) tally.merge(p.final.counts)
    const lost = procs.filter((p) => !p.final).length
    const check = tally.check()
    if (lost > 0) return { kind: "error", message: `${lost} worker process(es) sent no final counts`, check }
    if (!finished) {
      return { kind: "error", message: `timed out after ${env.sizes.timeoutSecs} s with ${tally.total} of ${n} handler calls`, check }
    }
    return throughput(n, ms, { check })
  } finally {
    await within(Promise.all(procs.map((p) => p.exited)).then(() => undefined), 30_000)
    for (const p of procs) if (p.child.exitCode === null) p.child.kill("SIGKILL")
  }
}

/** The `p`th percentile of ascending `sorted` (nearest rank); NaN when empty. */
export const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!

/** The finite values of `xs`, ascending (latency samples; NaN: a job that never started). */
export const sortedFinite = (xs: ArrayLike<number>): Array<number> =>
  Array.from(xs).filter((x) => Number.isFinite(x)).sort((a, b) => a - b)

/** A latency outcome from ascending samples (`sortedFinite`). */
const latencyOutcome = (jobs: number, sorted: ReadonlyArray<number>, check: Check, note?: string): Outcome => ({
  kind: "latency",
  jobs,
  p50: percentile(sorted, 50),
  p95: percentile(sorted, 95),
  p99: percentile(sorted, 99),
  max: sorted[sorted.length - 1] ?? NaN,
  check,
  ...(note !== undefined ? { note } : {})
})

/** Enqueues 0..n-1 one call at a time at `rate` per second, recording each call's start in `starts`. */
export const enqueuePaced = async (
  adapter: Adapter,
  n: number,
  rate: number,
  starts: Float64Array,
  clock: () => number = () => performance.now()
): Promise<void> => {
  const interval = 1000 / rate
  const t0 = performance.now()
  for (let k = 0; k < n; k++) {
    const wait = t0 + k * interval - performance.now()
    if (wait > 0) await sleep(wait)
    starts[k] = clock()
    await adapter.enqueue(k)
  }
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes of this machine. */
const wallNow = (): number => performance.timeOrigin + performance.now()

/**
 * Idle workers in this process; jobs enqueued one at a time at a fixed rate by another process (a warmed
 * producer child: the usual deployment, a web process enqueues and worker processes run); enqueue-call
 * start (in the producer) to handler start (here), on the machine's wall clock.
 */
export const latencyCrossProcess = async (env: Env): Promise<Outcome> => {
  const n = env.sizes.latencyJobs
  await env.prepare("purge")
  const config: ChildConfig = {
    role: "producer",
    system: env.definition.name,
    ctx: env.ctx,
    jobs: n,
    rate: env.sizes.latencyRate,
    warmJobs: env.sizes.producerWarmJobs
  }
  const child = spawn(process.execPath, [...process.execArgv, childEntry, JSON.stringify(config)], {
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const waiters = new Map<ProducerMessage["type"], (m: ProducerMessage) => void>()
  let failure: string | undefined
  const next = (type: ProducerMessage["type"], ms: number) =>
    within(new Promise<void>((resolve) => waiters.set(type, () => resolve())), ms)
  child.on("message", (raw) => {
    const message = raw as ProducerMessage
    if (message.type === "fatal") failure = message.message
    waiters.get(message.type)?.(message)
  })
  // a producer that died: its IPC channel is closed, and a send would throw (or emit an unhandled error)
  child.on("error", (e) => {
    failure ??= errorMessage(e)
  })
  const send = (command: ProducerCommand) => {
    if (child.connected) child.send(command)
  }
  try {
    if (!(await next("ready", 60_000))) return { kind: "error", message: `producer process not ready after 60 s${failure ? `: ${failure}` : ""}` }
    const warmed = next("warmed", 60_000)
    send({ type: "warm" })
    if (!(await warmed)) return { kind: "error", message: `producer warm-up not done after 60 s${failure ? `: ${failure}` : ""}` }
    await env.prepare("purge") // the warm-up's jobs
    await env.prepare("tidy")
    const received = new Float64Array(n).fill(NaN)
    const tally = new Tally(n)
    const done = tally.until(n)
    const onJob = (i: number) => {
      if (Number.isInteger(i) && i >= 0 && i < n && tally.counts[i] === 0) received[i] = wallNow()
      tally.onJob(i)
    }
    const workers = await env.adapter.startWorkers(env.sizes.latencyConcurrency, onJob)
    await sleep(1000) // idle
    gc()
    let produced: Extract<ProducerMessage, { type: "produced" }> | undefined
    const producedP = new Promise<void>((resolve) => waiters.set("produced", (m) => {
      produced = m as typeof produced
      resolve()
    }))
    send({ type: "go" })
    const finished = await within(Promise.all([done, producedP]).then(() => undefined), env.sizes.timeoutSecs * 1000)
    await sleep(env.sizes.settleMs)
    await workers.stop()
    const check = tally.check()
    if (!finished || produced === undefined) {
      return { kind: "error", message: `timed out with ${tally.total} of ${n} handler calls${failure ? `; producer: ${failure}` : ""}`, check }
    }
    const buf = Buffer.from(produced.starts, "base64")
    const starts = new Float64Array(buf.buffer, buf.byteOffset, buf.byteLength / 8)
    return latencyOutcome(n, sortedFinite(Array.from(received, (t, i) => t - starts[i]!)), check)
  } finally {
    // an early return leaves the producer waiting for "go": closing the channel ends it (child.ts)
    if (child.connected) child.disconnect()
    await within(exited, 30_000)
    if (child.exitCode === null) child.kill("SIGKILL")
  }
}

/**
 * The producer child of latency-xproc: connects, warms up (`warmJobs` enqueues, which the parent purges),
 * then enqueues 0..jobs-1 at `rate`, and sends the calls' start times (wall clock).
 */
export const runProducer = async (
  adapter: Adapter,
  cfg: { readonly jobs: number; readonly rate: number; readonly warmJobs: number },
  send: (m: ProducerMessage) => Promise<void>,
  commands: (f: (c: ProducerCommand) => void) => void
): Promise<void> => {
  const go = new Promise<void>((resolve) =>
    commands((c) => {
      if (c.type === "warm") {
        void (async () => {
          for (let k = 0; k < cfg.warmJobs; k++) await adapter.enqueue(cfg.jobs + k)
          await send({ type: "warmed" })
        })().catch((e: unknown) => send({ type: "fatal", message: `warm-up enqueue failed: ${errorMessage(e)}` }))
      } else resolve()
    })
  )
  await send({ type: "ready" })
  await go
  const starts = new Float64Array(cfg.jobs)
  await enqueuePaced(adapter, cfg.jobs, cfg.rate, starts, wallNow)
  await send({ type: "produced", starts: Buffer.from(starts.buffer).toString("base64") })
}

/** Idle workers; jobs enqueued one at a time at a fixed rate; enqueue-call start to handler start. */
export const latency = async (env: Env): Promise<Outcome> => {
  const n = env.sizes.latencyJobs
  await env.prepare("purge")
  await env.prepare("tidy")
  const starts = new Float64Array(n)
  const latencies = new Float64Array(n).fill(NaN)
  const tally = new Tally(n)
  const done = tally.until(n)
  const onJob = (i: number) => {
    if (Number.isInteger(i) && i >= 0 && i < n && tally.counts[i] === 0) latencies[i] = performance.now() - starts[i]!
    tally.onJob(i)
  }
  const workers = await env.adapter.startWorkers(env.sizes.latencyConcurrency, onJob)
  await sleep(1000) // idle
  gc()
  await enqueuePaced(env.adapter, n, env.sizes.latencyRate, starts)
  const finished = await within(done, env.sizes.timeoutSecs * 1000)
  await sleep(env.sizes.settleMs)
  await workers.stop()
  const check = tally.check()
  if (!finished) {
    return { kind: "error", message: `timed out with ${tally.total} of ${n} handler calls`, check }
  }
  return latencyOutcome(n, sortedFinite(latencies), check)
}

// ---------------------------------------------------------------- flow control

/** Counts the handlers of each group running at once, and the most seen. */
class GroupCounter {
  private readonly running = new Map<string, number>()
  private readonly most = new Map<string, number>()
  /** The most handlers of any one group seen running at once. */
  max = 0

  enter(group: string): void {
    const n = (this.running.get(group) ?? 0) + 1
    this.running.set(group, n)
    if (n > (this.most.get(group) ?? 0)) this.most.set(group, n)
    if (n > this.max) this.max = n
  }

  leave(group: string): void {
    this.running.set(group, this.running.get(group)! - 1)
  }

  /** The most handlers of `group` seen running at once. */
  maxOf(group: string): number {
    return this.most.get(group) ?? 0
  }
}

/**
 * The handler of the flow-control workloads: `onStart(i)` as the job starts, then a sleep of `holdMs` during
 * which the job counts as running in its group (a no-op handler would never overlap another one).
 */
const flowHandler = (
  holdMs: number,
  groupOf: (i: number) => string | undefined,
  counter: GroupCounter,
  onStart: (i: number) => void
): FlowHandler =>
async (i) => {
  onStart(i)
  const group = groupOf(i)
  if (group !== undefined) counter.enter(group)
  try {
    await sleep(holdMs)
  } finally {
    if (group !== undefined) counter.leave(group)
  }
}

/** Enqueues jobs from..to-1 with the bulk API of `enqueue`, `batch` per call, one call at a time. */
const insertInBatches = async (
  from: number,
  to: number,
  batch: number,
  enqueue: (is: ReadonlyArray<number>) => Promise<void>
): Promise<void> => {
  for (let k = from; k < to; k += batch) await enqueue(range(k, Math.min(to, k + batch)))
}

/**
 * groups-limit2: `jobs` jobs in `groups` groups, each group's jobs enqueued one after the other (the shape
 * that makes a limit bind: a claim in queue order meets many jobs of one group), a limit of `groupLimit` per
 * group; workers at `flowConcurrency` in this process, timed until the last handler started. The handler
 * counts the jobs of each group running at once, so a violated limit shows.
 */
export const groupsLimit = async (env: Env): Promise<Outcome> => {
  const groups = env.adapter.groups
  if ("unsupported" in groups) return { kind: "na", reason: groups.unsupported }
  const n = env.sizes.jobs
  const perGroup = Math.ceil(n / env.sizes.groups)
  const requestedLimit = env.sizes.groupLimit
  const limit = groups.effectiveLimit(requestedLimit)
  const groupOf = (i: number) => (i >= 0 && i < n ? `g${Math.floor(i / perGroup)}` : undefined)
  await env.prepare("purge")
  await insertInBatches(0, n, env.sizes.bulkBatch, (is) => groups.enqueueBulk(is.map((i) => ({ i, group: groupOf(i) })), limit))
  await env.prepare("tidy")
  gc()
  const tally = new Tally(n)
  const done = tally.until(n)
  const counter = new GroupCounter()
  const t0 = performance.now()
  const workers = await groups.startWorkers(
    env.sizes.flowConcurrency,
    limit,
    flowHandler(env.sizes.flowHoldMs, groupOf, counter, tally.onJob)
  )
  const finished = await within(done, env.sizes.timeoutSecs * 1000)
  const ms = performance.now() - t0
  await sleep(env.sizes.settleMs)
  await workers.stop()
  const check = tally.check()
  if (!finished) {
    const message = `timed out after ${env.sizes.timeoutSecs} s with ${tally.total} of ${n} handler calls (${
      Math.round(tally.total / (ms / 1000))
    }/s), at most ${counter.max} of one group at once${counter.max > limit ? ` (LIMIT ${limit} EXCEEDED)` : ""}`
    return { kind: "error", message, check }
  }
  return { kind: "groups", jobs: n, seconds: ms / 1000, perSec: n / (ms / 1000), requestedLimit, limit, maxPerGroup: counter.max, check }
}

/**
 * group-backlog: `groupBacklogJobs` jobs waiting in one group (limit 1), inserted with the bulk API
 * (untimed, but reported); workers (concurrency `latencyConcurrency`) started and idle for 1 s; then
 * `latencyJobs` other jobs, each in a group of its own, enqueued one at a time at `latencyRate`/s: their
 * latency (enqueue-call start to handler start). The backlog's group runs one job at a time meanwhile.
 */
export const groupBacklog = async (env: Env): Promise<Outcome> => {
  const groups = env.adapter.groups
  if ("unsupported" in groups) return { kind: "na", reason: groups.unsupported }
  const b = env.sizes.groupBacklogJobs
  const m = env.sizes.latencyJobs
  const n = b + m
  const limit = groups.effectiveLimit(1)
  const groupOf = (i: number) => (i >= 0 && i < b ? "backlog" : i >= b && i < n ? `other-${i - b}` : undefined)
  await env.prepare("purge")
  const tInsert = performance.now()
  await insertInBatches(0, b, env.sizes.groupBacklogBatch, (is) => groups.enqueueBulk(is.map((i) => ({ i, group: "backlog" })), limit))
  const insertSecs = (performance.now() - tInsert) / 1000
  await env.prepare("tidy")
  const starts = new Float64Array(m)
  const latencies = new Float64Array(m).fill(NaN)
  const tally = new Tally(n)
  const counter = new GroupCounter()
  let trickleStarted = 0
  let trickleDone: (() => void) | undefined
  const allStarted = new Promise<void>((resolve) => {
    trickleDone = resolve
  })
  const onStart = (i: number) => {
    if (i >= b && i < n && tally.counts[i] === 0) {
      latencies[i - b] = performance.now() - starts[i - b]!
      if (++trickleStarted === m) trickleDone?.()
    }
    tally.onJob(i)
  }
  const workers = await groups.startWorkers(
    env.sizes.latencyConcurrency,
    limit,
    flowHandler(env.sizes.flowHoldMs, groupOf, counter, onStart)
  )
  await sleep(1000) // idle (the backlog's group runs meanwhile)
  gc()
  const interval = 1000 / env.sizes.latencyRate
  const t0 = performance.now()
  for (let k = 0; k < m; k++) {
    const wait = t0 + k * interval - performance.now()
    if (wait > 0) await sleep(wait)
    starts[k] = performance.now()
    await groups.enqueue({ i: b + k, group: groupOf(b + k) }, limit)
  }
  const finished = await within(allStarted, env.sizes.timeoutSecs * 1000)
  await sleep(env.sizes.settleMs)
  await workers.stop()
  // missing counts only the trickle: most of the backlog is left waiting on purpose
  const all = tally.check()
  let missing = 0
  let backlogRan = 0
  for (let i = 0; i < n; i++) {
    if (tally.counts[i] === 0 && i >= b) missing++
    if (tally.counts[i]! > 0 && i < b) backlogRan++
  }
  const check: Check = { duplicates: all.duplicates, missing, unexpected: all.unexpected }
  const backlogMax = counter.maxOf("backlog")
  const note = `backlog of ${b.toLocaleString("en-US")} jobs in one group inserted in ${insertSecs.toFixed(1)} s; ${backlogRan.toLocaleString("en-US")} of them ran meanwhile, at most ${backlogMax} at once${backlogMax > limit ? ` (LIMIT ${limit} EXCEEDED)` : ""}`
  const sorted = sortedFinite(latencies)
  if (!finished) {
    const startedOnes = sorted.length > 0
      ? `; latency of those started: p50 ${Math.round(percentile(sorted, 50))} ms, p99 ${Math.round(percentile(sorted, 99))} ms`
      : ""
    return {
      kind: "error",
      message: `timed out after ${env.sizes.timeoutSecs} s with ${trickleStarted} of ${m} other jobs started${startedOnes} (${note})`,
      check
    }
  }
  return latencyOutcome(m, sorted, check, note)
}

/**
 * rate-limited: a queue limited to `rateLimit` job starts per second, with a backlog of twice what the
 * observed span allows; workers at `flowConcurrency` in this process; handler start times recorded for
 * `rateSecs` seconds from the first start: the achieved rate, and the most starts in any one-second span.
 */
export const rateLimited = async (env: Env): Promise<Outcome> => {
  const rated = env.adapter.rateLimited
  if ("unsupported" in rated) return { kind: "na", reason: rated.unsupported }
  const limit = env.sizes.rateLimit
  const periodMs = 1000
  const spanMs = env.sizes.rateSecs * 1000
  const n = 2 * limit * env.sizes.rateSecs
  await env.prepare("purge")
  await insertInBatches(0, n, env.sizes.bulkBatch, rated.enqueueBulk)
  await env.prepare("tidy")
  gc()
  const startTimes: Array<number> = []
  const tally = new Tally(n)
  const first = tally.until(1)
  const onStart = (i: number) => {
    startTimes.push(performance.now())
    tally.onJob(i)
  }
  const workers = await rated.startWorkers(
    env.sizes.flowConcurrency,
    { max: limit, periodMs },
    flowHandler(env.sizes.flowHoldMs, () => undefined, new GroupCounter(), onStart)
  )
  const started = await within(first, 60_000)
  if (started) await sleep(startTimes[0]! + spanMs - performance.now() + env.sizes.settleMs)
  await workers.stop()
  const all = tally.check()
  const check: Check = { duplicates: all.duplicates, missing: 0, unexpected: all.unexpected }
  if (!started) return { kind: "error", message: "no job started within 60 s", check }
  const t0 = startTimes[0]!
  const inSpan = startTimes.filter((t) => t < t0 + spanMs)
  // the most starts in any one-period span: two pointers over the (ascending) start times
  let maxPerPeriod = 0
  for (let lo = 0, hi = 0; hi < inSpan.length; hi++) {
    while (inSpan[hi]! - inSpan[lo]! >= periodMs) lo++
    maxPerPeriod = Math.max(maxPerPeriod, hi - lo + 1)
  }
  return {
    kind: "rate",
    limit,
    periodSecs: periodMs / 1000,
    seconds: spanMs / 1000,
    started: inSpan.length,
    perSec: inSpan.length / (spanMs / 1000),
    bound: limit * (spanMs / periodMs + 1),
    maxPerPeriod,
    check
  }
}
