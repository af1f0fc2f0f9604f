/**
 * The soak workloads (issue 14, "bloat and vacuum"): `soak` and `soak-xmin`.
 *
 * A producer keeps the queue fed for `minutes` while workers (concurrency 10, in the same process) drain it:
 * - rate mode (`--soak-rate=N`, default 1,000/s): N jobs/s enqueued on a fixed schedule (a bulk call every
 *   50 ms with the jobs due by then), so the test measures keeping up, not capacity;
 * - capacity mode (`--soak-rate=max`): a standing backlog refilled to `depth` waiting jobs (bulk calls of at
 *   most 1,000), so the workers drain as fast as they can: jobs/s is the capacity under the conditions of
 *   the moment (the figure a held xmin hurts).
 *
 * `soak-xmin` is the same with a held snapshot in the middle: a separate connection to the system's database
 * runs `BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT txid_current()` and stays idle in that transaction
 * for `xminMinutes`, then rolls back: vacuum cannot remove any row version deleted after it began. `soak`
 * marks the same time windows without holding anything: the control.
 *
 * Every `sampleSecs` a sample: jobs enqueued and started in the interval, enqueue→start latency p50/p99 of
 * the jobs started in it (log histogram, 1% resolution), the queue depth (enqueued − started, counted in
 * this process), and per relation of the system's database (each system has a database of its own): total
 * size, heap size, index size, live and dead tuples and autovacuum runs (pg_stat_user_tables), plus every
 * index's size. The parent (run.ts) writes the samples as CSV and prints the summary with ratios to cuckmq
 * (`renderSoak`).
 */
import * as fs from "node:fs"
import { performance } from "node:perf_hooks"
import pg from "pg"
import type { Check } from "./protocol.js"
import type { Env } from "./workloads.js"

// ---------------------------------------------------------------- types shared with run.ts

/** The soak workloads' options (`--soak-*`, `--xmin-*` flags of run.ts). */
export interface SoakSizes {
  /** Length of the whole soak. */
  readonly minutes: number
  /** Length of the held transaction (soak-xmin), and of the control window (soak). */
  readonly xminMinutes: number
  /** When the held transaction begins, from the start; default: centred, (minutes − xminMinutes) / 2. */
  readonly xminStartMinutes: number
  /** Jobs/s of the producer; "max": capacity mode (backlog refilled to `depth`). */
  readonly rate: number | "max"
  /** Waiting jobs kept in capacity mode. */
  readonly depth: number
  readonly sampleSecs: number
  /** The retention of finalized jobs asked of the systems that keep them (cuckmq, pg-boss). */
  readonly retentionSecs: number
  readonly concurrency: number
}

/** One relation (table or index) of the system's database at one sample. */
export interface SoakRelation {
  readonly name: string
  readonly kind: "table" | "index"
  /** Table: pg_total_relation_size (heap + indexes + toast); index: pg_relation_size. */
  readonly bytes: number
  readonly heapBytes?: number | undefined
  readonly indexBytes?: number | undefined
  readonly live?: number | undefined
  readonly dead?: number | undefined
  readonly autovacuums?: number | undefined
}

export type SoakPhase = "warmup" | "before" | "hold" | "after"

export interface SoakSample {
  /** Seconds from the start, at the end of the interval. */
  readonly t: number
  readonly phase: SoakPhase
  readonly enqueuedPerSec: number
  readonly startedPerSec: number
  readonly depth: number
  readonly p50: number
  readonly p99: number
  /** Sum over the database's tables. */
  readonly bytes: number
  readonly dead: number
  readonly relations: ReadonlyArray<SoakRelation>
}

export interface SoakSummary {
  readonly beforePerSec: number
  readonly holdPerSec: number
  /** The lowest sample of the hold window. */
  readonly holdMinPerSec: number
  readonly afterPerSec: number
  readonly beforeP99: number
  readonly holdP99: number
  readonly afterP99: number
  readonly maxDepth: number
  /** Database bytes at the start of the hold window (steady state), the most seen, and `afterMinutes` after it ends. */
  readonly steadyBytes: number
  readonly maxBytes: number
  readonly afterBytes: number
  readonly afterMinutes: number
  readonly endBytes: number
  readonly maxDead: number
}

