/**
 * The benchmark: cuckmq against its peers on the same workloads.
 *
 *   npm run bench                          3 interleaved runs of every system, 20,000 jobs per workload
 *   npm run bench -- --quick               1 run, 2,000 jobs (smoke test)
 *   npm run bench -- --only=cuckmq,pg-boss a subset of the systems (cuckmq is the ratio baseline when present)
 *
 * Further flags: --runs=N, --jobs=N, --c1-jobs=N (cap the c=1 drain), --backlog-jobs=N (the backlog drain, 200,000),
 * --group-backlog-jobs=N (the one group's backlog of the group-backlog workload, 1,000,000), --rate-limit=N and
 * --rate-secs=N (the rate-limited workload: N starts/s, observed for N s; 500 and 10), --workloads=a,b (a subset of the
 * workloads), --baseline=<git ref> (adds the system `cuckmq-baseline`: this repository's library at that commit,
 * checked out into a temporary worktree, run beside the current one to measure what a change costs; `cuckmq-no-archive`,
 * cuckmq keeping no finalized jobs, also runs only when named in --only). The soak
 * workloads (bench/soak.ts; run them alone, `--workloads=soak` or `--workloads=soak-xmin`): --soak-minutes=N (60),
 * --xmin-minutes=N (the held snapshot, 10), --xmin-start-minutes=N (centred by default), --soak-rate=N|max (1000 jobs/s;
 * max: capacity mode), --soak-depth=N (capacity mode's backlog, 10000), --soak-sample-secs=N (10),
 * --soak-retention-secs=N (finalized jobs kept, 60), --soak-out=path (CSV base name, bench/results/soak-latest). Environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres; a
 * database is created on that server per system and run, and dropped afterwards), BENCH_REDIS_URL (default
 * redis://127.0.0.1:6379; BullMQ uses a unique key prefix per run, deleted afterwards).
 *
 * Network workloads (`--workloads=net-drain-5ms,net-latency-1ms,...`: drain, latency, enqueue at +0, +1 or +5 ms
 * of round-trip time): workers on "hosts" that are Linux network namespaces (bench/netns.ts; needs root), one
 * child per system and added RTT inside the first host, reaching the servers through forwarders in this process.
 *
 * Each system runs in its own child process (bench/child.ts), one after the other; runs are interleaved
 * (run 1: every system, run 2: every system, ...). Prints a markdown table of medians with ratios to
 * cuckmq and writes it to bench/results/latest.md (raw numbers in bench/results/latest.json).
 */
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import { Redis } from "ioredis"
import pg from "pg"
import { createNetwork, execIn, type Host, measureRtt, type Network } from "./netns.js"
import {
  type ChildConfig,
  type Check,
  errorMessage,
  type NetHost,
  netRtts,
  netWorkload,
  type Outcome,
  type Sizes,
  type SystemMessage,
  type SystemResult,
  type WorkloadName,
  workloadNames
} from "./protocol.js"
import { renderSoak, type SoakCell, type SoakSizes, writeSoakCsv } from "./soak.js"
import { systems as allSystems } from "./systems/index.js"
import type { SystemContext, SystemDefinition } from "./systems/types.js"
import { installedVersion, repoRoot } from "./systems/util.js"

// ---------------------------------------------------------------- options

