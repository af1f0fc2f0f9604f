/**
 * Chaos: worker processes SIGKILLed over and over during a drain, and some of their database connections
 * (pool connections and the liveness session's) terminated with `pg_terminate_backend`, with the default
 * `numAttempts: 1` and the default prefetch. Counted in the database at the end:
 *
 * - every enqueued job is finalized exactly once (none lost, none left, none twice);
 * - no job is finalized as failed without a handler start on record;
 * - no two runs of one job group overlap, and no two runs of one job overlap;
 * - a handler that completed in a process that was never killed is not run to completion again.
 *
 * The evidence of a handler start is the worker process's own log (a synchronous write as the handler is
 * called, see fixtures/chaos-worker.ts), loaded into the `starts` table at the end; `runs` is what the
 * handlers wrote to the database themselves. A run that never ended belongs to a killed process; its
 * interval ends when the test saw the process exit (after it really died, and seconds before a rescue can
 * hand its jobs to anyone else).
 *
 * The drain: 4 worker processes (some with two workers, some with an Orchestrator), concurrency 10, default
 * prefetch and lease, heartbeats every second (a job running over a second gets its start marked). Each
 * round tops the backlog up (bulk and single enqueues), waits 1-2 s, SIGKILLs a random ready process and
 * starts a replacement, and sometimes terminates a random connection of a ready process: a pool connection
 * (application name `chaos:<schema>:<pid>`) or its liveness session's (the backend holding the process's
 * advisory lock in the schema's namespace). After the last round the survivors drain everything and are
 * stopped with SIGTERM.
 *
 * The test's choices (job durations and groups, when and whom to kill, which connections to terminate) are
 * drawn from a seeded PRNG: CHAOS_SEED replays them (the processes' own timing is not replayable).
 * CHAOS_ROUNDS sets the number of kills (12), CHAOS_BACKLOG the backlog kept during the rounds (400), and
 * CHAOS_KEEP=1 keeps the schema and the logs for a post-mortem. Nothing asserts how long anything took;
 * deadlines are hang guards.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Exit, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { Cuckmq, Migrations } from "../src/index.js"
import { lockNamespace } from "../src/internal/pg/sql.js"
import { Chaos } from "./fixtures/chaos-worker.js"
import { random } from "./support/faults.js"
import { count, waitUntil } from "./support/harness.js"
import { databaseUrl, PgTest, uniqueSchema } from "./support/pg.js"
import { type Child, spawnFixture } from "./support/processes.js"

const PROCESSES = 4

/** JSON for a report: bigints as numbers. */
const json = (value: unknown) => JSON.stringify(value, (_, v) => typeof v === "bigint" ? Number(v) : v, 1)
const GROUPS = 5

interface Proc {
  readonly child: Child
  readonly orchestrator: boolean
  readonly workers: number
  ready: boolean
  killed: boolean
  /** Set once the process exited (its code or signal). */
  exit: number | string | undefined
}

interface Start {
  readonly run: string
  readonly jobId: string
  readonly pid: number
  readonly attempt: number
  readonly group: string | null
  readonly startedMs: number
  endedMs: number | null
  how: string | null
}

/** Parses the worker processes' logs. */
const readLogs = (dir: string) => {
  const starts = new Map<string, Start>()
  let malformed = 0
  for (const file of readdirSync(dir)) {
    const pid = Number(path.basename(file, ".log"))
    for (const line of readFileSync(path.join(dir, file), "utf8").split("\n")) {
      if (line === "" || line.startsWith("V ")) continue // events: for post-mortems (history)
      const f = line.split(" ")
      if (f[0] === "S" && f.length === 6) {
        starts.set(f[1]!, {
          run: f[1]!,
          jobId: f[2]!,
          pid,
          attempt: Number(f[3]),
          group: f[4] === "-" ? null : f[4]!,
          startedMs: Number(f[5]),
          endedMs: null,
          how: null
        })
      } else if (f[0] === "E" && f.length === 4 && starts.has(f[1]!)) {
        const s = starts.get(f[1]!)!
        s.endedMs = Number(f[2])
        s.how = f[3]!
      } else {
        malformed++
      }
    }
  }
  return { starts: Array.from(starts.values()), malformed }
}

