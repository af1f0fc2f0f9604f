/**
 * The `cuckmq` command line, run as a user runs it: the package is built (tsc, as `npm run build` does, into a
 * directory of its own under .tmp/), and the built `dist/bin/cuckmq.js` is executed directly as a child
 * process (its shebang, its executable bit), against the run's database. Each test checks stdout, stderr and
 * the exit code; the state a command changed is read back with the command line and counted in the database.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, assert, beforeAll, describe, layer } from "@effect/vitest"
import { Effect, Exit, Layer, Schema, Scope } from "effect"
import { Pool } from "pg"
import { SqlClient } from "effect/sql"
import { Cuckmq, CuckmqAdmin, JobDefinition, Migrations, Worker } from "../src/index.js"
import { count, waitUntil } from "./support/harness.js"
import { databaseUrl, PgTest, uniqueSchema } from "./support/pg.js"
import { pgbouncer, pgbouncerAvailable } from "./support/pgbouncer.js"

const root = path.resolve(import.meta.dirname, "..")
let buildDir = ""
let bin = ""

/**
 * Builds the package as `npm run build` does (tsc -p tsconfig.build.json, then the bin made executable), but
 * into a fresh directory, so that a test run never replaces the dist/ another process may be using. The
 * directory is under the repository, so the built files find node_modules/ as an installed package does, and
 * holds a copy of package.json (the module type, and the version `--version` prints).
 */
beforeAll(() => {
  fs.mkdirSync(path.join(root, ".tmp"), { recursive: true })
  buildDir = fs.mkdtempSync(path.join(root, ".tmp", "cli-test-"))
  fs.copyFileSync(path.join(root, "package.json"), path.join(buildDir, "package.json"))
  const tsc = spawnSync(process.execPath, [
    path.join(root, "node_modules", "typescript", "bin", "tsc"),
    "-p",
    path.join(root, "tsconfig.build.json"),
    "--outDir",
    path.join(buildDir, "dist")
  ], { cwd: root, encoding: "utf8" })
  bin = path.join(buildDir, "dist", "bin", "cuckmq.js")
  // tsc emits even when some other file has a type error (the suite's `tsc --noEmit` reports those); only a
  // missing bin makes this test meaningless
  if (!fs.existsSync(bin)) throw new Error(`the build did not produce dist/bin/cuckmq.js:\n${tsc.stdout}${tsc.stderr}`)
  fs.chmodSync(bin, 0o755)
  assert.match(fs.readFileSync(bin, "utf8"), /^#!\/usr\/bin\/env node\n/, "the bin starts with its shebang")
}, 120_000)

afterAll(() => {
  if (buildDir !== "") fs.rmSync(buildDir, { recursive: true, force: true })
})

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * Runs the binary with `args`. The environment is this process's without `DATABASE_URL` and `CUCKMQ_SCHEMA`,
 * then `env` (a value `undefined` removes a variable).
 */
const run = (args: ReadonlyArray<string>, env: Record<string, string | undefined> = {}, file = bin): Effect.Effect<Run> =>
  Effect.promise(() =>
    new Promise<Run>((resolve, reject) => {
      const { DATABASE_URL: _url, CUCKMQ_SCHEMA: _schema, ...base } = process.env
      const merged = Object.fromEntries(
        Object.entries({ ...base, ...env }).filter((e): e is [string, string] => e[1] !== undefined)
      )
      const child: ChildProcess = spawn(file, args, { env: merged, stdio: ["ignore", "pipe", "pipe"] })
      let stdout = ""
      let stderr = ""
      child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()))
      child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()))
      // a hang guard only: every command here ends on its own
      const timer = setTimeout(() => child.kill("SIGKILL"), 60_000)
      child.on("error", reject)
      child.on("exit", (code) => {
        clearTimeout(timer)
        resolve({ code, stdout, stderr })
      })
    })
  )

/** Runs the binary on the run's database and `schema`. */
const cuckmq = (schema: string, ...args: ReadonlyArray<string>) =>
  run(["--schema", schema, ...args], { DATABASE_URL: databaseUrl() })

/** As `cuckmq`, with `--json`: checks the exit code is 0 and parses stdout. */
const json = <A = any>(schema: string, ...args: ReadonlyArray<string>) =>
  Effect.map(cuckmq(schema, ...args, "--json"), (r) => {
    assert.strictEqual(r.code, 0, `cuckmq ${args.join(" ")} --json: ${r.stderr}`)
    return JSON.parse(r.stdout) as A
  })

