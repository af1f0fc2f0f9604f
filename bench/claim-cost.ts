/**
 * What one claim costs the database, with and without a large group backlog (issue 12: "large group backlogs
 * cost nothing"). In a scratch schema, migrated with the package's own migrations, it runs the real claim
 * statement (src/internal/pg/claim.ts, prepared, generic plan, as the store runs it) and reports, per claim:
 * the shared buffers it touched (EXPLAIN (ANALYZE, BUFFERS): a count, repeatable on any machine) and its
 * median and p99 round trip over many claims (a time, noisy).
 *
 * Three states, each with 100 ready ungrouped jobs per claim to take:
 * - empty: nothing else in the queue;
 * - backlog: one group holding `--backlog` waiting jobs (default 1,000,000) behind one running job of the
 *   group, inserted through the package's own bulk insert, so that they are held as enqueue holds them;
 * - backlog, no ANALYZE: the same, before statistics were gathered (autovacuum off on the table; each
 *   phase starts with a plain VACUUM, which gathers no column statistics).
 *
 *     npx tsx bench/claim-cost.ts [--backlog=1000000] [--claims=300]
 */
import pg from "pg"
import { claimSql } from "../src/internal/pg/claim.js"
import { migrations } from "../src/internal/pg/ddl.js"
import { manySql } from "../src/internal/pg/enqueue.js"
import { names } from "../src/internal/pg/sql.js"

const arg = (name: string, fallback: number) => {
  const found = process.argv.find((a) => a.startsWith(`--${name}=`))
  return found === undefined ? fallback : Number(found.slice(name.length + 3))
}
const backlog = arg("backlog", 1_000_000)
const claims = arg("claims", 300)
const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const schema = "cuckmq_claim_cost"
const n = names(schema)
const worker = "00000000-0000-0000-0000-0000000000c1"

const client = new pg.Client({ connectionString: url, options: "-c plan_cache_mode=force_generic_plan" })
await client.connect()
const q = (text: string, values: Array<unknown> = []) => client.query(text, values).then((r) => r.rows)

await q(`DROP SCHEMA IF EXISTS ${n.schema} CASCADE`)
for (const [, , statements] of migrations(schema)) for (const s of statements) await q(s)
await q(`ALTER TABLE ${n.job} SET (autovacuum_enabled = false)`)
await q(`INSERT INTO ${n.worker} (id, name, hostname, pid, channels, expires_at)
  VALUES ($1, 'claim-cost', 'localhost', 1, '{_default}', now() + interval '1 day')`, [worker])
await q(`INSERT INTO ${n.definition} (name, channel, num_attempts, timeout_secs) VALUES ('job', '_default', 1, 60)`)

// the shape a worker of one channel uses once it knows the channel is not rate limited
const claim = claimSql(n, false, false, false)
const params = [worker, ["_default"], 100, 60]

/** Refills 100 ready ungrouped jobs, then measures `claims` claims of them (each refill not timed). */
const measure = async (label: string) => {
  // dead rows of the previous phase out of the way (VACUUM alone gathers no column statistics)
  await q(`VACUUM ${n.job}`)
  const times: Array<number> = []
  let buffers = 0
  for (let i = 0; i < claims; i++) {
    await q(`INSERT INTO ${n.job} (name, channel, payload, max_attempts, timeout_secs)
      SELECT 'job', '_default', '{}', 1, 60 FROM generate_series(1, 100)`)
    if (i === claims - 1) {
      // the last one explained: the buffers it touched (shared hits and reads)
      // (EXECUTE takes no bind parameters: the values are this script's constants)
      const plan = await q(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE cuckmq_claim('${worker}', '{_default}', 100, 60)`)
      const top = (plan[0]!["QUERY PLAN"] as Array<{ Plan: Record<string, number> }>)[0]!.Plan
      buffers = (top["Shared Hit Blocks"] ?? 0) + (top["Shared Read Blocks"] ?? 0)
      await q(`DELETE FROM ${n.job} WHERE worker_id = $1`, [worker])
      continue
    }
    const start = process.hrtime.bigint()
    const rows = await client.query({ name: "claim", text: claim, values: params })
    times.push(Number(process.hrtime.bigint() - start) / 1e6)
    if (rows.rowCount !== 100) throw new Error(`${label}: a claim took ${rows.rowCount} jobs, expected 100`)
    await q(`DELETE FROM ${n.job} WHERE worker_id = $1`, [worker])
  }
  times.sort((a, b) => a - b)
  const at = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))]!.toFixed(3)
  console.log(`| ${label} | ${buffers} | ${at(0.5)} | ${at(0.99)} |`)
}

await q(`PREPARE cuckmq_claim(uuid, text[], int, float8) AS ${claim}`)
console.log(`claims of 100 ready jobs, ${claims} per state; buffers: shared blocks touched by one claim\n`)
console.log(`| queue state | buffers per claim | claim p50 (ms) | claim p99 (ms) |`)
console.log(`|---|---:|---:|---:|`)
await q(`ANALYZE ${n.job}`)
await measure("empty")

// one running job of group "big" (holding its only slot), then the backlog through the bulk insert
await q(`INSERT INTO ${n.job} (name, channel, job_group, payload, max_attempts, timeout_secs, worker_id, claims,
  claimed_at, group_slot) VALUES ('job', '_default', 'big', '{}', 1, 60, $1, 1, now(), true)`, [worker])
await q(`INSERT INTO ${n.group} (name, running) VALUES ('big', 1)`)
const many = manySql(n)
const chunk = 10_000
for (let done = 0; done < backlog; done += chunk) {
  const size = Math.min(chunk, backlog - done)
  await q(many, [
    "job",
    JSON.stringify(Array.from({ length: size }, (_, i) => ({ i: done + i }))),
    Array.from({ length: size }, () => "0"),
    Array.from({ length: size }, () => "big"),
    Array.from({ length: size }, () => ""),
    Array.from({ length: size }, () => ""),
    Array.from({ length: size }, () => 0)
  ])
}
const [held] = await q(`SELECT count(*) FILTER (WHERE held)::int AS held, count(*)::int AS total FROM ${n.job}`)
console.log(`\n(backlog: ${held!.total} jobs in the table, ${held!.held} of them held)\n`)
// the running job must stay: only the claimed ungrouped ones are deleted after each claim
await q(`UPDATE ${n.job} SET worker_id = '00000000-0000-0000-0000-0000000000c2' WHERE job_group = 'big' AND worker_id IS NOT NULL`)
await measure(`${backlog.toLocaleString("en-US")} held in one group, before ANALYZE`)
await q(`ANALYZE ${n.job}`)
await measure(`${backlog.toLocaleString("en-US")} held in one group, after ANALYZE`)

await q(`DROP SCHEMA ${n.schema} CASCADE`)
await client.end()
