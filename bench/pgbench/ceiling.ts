/**
 * The server-side ceiling of one PostgreSQL primary for cuckmq's hot statements (issue 14, item 6), measured
 * with `pgbench` running the real statements: their SQL text as the store generates it for the schema
 * `_cuckmq` (imported from src/internal/pg), written into pgbench scripts with the parameters as pgbench
 * variables, run with `-M prepared` and `plan_cache_mode = force_generic_plan`, `jit = off` (as the store
 * sets them) at several client counts. No Node, no driver, no library: what is left is what the database
 * server can do with these statements on this machine.
 *
 * Scripts (one transaction per statement, autocommit, as the store sends them):
 * - `claim-settle`: a claim of 100 (plain shape) by the client's own worker, its claimed ids read back
 *   (`SELECT array_agg ... WHERE worker_id`: one index probe, which the store does not need: it has the
 *   claim's rows), and the settlement of the 100 as succeeded (the plain statement), from a pre-filled backlog;
 * - `cycle`: a bulk enqueue of 100, then `claim-settle`: a job's whole life, steady state;
 * - `enqueue-one`: a single enqueue (ungrouped shape);
 * - `enqueue-bulk`: a bulk enqueue of 1,000 (the payloads-only statement).
 *
 * Printed: jobs/s (transactions/s × jobs per transaction), the mean latency per script run, and the CPU
 * seconds of the PostgreSQL server (postmaster and children, from /proc) per 1,000 jobs: on a machine of
 * `k` cores the server can do at most about k / (CPU per job), whatever drives it. pgbench itself runs on
 * the same cores.
 *
 *     npx tsx bench/pgbench/ceiling.ts [--secs=15] [--clients=1,2,4,8,16] [--scripts=claim-settle,cycle,enqueue-one,enqueue-bulk]
 */
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { plainClaimSql } from "../../src/internal/pg/claim.js"
import { migrations } from "../../src/internal/pg/ddl.js"
import { oneSql, payloadsSql } from "../../src/internal/pg/enqueue.js"
import { settleUngroupedSql } from "../../src/internal/pg/settle.js"
import { names, noticeChannel } from "../../src/internal/pg/sql.js"
import { postgresProbe } from "../serverCpu.js"

const flag = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
const secs = Number(flag("secs") ?? 15)
const clientCounts = (flag("clients") ?? "1,2,4,8,16").split(",").map(Number)
const scriptNames = (flag("scripts") ?? "claim-settle,cycle,enqueue-one,enqueue-bulk").split(",")
const server = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
const database = "backlog_pgbench"
const schema = "_cuckmq"
const n = names(schema)
const pgbench = ["/usr/lib/postgresql/15/bin/pgbench", "pgbench"].find((p) => p === "pgbench" || fs.existsSync(p))!

const url = new URL(server)
const dbUrl = (() => {
  const u = new URL(server)
  u.pathname = `/${database}`
  return u.toString()
})()
const admin = new pg.Client({ connectionString: server })
await admin.connect()
await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
await admin.query(`CREATE DATABASE ${database}`)
const c = new pg.Client({ connectionString: dbUrl })
await c.connect()
const q = (text: string, values: Array<unknown> = []) => c.query(text, values).then((r) => r.rows)
for (const [, , list] of migrations(schema)) for (const s of list) await q(s)
await q(`INSERT INTO ${n.definition} (name, channel, num_attempts, timeout_secs) VALUES ('bench', '_default', 1, 60)`)
const maxClients = Math.max(...clientCounts)
// one worker per pgbench client (its :client_id), lease a day
const workerOf = (id: string) => `('00000000-0000-0000-0000-' || lpad((${id})::text, 12, '0'))::uuid`
await q(`INSERT INTO ${n.worker} (id, name, hostname, pid, channels, expires_at)
  SELECT ${workerOf("k")}, 'pgbench', 'localhost', k, '{_default}', now() + interval '1 day' FROM generate_series(0, ${maxClients}) AS k`)

/** Replaces `$k` parameters by what `values[k - 1]` says (a pgbench variable or an SQL expression). */
const bind = (sql: string, values: ReadonlyArray<string>) =>
  sql.replace(/\$(\d+)/g, (_, k: string) => `(${values[Number(k) - 1]!})`).replace(/\n\s*--[^\n]*/g, "").replace(/\s+/g, " ").trim()

const W = workerOf(":client_id")
const claim = bind(plainClaimSql(n, false), [W, ":channels", ":lim", ":aging"])
const readBack = `SELECT coalesce(array_agg(id), '{}')::text AS ids, coalesce(array_agg(claims), '{}')::text AS claims FROM ${n.job} WHERE worker_id = ${W} \\gset`
const count = "coalesce(cardinality(:ids::bigint[]), 0)"
const settle = bind(settleUngroupedSql(n, noticeChannel(schema)), [
  W,
  ":ids",
  ":claims",
  `array_fill('Succeeded'::text, ARRAY[${count}])`,
  `array_fill(''::text, ARRAY[${count}])`,
  "'{}'",
  ":ids",
  "true",
  "NULL"
])
const bulk100 = bind(payloadsSql(n), [":def", ":payloads100", "0"])
const bulk1000 = bind(payloadsSql(n), [":def", ":payloads1000", "0"])
const one = bind(oneSql(n, false), [":def", "NULL::text", ":payload", "0", "NULL::text", "NULL::text", "0", "NULL::float8"])