/** The outcome of a soak workload (an `Outcome` of kind "soak"). */
export interface SoakOutcome {
  readonly kind: "soak"
  readonly mode: string
  readonly held: boolean
  readonly seconds: number
  readonly enqueued: number
  readonly started: number
  readonly summary: SoakSummary
  readonly samples: ReadonlyArray<SoakSample>
  readonly check: Check
  readonly note?: string | undefined
}

// ---------------------------------------------------------------- measuring

/** Latencies in buckets 1% apart, from 0.01 ms. */
class Histogram {
  private static readonly base = Math.log(1.01)
  private readonly counts = new Float64Array(2400)
  n = 0
  add(ms: number): void {
    const b = ms <= 0.01 ? 0 : Math.min(this.counts.length - 1, Math.ceil(Math.log(ms / 0.01) / Histogram.base))
    this.counts[b]!++
    this.n++
  }
  merge(other: Histogram): void {
    for (let b = 0; b < this.counts.length; b++) this.counts[b]! += other.counts[b]!
    this.n += other.n
  }
  percentile(p: number): number {
    if (this.n === 0) return NaN
    const rank = Math.ceil((p / 100) * this.n)
    let seen = 0
    for (let b = 0; b < this.counts.length; b++) {
      seen += this.counts[b]!
      if (seen >= rank) return 0.01 * Math.exp(b * Histogram.base)
    }
    return NaN
  }
}

const CHUNK_BITS = 20
const CHUNK = 1 << CHUNK_BITS

/** Enqueue times and handler calls of an unbounded run of job indexes, in chunks dropped once all their jobs ran. */
class Tracker {
  private readonly chunks = new Map<number, { readonly times: Float64Array; readonly seen: Uint8Array; left: number }>()
  enqueued = 0
  started = 0
  duplicates = 0
  unexpected = 0
  interval = new Histogram()

  /** Reserves the next `n` indexes, enqueued now. */
  reserve(n: number): Array<number> {
    const now = performance.now()
    const out: Array<number> = []
    for (let k = 0; k < n; k++) {
      const i = this.enqueued++
      const c = i >> CHUNK_BITS
      let chunk = this.chunks.get(c)
      if (chunk === undefined) {
        chunk = { times: new Float64Array(CHUNK), seen: new Uint8Array(CHUNK), left: CHUNK }
        this.chunks.set(c, chunk)
      }
      chunk.times[i & (CHUNK - 1)] = now
      out.push(i)
    }
    return out
  }

  readonly onJob = (i: number): void => {
    if (!Number.isInteger(i) || i < 0 || i >= this.enqueued) {
      this.unexpected++
      return
    }
    const chunk = this.chunks.get(i >> CHUNK_BITS)
    const j = i & (CHUNK - 1)
    if (chunk === undefined || chunk.seen[j] === 1) {
      this.duplicates++ // a dropped chunk's jobs had all run
      return
    }
    chunk.seen[j] = 1
    this.started++
    this.interval.add(performance.now() - chunk.times[j]!)
    if (--chunk.left === 0) this.chunks.delete(i >> CHUNK_BITS)
  }
}

const relationsSql = `
SELECT c.oid::regclass::text AS name, pg_total_relation_size(c.oid)::float8 AS bytes,
  pg_relation_size(c.oid)::float8 AS heap, pg_indexes_size(c.oid)::float8 AS idx,
  s.n_live_tup::float8 AS live, s.n_dead_tup::float8 AS dead, s.autovacuum_count::float8 AS autovacuums
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1`
const indexesSql = `
SELECT c.oid::regclass::text AS name, pg_relation_size(c.oid)::float8 AS bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'i' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1`