const ok = (r: Run, what: string) => assert.strictEqual(r.code, 0, `${what}: exit ${r.code}; stderr: ${r.stderr}`)

/** A TCP port on 127.0.0.1 where nothing listens (taken from the OS, then released). */
const freePort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const server = net.createServer()
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })
)

const dropSchema = (schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`))
  })

// the mix of jobs: 3 that succeed, 2 that fail (no retry), 2 delayed by an hour
const Ok = JobDefinition.make({ name: "ok", channel: "cli", payload: Schema.Struct({ n: Schema.Int }), handler: () => Effect.void })
const Boom = JobDefinition.make({
  name: "boom",
  channel: "cli",
  numAttempts: 1,
  handler: () => Effect.fail({ _tag: "Boom", why: "always" } as const)
})
// a payload with terminal control sequences (clear the screen, a C1 CSI) that the tables must not pass on
const Note = JobDefinition.make({ name: "note", channel: "cli", payload: Schema.Struct({ text: Schema.String }), handler: () => Effect.void })
const hostile = "\u001b[2J\u001b[31mred\u009b0m"

// on a channel of its own, so that its counts are exact (a definition sharing its channel gets estimates)
const Later = JobDefinition.make({ name: "later", channel: "cli-later", handler: () => Effect.void })

const fast = { pollIntervalSecs: 0.2, heartbeatSecs: 0.5, leaseSecs: 5 } as const

/**
 * A migrated schema (dropped with the scope) with the mix of jobs: this process deploys the definitions,
 * enqueues 3 ok, 2 boom and 2 later (delayed by an hour) and runs a worker until the 5 due ones are
 * finalized, then flushes its counters for `status` (the command line is another process, with no counters
 * of its own). Returns the ids, the app's context and a count of the finalized jobs.
 */
const mix = (prefix: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const schema = uniqueSchema(prefix)
    yield* dropSchema(schema)
    ok(yield* cuckmq(schema, "migrate"), "migrate")
    const appScope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(appScope, Exit.void))
    const app = yield* Layer.buildWithScope(
      CuckmqAdmin.layer().pipe(Layer.provideMerge(Cuckmq.layer({ schema, definitions: [Ok, Boom, Later, Note], migrate: false }))),
      appScope
    )
    const provideApp = Effect.provideContext(app)
    const okIds = yield* Effect.forEach([1, 2, 3], (n) => Ok.enqueue({ n })).pipe(provideApp)
    const boomIds = yield* Effect.forEach([1, 2], () => Boom.enqueue({})).pipe(provideApp)
    const laterId = yield* Later.enqueue({}, { delay: "1 hour" }).pipe(provideApp)
    const laterId2 = yield* Later.enqueue({}, { delay: "1 hour" }).pipe(provideApp)
    const finalized = count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql(`${schema}.job_finalized`)}`)
    const workerScope = yield* Scope.make()
    yield* Layer.buildWithScope(Worker.layer({ ...fast, channels: ["cli"] }), workerScope).pipe(provideApp)
    yield* waitUntil("the 5 due jobs are finalized", Effect.map(finalized, (n) => n === 5))
    yield* Scope.close(workerScope, Exit.void)
    yield* CuckmqAdmin.CuckmqAdmin.use((a) => a.flushCounters).pipe(provideApp)
    return { schema, app, provideApp, okIds, boomIds, laterId, laterId2, finalized }
  })