const args = process.argv.slice(2)
const flag = (name: string): string | undefined => {
  const hit = args.find((a) => a === `--${name}` || a.startsWith(`--${name}=`))
  if (hit === undefined) return undefined
  return hit.includes("=") ? hit.slice(hit.indexOf("=") + 1) : ""
}
const known = [
  "quick",
  "only",
  "runs",
  "jobs",
  "c1-jobs",
  "backlog-jobs",
  "group-backlog-jobs",
  "rate-limit",
  "rate-secs",
  "workloads",
  "baseline",
  // soak workloads (bench/soak.ts)
  "soak-minutes",
  "xmin-minutes",
  "xmin-start-minutes",
  "soak-rate",
  "soak-depth",
  "soak-sample-secs",
  "soak-retention-secs",
  "soak-out"
]
for (const a of args) {
  const name = a.replace(/^--/, "").split("=")[0]!
  if (!a.startsWith("--") || !known.includes(name)) {
    console.error(`unknown argument ${a}; flags: ${known.map((k) => `--${k}`).join(" ")}`)
    process.exit(2)
  }
}
const quick = flag("quick") !== undefined
const intFlag = (name: string, fallback: number): number => {
  const value = flag(name)
  if (value === undefined) return fallback
  const n = Number(value.replace(/[_,]/g, ""))
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name} must be a positive integer`)
    process.exit(2)
  }
  return n
}
const listFlag = (name: string): Array<string> | undefined =>
  flag(name)?.split(",").map((s) => s.trim()).filter((s) => s.length > 0)

// soak workloads (bench/soak.ts)
function soakSizes(): SoakSizes {
  const minutesFlag = (name: string, fallback: number): number => {
    const value = flag(name)
    const n = value === undefined ? fallback : Number(value)
    if (!(n > 0)) {
      console.error(`--${name} must be a positive number of minutes`)
      process.exit(2)
    }
    return n
  }
  const minutes = minutesFlag("soak-minutes", 60)
  const xminMinutes = minutesFlag("xmin-minutes", Math.min(10, minutes / 3))
  const start = flag("xmin-start-minutes")
  const xminStartMinutes = start === undefined ? (minutes - xminMinutes) / 2 : Number(start)
  if (!(xminStartMinutes >= 0 && xminStartMinutes + xminMinutes <= minutes)) {
    console.error("--xmin-start-minutes + --xmin-minutes must fit in --soak-minutes")
    process.exit(2)
  }
  return {
    minutes,
    xminMinutes,
    xminStartMinutes,
    rate: flag("soak-rate") === "max" ? "max" : intFlag("soak-rate", 1_000),
    depth: intFlag("soak-depth", 10_000),
    sampleSecs: intFlag("soak-sample-secs", 10),
    retentionSecs: intFlag("soak-retention-secs", 60),
    concurrency: 10
  }
}

const runs = intFlag("runs", quick ? 1 : 3)
const jobs = intFlag("jobs", quick ? 2_000 : 20_000)
const sizes: Sizes = {
  jobs,
  c1Jobs: Math.min(jobs, intFlag("c1-jobs", jobs)),
  backlogJobs: intFlag("backlog-jobs", quick ? 10_000 : 200_000),
  callers: 20,
  bulkBatch: 1_000,
  latencyJobs: quick ? 100 : 500,
  latencyRate: 50,
  latencyConcurrency: 10,
  producerWarmJobs: 50,
  processes: 2,
  processConcurrency: 10,
  processWarmJobs: intFlag("process-warm-jobs", quick ? 200 : 2_000),
  timeoutSecs: quick ? 60 : 300,
  settleMs: 250,
  groups: quick ? 100 : 1_000,
  groupLimit: 2,
  flowConcurrency: 50,
  flowHoldMs: 1,
  groupBacklogJobs: intFlag("group-backlog-jobs", quick ? 10_000 : 1_000_000),
  groupBacklogBatch: 10_000,
  rateLimit: intFlag("rate-limit", 500),
  rateSecs: intFlag("rate-secs", quick ? 3 : 10),
  backlogScale: quick ? 0.01 : 1,
  soak: soakSizes()
}
const poolSize = 20

// --baseline=<ref>: a worktree of that commit, whose library the `cuckmq-baseline` system imports
const baselineRef = flag("baseline")
let baselineDir: string | undefined
if (baselineRef !== undefined) {
  baselineDir = fs.mkdtempSync(path.join(os.tmpdir(), "cuckmq-baseline-"))
  execFileSync("git", ["worktree", "add", "--detach", baselineDir, baselineRef], { cwd: repoRoot, stdio: "ignore" })
  fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(baselineDir, "node_modules"))
  process.env.CUCKMQ_BASELINE_DIR = baselineDir
  process.env.CUCKMQ_BASELINE_REF = baselineRef
}
const removeBaseline = () => {
  if (baselineDir === undefined) return
  try {
    execFileSync("git", ["worktree", "remove", "--force", baselineDir], { cwd: repoRoot, stdio: "ignore" })
  } catch {
    // already gone
  }
  baselineDir = undefined
}

const only = listFlag("only")
const systems: ReadonlyArray<SystemDefinition> = (only
  ? only.map((name) => {
    const s = allSystems.find((x) => x.name === name)
    if (!s) {
      console.error(`unknown system ${name}; known: ${allSystems.map((x) => x.name).join(", ")}`)
      process.exit(2)
    }
    return s
  })
  : allSystems.filter((s) => s.name !== "cuckmq-no-archive")).filter((s) => s.name !== "cuckmq-baseline" || baselineRef !== undefined)
const workloadsFlag = listFlag("workloads")
const workloads: ReadonlyArray<WorkloadName> = workloadsFlag
  ? workloadsFlag.map((w) => {
    if (!(workloadNames as ReadonlyArray<string>).includes(w)) {
      console.error(`unknown workload ${w}; known: ${workloadNames.join(", ")}`)
      process.exit(2)
    }
    return w as WorkloadName
  })
  : workloadNames.filter((w) => w !== "soak" && w !== "soak-xmin") // the soak workloads run only when named
const soakRun = workloads.includes("soak") || workloads.includes("soak-xmin")

const databaseUrl = process.env.BENCH_DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres"
const redisUrl = new URL(process.env.BENCH_REDIS_URL || "redis://127.0.0.1:6379")
const redisHost = redisUrl.hostname || "127.0.0.1"
const redisPort = Number(redisUrl.port || 6379)
const runId = `${Date.now().toString(36)}${process.pid.toString(36)}`
const command = `npm run bench${args.length > 0 ? ` -- ${args.join(" ")}` : ""}`

const log = (text: string) => process.stderr.write(`${text}\n`)

// ---------------------------------------------------------------- databases

const withAdmin = async <A>(f: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    return await f(client)
  } finally {
    await client.end()
  }
}

const databaseName = (system: SystemDefinition, run: number) =>
  `bench_${runId}_${run}_${system.name.replace(/[^a-z0-9]/g, "_")}`

const urlOf = (name: string) => {
  const url = new URL(databaseUrl)
  url.pathname = `/${name}`
  return url.toString()
}

const created = new Set<string>()
const createDatabase = (name: string) =>
  withAdmin(async (c) => {
    await c.query(`CREATE DATABASE "${name}"`)
    created.add(name)
  })
const dropDatabase = (name: string) =>
  withAdmin(async (c) => {
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
    created.delete(name)
  })

const redisPrefix = (run: number) => `bench-${runId}-${run}`
const deleteRedisKeys = async (prefix: string): Promise<number> => {
  const redis = new Redis({ host: redisHost, port: redisPort, lazyConnect: true })
  await redis.connect()
  let deleted = 0
  try {
    let cursor = "0"
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000)
      cursor = next
      if (keys.length > 0) deleted += await redis.del(...keys)
    } while (cursor !== "0")
  } finally {
    redis.disconnect()
  }
  return deleted
}

// ---------------------------------------------------------------- machine

interface Machine {
  readonly cores: number
  readonly cpuModel: string
  readonly ramGiB: number
  readonly kernel: string
  readonly node: string
  readonly postgres: string
  readonly postgresSettings: string
  readonly redis: string
  readonly redisSettings: string
  readonly source: string
}

const machineInfo = async (): Promise<Machine> => {
  const [postgres, postgresSettings] = await withAdmin(async (c) => {
    const { rows } = await c.query<{ version: string }>("SELECT version() AS version")
    const names = ["fsync", "synchronous_commit", "shared_buffers", "max_connections", "max_wal_size"]
    // soak workloads: the autovacuum settings they ran with
    if (soakRun) {
      names.push("autovacuum", "autovacuum_naptime", "autovacuum_vacuum_scale_factor", "autovacuum_vacuum_threshold",
        "autovacuum_vacuum_insert_scale_factor", "autovacuum_vacuum_cost_delay", "autovacuum_vacuum_cost_limit",
        "autovacuum_max_workers", "maintenance_work_mem", "old_snapshot_threshold", "idle_in_transaction_session_timeout")
    }
    const settings = await c.query<{ name: string; setting: string; unit: string | null }>(
      "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1) ORDER BY name",
      [names]
    )
    return [
      rows[0]!.version,
      settings.rows.map((r) => `${r.name}=${r.setting}${r.unit ? ` ${r.unit}` : ""}`).join(", ")
    ] as const
  }).catch((e) => [`PostgreSQL unavailable (${errorMessage(e)})`, "?"] as const)
  const [redisVersion, redisSettings] = await (async () => {
    const redis = new Redis({ host: redisHost, port: redisPort, lazyConnect: true })
    await redis.connect()
    try {
      const info = await redis.info("server")
      const config = async (name: string) => {
        const reply = (await redis.config("GET", name).catch(() => [])) as Array<string>
        return `${name}=${JSON.stringify(reply[1] ?? "?")}`
      }
      return [
        `Redis ${/redis_version:(\S+)/.exec(info)?.[1] ?? "?"}`,
        [await config("save"), await config("appendonly"), await config("io-threads")].join(", ")
      ] as const
    } finally {
      redis.disconnect()
    }
  })().catch((e) => [`Redis unavailable (${errorMessage(e)})`, "?"] as const)
  const source = (() => {
    try {
      const git = (...a: Array<string>) => execFileSync("git", a, { cwd: repoRoot, encoding: "utf8" }).trim()
      const dirty = git("status", "--porcelain", "--", "src").split("\n").filter((l) => l.length > 0).length
      return `commit ${git("rev-parse", "--short", "HEAD")}${dirty > 0 ? `, with uncommitted changes to ${dirty} file(s) under src/ when the run started` : ", src/ clean"}`
    } catch {
      return "unknown (no git)"
    }
  })()
  return {
    source,
    cores: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "?",
    ramGiB: os.totalmem() / 1024 ** 3,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    postgres,
    postgresSettings,
    redis: redisVersion,
    redisSettings
  }
}

// ---------------------------------------------------------------- children

const childEntry = path.join(repoRoot, "bench", "child.ts")
let current: ReturnType<typeof spawn> | undefined

/** Runs a system child; `prefix` is a command it runs under (`ip netns exec <ns>` for the network workloads). */
const runChild = (config: ChildConfig, timeoutMs: number, prefix: ReadonlyArray<string> = []): Promise<SystemResult> =>
  new Promise((resolve, reject) => {
    const argv = [...prefix, process.execPath, "--import", "tsx", "--expose-gc", childEntry, JSON.stringify(config)]
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: repoRoot,
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    current = child
    const partial: Partial<Record<WorkloadName, Outcome>> = {}
    let settled = false
    const timer = setTimeout(() => {
      log(`  child timed out after ${timeoutMs / 1000} s; killing it`)
      child.kill("SIGKILL")
    }, timeoutMs)
    child.on("message", (raw) => {
      const message = raw as SystemMessage
      if (message.type === "progress") {
        partial[message.workload] = message.outcome
        log(`  ${message.workload.padEnd(15)} ${describe(message.outcome)}`)
      } else if (message.type === "result") {
        settled = true
        resolve(message.result)
      } else if (message.type === "fatal") {
        log(`  fatal: ${message.message}`)
      }
    })
    child.on("exit", (code, signal) => {
      clearTimeout(timer)
      current = undefined
      if (!settled) {
        if (Object.keys(partial).length > 0) {
          for (const w of config.role === "system" ? config.workloads : []) {
            partial[w] ??= { kind: "error", message: `child process exited (${signal ?? code}) before this workload finished` }
          }
          resolve(partial)
        } else {
          reject(new Error(`child process exited (${signal ?? code}) without results`))
        }
      }
    })
  })

const describe = (o: Outcome): string => {
  const check = "check" in o && o.check ? checkText(o.check) : ""
  switch (o.kind) {
    case "throughput":
      return `${fmtInt(o.perSec)}/s (${o.jobs} jobs in ${o.seconds.toFixed(2)} s)${
        o.cost
          ? `; CPU/1k jobs: node ${o.cost.nodeCpuPer1k.toFixed(3)} s, server ${o.cost.serverCpuPer1k?.toFixed(3) ?? "n/a"} s`
          : ""
      }${check}`
    case "latency":
      return `p50 ${fmtMs(o.p50)}, p95 ${fmtMs(o.p95)}, p99 ${fmtMs(o.p99)}, max ${fmtMs(o.max)}${check}${o.note ? `; ${o.note}` : ""}`
    case "groups":
      return `${fmtInt(o.perSec)}/s (${o.jobs} jobs in ${o.seconds.toFixed(2)} s), limit ${o.limit}${
        o.limit !== o.requestedLimit ? ` (asked ${o.requestedLimit})` : ""
      }, at most ${o.maxPerGroup} of one group at once${o.maxPerGroup > o.limit ? " (LIMIT EXCEEDED)" : ""}${check}`
    case "rate":
      return `${fmtInt(o.perSec)}/s against a limit of ${fmtInt(o.limit)} per ${o.periodSecs} s (${o.started} starts in ${o.seconds} s, bound ${o.bound}${
        o.started > o.bound ? ", BOUND EXCEEDED" : ""
      }), at most ${o.maxPerPeriod} in any ${o.periodSecs} s${check}`
    case "backlog":
      return `enqueue ${fmtInt(o.enqueuePerSec)}/s, drain c=10 ${fmtInt(o.drainPerSec)}/s (CPU/1k jobs: node ${o.cost.nodeCpuPer1k.toFixed(3)} s, server ${o.cost.serverCpuPer1k?.toFixed(3) ?? "n/a"} s), idle latency p50 ${fmtMs(o.p50)}, p95 ${fmtMs(o.p95)}, p99 ${fmtMs(o.p99)}${check}; ${o.note}`
    case "soak": {
      const s = o.summary
      return `${o.mode}${o.held ? ", snapshot held" : ""}: ${fmtInt(s.beforePerSec)}/s before, ${fmtInt(s.holdPerSec)}/s in the window (loss ${((1 - s.holdPerSec / s.beforePerSec) * 100).toFixed(1)}%), ${fmtInt(s.afterPerSec)}/s after; p99 ${fmtMs(s.beforeP99)} / ${fmtMs(s.holdP99)} / ${fmtMs(s.afterP99)}; db ${(s.steadyBytes / 2 ** 20).toFixed(1)} → max ${(s.maxBytes / 2 ** 20).toFixed(1)} → ${(s.afterBytes / 2 ** 20).toFixed(1)} MiB${check}`
    }
    case "na":
      return `n/a (${o.reason})`
    case "error":
      return `ERROR ${o.message}${check}`
  }
}

const checkText = (c: Check): string =>
  c.duplicates === 0 && c.missing === 0 && c.unexpected === 0
    ? "; all ran exactly once"
    : `; DUPLICATES ${c.duplicates}, MISSING ${c.missing}${c.unexpected ? `, UNEXPECTED ${c.unexpected}` : ""}`

// ---------------------------------------------------------------- formatting and stats

const duration = (secs: number) =>
  secs < 120 ? `${Math.round(secs)} s` : `${Math.floor(secs / 60)} min ${Math.round(secs % 60)} s`
const fmtInt = (x: number) => Math.round(x).toLocaleString("en-US")
const fmtMs = (x: number) =>
  x < 10 ? `${x.toFixed(2)} ms` : x < 100 ? `${x.toFixed(1)} ms` : x < 10_000 ? `${Math.round(x)} ms` : `${(x / 1000).toFixed(1)} s`
const fmtSecs = (x: number) => `${x >= 1 ? x.toFixed(2) : x.toPrecision(3)} s`

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

interface Row {
  readonly label: string
  readonly workload: WorkloadName
  readonly value: (o: Outcome) => number | undefined
  readonly format: (x: number) => string
  /** No ratio to cuckmq: the figure is judged against a limit, not against another system. */
  readonly noRatio?: boolean
  /** A remark for a system's cell, from its first outcome (the limit it ran with when it is not the one asked). */
  readonly remark?: (o: Outcome) => string | undefined
}

const perSec = (o: Outcome) => (o.kind === "throughput" ? o.perSec : undefined)
const limitRemark = (o: Outcome) => (o.kind === "groups" && o.limit !== o.requestedLimit ? `limit ${o.limit}` : undefined)

const rows = (c1Capped: boolean): ReadonlyArray<Row> => [
  { label: "enqueue-single, 20 callers (jobs/s ↑)", workload: "enqueue-single", value: perSec, format: (x) => `${fmtInt(x)}/s` },
  { label: `enqueue-bulk, ${fmtInt(sizes.bulkBatch)} per call (jobs/s ↑)`, workload: "enqueue-bulk", value: perSec, format: (x) => `${fmtInt(x)}/s` },
  {
    label: `drain c=1${c1Capped ? `, ${fmtInt(sizes.c1Jobs)} jobs` : ""} (jobs/s ↑)`,
    workload: "drain-c1",
    value: perSec,
    format: (x) => `${fmtInt(x)}/s`
  },
  { label: "drain c=10 (jobs/s ↑)", workload: "drain-c10", value: perSec, format: (x) => `${fmtInt(x)}/s` },
  { label: "drain c=50 (jobs/s ↑)", workload: "drain-c50", value: perSec, format: (x) => `${fmtInt(x)}/s` },
  { label: "drain c=10 with one event subscriber reading every event (jobs/s ↑)", workload: "drain-c10-events", value: perSec, format: (x) => `${fmtInt(x)}/s` },
  { label: "drain c=10 with one event subscriber that never reads (jobs/s ↑)", workload: "drain-c10-idle-sub", value: perSec, format: (x) => `${fmtInt(x)}/s` },
  { label: `drain of a ${fmtInt(sizes.backlogJobs)}-job backlog, c=10 (jobs/s ↑)`, workload: "drain-backlog", value: perSec, format: (x) => `${fmtInt(x)}/s` },
  { label: "drain 1 process × c=10, forked like the multi-process drains (jobs/s ↑)", workload: "drain-1proc", value: perSec, format: (x) => `${fmtInt(x)}/s` },
  { label: "drain 2 processes × c=10 (jobs/s ↑)", workload: "drain-2proc", value: perSec, format: (x) => `${fmtInt(x)}/s` },
  { label: "drain 4 processes × c=10 (jobs/s ↑)", workload: "drain-4proc", value: perSec, format: (x) => `${fmtInt(x)}/s` },
  { label: "latency p50 (ms ↓)", workload: "latency", value: (o) => (o.kind === "latency" ? o.p50 : undefined), format: fmtMs },
  { label: "latency p95 (ms ↓)", workload: "latency", value: (o) => (o.kind === "latency" ? o.p95 : undefined), format: fmtMs },
  { label: "latency p99 (ms ↓)", workload: "latency", value: (o) => (o.kind === "latency" ? o.p99 : undefined), format: fmtMs },
  { label: "latency-xproc: p50, producer in another process (ms ↓)", workload: "latency-xproc", value: (o) => (o.kind === "latency" ? o.p50 : undefined), format: fmtMs },
  { label: "latency-xproc: p95 (ms ↓)", workload: "latency-xproc", value: (o) => (o.kind === "latency" ? o.p95 : undefined), format: fmtMs },
  { label: "latency-xproc: p99 (ms ↓)", workload: "latency-xproc", value: (o) => (o.kind === "latency" ? o.p99 : undefined), format: fmtMs },
  {
    label: `groups-limit2: drain of ${fmtInt(sizes.jobs)} jobs in ${fmtInt(sizes.groups)} groups, limit ${sizes.groupLimit} per group, c=${sizes.flowConcurrency} (jobs/s ↑)`,
    workload: "groups-limit2",
    value: (o) => (o.kind === "groups" ? o.perSec : undefined),
    format: (x) => `${fmtInt(x)}/s`,
    remark: limitRemark
  },
  {
    label: `groups-limit2: most jobs of one group running at once (limit ${sizes.groupLimit})`,
    workload: "groups-limit2",
    value: (o) => (o.kind === "groups" ? o.maxPerGroup : undefined),
    format: fmtInt,
    noRatio: true,
    remark: limitRemark
  },
  {
    label: `group-backlog: latency p50 of other jobs beside a ${fmtInt(sizes.groupBacklogJobs)}-job backlog in one group (ms ↓)`,
    workload: "group-backlog",
    value: (o) => (o.kind === "latency" ? o.p50 : undefined),
    format: fmtMs
  },
  {
    label: "group-backlog: latency p99 of the other jobs (ms ↓)",
    workload: "group-backlog",
    value: (o) => (o.kind === "latency" ? o.p99 : undefined),
    format: fmtMs
  },
  {
    label: `rate-limited: achieved rate, limit ${fmtInt(sizes.rateLimit)}/s, over ${sizes.rateSecs} s (jobs/s, = limit)`,
    workload: "rate-limited",
    value: (o) => (o.kind === "rate" ? o.perSec : undefined),
    format: (x) => `${fmtInt(x)}/s (${(x / sizes.rateLimit).toFixed(2)}× the limit)`,
    noRatio: true
  },
  {
    label: `rate-limited: most starts in any 1 s (fixed windows allow up to ${fmtInt(2 * sizes.rateLimit)})`,
    workload: "rate-limited",
    value: (o) => (o.kind === "rate" ? o.maxPerPeriod : undefined),
    format: fmtInt,
    noRatio: true
  },
  // backlog workloads (bench/backlog.ts)
  ...backlogRows(),
  ...netRows(),
  {
    label: "Node CPU per 1,000 jobs, c=10 drain (s ↓)",
    workload: "drain-c10",
    value: (o) => (o.kind === "throughput" ? o.cost?.nodeCpuPer1k : undefined),
    format: fmtSecs
  },
  {
    label: "Node CPU per 1,000 jobs, c=10 drain with a reading event subscriber (s ↓)",
    workload: "drain-c10-events",
    value: (o) => (o.kind === "throughput" ? o.cost?.nodeCpuPer1k : undefined),
    format: fmtSecs
  },
  {
    label: "Node CPU per 1,000 jobs, c=10 drain with an event subscriber that never reads (s ↓)",
    workload: "drain-c10-idle-sub",
    value: (o) => (o.kind === "throughput" ? o.cost?.nodeCpuPer1k : undefined),
    format: fmtSecs
  },
  {
    label: "DB server CPU per 1,000 jobs, c=10 drain (s ↓)",
    workload: "drain-c10",
    value: (o) => (o.kind === "throughput" ? o.cost?.serverCpuPer1k : undefined),
    format: fmtSecs
  }
]

/** The rows of the backlog workloads: enqueue, drain, its server CPU and idle latency beside each backlog. */
const backlogRows = (): ReadonlyArray<Row> => {
  const scaled = (x: number) => fmtInt(x * sizes.backlogScale)
  const what: ReadonlyArray<readonly [WorkloadName, string]> = [
    ["backlog-0", "no backlog"],
    ["backlog-100k", `${scaled(100_000)} jobs waiting (scheduled ahead)`],
    ["backlog-1m", `${scaled(1_000_000)} jobs waiting (scheduled ahead)`],
    ["finalized-1m", `${scaled(1_000_000)} finished jobs at retention`]
  ]
  const of = (f: (o: Extract<Outcome, { kind: "backlog" }>) => number | undefined) => (o: Outcome) =>
    o.kind === "backlog" ? f(o) : undefined
  return what.flatMap(([workload, beside]) => [
    { label: `${workload}: enqueue-single, 20 callers, ${beside} (jobs/s ↑)`, workload, value: of((o) => o.enqueuePerSec), format: (x: number) => `${fmtInt(x)}/s` },
    { label: `${workload}: drain c=10 of those ${fmtInt(sizes.jobs)} (jobs/s ↑)`, workload, value: of((o) => o.drainPerSec), format: (x: number) => `${fmtInt(x)}/s` },
    { label: `${workload}: DB server CPU per 1,000 jobs of that drain (s ↓)`, workload, value: of((o) => o.cost.serverCpuPer1k), format: fmtSecs },
    { label: `${workload}: idle latency p50 (ms ↓)`, workload, value: of((o) => o.p50), format: fmtMs },
    { label: `${workload}: idle latency p99 (ms ↓)`, workload, value: of((o) => o.p99), format: fmtMs }
  ])
}

/** results[run][system] */
type Results = Array<Record<string, SystemResult | { readonly fatal: string }>>

const outcomesOf = (results: Results, system: string, workload: WorkloadName): Array<Outcome | undefined> =>
  results.map((run) => {
    const r = run[system]
    if (!r) return undefined
    if ("fatal" in r && typeof r.fatal === "string") return { kind: "error", message: r.fatal }
    return (r as SystemResult)[workload]
  })

const cellValue = (results: Results, system: string, row: Row): { median: number; n: number } | "na" | "error" | "none" => {
  const outcomes = outcomesOf(results, system, row.workload)
  if (outcomes.some((o) => o?.kind === "na")) return "na"
  const values = outcomes.flatMap((o) => {
    const v = o ? row.value(o) : undefined
    return v !== undefined && Number.isFinite(v) ? [v] : []
  })
  if (values.length === 0) return outcomes.some((o) => o?.kind === "error") ? "error" : "none"
  return { median: median(values), n: values.length }
}

// soak workloads: every run's soak outcomes
const soakCellsOf = (results: Results): Array<SoakCell> =>
  results.flatMap((run, r) =>
    systems.flatMap((s) =>
      (["soak", "soak-xmin"] as const).flatMap((w) => {
        const o = (run[s.name] as SystemResult | undefined)?.[w]
        return o?.kind === "soak" ? [{ system: s.name, label: s.label, run: r + 1, workload: w, outcome: o }] : []
      })
    )
  )

const render = (results: Results, machine: Machine, meta: { startedAt: Date; seconds: number; load: [string, string] }): string => {
  const c1Capped = sizes.c1Jobs < sizes.jobs
  const baseline = systems.find((s) => s.name === "cuckmq")
  const lines: Array<string> = []
  lines.push(`# cuckmq benchmark`)
  lines.push("")
  lines.push(
    `${meta.startedAt.toISOString()}, ${runs} run${runs > 1 ? "s" : ""} (interleaved), ${fmtInt(sizes.jobs)} jobs per workload${
      quick ? " (**--quick**: smoke test, not for comparison)" : ""
    }, took ${duration(meta.seconds)}. Command: \`${command}\``
  )
  lines.push("")
  lines.push(`## Results (median of ${runs} run${runs > 1 ? "s" : ""}${baseline ? "; ratio to cuckmq in parentheses" : ""})`)
  lines.push("")
  lines.push(`| workload | ${systems.map((s) => s.label).join(" | ")} |`)
  lines.push(`|---|${systems.map(() => "---:").join("|")}|`)
  for (const row of rows(c1Capped)) {
    if (!workloads.includes(row.workload)) continue
    const base = baseline ? cellValue(results, baseline.name, row) : "none"
    const cells = systems.map((s) => {
      const v = cellValue(results, s.name, row)
      if (v === "na") return "n/a"
      if (v === "error") return "error"
      if (v === "none") return "–"
      const ratio = !row.noRatio && typeof base === "object" && base.median > 0 ? ` (${(v.median / base.median).toFixed(2)}×)` : ""
      const partial = v.n < runs ? ` [${v.n}/${runs} runs]` : ""
      const first = outcomesOf(results, s.name, row.workload).find((o) => o !== undefined)
      const remark = first && row.remark ? row.remark(first) : undefined
      return `${row.format(v.median)}${ratio}${partial}${remark ? ` [${remark}]` : ""}`
    })
    lines.push(`| ${row.label} | ${cells.join(" | ")} |`)
  }
  // correctness row: all checks of all runs
  const correctness = systems.map((s) => {
    let duplicates = 0
    let missing = 0
    let unexpected = 0
    let checked = 0
    for (const w of workloads) {
      for (const o of outcomesOf(results, s.name, w)) {
        if (o && "check" in o && o.check) {
          checked++
          duplicates += o.check.duplicates
          missing += o.check.missing
          unexpected += o.check.unexpected
        }
      }
    }
    if (checked === 0) return "–"
    return duplicates + missing + unexpected === 0
      ? "ok"
      : `**${duplicates} dup, ${missing} missing${unexpected ? `, ${unexpected} unexpected` : ""}**`
  })
  lines.push(`| every job run exactly once (drains, latency; rate-limited: no duplicates; all runs) | ${correctness.join(" | ")} |`)
  lines.push("")
  lines.push(
    "Throughput ratios above 1× are faster than cuckmq; latency and CPU ratios above 1× are slower or costlier. " +
      "“n/a”: the system has no such API; “error”: every run failed (see below); “[k/n runs]”: the median of the runs that succeeded."
  )
  // soak workloads
  const soakCells = soakCellsOf(results)
  if (soakCells.length > 0) {
    lines.push("")
    lines.push(renderSoak(soakCells, sizes.soak!))
  }
  if (c1Capped) {
    lines.push("")
    lines.push(`The c=1 drain is capped at ${fmtInt(sizes.c1Jobs)} jobs for every system (\`--c1-jobs\`), to keep the total runtime reasonable.`)
  }

  // problems
  const problems: Array<string> = []
  results.forEach((run, r) => {
    for (const s of systems) {
      const result = run[s.name]
      if (result && "fatal" in result && typeof result.fatal === "string") {
        problems.push(`- run ${r + 1}, ${s.label}: the child process failed: ${result.fatal}`)
        continue
      }
      for (const w of workloads) {
        const o = (result as SystemResult | undefined)?.[w]
        if (!o) continue
        if (o.kind === "error") problems.push(`- run ${r + 1}, ${s.label}, ${w}: ${o.message}${"check" in o && o.check ? checkText(o.check) : ""}`)
        else if ("check" in o && o.check && o.check.duplicates + o.check.missing + o.check.unexpected > 0) {
          problems.push(`- run ${r + 1}, ${s.label}, ${w}: ${checkText(o.check).slice(2)}`)
        }
        if (o.kind === "groups" && o.maxPerGroup > o.limit) {
          problems.push(`- run ${r + 1}, ${s.label}, ${w}: LIMIT EXCEEDED: ${o.maxPerGroup} jobs of one group ran at once, limit ${o.limit}`)
        }
        if (o.kind === "rate" && o.started > o.bound) {
          problems.push(`- run ${r + 1}, ${s.label}, ${w}: BOUND EXCEEDED: ${o.started} starts in ${o.seconds} s, the limit allows ${o.bound}`)
        }
        if (o.kind === "latency" && o.note?.includes("EXCEEDED")) problems.push(`- run ${r + 1}, ${s.label}, ${w}: ${o.note}`)
      }
    }
  })
  const notes: Array<string> = []
  for (const s of systems) {
    for (const w of workloads) {
      const outcomes = outcomesOf(results, s.name, w)
      const na = outcomes.find((o) => o?.kind === "na")
      if (na?.kind === "na") notes.push(`- ${s.label}, ${w}: n/a: ${na.reason}`)
      const limited = outcomes.find((o) => o?.kind === "groups" && o.limit !== o.requestedLimit)
      if (limited?.kind === "groups") {
        notes.push(`- ${s.label}, ${w}: ran at limit ${limited.limit} (its only per-group limit), not ${limited.requestedLimit}: not comparable with the others`)
      }
      outcomes.forEach((o, r) => {
        if (o?.kind === "latency" && o.note) notes.push(`- ${s.label}, ${w}, run ${r + 1}: ${o.note}`)
        if (o?.kind === "backlog") notes.push(`- ${s.label}, ${w}, run ${r + 1}: ${o.note}`)
      })
    }
  }
  if (notes.length > 0) {
    lines.push("")
    lines.push("Notes on the flow-control and backlog workloads:")
    lines.push("")
    lines.push(notes.join("\n"))
  }
  lines.push("")
  lines.push("## Errors and correctness")
  lines.push("")
  lines.push(problems.length > 0 ? problems.join("\n") : "None: every workload of every run finished, and every job's handler ran exactly once.")

  // settings
  lines.push("")
  lines.push("## Workloads")
  lines.push("")
  lines.push(
    [
      `- Every job has the payload \`{ i }\` and a no-op handler that counts the call per \`i\` in the process; after each drain (and the latency workload) the counts are checked for duplicates and missing jobs. Workers keep running ${sizes.settleMs} ms after the last expected call, so late duplicates are seen.`,
      `- **enqueue-single**: ${fmtInt(sizes.jobs)} jobs, one enqueue call each, from ${sizes.callers} concurrent callers (async loops) in one process; no workers running.`,
      `- **enqueue-bulk**: ${fmtInt(sizes.jobs)} jobs through the bulk API, ${fmtInt(sizes.bulkBatch)} jobs per call, calls one after the other.`,
      `- **drain c=1 / c=10 / c=50**: ${fmtInt(sizes.jobs)} jobs${c1Capped ? ` (c=1: ${fmtInt(sizes.c1Jobs)})` : ""} pre-enqueued with the bulk API (untimed; a system without one: ${sizes.callers} concurrent single enqueues), then workers started in the same process at that concurrency; timed from the call that starts the workers until the ${fmtInt(sizes.jobs)}th handler call.`,
      `- **drain of a backlog**: as the c=10 drain, with ${fmtInt(sizes.backlogJobs)} jobs pre-enqueued (\`--backlog-jobs\`): the cost of a claim as the table grows.`,
      `- **drain 1, 2 and 4 processes** (drain-1proc, drain-2proc, drain-4proc): ${fmtInt(sizes.jobs)} pre-enqueued jobs; that many child processes each first run ${fmtInt(sizes.processWarmJobs)} warm-up jobs apiece (not timed; their workers then stop), then each connect and start workers at concurrency ${sizes.processConcurrency} on a “go” message; they report their handler-call counts every 10 ms over IPC; timed from “go” until the counts sum to ${fmtInt(sizes.jobs)}.`,
      `- **latency**: workers (concurrency ${sizes.latencyConcurrency}) started and idle for 1 s, then ${fmtInt(sizes.latencyJobs)} jobs enqueued one at a time at ${sizes.latencyRate}/s from the same process; latency = enqueue-call start to handler start; percentiles per run (nearest rank), then the median over runs.`,
      `- **latency-xproc**: as **latency**, with the jobs enqueued by another process: a producer child that connects, makes ${fmtInt(sizes.producerWarmJobs)} warm-up enqueues (purged before the workers start; a web process that enqueues has warm code and connections), then enqueues ${fmtInt(sizes.latencyJobs)} jobs one at a time at ${sizes.latencyRate}/s; latency = enqueue-call start in the producer to handler start in the workers' process, both on the machine's wall clock (\`performance.timeOrigin + performance.now()\`).`,
      `- **drain-c10-events / drain-c10-idle-sub**: the c=10 drain with an event subscriber in the workers' process, subscribed before the workers start and stopped after: one that reads every event (cuckmq: \`cuckmq.subscribe\` run by a fiber that counts them; the run fails if it read fewer events than jobs), or one that subscribes and never reads. The cost of a subscriber is the ratio of these to drain c=10 in the same run; systems without an event stream in the adapter report n/a.`,
      `- **groups-limit2**: ${fmtInt(sizes.jobs)} jobs in ${fmtInt(sizes.groups)} groups (${fmtInt(Math.ceil(sizes.jobs / sizes.groups))} per group, each group's jobs enqueued one after the other, so that a claim in queue order meets many jobs of one group), a concurrency limit of ${sizes.groupLimit} per group (a system with another fixed limit runs with it, marked), pre-enqueued with the bulk API; workers at concurrency ${sizes.flowConcurrency} in the same process; the handler sleeps ${sizes.flowHoldMs} ms and counts the jobs of its group running at once (the most seen is reported: above the limit is a violation); timed from the call that starts the workers until the ${fmtInt(sizes.jobs)}th handler call.`,
      `- **group-backlog**: ${fmtInt(sizes.groupBacklogJobs)} jobs waiting in one group (limit 1), inserted with the bulk API, ${fmtInt(sizes.groupBacklogBatch)} per call (untimed; the time is in the notes), then workers (concurrency ${sizes.latencyConcurrency}) started and idle for 1 s while the backlog's group runs one job at a time, then ${fmtInt(sizes.latencyJobs)} other jobs, each in a group of its own, enqueued one at a time at ${sizes.latencyRate}/s: their latency, enqueue-call start to handler start (percentiles as in **latency**). Handler as in groups-limit2.`,
      `- **rate-limited**: a queue limited to ${fmtInt(sizes.rateLimit)} job starts per second by the system (cuckmq \`setChannelRateLimit\`, BullMQ's worker \`limiter\`), ${fmtInt(2 * sizes.rateLimit * sizes.rateSecs)} jobs waiting (twice what the span allows); workers at concurrency ${sizes.flowConcurrency}; handler start times recorded for ${sizes.rateSecs} s from the first start: the achieved rate (starts / ${sizes.rateSecs} s; the bound with fixed windows is the limit times ${sizes.rateSecs}, plus one period's worth) and the most starts in any 1 s span (sliding; fixed windows allow up to twice the limit across a window boundary). Checked for duplicates only (most jobs are left unrun on purpose).`,
      `- **backlog-0 / backlog-100k / backlog-1m / finalized-1m** (bench/backlog.ts): a standing backlog that is not part of the measurement: ${fmtInt(100_000 * sizes.backlogScale)} or ${fmtInt(1_000_000 * sizes.backlogScale)} jobs in the measured queue scheduled a year ahead (bulk API, 10,000 per call, untimed; none may run), or ${fmtInt(1_000_000 * sizes.backlogScale)} succeeded jobs in the system's table of finished jobs at retention (written with SQL, spread over the last 23 h); then \`VACUUM ANALYZE\`, and beside it: enqueue-single (${fmtInt(sizes.jobs)} jobs, ${sizes.callers} callers, no workers), those jobs drained at c=10 (with the DB server's CPU per 1,000 jobs), and idle latency (as **latency**).`,
      `- **cost**: during the c=10 drain, CPU seconds (user + system) of the Node process (\`process.cpuUsage\`) and of the database server: for PostgreSQL the postmaster of the server in \`BENCH_DATABASE_URL\` and all its children (backends, checkpointer, walwriter, autovacuum), for BullMQ on Redis the redis-server process; utime + stime + cutime + cstime from /proc/<pid>/stat, before and after, per 1,000 jobs. Other databases on the same server are idle; other PostgreSQL servers on the machine are not counted.`,
      `- Before each timed part: the queue is purged (see each system's settings), and for PostgreSQL systems \`VACUUM ANALYZE\` and \`CHECKPOINT\` run on the system's database (equally for all).`,
      `- Each system runs in its own child process (Node ${machine.node}, \`--expose-gc\`, a GC before each timed part), in a fresh database (\`CREATE DATABASE\` per system and run on the server in \`BENCH_DATABASE_URL\`, dropped afterwards); BullMQ on Redis uses a unique key prefix per run, its keys deleted afterwards. Runs are interleaved: run 1 of every system, then run 2 of every system, and so on.`,
      `- PostgreSQL systems get a connection pool of ${poolSize} per process.`,
      ...netDescription()
    ].join("\n")
  )
  lines.push("")
  lines.push("## Settings of each system")
  for (const s of systems) {
    lines.push("")
    lines.push(`**${s.label}** (${s.packageVersion()})`)
    lines.push("")
    for (const line of s.settings({ poolSize })) lines.push(`- ${line}`)
  }
  lines.push("")
  lines.push("## Machine")
  lines.push("")
  lines.push(
    [
      `- ${machine.cores} cores (${machine.cpuModel}), ${machine.ramGiB.toFixed(1)} GiB RAM, ${machine.kernel}`,
      `- Node ${machine.node}; TypeScript run by tsx ${installedVersion("tsx")}; cuckmq source: ${machine.source}`,
      `- ${machine.postgres}, on the same machine; ${machine.postgresSettings}`,
      `- ${machine.redis}, on the same machine; ${machine.redisSettings}`,
      `- load average (1/5/15 min) at start: ${meta.load[0]}; at end: ${meta.load[1]}. The database servers and the benchmark share the ${machine.cores} cores, and anything else running on the machine competes with them.`,
      `- command: \`${command}\` (from the repository root)`
    ].join("\n")
  )
  lines.push("")
  return lines.join("\n")
}