const relations = async (client: pg.Client): Promise<Array<SoakRelation>> => {
  const tables = await client.query<Record<string, string | number | null>>(relationsSql)
  const indexes = await client.query<{ name: string; bytes: number }>(indexesSql)
  return [
    ...tables.rows.map((r): SoakRelation => ({
      name: String(r.name),
      kind: "table",
      bytes: Number(r.bytes),
      heapBytes: Number(r.heap),
      indexBytes: Number(r.idx),
      live: Number(r.live ?? 0),
      dead: Number(r.dead ?? 0),
      autovacuums: Number(r.autovacuums ?? 0)
    })),
    ...indexes.rows.map((r): SoakRelation => ({ name: r.name, kind: "index", bytes: Number(r.bytes) }))
  ]
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const mean = (xs: ReadonlyArray<number>): number => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length)

/** Runs `soak` (held = false) or `soak-xmin` (held = true). */
export const soak = async (env: Env, held: boolean): Promise<SoakOutcome> => {
  const o = env.sizes.soak
  if (o === undefined) throw new Error("the soak workloads need Sizes.soak")
  const log = (text: string) => process.stderr.write(`    [soak ${env.definition.name}] ${text}\n`)
  await env.prepare("purge")
  await env.prepare("tidy")
  const adapter = env.adapter
  const tracker = new Tracker()
  const totalMs = o.minutes * 60_000
  const holdFrom = o.xminStartMinutes * 60_000
  const holdTo = holdFrom + o.xminMinutes * 60_000
  const warmupMs = Math.min(60_000, holdFrom / 4)
  const phaseAt = (ms: number): SoakPhase =>
    ms <= warmupMs ? "warmup" : ms <= holdFrom ? "before" : ms <= holdTo ? "hold" : "after"

  const stats = new pg.Client({ connectionString: env.ctx.databaseUrl })
  await stats.connect()
  const autovacuum = (await stats.query<{ v: string }>("SELECT current_setting('autovacuum') AS v")).rows[0]?.v
  if (autovacuum !== "on") log("WARNING: autovacuum is off on this server: the soak measures bloat without vacuum (bench/soak-pg.sh starts a server with stock settings)")
  const holder = new pg.Client({ connectionString: env.ctx.databaseUrl })
  await holder.connect()
  let producerError: unknown

  const workers = await adapter.startWorkers(o.concurrency, tracker.onJob)
  const bulk = adapter.enqueueBulk
  const enqueue = async (n: number): Promise<void> => {
    for (let left = n; left > 0;) {
      const k = Math.min(1000, left)
      left -= k
      const is = tracker.reserve(k)
      if (bulk) await bulk(is)
      else await Promise.all(is.map((i) => adapter.enqueue(i)))
    }
  }
  if (o.rate === "max") await enqueue(o.depth)
  const t0 = performance.now()
  let stopping = false
  const producer = (async () => {
    while (!stopping) {
      const elapsed = performance.now() - t0
      const due = o.rate === "max"
        ? o.depth - (tracker.enqueued - tracker.started)
        : Math.floor((o.rate * elapsed) / 1000) - tracker.enqueued
      if (due >= (o.rate === "max" ? Math.min(100, o.depth) : 1)) await enqueue(due)
      else await sleep(o.rate === "max" ? 10 : 50)
    }
  })().catch((e) => {
    producerError = e
    log(`producer failed: ${e instanceof Error ? e.message : String(e)}`)
  })

  const holding = (async () => {
    if (!held) return
    await sleep(holdFrom - (performance.now() - t0))
    await holder.query("BEGIN ISOLATION LEVEL REPEATABLE READ")
    const { rows } = await holder.query<{ xid: string }>("SELECT txid_current()::text AS xid")
    log(`holding a snapshot (txid ${rows[0]?.xid}) for ${o.xminMinutes} min`)
    await sleep(holdTo - (performance.now() - t0))
    await holder.query("ROLLBACK")
    log("released the snapshot")
  })()

  const samples: Array<SoakSample> = []
  const phaseHist: Record<SoakPhase, Histogram> = {
    warmup: new Histogram(),
    before: new Histogram(),
    hold: new Histogram(),
    after: new Histogram()
  }
  let lastEnq = 0
  let lastStarted = 0
  let lastT = 0
  for (let k = 1; k * o.sampleSecs * 1000 <= totalMs; k++) {
    await sleep(t0 + k * o.sampleSecs * 1000 - performance.now())
    const now = performance.now()
    const hist = tracker.interval
    tracker.interval = new Histogram()
    const enq = tracker.enqueued
    const started = tracker.started
    const secs = (now - t0 - lastT) / 1000
    const rels = await relations(stats).catch((e) => {
      log(`sizes failed: ${e instanceof Error ? e.message : String(e)}`)
      return []
    })
    const tables = rels.filter((r) => r.kind === "table")
    const sample: SoakSample = {
      t: Math.round((now - t0) / 100) / 10,
      phase: phaseAt(now - t0),
      enqueuedPerSec: (enq - lastEnq) / secs,
      startedPerSec: (started - lastStarted) / secs,
      depth: enq - started,
      p50: hist.percentile(50),
      p99: hist.percentile(99),
      bytes: tables.reduce((a, r) => a + r.bytes, 0),
      dead: tables.reduce((a, r) => a + (r.dead ?? 0), 0),
      relations: rels
    }
    phaseHist[sample.phase].merge(hist)
    samples.push(sample)
    log(
      `t=${sample.t}s ${sample.phase} enq ${Math.round(sample.enqueuedPerSec)}/s started ${Math.round(sample.startedPerSec)}/s depth ${sample.depth} p99 ${sample.p99.toFixed(1)} ms db ${(sample.bytes / 2 ** 20).toFixed(1)} MiB dead ${sample.dead}`
    )
    lastEnq = enq
    lastStarted = started
    lastT = now - t0
  }
  stopping = true
  await producer
  await holding.catch((e) => log(`holder failed: ${e instanceof Error ? e.message : String(e)}`))
  const seconds = (performance.now() - t0) / 1000
  // let the workers finish what was enqueued, then a short settle for late duplicates
  const drainUntil = performance.now() + 120_000
  while (tracker.started < tracker.enqueued && performance.now() < drainUntil) await sleep(50)
  await sleep(env.sizes.settleMs)
  await workers.stop()
  await stats.end().catch(() => {})
  await holder.end().catch(() => {})

  const of = (phase: SoakPhase) => samples.filter((s) => s.phase === phase)
  const hold = of("hold")
  const afterMinutes = Math.min(5, (totalMs - holdTo) / 60_000)
  const afterSample = samples.find((s) => s.t * 1000 >= holdTo + afterMinutes * 60_000 - 1) ?? samples[samples.length - 1]
  const steady = of("before").at(-1) ?? samples[0]
  const summary: SoakSummary = {
    beforePerSec: mean(of("before").map((s) => s.startedPerSec)),
    holdPerSec: mean(hold.map((s) => s.startedPerSec)),
    holdMinPerSec: Math.min(...hold.map((s) => s.startedPerSec)),
    afterPerSec: mean(of("after").map((s) => s.startedPerSec)),
    beforeP99: phaseHist.before.percentile(99),
    holdP99: phaseHist.hold.percentile(99),
    afterP99: phaseHist.after.percentile(99),
    maxDepth: Math.max(...samples.map((s) => s.depth)),
    steadyBytes: steady?.bytes ?? NaN,
    maxBytes: Math.max(...samples.map((s) => s.bytes)),
    afterBytes: afterSample?.bytes ?? NaN,
    afterMinutes,
    endBytes: samples.at(-1)?.bytes ?? NaN,
    maxDead: Math.max(...samples.map((s) => s.dead))
  }
  const missing = tracker.enqueued - tracker.started
  return {
    kind: "soak",
    mode: o.rate === "max" ? `capacity (depth ${o.depth})` : `rate ${o.rate}/s`,
    held,
    seconds,
    enqueued: tracker.enqueued,
    started: tracker.started,
    summary,
    samples,
    check: { duplicates: tracker.duplicates, missing, unexpected: tracker.unexpected },
    note: [
      ...(autovacuum !== "on" ? ["autovacuum was off on the server"] : []),
      ...(producerError === undefined ? [] : [`producer failed: ${String(producerError)}`])
    ].join("; ") || undefined
  }
}