describe("cuckmq command line (the built binary)", () => {
  layer(PgTest({ maxConnections: 10 }), { excludeTestServices: true })((it) => {
    it.effect("sql prints the migration SQL without a database; applied, it leaves nothing for migrate to do", () =>
      Effect.gen(function*() {
        const schema = uniqueSchema("cli_sql")
        yield* dropSchema(schema)
        const text = yield* run(["sql", "--schema", schema], { DATABASE_URL: undefined })
        ok(text, "sql")
        assert.match(text.stdout, /^-- cuckmq /)
        assert.include(text.stdout, `\nBEGIN;\n`)
        assert.include(text.stdout, `CREATE SCHEMA IF NOT EXISTS "${schema}";`)
        assert.match(text.stdout, /\nCOMMIT;\n$/)
        const expected = yield* Migrations.generateMigrationSql(schema)
        const doc = yield* Effect.map(run(["sql", "--schema", schema, "--json"]), (r) => JSON.parse(r.stdout))
        assert.deepStrictEqual(doc.statements, expected)
        assert.strictEqual(doc.toVersion, Migrations.latestVersion)
        // the statements, applied with our own client in one transaction, are a complete migration
        const sql = yield* SqlClient.SqlClient
        yield* sql.withTransaction(Effect.forEach(doc.statements as ReadonlyArray<string>, (s) => sql.unsafe(s), { discard: true }))
        const again = yield* cuckmq(schema, "migrate")
        ok(again, "migrate")
        assert.strictEqual(again.stdout.trim(), `schema ${schema} is current (version ${Migrations.latestVersion}): nothing to apply`)
        // --from the latest version: only the bootstrap statements; --grant-to appends the grants
        const latest = yield* Effect.map(run(["sql", "--schema", schema, "--from", String(Migrations.latestVersion), "--json"]), (r) => JSON.parse(r.stdout))
        assert.deepStrictEqual(latest.statements, yield* Migrations.generateMigrationSql(schema, { fromVersion: Migrations.latestVersion }))
        const grants = yield* Effect.map(run(["sql", "--schema", schema, "--grant-to", "app_worker", "--json"]), (r) => JSON.parse(r.stdout))
        assert.deepStrictEqual(grants.statements, [...expected, ...yield* Migrations.grantSql(schema, "app_worker")])
      }).pipe(Effect.scoped))

    it.effect("migrate applies every migration once; a second run finds the schema current", () =>
      Effect.gen(function*() {
        const schema = uniqueSchema("cli_migrate")
        yield* dropSchema(schema)
        const first = yield* cuckmq(schema, "migrate")
        ok(first, "migrate")
        assert.match(first.stdout, new RegExp(`^schema ${schema} migrated to version ${Migrations.latestVersion}: applied 1_init, `))
        const second = yield* json(schema, "migrate")
        assert.deepStrictEqual(second, { schema, version: Migrations.latestVersion, applied: [], grantedTo: [] })
        const sql = yield* SqlClient.SqlClient
        const applied = yield* count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql(`${schema}.cuckmq_migrations`)}`)
        assert.strictEqual(applied, Migrations.latestVersion)
        // --grant-to: the runtime grants, to a role of this test (roles are cluster-wide: dropped after the schema)
        const role = `${schema}_rt`
        yield* sql`CREATE ROLE ${sql(role)} NOLOGIN`
        yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP ROLE IF EXISTS ${sql(role)}`))
        yield* dropSchema(schema)
        const granted = yield* cuckmq(schema, "migrate", "--grant-to", role)
        ok(granted, "migrate --grant-to")
        assert.include(granted.stdout, `granted the runtime privileges on ${schema} to ${role}`)
        const [rights] = yield* sql<{ usage: boolean; insert: boolean; create: boolean }>`
          SELECT has_schema_privilege(${role}, ${schema}, 'USAGE') AS usage,
            has_table_privilege(${role}, ${`${schema}.job`}, 'INSERT') AS insert,
            has_schema_privilege(${role}, ${schema}, 'CREATE') AS create`
        assert.deepStrictEqual({ ...rights }, { usage: true, insert: true, create: false })
        const noRole = yield* cuckmq(schema, "migrate", "--grant-to", `${schema}_missing`)
        assert.strictEqual(noRole.code, 1, noRole.stderr)
        assert.include(noRole.stderr, `${schema}_missing`)
      }).pipe(Effect.scoped))

    it.effect("bad input exits 2 with a readable message and no stack trace", () =>
      Effect.gen(function*() {
        const url = databaseUrl()
        const cases: ReadonlyArray<readonly [ReadonlyArray<string>, Record<string, string | undefined>, string]> = [
          [["frobnicate"], { DATABASE_URL: url }, `Unknown subcommand "frobnicate"`],
          [["jobs", "list", "--limit", "many"], { DATABASE_URL: url }, `Invalid value for flag --limit: "many"`],
          [["jobs", "list", "--state", "lost"], { DATABASE_URL: url }, `Invalid value for flag --state: "lost"`],
          [["status", "--no-such-flag"], { DATABASE_URL: url }, "--no-such-flag"],
          [["jobs", "show"], { DATABASE_URL: url }, "Missing required argument: id"],
          [["status", "--schema", "bad.name"], { DATABASE_URL: url }, `cuckmq: Invalid schema name "bad.name"`],
          [["status"], { DATABASE_URL: undefined }, "cuckmq: no database given: pass --database-url postgres://... or set DATABASE_URL"],
          [["status", "--database-url", "not a url"], {}, "cuckmq: the database URL is not a URL"],
          [["status", "--database-url", "mysql://root@127.0.0.1/x"], {}, "cuckmq: the database URL mysql://root@127.0.0.1/x is not a postgres:// URL"],
          [["jobs", "delete"], { DATABASE_URL: url }, "cuckmq: delete: give job ids, a filter (--state, --definition, --channel, --group), or --all"],
          [["jobs", "retry", "1", "--state", "failed"], { DATABASE_URL: url }, "cuckmq: retry: give job ids or a filter"],
          [["purge", "--older-than", "a while"], { DATABASE_URL: url }, `cuckmq: --older-than "a while" is not a duration`],
          [["purge"], { DATABASE_URL: url }, "Missing required flag: --older-than"],
          [["sql", "--from", "99"], {}, `cuckmq: --from must be between 0 and ${Migrations.latestVersion}`]
        ]
        for (const [args, env, message] of cases) {
          const r = yield* run(args, env)
          assert.strictEqual(r.code, 2, `cuckmq ${args.join(" ")}: exit ${r.code}; stderr: ${r.stderr}`)
          assert.include(r.stdout + r.stderr, message, `cuckmq ${args.join(" ")}`)
          assert.notMatch(r.stderr, /\n\s+at /, `cuckmq ${args.join(" ")} printed a stack trace`)
        }
        // help is not an error
        const help = yield* run(["--help"])
        ok(help, "--help")
        for (const command of ["migrate", "sql", "status", "jobs", "pause", "resume", "channels", "workers", "purge", "dashboard"]) {
          assert.include(help.stdout, `  ${command} `)
        }
        const version = yield* run(["--version"])
        ok(version, "--version")
        const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { version: string }
        assert.include(version.stdout, pkg.version)
      }))

    it.effect("an unreachable database, a wrong role or an unmigrated schema exits 1 and says so", () =>
      Effect.gen(function*() {
        const port = yield* freePort
        const down = yield* run(["status", "--database-url", `postgres://postgres:secret@127.0.0.1:${port}/test`])
        assert.strictEqual(down.code, 1, down.stderr)
        assert.include(down.stderr, `cuckmq: cannot connect to the database at postgres://postgres:***@127.0.0.1:${port}/test: `)
        assert.include(down.stderr, "ECONNREFUSED")
        assert.notInclude(down.stderr, "secret", "the password is never printed")
        const u = new URL(databaseUrl())
        u.username = "no_such_role_cli"
        const role = yield* run(["migrate", "--database-url", u.toString()])
        assert.strictEqual(role.code, 1, role.stderr)
        // 'role "…" does not exist' under trust auth, 'password authentication failed for user "…"' otherwise
        assert.include(role.stderr, `cuckmq: cannot connect to the database at `)
        assert.include(role.stderr, `"no_such_role_cli"`)
        const schema = uniqueSchema("cli_unmigrated")
        const unmigrated = yield* cuckmq(schema, "status")
        assert.strictEqual(unmigrated.code, 1, unmigrated.stderr)
        assert.include(unmigrated.stderr, `Schema ${schema} is not migrated`)
        assert.include(unmigrated.stderr, "cuckmq migrate")
        assert.notMatch(unmigrated.stderr, /\n\s+at /)
      }))

    it.effect("status: the counts per channel and definition, and the last hour, as a table and as JSON", () =>
      Effect.gen(function*() {
        const { schema } = yield* mix("cli_status")
        // status: the counts per channel and definition, and the last hour from the flushed counters
        const stats = yield* json<CuckmqAdmin.Statistics>(schema, "status")
        const channel = Object.fromEntries(stats.channels.map((c) => [c.channel, c]))
        const live = (c: CuckmqAdmin.LiveCounts) => [c.waiting, c.delayed, c.held, c.running].map((n) => [n.value, n.accuracy])
        assert.deepStrictEqual(live(channel["cli"]!), [[0, "exact"], [0, "exact"], [0, "exact"], [0, "exact"]])
        assert.deepStrictEqual(live(channel["cli-later"]!), [[0, "exact"], [2, "exact"], [0, "exact"], [0, "exact"]])
        assert.deepStrictEqual([channel["cli"]!.lastHour.succeeded, channel["cli"]!.lastHour.failed], [3, 2])
        const byName = Object.fromEntries(stats.definitions.map((d) => [d.definition, d]))
        assert.deepStrictEqual([byName["ok"]!.lastHour.succeeded, byName["boom"]!.lastHour.failed], [3, 2])
        assert.deepStrictEqual(live(byName["later"]!), [[0, "exact"], [2, "exact"], [0, "exact"], [0, "exact"]])
        assert.deepStrictEqual(stats.total.lastHour.succeeded, 3)
        const table = yield* cuckmq(schema, "status")
        ok(table, "status")
        assert.match(table.stdout, /^CHANNEL +STATE +WAITING +DELAYED +HELD +RUNNING/m)
        assert.match(table.stdout, /^cli +active +0 +0 +0 +0 /m)
        assert.match(table.stdout, /^cli-later +active +0 +2 +0 +0 /m)
        assert.match(table.stdout, /^DEFINITION +CHANNEL/m)
        for (const d of ["ok", "boom"]) assert.match(table.stdout, new RegExp(`^${d} +cli `, "m"))
        assert.match(table.stdout, /^later +cli-later +0 +2 +0 +0 /m)

      }).pipe(Effect.scoped))

    it.effect("jobs list/show/retry/cancel/delete/run-now, pause/resume, workers and purge on a known mix of jobs", () =>
      Effect.gen(function*() {
        const { schema, provideApp, okIds, boomIds, laterId, laterId2, finalized } = yield* mix("cli_ops")
        // jobs list: filters, and keyset pages that together list every job once
        const failed = yield* json<CuckmqAdmin.JobPage>(schema, "jobs", "list", "--state", "failed")
        assert.sameMembers(failed.jobs.map((j) => j.id), boomIds)
        assert.isTrue(failed.jobs.every((j) => j.definition === "boom" && j.lastErrorMessage !== undefined))
        const failedTable = yield* cuckmq(schema, "jobs", "list", "--state", "failed")
        ok(failedTable, "jobs list")
        assert.match(failedTable.stdout, /^ *ID +DEFINITION +CHANNEL +GROUP +STATE +ATTEMPTS/)
        for (const id of boomIds) assert.match(failedTable.stdout, new RegExp(`^ *${id} +boom +cli +- +failed +1/1 `, "m"))
        const seen: Array<string> = []
        let cursor: string | undefined
        let pages = 0
        do {
          const page: CuckmqAdmin.JobPage = yield* json(schema, "jobs", "list", "--limit", "3", ...(cursor ? ["--cursor", cursor] : []))
          seen.push(...page.jobs.map((j) => j.id))
          cursor = page.next
          pages++
        } while (cursor !== undefined && pages < 10)
        assert.sameMembers(seen, [...okIds, ...boomIds, laterId, laterId2])
        assert.strictEqual(new Set(seen).size, seen.length, "no job on two pages")
        const paged = yield* cuckmq(schema, "jobs", "list", "--limit", "3")
        assert.match(paged.stdout, /\nmore: add --cursor \S+ for the next page\n$/)

        // jobs show
        const detail = yield* json<CuckmqAdmin.JobDetail>(schema, "jobs", "show", okIds[0]!)
        assert.deepStrictEqual([detail.id, detail.state, detail.payload], [okIds[0], "succeeded", { n: 1 }])
        const shown = yield* cuckmq(schema, "jobs", "show", boomIds[0]!)
        ok(shown, "jobs show")
        assert.match(shown.stdout, /^state: +failed$/m)
        assert.include(shown.stdout, "last error:\n")
        assert.include(shown.stdout, "always")

        // retry: by id, a refusal (a succeeded job), an unknown id, then by filter
        const retried = yield* cuckmq(schema, "jobs", "retry", boomIds[0]!)
        ok(retried, "jobs retry")
        assert.strictEqual(retried.stdout.trim(), `retried 1 job: ${boomIds[0]}`)
        assert.strictEqual((yield* json<CuckmqAdmin.JobDetail>(schema, "jobs", "show", boomIds[0]!)).state, "waiting")
        const refused = yield* cuckmq(schema, "jobs", "retry", okIds[0]!, "999999999")
        assert.strictEqual(refused.code, 1, refused.stderr)
        assert.include(refused.stdout, "retried 0 jobs")
        assert.include(refused.stderr, `refused job ${okIds[0]}: `)
        assert.include(refused.stderr, "refused job 999999999: ")
        assert.include(refused.stderr, "cuckmq: 2 of 2 jobs refused")
        const byFilter = yield* json(schema, "jobs", "retry", "--definition", "boom")
        assert.deepStrictEqual(byFilter, { action: "retry", count: 1, jobIds: [boomIds[1]], refused: [] })

        // run-now, cancel and delete
        ok(yield* cuckmq(schema, "jobs", "run-now", laterId2), "jobs run-now")
        assert.strictEqual((yield* json<CuckmqAdmin.JobDetail>(schema, "jobs", "show", laterId2)).state, "waiting")
        const cancelled = yield* json(schema, "jobs", "cancel", laterId)
        assert.deepStrictEqual(cancelled, { action: "cancel", count: 1, jobIds: [laterId], refused: [] })
        assert.strictEqual((yield* json<CuckmqAdmin.JobDetail>(schema, "jobs", "show", laterId)).state, "failed")
        ok(yield* cuckmq(schema, "jobs", "delete", okIds[2]!), "jobs delete")
        const gone = yield* cuckmq(schema, "jobs", "show", okIds[2]!)
        assert.strictEqual(gone.code, 1)
        assert.include(gone.stderr, okIds[2]!)

        // pause / resume a known channel; an unknown one is refused
        const paused = yield* cuckmq(schema, "pause", "cli")
        ok(paused, "pause")
        assert.strictEqual(paused.stdout.trim(), "channel cli: paused (rate limit: -)")
        const listed = yield* json<ReadonlyArray<CuckmqAdmin.ChannelInfo>>(schema, "channels")
        assert.deepStrictEqual(listed.map((c) => [c.channel, c.paused]), [["cli", true], ["cli-later", false]])
        assert.strictEqual((yield* json<Cuckmq.ChannelState>(schema, "resume", "cli")).paused, false)
        const unknown = yield* cuckmq(schema, "pause", "no-such-channel")
        assert.strictEqual(unknown.code, 1)
        assert.include(unknown.stderr, "no-such-channel")

        // workers: the one alive
        const workerScope2 = yield* Scope.make()
        yield* Effect.addFinalizer(() => Scope.close(workerScope2, Exit.void))
        yield* Layer.buildWithScope(Worker.layer({ ...fast, name: "cli-test-worker", channels: ["idle"], concurrency: 3 }), workerScope2)
          .pipe(provideApp)
        const ws = yield* json<ReadonlyArray<CuckmqAdmin.WorkerInfo>>(schema, "workers")
        const w = ws.find((x) => x.name === "cli-test-worker")
        assert.isDefined(w)
        assert.deepStrictEqual([w!.channels, w!.alive, w!.pid, w!.inFlight], [["idle"], true, process.pid, 0])
        const wt = yield* cuckmq(schema, "workers")
        ok(wt, "workers")
        assert.match(wt.stdout, /^NAME +HOST +PID +CHANNELS +CONCURRENCY +IN FLIGHT +ALIVE/)
        assert.match(wt.stdout, new RegExp(`^cli-test-worker +\\S+ +${process.pid} +idle +${w!.concurrency ?? "-"} +0 +yes `, "m"))
        yield* Scope.close(workerScope2, Exit.void)

        // purge: every finalized job (older than 0 seconds), counted before and after
        const before = yield* finalized
        assert.isAbove(before, 0)
        const purged = yield* json(schema, "purge", "--older-than", "0 seconds")
        assert.deepStrictEqual(purged, { deleted: before, olderThanMs: 0 })
        assert.strictEqual(yield* finalized, 0)
        const none = yield* cuckmq(schema, "purge", "--older-than", "7 days")
        ok(none, "purge")
        assert.strictEqual(none.stdout.trim(), "purged 0 finalized jobs older than 7d")
        // control characters from the database reach the terminal escaped
        const noteId = yield* Note.enqueue({ text: hostile }, { delay: "1 hour" }).pipe(provideApp)
        const noteShown = yield* cuckmq(schema, "jobs", "show", noteId)
        ok(noteShown, "jobs show")
        assert.include(noteShown.stdout, `"text": "\\u001b[2J\\u001b[31mred\\u009b0m"`)
        assert.notMatch(noteShown.stdout, /[\u001b\u009b]/)
        assert.deepStrictEqual((yield* json<CuckmqAdmin.JobDetail>(schema, "jobs", "show", noteId)).payload, { text: hostile })

        // last, so that a gap here does not hide the rest: the worker's concurrency, as it registered
        assert.strictEqual(w!.concurrency, 3, "cuckmq workers reports the worker's concurrency")
      }).pipe(Effect.scoped))

    it.effect("dashboard serves until SIGINT, printing where; a short token is bad input", () =>
      Effect.gen(function*() {
        const schema = uniqueSchema("cli_dashboard")
        yield* dropSchema(schema)
        ok(yield* cuckmq(schema, "migrate"), "migrate")
        const child = spawn(bin, ["dashboard", "--schema", schema, "--port", "0", "--json"], {
          env: { ...process.env, DATABASE_URL: databaseUrl(), CUCKMQ_DASHBOARD_TOKEN: "" },
          stdio: ["ignore", "pipe", "pipe"]
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
        let stderr = ""
        child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()))
        const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? "?")))
        const line = yield* Effect.promise(() =>
          new Promise<string>((resolve, reject) => {
            let out = ""
            child.stdout!.on("data", (d: Buffer) => {
              out += d.toString()
              if (out.includes("\n")) resolve(out.split("\n")[0]!)
            })
            void exited.then((code) => reject(new Error(`dashboard exited (${code}) before listening: ${stderr}`)))
          })
        )
        const where = JSON.parse(line) as { url: string; host: string; port: number; readOnly: boolean }
        assert.strictEqual(where.host, "127.0.0.1")
        assert.isAbove(where.port, 0)
        assert.isTrue(where.readOnly, "no token: read-only")
        const page = yield* Effect.promise(() => fetch(where.url))
        assert.strictEqual(page.status, 200)
        assert.include(yield* Effect.promise(() => page.text()), "<html")
        child.kill("SIGINT")
        assert.strictEqual(yield* Effect.promise(() => exited), 130, stderr)
        const short = yield* run(["dashboard", "--port", "0", "--token", "short"], { DATABASE_URL: databaseUrl(), CUCKMQ_SCHEMA: schema })
        assert.strictEqual(short.code, 2, short.stderr)
        assert.include(short.stderr, "cuckmq: ")
        assert.include(short.stderr, "16")
      }).pipe(Effect.scoped))

    it.effect("without @effect/platform-node (an optional peer), the bin says what to install and exits 1", () =>
      Effect.gen(function*() {
        // a copy of the build outside the repository (so that resolution cannot climb to its node_modules),
        // whose node_modules has effect and @effect/sql-pg but not @effect/platform-node
        const dir = fs.mkdtempSync(path.join(fs.realpathSync(os.tmpdir()), "cuckmq-cli-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        fs.cpSync(path.join(buildDir, "dist"), path.join(dir, "dist"), { recursive: true })
        fs.copyFileSync(path.join(buildDir, "package.json"), path.join(dir, "package.json"))
        fs.mkdirSync(path.join(dir, "node_modules", "@effect"), { recursive: true })
        fs.symlinkSync(path.join(root, "node_modules", "effect"), path.join(dir, "node_modules", "effect"))
        fs.symlinkSync(path.join(root, "node_modules", "@effect", "sql-pg"), path.join(dir, "node_modules", "@effect", "sql-pg"))
        const r = yield* run(["sql"], {}, path.join(dir, "dist", "bin", "cuckmq.js"))
        assert.strictEqual(r.code, 1, r.stderr)
        assert.include(r.stderr, "cuckmq: the command line needs the package @effect/platform-node, which is not installed.")
        assert.include(r.stderr, "npm install @effect/platform-node")
        assert.notMatch(r.stderr, /\n\s+at /)
      }).pipe(Effect.scoped))
  })
})