// ---------------------------------------------------------------- network hosts (bench/netns.ts)

const netHostCount = 2
const plainWorkloads = workloads.filter((w) => netWorkload(w) === undefined)
/** The selected network workloads by added RTT: each RTT runs in a child of its own, inside host 0. */
const netGroups = [...new Set(workloads.flatMap((w) => netWorkload(w)?.rttMs ?? []))].sort((a, b) => a - b)
  .map((rttMs) => ({ rttMs, workloads: workloads.filter((w) => netWorkload(w)?.rttMs === rttMs) }))
let network: Network | undefined
/** Each host's forwarders: where a process in it reaches PostgreSQL and Redis. */
const netTargets = new Map<Host, { readonly pg: { host: string; port: number }; readonly redis: { host: string; port: number } }>()
/** The measured round trips (p50, p90 in ms) from host 0, per added RTT, one per run. */
const measuredRtts = new Map<number, Array<{ p50: number; p90: number }>>()

const setUpNetwork = async () => {
  network = await createNetwork({ hosts: netHostCount })
  const pgUrl = new URL(databaseUrl)
  for (const host of network.hosts) {
    netTargets.set(host, {
      pg: await network.forward(host, { host: pgUrl.hostname, port: Number(pgUrl.port || 5432) }),
      redis: await network.forward(host, { host: redisHost, port: redisPort })
    })
  }
  log(`network: ${network.hosts.length} hosts (${network.hosts.map((h) => h.name).join(", ")}), delay by ${network.mode === "netem" ? "tc netem" : "the forwarder (no sch_netem in this kernel)"}`)
}

