/**
 * The server-side cost of one job's cycle (a bulk insert of 1,000, single inserts, claims of 100, settlements
 * of 100) on this checkout's schema and statements against a baseline checkout's (7538d7a, the commit before
 * flow control): medians of many `EXPLAIN (ANALYZE, TIMING OFF)` execution times of the prepared statements,
 * in scratch schemas, interleaved. Much steadier than the end-to-end benchmark on a noisy machine, since it
 * leaves out the client, the network and the scheduler. The baseline's `enqueue.ts` must export `oneSql` and
 * `payloadsSql` (at 7538d7a they are module-private: the script exports them in the checkout it makes).
 *
 *     git worktree add /tmp/cuckmq-base 7538d7a && ln -s "$PWD/node_modules" /tmp/cuckmq-base/node_modules
 *     npx tsx bench/statement-cost.ts /tmp/cuckmq-base
 */
import * as fs from "node:fs"
import * as path from "node:path"
import pg from "pg"
import * as NewDdl from "../src/internal/pg/ddl.js"
import { claimSql as newClaim, plainClaimSql as newPlain } from "../src/internal/pg/claim.js"
import { oneSql as newOne, payloadsSql as newPayloads } from "../src/internal/pg/enqueue.js"
import { settleUngroupedSql as newSettle } from "../src/internal/pg/settle.js"
import { names as newNames } from "../src/internal/pg/sql.js"

const base = process.argv[2]
if (base === undefined) throw new Error("usage: npx tsx bench/statement-cost.ts <baseline checkout>")
const enqueueFile = path.join(base, "src/internal/pg/enqueue.ts")
fs.writeFileSync(enqueueFile, fs.readFileSync(enqueueFile, "utf8")
  .replace(/^const (oneSql|payloadsSql) =/gm, "export const $1 ="))