describe.skipIf(!pgbouncerAvailable())("cuckmq command line through PgBouncer (pool_mode = transaction)", () => {
  layer(PgTest({ maxConnections: 10 }), { excludeTestServices: true })((it) => {
    it.effect("--transaction-pooler (or CUCKMQ_TRANSACTION_POOLER=1): migrate, status, jobs, pause while other clients take turns on the pooler's two server connections", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const bouncer = yield* pgbouncer(databaseUrl(), { default_pool_size: 2 })
        // other clients through the pooler, in short transactions: the command line's consecutive transactions
        // land on whichever server connection is free (a named prepared statement would not be there)
        const others = new Pool({ connectionString: bouncer.url, max: 4 })
        let churning = true
        const churn = Promise.all([0, 1, 2, 3].map(async () => {
          while (churning) await others.query("SELECT pg_sleep(0.001)")
        }))
        yield* Effect.addFinalizer(() =>
          Effect.promise(async () => {
            churning = false
            await churn.catch(() => undefined)
            await others.end()
          })
        )
        const via = (schema: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
          run(["--schema", schema, ...args], { DATABASE_URL: bouncer.url, ...env })
        const viaJson = <A = any>(schema: string, ...args: ReadonlyArray<string>) =>
          Effect.map(via(schema, ["--transaction-pooler", ...args, "--json"]), (r) => {
            assert.strictEqual(r.code, 0, `cuckmq --transaction-pooler ${args.join(" ")} --json: ${r.stderr}`)
            return JSON.parse(r.stdout) as A
          })

        const schema = uniqueSchema("cli_pgbouncer")
        yield* dropSchema(schema)
        const migrated = yield* viaJson<{ version: number }>(schema, "migrate")
        assert.strictEqual(migrated.version, Migrations.latestVersion)
        // the app, connected directly, deploys and enqueues 3 jobs delayed by an hour
        const appScope = yield* Scope.make()
        yield* Effect.addFinalizer(() => Scope.close(appScope, Exit.void))
        const app = yield* Layer.buildWithScope(Cuckmq.layer({ schema, definitions: [Later], migrate: false }), appScope)
        const ids = yield* Effect.forEach([1, 2, 3], () => Later.enqueue({}, { delay: "1 hour" })).pipe(Effect.provideContext(app))

        const stats = yield* viaJson<CuckmqAdmin.Statistics>(schema, "status")
        const later = stats.channels.find((c) => c.channel === "cli-later")!
        assert.deepStrictEqual([later.waiting.value, later.delayed.value], [0, 3])
        const page = yield* viaJson<CuckmqAdmin.JobPage>(schema, "jobs", "list")
        assert.sameMembers(page.jobs.map((j) => j.id), ids)
        for (const id of ids) assert.strictEqual((yield* viaJson<CuckmqAdmin.JobDetail>(schema, "jobs", "show", id)).state, "delayed")
        assert.deepStrictEqual(
          yield* viaJson(schema, "jobs", "run-now", ids[0]!),
          { action: "run-now", count: 1, jobIds: [ids[0]], refused: [] }
        )
        assert.deepStrictEqual(
          yield* viaJson(schema, "jobs", "cancel", ids[1]!),
          { action: "cancel", count: 1, jobIds: [ids[1]], refused: [] }
        )
        // the environment variable instead of the flag
        const paused = yield* via(schema, ["pause", "cli-later"], { CUCKMQ_TRANSACTION_POOLER: "1" })
        ok(paused, "pause with CUCKMQ_TRANSACTION_POOLER=1")
        assert.strictEqual(paused.stdout.trim(), "channel cli-later: paused (rate limit: -)")
        const bad = yield* via(schema, ["status"], { CUCKMQ_TRANSACTION_POOLER: "yes" })
        assert.strictEqual(bad.code, 2, bad.stderr)
        assert.include(bad.stderr, "CUCKMQ_TRANSACTION_POOLER must be 1, true, 0 or false")

        // what the commands did, read directly
        const rows = yield* sql<{ id: string; run_now: boolean }>`
          SELECT id::text AS id, run_at <= now() AS run_now FROM ${sql(`${schema}.job`)} ORDER BY id`
        assert.deepStrictEqual(rows.map((r) => [r.id, r.run_now]), [[ids[0], true], [ids[2], false]])
        const channel = yield* sql<{ paused: boolean }>`SELECT paused FROM ${sql(`${schema}.job_channel`)} WHERE name = 'cli-later'`
        assert.deepStrictEqual(channel.map((c) => c.paused), [true])
      }).pipe(Effect.scoped))
  })
})