const header = "\\set lim 100\n\\set aging 60\n"
const scripts: Record<string, { readonly text: string; readonly jobs: number; readonly drains: boolean }> = {
  "claim-settle": { text: `${header}${claim};\n${readBack}\n${settle};\n`, jobs: 100, drains: true },
  cycle: { text: `${header}${bulk100};\n${claim};\n${readBack}\n${settle};\n`, jobs: 100, drains: false },
  "enqueue-one": { text: `${one};\n`, jobs: 1, drains: false },
  "enqueue-bulk": { text: `${bulk1000};\n`, jobs: 1000, drains: false }
}
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cuckmq-pgbench-"))
for (const [name, s] of Object.entries(scripts)) fs.writeFileSync(path.join(dir, `${name}.sql`), s.text)

const payloads = (k: number) => JSON.stringify(Array.from({ length: k }, (_, i) => ({ i })))
const env = { ...process.env, PGOPTIONS: "-c plan_cache_mode=force_generic_plan -c jit=off" }
const probe = await postgresProbe(dbUrl)

/** Due jobs for the drain: topped up to `target` and vacuumed, so that every run starts alike. */
const topUp = async (target: number) => {
  const [row] = await q(`SELECT count(*)::int AS k FROM ${n.job}`)
  const missing = target - (row!.k as number)
  for (let done = 0; done < missing; done += 100_000) {
    await q(`INSERT INTO ${n.job} (name, channel, payload, run_at, sort_at, created_at, max_attempts, timeout_secs, priority)
      SELECT 'bench', '_default', jsonb_build_object('i', k), now(), now(), now(), 1, 60, 0
      FROM generate_series(1, ${Math.min(100_000, missing - done)}) AS k`)
  }
}

interface Result {
  readonly script: string
  readonly clients: number
  readonly jobsPerSec: number
  readonly latencyMs: number
  readonly serverCpuPer1k: number | undefined
  readonly failed: number
}
const results: Array<Result> = []
for (const name of scriptNames) {
  const s = scripts[name]
  if (s === undefined) throw new Error(`unknown script ${name}; known: ${Object.keys(scripts).join(", ")}`)
  for (const clients of clientCounts) {
    await q(`TRUNCATE ${n.job}, ${n.finalized}`)
    // enough for the run at a generous 40,000 jobs/s
    if (s.drains) await topUp(Math.max(200_000, 40_000 * secs))
    await q(`VACUUM ANALYZE ${n.job}`)
    await q(`VACUUM ANALYZE ${n.finalized}`)
    await q("CHECKPOINT").catch(() => {})
    const args = [
      "-h", url.hostname, "-p", url.port || "5432", "-U", decodeURIComponent(url.username || "postgres"),
      "-n", "-M", "prepared", "-c", String(clients), "-j", String(Math.min(clients, 2)), "-T", String(secs),
      "-D", "channels={_default}", "-D", "def=bench", "-D", `payload={"i":1}`,
      "-D", `payloads100=${payloads(100)}`, "-D", `payloads1000=${payloads(1000)}`,
      "-f", path.join(dir, `${name}.sql`), database
    ]
    const cpu0 = probe?.()
    const run = spawnSync(pgbench, args, { env, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 })
    const cpu1 = probe?.()
    const out = `${run.stdout}\n${run.stderr}`
    const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? NaN)
    const latency = Number(/latency average = ([\d.]+) ms/.exec(out)?.[1] ?? NaN)
    const processed = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? NaN)
    const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0)
    if (!Number.isFinite(tps)) {
      console.error(out)
      throw new Error(`pgbench ${name} -c ${clients} failed`)
    }
    const jobs = processed * s.jobs
    const serverCpuPer1k = cpu0 !== undefined && cpu1 !== undefined ? (cpu1 - cpu0) / (jobs / 1000) : undefined
    const r = { script: name, clients, jobsPerSec: tps * s.jobs, latencyMs: latency, serverCpuPer1k, failed }
    results.push(r)
    process.stderr.write(`${name} c=${clients}: ${Math.round(r.jobsPerSec).toLocaleString("en-US")} jobs/s, ${latency} ms per run, server CPU ${serverCpuPer1k?.toFixed(3)} s per 1k jobs${failed ? `, ${failed} failed` : ""}\n`)
  }
}

const version = execFileSync(pgbench, ["--version"], { encoding: "utf8" }).trim()
console.log(`${version}; ${os.cpus().length} cores (${os.cpus()[0]?.model ?? "?"}); ${secs} s per run; -M prepared; plan_cache_mode=force_generic_plan, jit=off\n`)
console.log(`| script | ${clientCounts.map((k) => `c=${k}`).join(" | ")} | server CPU per 1,000 jobs (best) |`)
console.log(`|---|${clientCounts.map(() => "---:").join("|")}|---:|`)
for (const name of scriptNames) {
  const rows = results.filter((r) => r.script === name)
  const cpu = rows.map((r) => r.serverCpuPer1k).filter((x): x is number => x !== undefined)
  console.log(`| ${name} (jobs/s; ms per script run) | ${rows.map((r) => `${Math.round(r.jobsPerSec).toLocaleString("en-US")} (${r.latencyMs.toFixed(2)})`).join(" | ")} | ${cpu.length ? `${Math.min(...cpu).toFixed(3)} s` : "n/a"} |`)
}
console.log(`\nScripts: ${dir}`)
await c.end()
await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
await admin.end()
