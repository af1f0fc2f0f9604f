/**
 * What one admin refresh (`CuckmqAdmin.statistics`) costs the database on 1,000,000 waiting jobs (half due,
 * half delayed) in one channel shared by two definitions: the shared buffers of each statement
 * (EXPLAIN ANALYZE, BUFFERS) and the time of 25 refreshes. The argument is the number of priority levels.
 *
 *     npx tsx bench/admin-cost.ts 1
 *     npx tsx bench/admin-cost.ts 3
 */
import pg from "pg"
import { migrations } from "../src/internal/pg/ddl.js"
import { refreshStatements } from "../src/internal/pg/admin.js"
import { names } from "../src/internal/pg/sql.js"

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const schema = "cuckmq_admin_cost_tmp"
const n = names(schema)
const client = new pg.Client({ connectionString: url })
await client.connect()
const q = (text: string, values: Array<unknown> = []) => client.query(text, values).then((r) => r.rows)
await q(`DROP SCHEMA IF EXISTS ${n.schema} CASCADE`)
for (const [, , statements] of migrations(schema)) for (const s of statements) await q(s)
await q(`INSERT INTO ${n.definition} (name, channel, num_attempts, timeout_secs) VALUES ('a', 'main', 1, 60), ('b', 'main', 1, 60)`)
const levels = Number(process.argv[2] ?? 1)
await q(`INSERT INTO ${n.job} (name, channel, payload, max_attempts, timeout_secs, priority, run_at, sort_at)
  SELECT CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END, 'main', '{}', 1, 60, (i % ${levels}),
    now() + (i - 500000) * interval '10 ms', now() + (i - 500000) * interval '10 ms'
  FROM generate_series(1, 1000000) i`)
await q(`VACUUM ANALYZE ${n.job}`)
const s = refreshStatements(schema)
const cap = 10_000
const statements: Array<[string, string, Array<unknown>]> = [
  ["definitions", s.definitionsSql, []],
  ["settings", s.channelSettingsSql, []],
  ["ready channels", s.readyChannelsSql, []],
  ["running", s.runningSql, []],
  ["held", s.heldSql, [cap + 1]],
  ["counts", s.channelCountsSql, [["main"], cap + 1, ["main"]]],
  ["minutes", s.minutesSql, [3600]]
]
const refresh = async (explain: boolean) => {
  await q("BEGIN")
  await q("SELECT set_config('jit', 'off', true)")
  let buffers = 0
  for (const [name, text, params] of statements) {
    if (explain) {
      const plan = await q(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${text}`, params)
      const top = (plan[0] as any)["QUERY PLAN"][0].Plan
      const b = top["Shared Hit Blocks"] + top["Shared Read Blocks"]
      buffers += b
      console.log(name, b)
    } else await q(text, params)
  }
  await q("COMMIT")
  return buffers
}
for (let i = 0; i < 3; i++) await refresh(false)
console.log("buffers", await refresh(true))
const times: Array<number> = []
for (let i = 0; i < 25; i++) {
  const t = performance.now()
  await refresh(false)
  times.push(performance.now() - t)
}
times.sort((x, y) => x - y)
console.log("levels", levels, "median ms", times[12]!.toFixed(1), "min", times[0]!.toFixed(1), "max", times[24]!.toFixed(1))
await q(`DROP SCHEMA IF EXISTS ${n.schema} CASCADE`)
await client.end()
