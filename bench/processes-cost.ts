/**
 * What draining costs per job with 1, 2 and 4 worker processes (issue 14, "Many processes": the claim must
 * not serialise across processes). In a scratch database it pre-enqueues `--jobs` jobs, starts P worker
 * processes (the library's `Worker.layer`, concurrency `--concurrency`, no-op handler), and drains. It reports
 * per 1,000 jobs the counts that do not depend on how busy the machine is: the shared buffers the server
 * touched (`pg_stat_database`), the index entries read in the job table's indexes (`pg_stat_user_indexes`),
 * and transactions committed; then the CPU seconds the worker processes spent and the wall time (noisy). Each
 * process first runs `--warm` jobs (default 2,000; not counted), as a long-running worker has warm code.
 *
 *     npx tsx bench/processes-cost.ts [--jobs=60000] [--concurrency=10] [--prefetch=500] [--processes=1,2,4] [--runs=1] [--warm=2000]
 */
import { fork } from "node:child_process"
import { performance } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { Effect, Exit, Layer, ManagedRuntime, Redacted, Schema, Scope } from "effect"
import { PgClient } from "@effect/sql-pg"
import pg from "pg"
import { Cuckmq, JobDefinition, Worker } from "../src/index.js"

const arg = (name: string, fallback: string) => {
  const found = process.argv.find((a) => a.startsWith(`--${name}=`))
  return found === undefined ? fallback : found.slice(name.length + 3)
}
const baseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const database = "cuckmq_processes_cost"
const url = (() => {
  const u = new URL(baseUrl)
  u.pathname = `/${database}`
  return u.toString()
})()
const schema = "_cuckmq"

let onJob: () => void = () => {}
const Bench = JobDefinition.make({
  name: "bench",
  payload: Schema.Struct({ i: Schema.Number }),
  handler: () => Effect.sync(() => onJob())
})
const context = () =>
  Cuckmq.layer({ schema, definitions: [Bench] }).pipe(
    Layer.provideMerge(PgClient.layer({ url: Redacted.make(url), maxConnections: 20 }))
  )

type ToChild = { readonly type: "warm" } | { readonly type: "pause" } | { readonly type: "go" } | { readonly type: "stop" }
type FromChild =
  | { readonly type: "ready" }
  | { readonly type: "paused" }
  | { readonly type: "count"; readonly total: number }
  | { readonly type: "final"; readonly total: number; readonly cpuMs: number }

const child = async () => {
  const send = (m: FromChild) => process.send!(m)
  const runtime = ManagedRuntime.make(context())
  await runtime.runPromise(Effect.void)
  let total = 0
  onJob = () => {
    total++
  }
  let cpuAtGo: NodeJS.CpuUsage | undefined
  let scope: Scope.Closeable | undefined
  let ticker: NodeJS.Timeout | undefined
  const startWorkers = async () => {
    const s = await runtime.runPromise(Scope.make())
    await runtime.runPromise(Layer.buildWithScope(Worker.layer({ concurrency: Number(arg("concurrency", "10")), prefetch: Number(arg("prefetch", "500")) }), s))
    return s
  }
  process.on("message", async (m: ToChild) => {
    if (m.type === "warm") {
      scope = await startWorkers()
    } else if (m.type === "pause") {
      if (scope) await runtime.runPromise(Scope.close(scope, Exit.void))
      total = 0
      send({ type: "paused" })
    } else if (m.type === "go") {
      cpuAtGo = process.cpuUsage()
      let last = -1
      ticker = setInterval(() => {
        if (total !== last) send({ type: "count", total: (last = total) })
      }, 10)
      scope = await startWorkers()
    } else {
      clearInterval(ticker)
      if (scope) await runtime.runPromise(Scope.close(scope, Exit.void))
      const u = process.cpuUsage(cpuAtGo)
      send({ type: "final", total, cpuMs: (u.user + u.system) / 1000 })
      await runtime.dispose()
      process.exit(0)
    }
  })
  send({ type: "ready" })
}

const admin = async <T>(f: (c: pg.Client) => Promise<T>, dbUrl = baseUrl): Promise<T> => {
  const c = new pg.Client({ connectionString: dbUrl })
  await c.connect()
  try {
    return await f(c)
  } finally {
    await c.end()
  }
}