/** Every line of the processes' logs about these jobs (runs and events), in time order, with its pid. */
const history = (dir: string, jobIds: ReadonlyArray<string>): string => {
  const wanted = new Set(jobIds)
  const lines: Array<[number, string]> = []
  const runs = new Map<string, string>() // run -> job
  for (const file of readdirSync(dir)) {
    const pid = path.basename(file, ".log")
    for (const line of readFileSync(path.join(dir, file), "utf8").split("\n")) {
      const f = line.split(" ")
      if (f[0] === "S" && wanted.has(f[2]!)) {
        runs.set(f[1]!, f[2]!)
        lines.push([Number(f[5]), `${pid} ${line}`])
      } else if (f[0] === "E" && runs.has(f[1]!)) {
        lines.push([Number(f[2]), `${pid} ${line}`])
      } else if (f[0] === "V" && wanted.has(f[3]!)) {
        lines.push([Number(f[1]), `${pid} ${line}`])
      }
    }
  }
  return lines.sort((a, b) => a[0] - b[0]).map(([at, l]) => `${new Date(at).toISOString()} ${l}`).join("\n")
}

describe("Chaos", () => {
  layer(PgTest({ maxConnections: 10 }), { excludeTestServices: true })((it) => {
    it.effect(
      "worker processes SIGKILLed during a drain, connections terminated: nothing lost, nothing failed unstarted, no overlap",
      () =>
        Effect.gen(function*() {
          const seed = process.env.CHAOS_SEED !== undefined && process.env.CHAOS_SEED !== ""
            ? Number(process.env.CHAOS_SEED)
            : Math.floor(Math.random() * 2 ** 31)
          const rounds = Number(process.env.CHAOS_ROUNDS ?? "12")
          const backlogTarget = Number(process.env.CHAOS_BACKLOG ?? "400")
          // eslint-disable-next-line no-console
          console.log(`[chaos] seed ${seed} (replay with CHAOS_SEED=${seed}), ${rounds} rounds, backlog ${backlogTarget}`)
          const rand = random(seed) // the same seed, the same choices
          const pick = <A>(items: ReadonlyArray<A>): A => items[Math.floor(rand() * items.length)]!

          // ---- the schema: cuckmq's tables plus the test's ----
          const sql = yield* SqlClient.SqlClient
          const schema = uniqueSchema("chaos")
          const t = (name: string) => sql(`${schema}.${name}`)
          // CHAOS_KEEP=1 keeps the schema and the processes' logs for a post-mortem
          const keep = process.env.CHAOS_KEEP === "1"
          if (!keep) yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`))
          yield* Migrations.migrate(schema)
          const runColumns = `run text PRIMARY KEY, job_id bigint NOT NULL, pid int NOT NULL, attempt int NOT NULL,
            job_group text, started_at timestamptz NOT NULL, ended_at timestamptz`
          yield* sql.unsafe(`CREATE TABLE ${schema}.runs (${runColumns})`)
          yield* sql.unsafe(`CREATE TABLE ${schema}.starts (${runColumns}, how text)`)
          yield* sql.unsafe(`CREATE TABLE ${schema}.kills (pid int PRIMARY KEY, killed_at timestamptz NOT NULL)`)
          yield* sql.unsafe(`CREATE TABLE ${schema}.enqueued (id bigint PRIMARY KEY)`)
          yield* sql.unsafe(`CREATE TABLE ${schema}.terminations (at timestamptz NOT NULL DEFAULT clock_timestamp(),
            backend int NOT NULL, pid int NOT NULL, kind text NOT NULL)`)
          const context = yield* Layer.build(Cuckmq.layer({ schema, definitions: [Chaos] }))
          const logDir = mkdtempSync(path.join(os.tmpdir(), "cuckmq-chaos-"))
          if (!keep) yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(logDir, { recursive: true, force: true })))
          // eslint-disable-next-line no-console
          else console.log(`[chaos] keeping schema ${schema} and logs in ${logDir}`)

          // ---- jobs: mostly short, some longer, a few over a second (their start gets marked at a heartbeat);
          // a quarter in a handful of named groups; all with the default numAttempts (1) ----
          const enqueued: Array<string> = []
          const newJob = () => {
            const grouped = rand() < 0.25
            const r = rand()
            const ms = grouped
              ? (r < 0.05 ? 100 + Math.floor(rand() * 300) : 1 + Math.floor(rand() * 20))
              : (r < 0.03 ? 1000 + Math.floor(rand() * 600) : r < 0.15 ? 20 + Math.floor(rand() * 180) : 1 + Math.floor(rand() * 20))
            return { payload: { ms }, jobGroup: grouped ? `g${Math.floor(rand() * GROUPS)}` : undefined }
          }
          const enqueueSome = (bulk: number, singles: number) =>
            Effect.gen(function*() {
              const items = Array.from({ length: bulk }, newJob)
              const ones = Array.from({ length: singles }, newJob)
              const [ids, more] = yield* Effect.all([
                Chaos.enqueueMany(items),
                Effect.forEach(ones, (j) => Chaos.enqueue(j.payload, { jobGroup: j.jobGroup }), { concurrency: 5 })
              ], { concurrency: 2 })
              enqueued.push(...ids, ...more)
            }).pipe(Effect.provideContext(context), Effect.orDie)

          // ---- the processes ----
          const procs: Array<Proc> = []
          const baseEnv = {
            DATABASE_URL: databaseUrl(),
            CUCKMQ_SCHEMA: schema,
            CHAOS_LOG_DIR: logDir,
            CONCURRENCY: "10",
            HEARTBEAT_SECS: "1"
          }
          const spawn = (orchestrator: boolean) =>
            Effect.gen(function*() {
              const workers = rand() < 0.3 ? 2 : 1
              const child = yield* spawnFixture("chaos-worker.ts", {
                ...baseEnv,
                WORKERS: String(workers),
                ORCHESTRATOR: orchestrator ? "1" : ""
              })
              const proc: Proc = { child, orchestrator, workers, ready: false, killed: false, exit: undefined }
              procs.push(proc)
              yield* Effect.forkChild(Effect.map(Effect.exit(child.ready), (exit) => {
                proc.ready = Exit.isSuccess(exit)
              }))
              yield* Effect.forkChild(Effect.map(child.exited, (code) => {
                proc.exit = code
              }))
              return proc
            })
          const alive = () => procs.filter((p) => !p.killed && p.exit === undefined)

          // ---- connections to terminate: only those of this test's worker processes, once they are ready (a
          // process whose migration fails at startup exits: that is not what is tested here) ----
          const namespace = lockNamespace(schema) >>> 0
          const poolPrefix = `chaos:${schema}:`
          // a session connection is the one holding its process's liveness lock (in this schema's namespace)
          const backends = sql<{ pid: number; app: string; osPid: number | null }>`
            SELECT a.pid, a.application_name AS app, w.pid AS "osPid"
            FROM pg_stat_activity a
            LEFT JOIN LATERAL (
              SELECT x.pid FROM pg_locks l JOIN ${t("worker")} x ON l.objid::bigint = (x.session_key::bigint & 4294967295)
              WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.classid::bigint = ${namespace} AND l.objsubid = 2
                AND l.granted
              LIMIT 1
            ) w ON true
            WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
              AND (starts_with(a.application_name, ${poolPrefix}) OR w.pid IS NOT NULL)
            ORDER BY a.pid`
          const terminated = { session: 0, pool: 0 }
          const terminateOne = Effect.gen(function*() {
            const ready = new Set(alive().filter((p) => p.ready).map((p) => p.child.pid))
            const rows = (yield* backends).map((r) =>
              r.osPid !== null
                ? { pid: r.pid, kind: "session" as const, osPid: Number(r.osPid) }
                : { pid: r.pid, kind: "pool" as const, osPid: Number(r.app.slice(poolPrefix.length)) }
            ).filter((r) => ready.has(r.osPid))
            if (rows.length === 0) return
            // sessions are few and pool connections many: pick the kind first
            const sessions = rows.filter((r) => r.kind === "session")
            const pool = rows.filter((r) => r.kind === "pool")
            const target = sessions.length > 0 && (pool.length === 0 || rand() < 0.5) ? pick(sessions) : pick(pool)
            const [done] = yield* sql<{ ok: boolean }>`SELECT pg_terminate_backend(${target.pid}) AS ok`
            if (done?.ok !== true) return
            terminated[target.kind]++
            yield* sql`INSERT INTO ${t("terminations")} (backend, pid, kind)
              VALUES (${target.pid}, ${target.osPid}, ${target.kind})`
          })

          // ---- the drain ----
          yield* enqueueSome(Math.max(1000, backlogTarget), 0) // waiting before any worker starts
          for (let i = 0; i < PROCESSES; i++) yield* spawn(i === 0)
          yield* waitUntil("the first processes are ready", Effect.sync(() => procs.every((p) => p.ready || p.exit !== undefined)))
          assert.isTrue(procs.every((p) => p.ready), `a process did not start:\n${procs.map((p) => p.child.output()).join("\n")}`)

          let kills = 0
          const backlog: Array<number> = [] // waiting or running jobs at each round (for the report)
          for (let round = 0; round < rounds; round++) {
            // keep a backlog, whatever the machine's speed, so that the workers prefetch and kills hit full hands
            const waiting = yield* count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${t("job")}`)
            backlog.push(waiting)
            yield* enqueueSome(Math.max(40, backlogTarget - waiting), 10)
            yield* Effect.sleep(`${1000 + Math.floor(rand() * 1000)} millis`)
            if (rand() < 0.6) yield* terminateOne
            // kill only while another process is ready to carry on (replacements take a while to start)
            yield* waitUntil("two processes are ready", Effect.sync(() => alive().filter((p) => p.ready).length >= 2))
            const victim = pick(alive().filter((p) => p.ready))
            victim.killed = true
            yield* victim.child.kill("SIGKILL")
            const code = yield* victim.child.exited
            const at = Date.now() // after it died, and seconds before a rescue can give its jobs to anyone
            assert.strictEqual(code, "SIGKILL", `process ${victim.child.pid} exited with ${code} before it was killed`)
            yield* sql`INSERT INTO ${t("kills")} (pid, killed_at) VALUES (${victim.child.pid}, to_timestamp(${at}::float8 / 1000))`
            kills++
            yield* spawn(victim.orchestrator || rand() < 0.3)
            if (rand() < 0.3) yield* terminateOne
          }
          yield* enqueueSome(100, 10) // the last ones, after the last kill

          // the survivors drain everything
          const total = enqueued.length
          yield* waitUntil(
            `all ${total} jobs are finalized`,
            Effect.map(
              count(sql<{ n: bigint }>`
                SELECT (SELECT count(*) FROM ${t("job_finalized")}) + (SELECT count(*) FROM ${t("job")}) * 1000000 AS n`),
              (n) => n === total
            ),
            "90 seconds"
          ).pipe(Effect.tapCause(() =>
            Effect.sync(() =>
              // eslint-disable-next-line no-console
              console.log(`[chaos] seed ${seed}: processes' output:\n${procs.map((p) => `--- ${p.child.pid}\n${p.child.output()}`).join("\n")}`)
            )
          ))
          const unexpected = procs.filter((p) => !p.killed && p.exit !== undefined)
          assert.deepStrictEqual(
            unexpected.map((p) => [p.child.pid, p.exit]),
            [],
            `processes exited by themselves:\n${unexpected.map((p) => p.child.output()).join("\n")}`
          )
          // a process that is still starting has no SIGTERM handler yet: let the replacements finish starting
          yield* waitUntil("every process is ready", Effect.sync(() => alive().every((p) => p.ready)))
          const survivors = alive()
          for (const p of survivors) yield* p.child.kill("SIGTERM")
          const codes = yield* Effect.forEach(survivors, (p) => p.child.exited)
          assert.isTrue(
            codes.every((c) => c === 0 || c === 130 || c === 143),
            `exit codes ${codes}:\n${survivors.map((p) => p.child.output()).join("\n")}`
          )

          // ---- the record ----
          const { malformed, starts } = readLogs(logDir)
          for (let i = 0; i < starts.length; i += 1000) {
            const chunk = starts.slice(i, i + 1000)
            yield* sql.unsafe(
              `INSERT INTO ${schema}.starts (run, job_id, pid, attempt, job_group, started_at, ended_at, how)
               SELECT r, j, p, a, g, to_timestamp(s / 1000), to_timestamp(e / 1000), h
               FROM unnest($1::text[], $2::bigint[], $3::int[], $4::int[], $5::text[], $6::float8[], $7::float8[], $8::text[])
                 AS x(r, j, p, a, g, s, e, h)`,
              [
                chunk.map((s) => s.run),
                chunk.map((s) => s.jobId),
                chunk.map((s) => s.pid),
                chunk.map((s) => s.attempt),
                chunk.map((s) => s.group),
                chunk.map((s) => s.startedMs),
                chunk.map((s) => s.endedMs),
                chunk.map((s) => s.how)
              ]
            )
          }
          for (let i = 0; i < enqueued.length; i += 5000) {
            yield* sql.unsafe(`INSERT INTO ${schema}.enqueued (id) SELECT unnest($1::bigint[])`, [enqueued.slice(i, i + 5000)])
          }
          const n = (query: Effect.Effect<ReadonlyArray<{ readonly n: unknown }>, unknown>) => count(query)
          const rows = <A extends object>(query: Effect.Effect<ReadonlyArray<A>, unknown>) => Effect.orDie(query)
          // a run's interval; one that never ended ends when its (killed) process was seen to exit
          const spans = sql`
            SELECT s.*, s.ended_at IS NOT NULL AS ended,
              tstzrange(s.started_at, GREATEST(s.started_at, coalesce(s.ended_at, k.killed_at))) AS span
            FROM ${t("starts")} s LEFT JOIN ${t("kills")} k USING (pid)`

          // the figures
          const [figures] = yield* rows(sql<Record<string, bigint>>`
            SELECT
              (SELECT count(*) FROM ${t("job_finalized")}) AS finalized,
              (SELECT count(*) FROM ${t("job_finalized")} WHERE succeeded) AS succeeded,
              (SELECT count(*) FROM ${t("job_finalized")} WHERE NOT succeeded) AS failed,
              (SELECT count(*) FROM ${t("job_finalized")} WHERE crashes > 0) AS crashed,
              (SELECT count(*) FROM ${t("job_finalized")} WHERE NOT succeeded AND crashes > 0) AS failed_crashed,
              (SELECT count(*) FROM ${t("job_finalized")} WHERE job_group IS NOT NULL) AS grouped,
              (SELECT count(*) FROM ${t("starts")}) AS starts,
              (SELECT count(*) FROM ${t("starts")} WHERE how = 'ok') AS completed,
              (SELECT count(*) FROM ${t("starts")} WHERE how = 'interrupted') AS interrupted,
              (SELECT count(*) FROM ${t("starts")} WHERE how IS NULL) AS unended,
              (SELECT count(*) FROM ${t("runs")}) AS db_runs,
              (SELECT count(*) FROM (SELECT job_id FROM ${t("starts")} GROUP BY job_id HAVING count(*) > 1) x) AS ran_again,
              (SELECT count(*) FROM ${t("job_finalized")} f
                WHERE NOT f.succeeded AND NOT EXISTS (SELECT 1 FROM ${t("runs")} r WHERE r.job_id = f.id)) AS failed_no_db_run`)
          const report = {
            seed,
            kills,
            terminated,
            backlog: backlog.join(","),
            processes: procs.length,
            enqueued: total,
            ...Object.fromEntries(Object.entries(figures!).map(([k, v]) => [k, Number(v)])),
            malformedLogLines: malformed
          }
          // eslint-disable-next-line no-console
          console.log(`[chaos] ${JSON.stringify(report)}`)

          // every job finalized exactly once: none left, none lost, none unknown, none twice
          assert.strictEqual(yield* n(sql`SELECT count(*) AS n FROM ${t("job")}`), 0, "jobs left")
          const lost = yield* rows(sql<{ id: string }>`
            SELECT e.id FROM ${t("enqueued")} e WHERE NOT EXISTS (SELECT 1 FROM ${t("job_finalized")} f WHERE f.id = e.id)
            ORDER BY e.id LIMIT 20`)
          assert.deepStrictEqual(lost.map((r) => String(r.id)), [], `seed ${seed}: lost jobs`)
          assert.strictEqual(
            yield* n(sql`SELECT count(*) AS n FROM ${t("job_finalized")} f
              WHERE NOT EXISTS (SELECT 1 FROM ${t("enqueued")} e WHERE e.id = f.id)`),
            0,
            "finalized jobs nobody enqueued"
          )
          assert.strictEqual(
            yield* n(sql`SELECT count(*) - count(DISTINCT id) AS n FROM ${t("job_finalized")}`),
            0,
            "jobs finalized twice"
          )
          assert.strictEqual(Number(figures!.finalized), total)

          // no job failed without a handler start on record
          const failedUnstarted = yield* rows(sql`
            SELECT f.id, f.job_group, f.attempts, f.max_attempts, f.claims, f.crashes, f.last_error, f.finalized_at
            FROM ${t("job_finalized")} f
            WHERE NOT f.succeeded AND NOT EXISTS (SELECT 1 FROM ${t("starts")} s WHERE s.job_id = f.id)
            ORDER BY f.id`)
          if (failedUnstarted.length > 0) {
            const killList = yield* rows(sql`SELECT pid, killed_at FROM ${t("kills")} ORDER BY killed_at`)
            const terminations = yield* rows(sql`SELECT at, pid, kind FROM ${t("terminations")} ORDER BY at`)
            // eslint-disable-next-line no-console
            console.log(`[chaos] seed ${seed}: failed without a handler start:\n${json(failedUnstarted)}\nkills: ${
              json(killList)
            }\nterminated connections: ${json(terminations)}\nhistory:\n${history(logDir, failedUnstarted.slice(0, 5).map((r) => String((r as { id: unknown }).id)))}`)
          }
          assert.strictEqual(failedUnstarted.length, 0, `seed ${seed}: jobs failed without a handler start`)

          // every run the handlers wrote to the database is in the logs; a run that never ended was killed
          assert.strictEqual(
            yield* n(sql`SELECT count(*) AS n FROM ${t("runs")} r
              WHERE NOT EXISTS (SELECT 1 FROM ${t("starts")} s WHERE s.run = r.run AND s.job_id = r.job_id)`),
            0,
            "runs in the database that the logs do not have"
          )
          const unendedLive = yield* rows(sql`
            SELECT s.run, s.job_id, s.pid, s.started_at FROM ${t("starts")} s
            WHERE s.ended_at IS NULL AND NOT EXISTS (SELECT 1 FROM ${t("kills")} k WHERE k.pid = s.pid)`)
          assert.deepStrictEqual(unendedLive, [], `seed ${seed}: runs that never ended in processes that were not killed`)

          // no two runs of a group at once, and no two runs of a job at once
          const groupOverlaps = yield* rows(sql`
            WITH r AS (${spans})
            SELECT a.job_group, a.run AS run_a, a.job_id AS job_a, a.span::text AS span_a, a.ended AS ended_a,
              b.run AS run_b, b.job_id AS job_b, b.span::text AS span_b, b.ended AS ended_b
            FROM r a JOIN r b ON a.job_group = b.job_group AND a.run < b.run AND a.span && b.span
            ORDER BY a.job_group, lower(a.span) LIMIT 20`)
          const jobOverlaps = yield* rows(sql`
            WITH r AS (${spans})
            SELECT a.job_id, a.run AS run_a, a.span::text AS span_a, a.ended AS ended_a,
              b.run AS run_b, b.span::text AS span_b, b.ended AS ended_b
            FROM r a JOIN r b ON a.job_id = b.job_id AND a.run < b.run AND a.span && b.span
            ORDER BY a.job_id LIMIT 20`)
          assert.deepStrictEqual(groupOverlaps, [], `seed ${seed}: runs of one group overlapped`)
          assert.deepStrictEqual(jobOverlaps, [], `seed ${seed}: runs of one job overlapped`)

          // a job is run to completion again only when the process that completed it was killed before it
          // could settle: never twice in processes that lived on
          const completedTwice = yield* rows(sql`
            SELECT s.job_id, array_agg(s.run ORDER BY s.started_at) AS runs FROM ${t("starts")} s
            WHERE s.how = 'ok' AND NOT EXISTS (SELECT 1 FROM ${t("kills")} k WHERE k.pid = s.pid)
            GROUP BY s.job_id HAVING count(*) > 1 LIMIT 20`)
          assert.deepStrictEqual(completedTwice, [], `seed ${seed}: jobs completed twice by processes that were not killed`)
          // and a job a live process completed succeeded
          const completedButFailed = yield* rows(sql`
            SELECT f.id, f.attempts, f.crashes, f.last_error FROM ${t("job_finalized")} f
            WHERE NOT f.succeeded AND EXISTS (
              SELECT 1 FROM ${t("starts")} s
              WHERE s.job_id = f.id AND s.how = 'ok' AND NOT EXISTS (SELECT 1 FROM ${t("kills")} k WHERE k.pid = s.pid))
            LIMIT 20`)
          assert.deepStrictEqual(completedButFailed, [], `seed ${seed}: jobs completed by a live process but failed`)
        }).pipe(Effect.scoped),
      180_000
    )
  })
})