/** The context of `ctx` as seen from `host`: the same database and Redis prefix, through its forwarders. */
const ctxOn = (host: Host, ctx: SystemContext): SystemContext => {
  const targets = netTargets.get(host)!
  let databaseUrl = ctx.databaseUrl
  if (databaseUrl !== "") {
    const url = new URL(databaseUrl)
    url.hostname = targets.pg.host
    url.port = String(targets.pg.port)
    databaseUrl = url.toString()
  }
  return { ...ctx, databaseUrl, redis: { ...ctx.redis, host: targets.redis.host, port: targets.redis.port } }
}

const runNetChild = async (system: SystemDefinition, ctx: SystemContext, rttMs: number, group: ReadonlyArray<WorkloadName>, r: number): Promise<SystemResult> => {
  const net = network!
  await net.setRtt(rttMs)
  const measured = await measureRtt(net, net.hosts[0]!)
  measuredRtts.set(rttMs, [...(measuredRtts.get(rttMs) ?? []), measured])
  log(`  network +${rttMs} ms: round trip from ${net.hosts[0]!.name} p50 ${fmtMs(measured.p50)}, p90 ${fmtMs(measured.p90)} (run ${r})`)
  const hosts: Array<NetHost> = net.hosts.map((h) => ({ netns: h.name, ctx: ctxOn(h, ctx) }))
  return runChild(
    { role: "system", system: system.name, ctx: hosts[0]!.ctx, sizes, workloads: group, hosts },
    (quick ? 5 : 15) * 60_000,
    execIn(net.hosts[0]!)
  )
}