// ---------------------------------------------------------------- reporting (run.ts)

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`
const int = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "–")
const ms = (x: number) => (!Number.isFinite(x) ? "–" : x < 100 ? `${x.toFixed(1)} ms` : x < 10_000 ? `${Math.round(x)} ms` : `${(x / 1000).toFixed(1)} s`)
const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : "–")

/** A system's soak outcome of one run, as run.ts collects them. */
export interface SoakCell {
  readonly system: string
  readonly label: string
  readonly run: number
  readonly workload: string
  readonly outcome: SoakOutcome
}

/**
 * The markdown section of the soak workloads: per workload one table, a column per system (first run of
 * each; later runs are in the CSV), with ratios to cuckmq where it ran.
 */
export const renderSoak = (cells: ReadonlyArray<SoakCell>, sizes: SoakSizes): string => {
  if (cells.length === 0) return ""
  const lines: Array<string> = []
  lines.push("## Soak")
  lines.push("")
  lines.push(
    `${sizes.minutes} min per system, ${sizes.rate === "max" ? `capacity mode (a backlog refilled to ${int(sizes.depth)} waiting jobs)` : `rate mode (${int(sizes.rate)} jobs/s enqueued in bulk every 50 ms)`}, workers at concurrency ${sizes.concurrency}; window (the held snapshot of soak-xmin, nothing held in soak) from minute ${sizes.xminStartMinutes} for ${sizes.xminMinutes} min; samples every ${sizes.sampleSecs} s; “before” excludes the first ${Math.min(60, (sizes.xminStartMinutes * 60) / 4)} s; finalized-job retention ${sizes.retentionSecs} s where the system keeps finalized jobs (cuckmq, pg-boss). Throughput ratios are to cuckmq.`
  )
  for (const workload of [...new Set(cells.map((c) => c.workload))]) {
    const row = cells.filter((c) => c.workload === workload && c.run === Math.min(...cells.filter((x) => x.workload === workload).map((x) => x.run)))
    const base = row.find((c) => c.system === "cuckmq")?.outcome.summary
    const ratio = (x: number, b: number | undefined) => (b !== undefined && b > 0 && Number.isFinite(x) ? ` (${(x / b).toFixed(2)}×)` : "")
    const metrics: Array<[string, (s: SoakSummary, o: SoakOutcome) => string]> = [
      ["jobs/s before", (s) => `${int(s.beforePerSec)}${ratio(s.beforePerSec, base?.beforePerSec)}`],
      ["jobs/s in the window", (s) => `${int(s.holdPerSec)}${ratio(s.holdPerSec, base?.holdPerSec)}`],
      ["lowest sample in the window", (s) => `${int(s.holdMinPerSec)}/s`],
      ["loss in the window vs before", (s) => pct(1 - s.holdPerSec / s.beforePerSec)],
      ["jobs/s after", (s) => `${int(s.afterPerSec)}${ratio(s.afterPerSec, base?.afterPerSec)}`],
      ["latency p99 before / window / after", (s) => `${ms(s.beforeP99)} / ${ms(s.holdP99)} / ${ms(s.afterP99)}`],
      ["most waiting jobs", (s) => int(s.maxDepth)],
      ["db size at window start (steady)", (s) => mib(s.steadyBytes)],
      ["db size, most", (s) => `${mib(s.maxBytes)} (${(s.maxBytes / s.steadyBytes).toFixed(2)}×)`],
      ["db size after the window", (s) => `${mib(s.afterBytes)} (${(s.afterBytes / s.steadyBytes).toFixed(2)}×, ${s.afterMinutes.toFixed(1)} min after)`],
      ["db size at the end", (s) => `${mib(s.endBytes)} (${(s.endBytes / s.steadyBytes).toFixed(2)}×)`],
      ["dead tuples, most", (s) => int(s.maxDead)],
      ["note", (_, o) => o.note ?? ""],
      ["jobs run (check)", (_, o) => `${int(o.started)} of ${int(o.enqueued)}${o.check.duplicates + o.check.missing + o.check.unexpected === 0 ? ", each once" : `, DUPLICATES ${o.check.duplicates}, MISSING ${o.check.missing}`}`]
    ]
    lines.push("")
    lines.push(`### ${workload}`)
    lines.push("")
    lines.push(`| | ${row.map((c) => c.label).join(" | ")} |`)
    lines.push(`|---|${row.map(() => "---:").join("|")}|`)
    for (const [label, f] of metrics) lines.push(`| ${label} | ${row.map((c) => f(c.outcome.summary, c.outcome)).join(" | ")} |`)
    // the largest relations at their peak
    lines.push("")
    lines.push("Largest relations (start of window → most → end), per system:")
    lines.push("")
    for (const c of row) {
      const peak = new Map<string, { start: number; max: number; end: number }>()
      const startSample = c.outcome.samples.filter((s) => s.phase === "before").at(-1) ?? c.outcome.samples[0]
      for (const s of c.outcome.samples) {
        for (const r of s.relations) {
          const p = peak.get(r.name) ?? { start: 0, max: 0, end: 0 }
          p.max = Math.max(p.max, r.bytes)
          p.end = r.bytes
          peak.set(r.name, p)
        }
      }
      for (const r of startSample?.relations ?? []) {
        const p = peak.get(r.name)
        if (p) p.start = r.bytes
      }
      const top = [...peak.entries()].sort((a, b) => b[1].max - a[1].max).slice(0, 6)
      lines.push(`- ${c.label}: ${top.map(([name, p]) => `\`${name}\` ${mib(p.start)} → ${mib(p.max)} → ${mib(p.end)}`).join("; ")}`)
    }
  }
  lines.push("")
  return lines.join("\n")
}

/** Writes the samples as two CSV files: `<base>.csv` (one row per sample) and `<base>-relations.csv`. */
export const writeSoakCsv = (cells: ReadonlyArray<SoakCell>, base: string): Array<string> => {
  if (cells.length === 0) return []
  const series = ["system,workload,run,mode,t_s,phase,enqueued_per_s,started_per_s,depth,p50_ms,p99_ms,db_bytes,dead_tuples"]
  const rels = ["system,workload,run,t_s,phase,relation,kind,bytes,heap_bytes,index_bytes,live,dead,autovacuums"]
  const f = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? "" : String(Math.round(x * 100) / 100))
  for (const c of cells) {
    for (const s of c.outcome.samples) {
      series.push(
        [c.system, c.workload, c.run, `"${c.outcome.mode}"`, s.t, s.phase, f(s.enqueuedPerSec), f(s.startedPerSec), s.depth, f(s.p50), f(s.p99), s.bytes, s.dead].join(",")
      )
      for (const r of s.relations) {
        rels.push([c.system, c.workload, c.run, s.t, s.phase, `"${r.name}"`, r.kind, r.bytes, f(r.heapBytes), f(r.indexBytes), f(r.live), f(r.dead), f(r.autovacuums)].join(","))
      }
    }
  }
  fs.writeFileSync(`${base}.csv`, series.join("\n") + "\n")
  fs.writeFileSync(`${base}-relations.csv`, rels.join("\n") + "\n")
  return [`${base}.csv`, `${base}-relations.csv`]
}
