/**
 * The hot statements' plans and buffers at each backlog size (issue 14, item 1), with and without ANALYZE.
 * In a scratch database of its own (`backlog_plans`, dropped at the end), a schema migrated with the
 * package's own migrations, the statements as the store sends them (prepared, `plan_cache_mode =
 * force_generic_plan`, `jit = off`, as src/internal/pg/store.ts sets them), each run through `EXPLAIN
 * (ANALYZE, BUFFERS)` over several rounds of one job cycle:
 *
 *   bulk enqueue of 100 · single enqueue · claim of 100 (plain and full shape, alternating) · settlement of
 *   those 100 (the plain statement and `settle_v4`, alternating) · heartbeat · rescue · finalized-jobs prune
 *
 * Scenarios: empty; 100,000 and 1,000,000 jobs waiting a year ahead (scheduled); 1,000,000 jobs due in the
 * same channel (a deep queue, claimed from its head); 1,000,000 finalized jobs at retention. Each scenario
 * in a fresh schema (autovacuum off on its tables) is measured twice: before any ANALYZE (the planner has no
 * column statistics, only the table's size) and after `ANALYZE`. Printed: shared buffers touched (hit + read:
 * a count, repeatable on any machine) and execution time, medians over the rounds, and the scans of each
 * plan (a sequential scan of a big table, or a plan that differs from the ANALYZEd one, is marked).
 *
 *     npx tsx bench/backlog-plans.ts [--rounds=12] [--scale=1]
 */
import pg from "pg"
import { claimSql, plainClaimSql } from "../src/internal/pg/claim.js"
import { migrations } from "../src/internal/pg/ddl.js"
import { oneSql, payloadsSql } from "../src/internal/pg/enqueue.js"
import { settleUngroupedSql } from "../src/internal/pg/settle.js"
import { lockNamespace, names, noticeChannel } from "../src/internal/pg/sql.js"
import { deleteFinalizedSqlOf } from "../src/internal/pg/schedule.js"
import { heartbeatSqlOf } from "../src/internal/pg/workers.js"

const arg = (name: string, fallback: number) => {
  const found = process.argv.find((a) => a.startsWith(`--${name}=`))
  return found === undefined ? fallback : Number(found.slice(name.length + 3))
}
const rounds = arg("rounds", 12)
const scale = arg("scale", 1)
const server = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
const database = "backlog_plans"
const schema = "_cuckmq"
const n = names(schema)
const W = "00000000-0000-0000-0000-0000000000b1"

const urlOf = (db: string) => {
  const u = new URL(server)
  u.pathname = `/${db}`
  return u.toString()
}
const admin = new pg.Client({ connectionString: server })
await admin.connect()
await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
await admin.query(`CREATE DATABASE ${database}`)

const c = new pg.Client({ connectionString: urlOf(database), options: "-c plan_cache_mode=force_generic_plan -c jit=off" })
await c.connect()
const q = (text: string, values: Array<unknown> = []) => c.query(text, values).then((r) => r.rows)

// the store's own statement texts (src/internal/pg/workers.ts, schedule.ts)
const heartbeatSql = heartbeatSqlOf(n)
const deleteFinalizedSql = deleteFinalizedSqlOf(n)

const prepared = [
  `PREPARE p_bulk(text, text, int) AS ${payloadsSql(n)}`,
  `PREPARE p_one(text, text, text, float8, text, text, int, float8) AS ${oneSql(n, false)}`,
  `PREPARE p_plain(uuid, text[], int, float8) AS ${plainClaimSql(n, false)}`,
  `PREPARE p_full(uuid, text[], int, float8) AS ${claimSql(n, false, false, false)}`,
  `PREPARE p_settle(uuid, bigint[], int[], text[], text[], bigint[], bigint[], boolean, text[]) AS ${settleUngroupedSql(n, noticeChannel(schema))}`,
  `PREPARE p_settle4(uuid, bigint[], int[], text[], text[], text[], text[], boolean) AS SELECT ${n.fn("settle_v4")}($1, $2, $3, $4, $5, $6, $7, $8) AS freed`,
  `PREPARE p_heartbeat(uuid, float8) AS ${heartbeatSql}`,
  `PREPARE p_rescue(float8, int, int, float8, boolean, float8) AS SELECT * FROM ${n.fn("rescue_v2")}($1, $2, $3, $4, $5, $6)`,
  `PREPARE p_prune(float8, int) AS ${deleteFinalizedSql}`
]
const statements = ["bulk", "one", "plain", "full", "settle", "settle4", "heartbeat", "rescue", "prune"] as const
type Statement = typeof statements[number]
const labels: Record<Statement, string> = {
  bulk: "enqueue, bulk of 100 (payloads)",
  one: "enqueue, single",
  plain: "claim of 100, plain shape",
  full: "claim of 100, full shape",
  settle: "settle 100 succeeded (plain statement)",
  settle4: "settle 100 succeeded (settle_v4)",
  heartbeat: "heartbeat",
  rescue: "rescue_v2 (nothing to rescue)",
  prune: "prune finalized (none due)"
}