const OldDdl = await import(path.join(base, "src/internal/pg/ddl.ts"))
const { claimSql: oldClaim } = await import(path.join(base, "src/internal/pg/claim.ts"))
const { oneSql: oldOne, payloadsSql: oldPayloads } = await import(enqueueFile)
const { settleUngroupedSql: oldSettle } = await import(path.join(base, "src/internal/pg/settle.ts"))
const { names: oldNames } = await import(path.join(base, "src/internal/pg/sql.ts"))
const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const c = new pg.Client({ connectionString: url, options: "-c plan_cache_mode=force_generic_plan -c jit=off" })
await c.connect()
const q = (t: string, p: unknown[] = []) => c.query(t, p).then((r) => r.rows)
const W = "00000000-0000-0000-0000-000000000001"
for (const s of ["cuckmq_cost_old", "cuckmq_cost_new"]) await q(`DROP SCHEMA IF EXISTS ${s} CASCADE`)
for (const [, , st] of OldDdl.migrations("cuckmq_cost_old") as Array<[number, string, Array<string>]>) for (const s of st) await q(s)
for (const [, , st] of NewDdl.migrations("cuckmq_cost_new")) for (const s of st) await q(s)
for (const s of ["cuckmq_cost_old", "cuckmq_cost_new"]) {
  await q(`INSERT INTO ${s}.worker (id, name, hostname, pid, channels, expires_at) VALUES ('${W}','w','h',1,'{a}', now() + interval '1 day')`)
  await q(`INSERT INTO ${s}.job_definition (name, channel, num_attempts, timeout_secs) VALUES ('d', 'a', 1, 60)`)
}
const on = { old: oldNames("cuckmq_cost_old"), new: newNames("cuckmq_cost_new") }
const sys = {
  old: { s: "cuckmq_cost_old", prep: [
    `PREPARE bulk(text, text) AS ${oldPayloads(on.old)}`,
    `PREPARE one(text, text, text, float8, text, text) AS ${oldOne(on.old)}`,
    `PREPARE cl(uuid, text, int) AS ${oldClaim(on.old, false, false)}`,
    `PREPARE st(uuid, bigint[], int[], text[], text[], bigint[], bigint[], bigint[], boolean) AS ${oldSettle(on.old)}`],
    bulk: `EXECUTE bulk('d', 'PAYLOADS')`, one: `EXECUTE one('d', NULL, '{"i":1}', 0, NULL, NULL)`, claim: `EXECUTE cl('${W}', 'a', 100)` },
  new: { s: "cuckmq_cost_new", prep: [
    `PREPARE bulk(text, text, int) AS ${newPayloads(on.new)}`,
    `PREPARE one(text, text, text, float8, text, text, int, float8) AS ${newOne(on.new, false)}`,
    `PREPARE cl(uuid, text[], int, float8) AS ${newClaim(on.new, false, false, false)}`,
    `PREPARE pl(uuid, text[], int, float8) AS ${newPlain(on.new, false)}`,
    `PREPARE st(uuid, bigint[], int[], text[], text[], bigint[], bigint[], boolean, text[]) AS ${newSettle(on.new, "cuckmq!cuckmq_cost_new")}`],
    bulk: `EXECUTE bulk('d', 'PAYLOADS', 0)`, one: `EXECUTE one('d', NULL, '{"i":1}', 0, NULL, NULL, 0, NULL)`, claim: `EXECUTE cl('${W}', '{a}', 100, 60)`, plain: `EXECUTE pl('${W}', '{a}', 100, 60)` }
} as const
const res: Record<string, Record<string, Array<number>>> = { old: { bulk: [], one: [], claim: [], settle: [] }, new: { bulk: [], one: [], claim: [], plain: [], settle: [] } }
const ex = async (text: string, params: unknown[] = []) => {
  const plan = await q(`EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) ${text}`, params)
  return (plan[0]!["QUERY PLAN"] as Array<{ "Execution Time": number }>)[0]!["Execution Time"]
}
const payloads = JSON.stringify(Array.from({ length: 1000 }, (_, i) => ({ i })))
for (const k of ["old", "new"] as const) for (const p of sys[k].prep) { await q(`SET search_path = public`); await q(p.replace("PREPARE ", `PREPARE ${k}_`)) }
for (let round = 0; round < 12; round++) {
  for (const k of ["old", "new"] as const) {
    const x = sys[k]
    const P = (t: string) => t.replace("EXECUTE ", `EXECUTE ${k}_`)
    await q(`TRUNCATE ${x.s}.job, ${x.s}.job_finalized`)
    await q(`VACUUM ANALYZE ${x.s}.job`)
    for (let i = 0; i < 4; i++) res[k]!.bulk!.push(await ex(P(x.bulk).replace('PAYLOADS', payloads)))
    for (let i = 0; i < 50; i++) res[k]!.one!.push(await ex(P(x.one)))
    for (let i = 0; i < 20; i++) {
      // the new checkout's claims alternate between its full shape and its plain one (what a worker
      // draining plain work runs); the baseline has one
      const plain = "plain" in x && i % 2 === 1
      res[k]![plain ? "plain" : "claim"]!.push(await ex(P(plain ? x.plain : x.claim)))
      const rows = await q(`SELECT id, claims FROM ${x.s}.job WHERE worker_id = '${W}'`)
      const ids = rows.map((r) => r.id), claims = rows.map((r) => r.claims)
      const arr = (xs: Array<unknown>) => `'{${xs.map((v) => `"${v}"`).join(",")}}'`
      // the new settlement (settle_v4's semantics) takes no ids to send back, and per-job results as a 9th
      // parameter (NULL: none, as a batch of successes without a success Schema sends)
      const t = await ex(`EXECUTE ${k}_st('${W}', ${arr(ids)}, ${arr(claims)}, ${arr(ids.map(() => "Succeeded"))}, ${arr(ids.map(() => ""))}, '{}', ${arr(ids)}, ${k === "new" ? "true, NULL" : "'{}', true"})`)
      res[k]!.settle!.push(t)
    }
  }
}
const med = (a: Array<number>) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!
for (const op of ["bulk", "one", "claim", "plain", "settle"]) {
  const o = med(res.old![op === "plain" ? "claim" : op]!), n = med(res.new![op]!)
  const label = op === "claim" ? "claim (full shape)" : op === "plain" ? "claim (plain shape)" : op
  console.log(`${label.padEnd(20)} old ${o.toFixed(3)} ms  new ${n.toFixed(3)} ms  new/old ${(n / o).toFixed(3)}`)
}
for (const s of ["cuckmq_cost_old", "cuckmq_cost_new"]) await q(`DROP SCHEMA IF EXISTS ${s} CASCADE`)
await c.end()