const netRows = (): ReadonlyArray<Row> =>
  netRtts.flatMap((rtt): Array<Row> => [
    { label: `net-drain-${rtt}ms: 2 hosts × 1 process × c=${sizes.processConcurrency}, +${rtt} ms RTT (jobs/s ↑)`, workload: `net-drain-${rtt}ms`, value: perSec, format: (x) => `${fmtInt(x)}/s` },
    { label: `net-latency-${rtt}ms: p50, +${rtt} ms RTT (ms ↓)`, workload: `net-latency-${rtt}ms`, value: (o) => (o.kind === "latency" ? o.p50 : undefined), format: fmtMs },
    { label: `net-latency-${rtt}ms: p99, +${rtt} ms RTT (ms ↓)`, workload: `net-latency-${rtt}ms`, value: (o) => (o.kind === "latency" ? o.p99 : undefined), format: fmtMs },
    { label: `net-enqueue-${rtt}ms: ${sizes.callers} callers, +${rtt} ms RTT (jobs/s ↑)`, workload: `net-enqueue-${rtt}ms`, value: perSec, format: (x) => `${fmtInt(x)}/s` }
  ])

/** The network workloads' paragraph of the results file. */
const netDescription = (): Array<string> => {
  if (netGroups.length === 0) return []
  const rtts = netGroups.map((g) => {
    const m = measuredRtts.get(g.rttMs) ?? []
    return `+${g.rttMs} ms: p50 ${m.map((x) => fmtMs(x.p50)).join(" / ")}, p90 ${m.map((x) => fmtMs(x.p90)).join(" / ")}`
  }).join("; ")
  return [
    `- **net-drain / net-latency / net-enqueue at +N ms** (bench/netns.ts): ${netHostCount} network namespaces (“hosts”), each joined to the root namespace by a veth pair; the servers stay on 127.0.0.1 of the root namespace, reached through a TCP forwarder per host and server in the benchmark's parent process (listening on the root end of the host's veth). The added round-trip time is applied ${network?.mode === "netem" ? "by `tc qdisc ... netem delay N ms` on the root end of each veth (the direction towards the host)" : "by the forwarder, which holds every chunk from a server to the host for N ms (this kernel has no sch_netem; Node's timers make the delay approximate)"}; +0 ms is the same path without the delay (the cost of the namespace, veth and forwarder alone). Measured one-byte round trips from host 0 through a forwarder, once before each system's network child (systems in column order, run after run): ${rtts}. **net-drain**: ${fmtInt(sizes.jobs)} jobs pre-enqueued from host 0 (untimed), then one worker process on each of the ${netHostCount} hosts at concurrency ${sizes.processConcurrency}, as in the 2-process drain. **net-latency**: the latency workload run entirely on host 0 (enqueuer and workers in one process there). **net-enqueue**: enqueue-single run on host 0. Each added RTT runs in a child process of its own (on the same database as the other workloads of that system and run).`
  ]
}