const stats = () =>
  admin(async (c) => {
    const [db] = (await c.query(
      `SELECT blks_hit + blks_read AS blocks, xact_commit AS commits FROM pg_stat_database WHERE datname = current_database()`
    )).rows
    const [ix] = (await c.query(
      `SELECT sum(idx_tup_read)::bigint AS entries FROM pg_stat_user_indexes WHERE schemaname = $1 AND relname = 'job'`,
      [schema]
    )).rows
    return { blocks: Number(db.blocks), commits: Number(db.commits), entries: Number(ix.entries) }
  }, url)

const parent = async () => {
  const jobs = Number(arg("jobs", "60000"))
  const counts = arg("processes", "1,2,4").split(",").map(Number)
  const runs = Number(arg("runs", "1"))
  const warm = Number(arg("warm", "2000"))
  console.log(`| processes × c=${arg("concurrency", "10")} | run | jobs/s (noisy) | buffers / 1k jobs | job index entries read / 1k | commits / 1k | worker CPU s / 1k |`)
  console.log("|---:|---:|---:|---:|---:|---:|---:|")
  for (let run = 1; run <= runs; run++) {
    for (const p of counts) {
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`))
      await admin((c) => c.query(`CREATE DATABASE ${database}`))
      const runtime = ManagedRuntime.make(context())
      const enqueue = async (count: number) => {
        for (let done = 0; done < count; done += 1000) {
          await runtime.runPromise(Bench.enqueueMany(Array.from({ length: Math.min(1000, count - done) }, (_, i) => ({ payload: { i: done + i } }))))
        }
      }
      const children = Array.from({ length: p }, () =>
        fork(fileURLToPath(import.meta.url), ["--child", ...process.argv.slice(2)], {
          execArgv: ["--import", "tsx"]
        }))
      const totals = new Array<number>(p).fill(0)
      const finals: Array<Extract<FromChild, { type: "final" }>> = []
      let ready = 0
      let reached!: () => void
      const allReady = new Promise<void>((resolve) => {
        children.forEach((ch, k) =>
          ch.on("message", (m: FromChild) => {
            if (m.type === "ready" && ++ready === p) resolve()
            if (m.type === "count") {
              totals[k] = m.total
              if (totals.reduce((a, b) => a + b, 0) >= jobs) reached()
            }
            if (m.type === "final") finals.push(m)
            if (m.type === "paused" && ++paused === p) pausedAll()
          }))
      })
      let paused = 0
      let pausedAll!: () => void
      const allPaused = new Promise<void>((resolve) => {
        pausedAll = resolve
      })
      const drained = new Promise<void>((resolve) => {
        reached = resolve
      })
      await allReady
      // the warm-up (not counted): every process runs jobs until its code is warm, then its workers stop
      await enqueue(warm * p)
      for (const ch of children) ch.send({ type: "warm" } satisfies ToChild)
      while ((await admin((c) => c.query(`SELECT count(*)::int AS n FROM ${schema}.job`), url)).rows[0].n > 0) {
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      for (const ch of children) ch.send({ type: "pause" } satisfies ToChild)
      await allPaused
      await enqueue(jobs)
      await runtime.dispose()
      await admin((c) => c.query("VACUUM ANALYZE"), url)
      await admin((c) => c.query("CHECKPOINT"))
      const before = await stats()
      const t0 = performance.now()
      for (const ch of children) ch.send({ type: "go" } satisfies ToChild)
      await drained
      const ms = performance.now() - t0
      const exited = children.map((ch) => new Promise((resolve) => ch.once("exit", resolve)))
      for (const ch of children) ch.send({ type: "stop" } satisfies ToChild)
      await Promise.all(exited)
      const after = await stats()
      const k = jobs / 1000
      const cpu = finals.reduce((a, f) => a + f.cpuMs, 0) / 1000
      console.log(
        `| ${p} | ${run} | ${Math.round(jobs / ms * 1000).toLocaleString("en-US")} | ${Math.round((after.blocks - before.blocks) / k)} | ${
          Math.round((after.entries - before.entries) / k)
        } | ${Math.round((after.commits - before.commits) / k)} | ${(cpu / k).toFixed(4)} |`
      )
    }
  }
  await admin((c) => c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`))
}

if (process.argv.includes("--child")) await child()
else await parent()