interface PlanNode {
  readonly "Node Type": string
  readonly "Relation Name"?: string
  readonly "Index Name"?: string
  readonly "Shared Hit Blocks"?: number
  readonly "Shared Read Blocks"?: number
  readonly Plans?: ReadonlyArray<PlanNode>
}
/** The scans of a plan: "Index Scan job_ready_idx", "Seq Scan job", ... (sorted, with counts). */
const scans = (node: PlanNode, out: Array<string> = []): Array<string> => {
  if (node["Relation Name"] !== undefined || node["Index Name"] !== undefined) {
    const t = node["Node Type"]
    out.push(node["Index Name"] !== undefined ? `${t} ${node["Index Name"]}` : `${t} ${node["Relation Name"]}`)
  }
  for (const child of node.Plans ?? []) scans(child, out)
  return out
}
const summary = (list: ReadonlyArray<string>) => {
  const counts = new Map<string, number>()
  for (const s of list) counts.set(s, (counts.get(s) ?? 0) + 1)
  return [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([s, k]) => (k > 1 ? `${s} ×${k}` : s)).join(", ")
}

interface Sample {
  readonly buffers: number
  readonly ms: number
  readonly scans: string
}
const explain = async (execute: string): Promise<Sample & { rows: Array<Record<string, unknown>> }> => {
  const plan = await q(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${execute}`)
  const top = (plan[0]!["QUERY PLAN"] as Array<{ Plan: PlanNode; "Execution Time": number }>)[0]!
  return {
    buffers: (top.Plan["Shared Hit Blocks"] ?? 0) + (top.Plan["Shared Read Blocks"] ?? 0),
    ms: top["Execution Time"],
    scans: summary(scans(top.Plan)),
    rows: []
  }
}
const arr = (xs: ReadonlyArray<unknown>) => `'{${xs.map((v) => `"${v}"`).join(",")}}'`

const freshSchema = async () => {
  await q(`DROP SCHEMA IF EXISTS ${n.schema} CASCADE`)
  for (const [, , list] of migrations(schema)) for (const s of list) await q(s)
  for (const t of [n.job, n.finalized, n.group, n.worker]) await q(`ALTER TABLE ${t} SET (autovacuum_enabled = false)`)
  await q(`INSERT INTO ${n.definition} (name, channel, num_attempts, timeout_secs) VALUES ('bench', '_default', 1, 60)`)
  await q(`INSERT INTO ${n.worker} (id, name, hostname, pid, channels, expires_at)
    VALUES ($1, 'plans', 'localhost', 1, '{_default}', now() + interval '1 day')`, [W])
  // the prepared statements of the previous schema referred to its (dropped) tables
  await q("DEALLOCATE ALL")
  for (const p of prepared) await q(p)
}

/** Rows as the bulk enqueue writes them: `count` jobs due at `runAt` (an SQL expression). */
const fillJobs = async (count: number, runAt: string) => {
  for (let done = 0; done < count; done += 100_000) {
    const size = Math.min(100_000, count - done)
    await q(`INSERT INTO ${n.job} (name, channel, payload, run_at, sort_at, created_at, max_attempts, timeout_secs, priority)
      SELECT 'bench', '_default', jsonb_build_object('i', k), ${runAt}, ${runAt}, now(), 1, 60, 0
      FROM generate_series(1, ${size}) AS k`)
  }
}
const fillFinalized = async (count: number) => {
  await q(`INSERT INTO ${n.finalized} (id, name, channel, payload, attempts, max_attempts, claims, succeeded, created_at, finalized_at)
    SELECT nextval(pg_get_serial_sequence('${n.job}', 'id')), 'bench', '_default', jsonb_build_object('i', k), 1, 1, 1, true,
      now() - make_interval(secs => 82800.0 * (${count} - k) / ${count}) - interval '10 ms',
      now() - make_interval(secs => 82800.0 * (${count} - k) / ${count})
    FROM generate_series(1, ${count}) AS k`)
}

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** `rounds` job cycles; per statement: median buffers and time, and the scans of its last plan. */
const measure = async (): Promise<Record<Statement, Sample>> => {
  const samples = Object.fromEntries(statements.map((s) => [s, [] as Array<Sample>])) as Record<Statement, Array<Sample>>
  const payloads = JSON.stringify(Array.from({ length: 100 }, (_, i) => ({ i })))
  for (let r = 0; r < rounds; r++) {
    samples.bulk.push(await explain(`EXECUTE p_bulk('bench', '${payloads}', 0)`))
    samples.one.push(await explain(`EXECUTE p_one('bench', NULL, '{"i":1}', 0, NULL, NULL, 0, NULL)`))
    const shape = r % 2 === 0 ? "plain" : "full"
    samples[shape].push(await explain(`EXECUTE p_${shape}('${W}', '{_default}', 100, 60)`))
    const claimed = await q(`SELECT id, claims FROM ${n.job} WHERE worker_id = $1`, [W])
    if (claimed.length !== 100) throw new Error(`a claim took ${claimed.length} jobs, expected 100`)
    const ids = claimed.map((x) => x.id)
    const claims = claimed.map((x) => x.claims)
    const ok = ids.map(() => "Succeeded")
    const none = ids.map(() => "")
    samples[r % 2 === 0 ? "settle" : "settle4"].push(await explain(r % 2 === 0
      ? `EXECUTE p_settle('${W}', ${arr(ids)}, ${arr(claims)}, ${arr(ok)}, ${arr(none)}, '{}', ${arr(ids)}, true, NULL)`
      : `EXECUTE p_settle4('${W}', ${arr(ids)}, ${arr(claims)}, ${arr(ok)}, ${arr(none)}, NULL, NULL, true)`))
    const left = await q(`SELECT count(*)::int AS k FROM ${n.job} WHERE worker_id = $1`, [W])
    if (left[0]!.k !== 0) throw new Error(`${left[0]!.k} claimed jobs left after the settlement`)
    samples.heartbeat.push(await explain(`EXECUTE p_heartbeat('${W}', 86400)`))
    samples.rescue.push(await explain(`EXECUTE p_rescue(3600, 1000, ${lockNamespace(schema)}, 30, true, 0)`))
    samples.prune.push(await explain(`EXECUTE p_prune(86400, 1000)`))
  }
  return Object.fromEntries(statements.map((s) => {
    const xs = samples[s]
    return [s, { buffers: median(xs.map((x) => x.buffers)), ms: median(xs.map((x) => x.ms)), scans: xs[xs.length - 1]!.scans }]
  })) as Record<Statement, Sample>
}

const k = (x: number) => Math.round(x * scale)
/** `big`: the table the scenario makes big (a sequential scan of it is marked). */
const scenarios: ReadonlyArray<{ readonly label: string; readonly fill: () => Promise<void>; readonly big?: string }> = [
  { label: "empty", fill: async () => {} },
  { label: `${k(100_000).toLocaleString("en-US")} scheduled`, fill: () => fillJobs(k(100_000), "now() + interval '1 year'"), big: "job" },
  { label: `${k(1_000_000).toLocaleString("en-US")} scheduled`, fill: () => fillJobs(k(1_000_000), "now() + interval '1 year'"), big: "job" },
  { label: `${k(1_000_000).toLocaleString("en-US")} due`, fill: () => fillJobs(k(1_000_000), "now() - interval '1 hour'"), big: "job" },
  { label: `${k(1_000_000).toLocaleString("en-US")} finalized`, fill: () => fillFinalized(k(1_000_000)), big: "job_finalized" }
]

const results: Array<{ label: string; big: string | undefined; none: Record<Statement, Sample>; analyzed: Record<Statement, Sample> }> = []
for (const s of scenarios) {
  process.stderr.write(`${s.label}: filling\n`)
  await freshSchema()
  await s.fill()
  // hint bits and the visibility map set (a plain VACUUM gathers no column statistics)
  await q(`VACUUM ${n.job}`)
  await q(`VACUUM ${n.finalized}`)
  process.stderr.write(`${s.label}: before ANALYZE\n`)
  const none = await measure()
  await q(`ANALYZE`)
  process.stderr.write(`${s.label}: after ANALYZE\n`)
  const analyzed = await measure()
  results.push({ label: s.label, big: s.big, none, analyzed })
}

console.log(`Shared buffers touched per statement (median of ${rounds} rounds; claims and settlements alternate shapes, so ${Math.ceil(rounds / 2)} each), execution time in parentheses (ms, median; this machine, shared).\n`)
for (const state of ["none", "analyzed"] as const) {
  console.log(`### ${state === "none" ? "Before ANALYZE (no column statistics)" : "After ANALYZE"}\n`)
  console.log(`| statement | ${results.map((r) => r.label).join(" | ")} |`)
  console.log(`|---|${results.map(() => "---:").join("|")}|`)
  for (const st of statements) {
    console.log(`| ${labels[st]} | ${results.map((r) => `${r[state][st].buffers} (${r[state][st].ms.toFixed(2)})`).join(" | ")} |`)
  }
  console.log("")
}
console.log("### Scans of each plan\n")
console.log("The scans of the empty, ANALYZEd plan; then every scenario and state whose plan scans differently (⚠: a sequential scan of the table the scenario made big).\n")
for (const st of statements) {
  const base = results[0]!.analyzed[st].scans
  console.log(`- **${labels[st]}**: ${base || "(no scan)"}`)
  for (const r of results) {
    for (const state of ["none", "analyzed"] as const) {
      const x = r[state][st].scans
      if (x !== base) {
        const seq = r.big !== undefined && new RegExp(`Seq Scan ${r.big}(,|$| ×)`).test(x) ? " ⚠ (a sequential scan of the big table)" : ""
        console.log(`  - ${r.label}, ${state === "none" ? "before ANALYZE" : "after ANALYZE"}: ${x}${seq}`)
      }
    }
  }
}

await c.end()
await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
await admin.end()
