/**
 * What a held snapshot does to one claim (issue 14, "bloat and vacuum"): in a scratch schema, migrated with
 * the package's own migrations, jobs pass through the queue (inserted, claimed, deleted: the row versions
 * a claim and a settlement leave behind in `job`) while another connection holds a snapshot (`BEGIN
 * ISOLATION LEVEL REPEATABLE READ; SELECT txid_current()`), and after every step the real claim statement
 * (src/internal/pg/claim.ts, prepared, generic plan, as the store runs it) claims 100 ready jobs under
 * EXPLAIN (ANALYZE, BUFFERS): the shared buffers it touched, a count that does not depend on the machine's
 * load, and its execution time. Before each measured claim the table is analyzed (as autovacuum's ANALYZE
 * keeps its statistics; without them the generic plan scans the whole table, and the buffers measure that). Then the snapshot is released, the table vacuumed, and the claim measured again.
 *
 * Without a held snapshot, a claim that meets the index entries of claimed and deleted jobs marks them dead
 * (they are dead to every transaction), and later claims skip them; with one, they stay live to the
 * snapshot, so every claim walks all of them again, from the start of the ready index: its cost grows with
 * the jobs that went through since the snapshot was taken.
 *
 *     npx tsx bench/xmin-claim-cost.ts [--steps=50000,100000,200000,400000] [--held=true] [--floor=false]
 */
import pg from "pg"
import { claimSql } from "../src/internal/pg/claim.js"
import { migrations } from "../src/internal/pg/ddl.js"
import { names } from "../src/internal/pg/sql.js"

const arg = (name: string, fallback: string) => {
  const found = process.argv.find((a) => a.startsWith(`--${name}=`))
  return found === undefined ? fallback : found.slice(name.length + 3)
}
const steps = arg("steps", "50000,100000,200000,400000").split(",").map(Number)
const hold = arg("held", "true") === "true"
// the floored claim (src/internal/pg/claim.ts: a claim starts where the last one found its first job, with an
// unfloored claim at least once a second for stragglers)
const floor = arg("floor", "false") === "true"
const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const schema = "soak_xmin_claim_cost"
const n = names(schema)
const worker = "00000000-0000-0000-0000-0000000000c1"

const client = new pg.Client({ connectionString: url, options: "-c plan_cache_mode=force_generic_plan" })
await client.connect()
const holder = new pg.Client({ connectionString: url })
await holder.connect()
const q = (text: string, values: Array<unknown> = []) => client.query(text, values).then((r) => r.rows)

await q(`DROP SCHEMA IF EXISTS ${n.schema} CASCADE`)
for (const [, , statements] of migrations(schema)) for (const s of statements) await q(s)
await q(`ALTER TABLE ${n.job} SET (autovacuum_enabled = false)`)
await q(`INSERT INTO ${n.worker} (id, name, hostname, pid, channels, expires_at)
  VALUES ($1, 'xmin-claim-cost', 'localhost', 1, '{_default}', now() + interval '1 day')`, [worker])
await q(`INSERT INTO ${n.definition} (name, channel, num_attempts, timeout_secs) VALUES ('job', '_default', 1, 60)`)

// with --floor=true, the store's floored claim (the floor of the one level)
const claim = claimSql(n, false, false, false, floor)
await q(`PREPARE cuckmq_claim(uuid, text[], int, float8${floor ? ", text, int, float8" : ""}) AS ${claim}`)
const insert = (k: number) =>
  q(`INSERT INTO ${n.job} (name, channel, payload, max_attempts, timeout_secs)
    SELECT 'job', '_default', '{}', 1, 60 FROM generate_series(1, $1::int)`, [k])

/** 100 ready jobs, one claim of them explained (after one unexplained claim that marks what it can dead). */
const measure = async (label: string) => {
  const once = async () => {
    // the floor: where the previous claim found its first job (here: just before these 100 were inserted)
    const [{ at }] = (await q("SELECT clock_timestamp()::text AS at")) as [{ at: string }]
    await insert(100)
    const plan = await q(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE cuckmq_claim('${worker}', '{_default}', 100, 60${floor ? `, '_default', 0, extract(epoch FROM '${at}'::timestamptz)` : ""})`)
    await q(`DELETE FROM ${n.job} WHERE worker_id = $1`, [worker])
    const top = (plan[0]!["QUERY PLAN"] as Array<{ Plan: Record<string, number>; "Execution Time": number }>)[0]!
    return { buffers: (top.Plan["Shared Hit Blocks"] ?? 0) + (top.Plan["Shared Read Blocks"] ?? 0), ms: top["Execution Time"] }
  }
  // fresh statistics, as autovacuum's ANALYZE keeps them (the prepared plan is made again after it)
  await q(`ANALYZE ${n.job}`)
  await once()
  const { buffers, ms } = await once()
  const [size] = await q(`SELECT pg_relation_size('${n.job}') AS heap, pg_relation_size('${schema}.job_ready_idx') AS idx`)
  console.log(`| ${label} | ${buffers.toLocaleString("en-US")} | ${ms.toFixed(2)} | ${(Number(size!.heap) / 2 ** 20).toFixed(1)} / ${(Number(size!.idx) / 2 ** 20).toFixed(1)} MiB |`)
}

/** `k` jobs through the queue: inserted, claimed (worker_id set, as a claim does), deleted (as a settlement does). */
const passThrough = async (k: number) => {
  for (let done = 0; done < k; done += 10_000) {
    const size = Math.min(10_000, k - done)
    await insert(size)
    await q(`UPDATE ${n.job} SET worker_id = $1, claimed_at = now(), claims = claims + 1 WHERE worker_id IS NULL`, [worker])
    await q(`DELETE FROM ${n.job} WHERE worker_id = $1`, [worker])
  }
}

console.log(`claims of 100 ready jobs; ${hold ? "a snapshot held from the first step" : "no snapshot held (control)"}${floor ? "; the floored claim (its scan starts at the last claim's first job)" : ""}\n`)
console.log(`| jobs through the queue | buffers per claim | claim execution (ms) | job heap / job_ready_idx |`)
console.log(`|---|---:|---:|---:|`)
await q(`VACUUM ANALYZE ${n.job}`)
await measure("0")
if (hold) {
  await holder.query("BEGIN ISOLATION LEVEL REPEATABLE READ")
  await holder.query("SELECT txid_current()")
}
let total = 0
for (const step of steps) {
  await passThrough(step - total)
  total = step
  await measure(`${step.toLocaleString("en-US")}${hold ? ", snapshot held" : ""}`)
}
if (hold) await holder.query("ROLLBACK")
await measure(`${total.toLocaleString("en-US")}, released, before VACUUM`)
await q(`VACUUM ${n.job}`)
await measure(`${total.toLocaleString("en-US")}, released, after VACUUM`)

await q(`DROP SCHEMA ${n.schema} CASCADE`)
await client.end()
await holder.end()
