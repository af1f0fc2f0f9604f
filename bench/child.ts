/**
 * The child-process entry of the benchmark. One JSON argument (a `ChildConfig`):
 * - role "system": runs every workload against one system, in a fresh database (or Redis prefix) made by
 *   run.ts, and sends the results over IPC;
 * - role "worker": one of the worker processes of the multi-process drain: connects, says "ready", starts
 *   its workers on "go", reports its handler-call count every 10 ms, and on "stop" stops them and sends
 *   its per-job counts.
 */
import { performance } from "node:perf_hooks"
import { type ChildConfig, errorMessage, type NetHost, netWorkload, type Outcome, type ProducerCommand, type ProducerMessage, type SystemMessage, type SystemResult, type WorkerCommand, type WorkerMessage, type WorkloadName } from "./protocol.js"
import { type CpuProbe, postgresProbe, redisProbe } from "./serverCpu.js"
import { byName } from "./systems/index.js"
import type { Adapter, SystemContext, Workers } from "./systems/types.js"
import { soak } from "./soak.js"
import { adminQuery } from "./systems/util.js"
import { backlogWorkloads } from "./backlog.js"
import {
  drain,
  drainProcesses,
  enqueueBulk,
  enqueueSingle,
  type Env,
  groupBacklog,
  groupsLimit,
  latency,
  latencyCrossProcess,
  rateLimited,
  runProducer,
  Tally
} from "./workloads.js"

const config = JSON.parse(process.argv[2] ?? "null") as ChildConfig | null
if (!config) {
  console.error("bench/child.ts is started by bench/run.ts")
  process.exit(2)
}

// the parent is gone (killed or interrupted): do not linger as an orphan
process.on("disconnect", () => process.exit(1))

const sendMessage = (message: SystemMessage | WorkerMessage | ProducerMessage): Promise<void> =>
  new Promise((resolve) => {
    if (!process.send) {
      console.log(JSON.stringify(message))
      resolve()
    } else {
      process.send(message, undefined, {}, () => resolve())
    }
  })

const log = (text: string) => process.stderr.write(`    ${text}\n`)

const runSystem = async (cfg: Extract<ChildConfig, { role: "system" }>): Promise<void> => {
  const definition = byName(cfg.system)
  const ctx: SystemContext = cfg.ctx
  const t = performance.now()
  const adapter = await definition.make(ctx)
  log(`${definition.name}: connected and migrated in ${Math.round(performance.now() - t)} ms (node ${process.version})`)
  let serverCpu: CpuProbe | undefined
  try {
    serverCpu = definition.backend === "postgres"
      ? await postgresProbe(ctx.databaseUrl)
      : await redisProbe(ctx.redis.host, ctx.redis.port)
  } catch (e) {
    log(`server CPU probe unavailable: ${errorMessage(e)}`)
  }
  const env: Env = {
    adapter,
    definition,
    ctx,
    sizes: cfg.sizes,
    serverCpu,
    prepare: async (what) => {
      if (what === "purge") return adapter.purge()
      if (definition.backend !== "postgres") return
      await adminQuery(ctx.databaseUrl, "VACUUM ANALYZE")
      await adminQuery(ctx.databaseUrl, "CHECKPOINT").catch(() => {})
    }
  }
  const s = cfg.sizes
  const workloads: Record<Exclude<WorkloadName, `net-${string}`>, () => Promise<Outcome>> = {
    "enqueue-single": () => enqueueSingle(env),
    "enqueue-bulk": () => enqueueBulk(env),
    "drain-c1": () => drain(env, s.c1Jobs, 1, false),
    "drain-c10": () => drain(env, s.jobs, 10, true),
    "drain-c50": () => drain(env, s.jobs, 50, false),
    "drain-backlog": () => drain(env, s.backlogJobs, 10, false),
    "drain-1proc": () => drainProcesses(env, 1),
    "drain-2proc": () => drainProcesses(env, s.processes),
    "drain-4proc": () => drainProcesses(env, 4),
    latency: () => latency(env),
    "latency-xproc": () => latencyCrossProcess(env),
    "drain-c10-events": () => drain(env, s.jobs, 10, true, "reads"),
    "drain-c10-idle-sub": () => drain(env, s.jobs, 10, true, "idle"),
    "groups-limit2": () => groupsLimit(env),
    "group-backlog": () => groupBacklog(env),
    "rate-limited": () => rateLimited(env),
    // backlog workloads (bench/backlog.ts)
    ...backlogWorkloads(env),
    // soak workloads (bench/soak.ts)
    soak: () => soak(env, false),
    "soak-xmin": () => soak(env, true)
  }
  const result: Partial<Record<WorkloadName, Outcome>> = {}
  for (const name of cfg.workloads) {
    let outcome: Outcome
    try {
      outcome = await (netWorkloadOf(name, env, cfg.hosts) ?? workloads[name as keyof typeof workloads])()
    } catch (e) {
      log(`${name} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`)
      outcome = { kind: "error", message: errorMessage(e) }
    }
    result[name] = outcome
    await sendMessage({ type: "progress", workload: name, outcome })
  }
  await adapter.purge().catch(() => {})
  await adapter.close().catch((e) => log(`close failed: ${errorMessage(e)}`))
  await sendMessage({ type: "result", result: result as SystemResult })
}