// ---------------------------------------------------------------- main

const loadAverage = () => os.loadavg().map((x) => x.toFixed(2)).join(" / ")

const cleanupAndExit = async (code: number) => {
  current?.kill("SIGKILL")
  await network?.close().catch(() => {})
  for (const name of [...created]) await dropDatabase(name).catch(() => {})
  removeBaseline()
  process.exit(code)
}
process.on("SIGINT", () => {
  log("interrupted: dropping the benchmark databases")
  void cleanupAndExit(130)
})
process.on("SIGTERM", () => void cleanupAndExit(143))

const main = async () => {
  const startedAt = new Date()
  const t0 = performance.now()
  const loadStart = loadAverage()
  const machine = await machineInfo()
  log(`cuckmq benchmark: ${runs} run(s) × ${systems.length} system(s), ${fmtInt(sizes.jobs)} jobs${quick ? " (quick)" : ""}`)
  log(`node ${machine.node}, ${machine.cores} cores, ${machine.postgres.split(" on ")[0]}, ${machine.redis}, load ${loadStart}`)
  const results: Results = []
  if (netGroups.length > 0) await setUpNetwork()
  for (let r = 1; r <= runs; r++) {
    const run: Record<string, SystemResult | { readonly fatal: string }> = {}
    results.push(run)
    for (const system of systems) {
      log(`[run ${r}/${runs}] ${system.label}`)
      const dbName = databaseName(system, r)
      const prefix = redisPrefix(r)
      const ctx: SystemContext = {
        databaseUrl: system.backend === "postgres" ? urlOf(dbName) : "",
        redis: { host: redisHost, port: redisPort, prefix },
        poolSize,
        ...(soakRun ? { retentionSecs: sizes.soak!.retentionSecs } : {})
      }
      try {
        if (system.backend === "postgres") await createDatabase(dbName)
        if (plainWorkloads.length > 0) {
          run[system.name] = await runChild(
            { role: "system", system: system.name, ctx, sizes, workloads: plainWorkloads },
            (quick ? 5 : 15) * 60_000 + (soakRun ? plainWorkloads.filter((w) => w.startsWith("soak")).length * (sizes.soak!.minutes + 5) * 60_000 : 0)
          )
        }
        for (const group of netGroups) {
          const result = await runNetChild(system, ctx, group.rttMs, group.workloads, r)
          const sofar = run[system.name]
          run[system.name] = sofar && !("fatal" in sofar) ? { ...sofar, ...result } : result
        }
      } catch (e) {
        log(`  failed: ${errorMessage(e)}`)
        run[system.name] = { fatal: errorMessage(e) }
      } finally {
        if (system.backend === "postgres") {
          await dropDatabase(dbName).catch((e) => log(`  could not drop ${dbName}: ${errorMessage(e)}`))
        } else {
          await deleteRedisKeys(prefix).catch((e) => log(`  could not delete redis keys ${prefix}:*: ${errorMessage(e)}`))
        }
      }
    }
  }
  await network?.close()
  network = undefined
  const markdown = render(results, machine, {
    startedAt,
    seconds: (performance.now() - t0) / 1000,
    load: [loadStart, loadAverage()]
  })
  const dir = path.join(repoRoot, "bench", "results")
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, "latest.md"), markdown)
  fs.writeFileSync(
    path.join(dir, "latest.json"),
    JSON.stringify({ startedAt, command, sizes, poolSize, machine, systems: systems.map((s) => s.name), results }, null, 2) + "\n"
  )
  // soak workloads: the time series
  for (const file of writeSoakCsv(soakCellsOf(results), path.resolve(repoRoot, flag("soak-out") ?? "bench/results/soak-latest"))) {
    log(`soak samples written to ${path.relative(repoRoot, file)}`)
  }
  process.stdout.write(`\n${markdown}`)
  log(`\nwritten to bench/results/latest.md (raw numbers: bench/results/latest.json)`)
}

main().then(removeBaseline, async (e) => {
  log(e instanceof Error ? (e.stack ?? e.message) : String(e))
  await cleanupAndExit(1)
})