/**
 * A network workload (bench/netns.ts; run.ts starts this child inside the first host's namespace, its ctx
 * reaching the servers over that host's link): enqueue-single and latency as they are, from this host; the
 * drain with one worker process on each host.
 */
const netWorkloadOf = (name: WorkloadName, env: Env, hosts: ReadonlyArray<NetHost> | undefined): (() => Promise<Outcome>) | undefined => {
  const net = netWorkload(name)
  if (net === undefined) return undefined
  if (hosts === undefined || hosts.length === 0) throw new Error(`${name} needs hosts (run.ts sets them up)`)
  switch (net.kind) {
    case "drain":
      return () => drainProcesses(env, hosts.length, hosts)
    case "latency":
      return () => latency(env)
    case "enqueue":
      return () => enqueueSingle(env)
  }
}

const runWorker = async (cfg: Extract<ChildConfig, { role: "worker" }>): Promise<void> => {
  const definition = byName(cfg.system)
  const adapter: Adapter = await definition.make(cfg.ctx)
  const tally = new Tally(cfg.jobs)
  let starting: Promise<Workers | undefined> | undefined
  // the warm-up: its own count, its own workers (stopped on "pause")
  let warmTotal = 0
  let warming: Promise<Workers | undefined> | undefined
  let warmTicker: NodeJS.Timeout | undefined
  let ticker: NodeJS.Timeout | undefined
  let lastSent = -1
  const stopped = new Promise<void>((resolve) => {
    process.on("message", (raw) => {
      const command = raw as WorkerCommand
      if (command.type === "warm") {
        let sent = -1
        warmTicker = setInterval(() => {
          if (warmTotal !== sent) void sendMessage({ type: "warm-count", total: (sent = warmTotal) })
        }, 10)
        warming = adapter.startWorkers(cfg.concurrency, () => {
          warmTotal++
        }).catch(async (e) => {
          await sendMessage({ type: "fatal", message: errorMessage(e) })
          return undefined
        })
      } else if (command.type === "pause") {
        if (warmTicker) clearInterval(warmTicker)
        void (async () => {
          const workers = await warming
          if (workers) await workers.stop()
          await sendMessage({ type: "paused" })
        })()
      } else if (command.type === "go") {
        ticker = setInterval(() => {
          if (tally.total !== lastSent) {
            lastSent = tally.total
            void sendMessage({ type: "count", total: tally.total })
          }
        }, 10)
        starting = adapter.startWorkers(cfg.concurrency, tally.onJob).catch(async (e) => {
          await sendMessage({ type: "fatal", message: errorMessage(e) })
          return undefined
        })
      } else if (command.type === "stop") {
        resolve()
      }
    })
  })
  await sendMessage({ type: "ready" })
  await stopped
  if (ticker) clearInterval(ticker)
  const workers = await starting
  if (workers) await workers.stop()
  const counts = Buffer.from(tally.counts.buffer, tally.counts.byteOffset, tally.counts.byteLength).toString("base64")
  await sendMessage({ type: "final", total: tally.total, counts })
  await adapter.close().catch(() => {})
}

const runProducerChild = async (cfg: Extract<ChildConfig, { role: "producer" }>): Promise<void> => {
  const adapter: Adapter = await byName(cfg.system).make(cfg.ctx)
  await runProducer(adapter, cfg, sendMessage, (f) => process.on("message", (raw) => f(raw as ProducerCommand)))
  // closing sends what is still pending (cuckmq: the last wake-ups)
  await adapter.close().catch(() => {})
}

const main = config.role === "system" ? runSystem(config) : config.role === "worker" ? runWorker(config) : runProducerChild(config)
main.then(
  () => {
    // some clients keep timers or sockets open after close: do not wait for them
    process.exit(0)
  },
  async (e) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e)
    await sendMessage({ type: "fatal", message: errorMessage(e) })
    process.exit(1)
  }
)
