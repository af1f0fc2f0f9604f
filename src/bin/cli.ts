/**
 * The `cuckmq` command line on `effect/cli` and `@effect/platform-node`: `migrate`, `sql`, `status`, `jobs
 * list/show/retry/cancel/delete/run-now`, `pause` / `resume`, `channels`, `workers`, `purge`, `dashboard`; every
 * command but `sql` goes through `CuckmqAdmin` (or the migrations) on the schema.
 * Run by the launcher in ./cuckmq.ts (the package's `bin`).
 *
 * Output: tables for people on stdout, or one JSON document with `--json`; errors as one line on stderr.
 * Exit codes: 0 done, 1 failed or refused (the database is unreachable, an action does not apply), 2 bad
 * input (an unknown command or flag, a malformed value, no database URL).
 */
import * as fs from "node:fs"
// the modules, not the package's index: the index loads every Node service (HTTP, sockets, cluster...), which
// would cost each command several hundred milliseconds at start
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { PgClient } from "@effect/sql-pg"
import { Cause, Config, Console, Data, Duration, Effect, Exit, Layer, Logger, Option, Redacted, References } from "effect"
import { Argument, CliError, Command, Flag } from "effect/cli"
import { SqlClient } from "effect/sql"
import * as Cuckmq from "../Cuckmq.js"
import * as CuckmqAdmin from "../CuckmqAdmin.js"
import * as CuckmqDashboard from "../CuckmqDashboard.js"
import * as Migrations from "../Migrations.js"
import { databaseReason } from "../internal/pg/sql.js"
import * as PgJobStore from "../PgJobStore.js"

// ---------------------------------------------------------------------------------------------------------
// errors and exit codes

/** Exit code of a failure or a refusal. */
const exitFailed = 1
/** Exit code of bad input (what a shell's usage errors use). */
const exitBadInput = 2

/**
 * What a command failed with, as the user reads it: one message and the exit code. Every error of a handler
 * becomes one of these (see `toFailure`), so that nothing reaches the terminal as a stack trace.
 */
class Failure extends Data.TaggedError("CliFailure")<{ readonly message: string; readonly exitCode: number }> {}

const badInput = (message: string) => new Failure({ message, exitCode: exitBadInput })

/** cuckmq's errors that mean the input was wrong (a bad filter, limit, cursor, token...) rather than the operation failing. */
const badInputTags = new Set(["InvalidSchemaName", "InvalidOptions"])

/** A URL as it may be printed: without its password. */
const safeUrl = (url: string): string => {
  try {
    const u = new URL(url)
    if (u.password !== "") u.password = "***"
    return u.toString()
  } catch {
    return "(unparsable URL)"
  }
}

/** Maps any error of a handler to a `Failure`: cuckmq's typed errors keep their message. */
const toFailure = (url: string | undefined) => (error: unknown): Failure => {
  if (error instanceof Failure) return error
  const e = error as { readonly _tag?: unknown; readonly message?: unknown }
  const message = typeof e?.message === "string" && e.message !== "" ? e.message : String(error)
  if (typeof e?._tag === "string" && badInputTags.has(e._tag)) return badInput(message)
  if (e?._tag === "SchemaNotMigrated") {
    // the library's message names the library's ways to migrate; here the way is this command line
    const m = error as { readonly schema: string; readonly version: number; readonly required: number }
    return new Failure({
      message: `Schema ${m.schema} is ${m.version === 0 ? "not migrated" : `at version ${m.version}`}; this cuckmq needs version ${m.required}: ` +
        `run \`cuckmq migrate\` (or apply the SQL of \`cuckmq sql\`) under a role that may run DDL`,
      exitCode: exitFailed
    })
  }
  if (e?._tag === "SqlError") {
    // the driver's errors: most often the database cannot be reached (a refused connection, a wrong host, a
    // timeout, an authentication failure), which deserves to name the database
    const where = url === undefined ? "" : ` at ${safeUrl(url)}`
    return new Failure({ message: `the database${where} failed: ${message}`, exitCode: exitFailed })
  }
  return new Failure({ message, exitCode: exitFailed })
}

/**
 * The exit code of the whole run, and what to print that `Command.run` has not printed already: a parse error
 * (rendered by `Command.run` with the command's help) exits 2; a `Failure` prints its message; a defect (a
 * bug) prints the cause.
 */
const teardown = <E, A>(exit: Exit.Exit<E, A>, onExit: (code: number) => void): void => {
  if (Exit.isSuccess(exit)) return onExit(0)
  if (Cause.hasInterruptsOnly(exit.cause)) return onExit(130)
  const error = Cause.findErrorOption(exit.cause)
  if (Option.isSome(error)) {
    const e = error.value
    if (e instanceof Failure) {
      process.stderr.write(`cuckmq: ${e.message}\n`)
      return onExit(e.exitCode)
    }
    // help asked for (`--help`, or a command that needs a subcommand given none) is not an error; a parse
    // error (printed by Command.run with the help) is bad input
    if (CliError.isCliError(e)) return onExit(e._tag === "ShowHelp" && e.errors.length === 0 ? 0 : exitBadInput)
  }
  process.stderr.write(`cuckmq: unexpected failure (a bug; please report it):\n${Cause.pretty(exit.cause)}\n`)
  onExit(exitFailed)
}

// ---------------------------------------------------------------------------------------------------------
// output

/** A value as JSON for scripts: dates as ISO strings, durations in milliseconds, bigints as strings. */
const toJson = (value: unknown): string =>
  JSON.stringify(
    value,
    function(this: unknown, key, v) {
      const raw = (this as Record<string, unknown>)[key]
      if (raw instanceof Date) return raw.toISOString()
      if (Duration.isDuration(raw)) return Duration.toMillis(raw)
      if (typeof raw === "bigint") return raw.toString()
      if (Option.isOption(raw)) return Option.getOrNull(raw)
      return v
    },
    2
  )

/** Prints one JSON document. */
const printJson = (value: unknown) => Console.log(toJson(value))

/** A table column: its header, how to read a cell, and whether it is numeric (right-aligned). */
interface Column<A> {
  readonly header: string
  readonly cell: (row: A) => string | number | undefined | null
  readonly numeric?: boolean
}

/**
 * Text from the database made safe for a terminal: control characters (line breaks, and the escape sequences
 * a payload or an error message could carry to move the cursor or rewrite the screen) shown as `\n`, `\u001b`.
 */
const printable = (text: string): string =>
  text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => (c === "\n" ? "\\n" : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`))

/**
 * A table for people: a header, then one line per row, columns separated by two spaces, numbers aligned to
 * the right; `(none)` when there is no row. Cells are single-line and printable (see `printable`).
 */
const table = <A>(rows: ReadonlyArray<A>, columns: ReadonlyArray<Column<A>>, empty = "(none)"): string => {
  if (rows.length === 0) return empty
  const text = (v: string | number | undefined | null) =>
    v === undefined || v === null ? "-" : printable(String(v))
  const cells = rows.map((row) => columns.map((c) => text(c.cell(row))))
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)))
  const line = (values: ReadonlyArray<string>) =>
    values.map((v, i) => (columns[i]!.numeric ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join("  ").trimEnd()
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join("\n")
}

/** A duration for people (`1h 2m 3s`), or `-`. */
const showDuration = (d: Duration.Duration | number | undefined | null): string => {
  if (d === undefined || d === null) return "-"
  const ms = typeof d === "number" ? d : Duration.toMillis(d)
  if (!Number.isFinite(ms)) return "-"
  if (ms < 1000) return `${Math.round(ms)}ms`
  const s = Math.floor(ms / 1000)
  const parts = [[Math.floor(s / 86400), "d"], [Math.floor(s / 3600) % 24, "h"], [Math.floor(s / 60) % 60, "m"], [s % 60, "s"]] as const
  const first = parts.findIndex(([n]) => n > 0)
  return parts.slice(first, first + 2).filter(([n]) => n > 0).map(([n, u]) => `${n}${u}`).join(" ")
}

/** A rate limit for people (`100 per 1s`), or `-`. */
const showRateLimit = (r: Cuckmq.RateLimit | undefined): string =>
  r === undefined ? "-" : `${r.limit} per ${showDuration(r.period)}`

// ---------------------------------------------------------------------------------------------------------
// the root command and the database

/** The package's version, for `--version` (package.json is two levels up from src/bin and from dist/bin). */
const version = (() => {
  try {
    return (JSON.parse(fs.readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version
  } catch {
    return "unknown"
  }
})()

/** The flags every command accepts, before or after its name. */
const root = Command.make("cuckmq").pipe(
  Command.withSharedFlags({
    databaseUrl: Flag.Redacted("database-url").pipe(
      Flag.withDescription("PostgreSQL URL (postgres://user:password@host:port/database); defaults to $DATABASE_URL"),
      Flag.optional
    ),
    schema: Flag.String("schema").pipe(
      Flag.withDescription(`The cuckmq schema; defaults to $CUCKMQ_SCHEMA, then ${Migrations.defaultSchema}`),
      Flag.optional
    ),
    json: Flag.Boolean("json").pipe(
      Flag.withDescription("Print one JSON document (for scripts) instead of tables"),
      Flag.withDefault(false)
    ),
    transactionPooler: Flag.Boolean("transaction-pooler").pipe(
      Flag.withDescription(
        "The URL goes through PgBouncer in transaction mode: unnamed statements, no startup parameters, no LISTEN; defaults to $CUCKMQ_TRANSACTION_POOLER (1 or true)"
      ),
      Flag.withDefault(false)
    )
  }),
  Command.withDescription("Operate a cuckmq job queue: migrate its schema, inspect and act on its jobs, channels and workers")
)

/** The root flags, resolved: environment fallbacks applied and the schema name checked. */
interface Context {
  readonly url: Option.Option<Redacted.Redacted<string>>
  readonly schema: string
  readonly json: boolean
  /** The URL goes through a transaction-mode pooler (`--transaction-pooler` or `CUCKMQ_TRANSACTION_POOLER`). */
  readonly transactionPooler: boolean
}

const context: Effect.Effect<Context, Failure, Command.CommandContext<"cuckmq">> = Effect.gen(function*() {
  const flags = yield* root
  const env = (name: string) => Effect.orElseSucceed(Config.option(Config.String(name)), () => Option.none<string>())
  const url = Option.isSome(flags.databaseUrl)
    ? flags.databaseUrl
    : Option.map(Option.filter(yield* env("DATABASE_URL"), (u) => u !== ""), Redacted.make)
  const schemaName = Option.isSome(flags.schema)
    ? flags.schema.value
    : Option.getOrElse(Option.filter(yield* env("CUCKMQ_SCHEMA"), (s) => s !== ""), () => Migrations.defaultSchema)
  const schema = yield* Migrations.validateSchemaName(schemaName).pipe(Effect.mapError((e) => badInput(e.message)))
  let transactionPooler = flags.transactionPooler
  if (!transactionPooler) {
    const raw = Option.getOrElse(yield* env("CUCKMQ_TRANSACTION_POOLER"), () => "").trim().toLowerCase()
    if (raw === "1" || raw === "true") transactionPooler = true
    else if (raw !== "" && raw !== "0" && raw !== "false") {
      return yield* badInput(`CUCKMQ_TRANSACTION_POOLER must be 1, true, 0 or false, not ${JSON.stringify(raw)}`)
    }
  }
  return { url, schema, json: flags.json, transactionPooler }
})

/**
 * The database connection of one command: a small pool (a command runs a few statements), a bounded wait.
 * Through a transaction-mode pooler, unnamed statements only (PgBouncer before 1.21 loses named prepared
 * statements between transactions); `application_name` is a startup parameter PgBouncer knows.
 */
const database = (url: Redacted.Redacted<string>, transactionPooler: boolean) =>
  PgClient.layer({
    url,
    maxConnections: 4,
    connectTimeout: "10 seconds",
    applicationName: "cuckmq-cli",
    ...(transactionPooler ? { prepare: false } : {})
  })

/** The database URL of the command: `--database-url`, else `DATABASE_URL`; bad input when neither or not a URL. */
const databaseUrl = (ctx: Context): Effect.Effect<Redacted.Redacted<string>, Failure> => {
  if (Option.isNone(ctx.url)) {
    return Effect.fail(badInput("no database given: pass --database-url postgres://... or set DATABASE_URL"))
  }
  const raw = Redacted.value(ctx.url.value)
  let protocol: string | undefined
  try {
    protocol = new URL(raw).protocol
  } catch {
    return Effect.fail(badInput("the database URL is not a URL: expected postgres://user:password@host:port/database"))
  }
  return protocol === "postgres:" || protocol === "postgresql:"
    ? Effect.succeed(ctx.url.value)
    : Effect.fail(badInput(`the database URL ${safeUrl(raw)} is not a postgres:// URL`))
}

/**
 * Runs `effect` against the database: needs a URL (`--database-url` or `DATABASE_URL`), connects first (so
 * that an unreachable database is reported as such, naming it, rather than as the failure of whatever the
 * command tried first), and maps every error to a `Failure`.
 */
const withDatabase = <A, E, R>(
  ctx: Context,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, Failure, Exclude<R, PgClient.PgClient | SqlClient.SqlClient>> =>
  Effect.gen(function*() {
    const url = yield* databaseUrl(ctx)
    const raw = Redacted.value(url)
    const connect = SqlClient.SqlClient.use((sql) => sql`SELECT 1`).pipe(
      Effect.mapError((e) =>
        new Failure({ message: `cannot connect to the database at ${safeUrl(raw)}: ${databaseReason(e).message}`, exitCode: exitFailed })
      )
    )
    return yield* Effect.andThen(connect, effect).pipe(
      Effect.provide(database(url, ctx.transactionPooler)),
      Effect.mapError(toFailure(raw))
    )
  })

// ---------------------------------------------------------------------------------------------------------
// migrate, sql

const grantTo = Flag.String("grant-to").pipe(
  Flag.withDescription("A runtime role to grant cuckmq's runtime privileges to after migrating (repeatable)"),
  Flag.atLeast(0)
)

const migrate = Command.make(
  "migrate",
  { grantTo },
  Effect.fn(function*({ grantTo }) {
    const ctx = yield* context
    const applied = yield* withDatabase(ctx, PgJobStore.migrate({ schema: ctx.schema, grantTo }))
    if (ctx.json) {
      return yield* printJson({
        schema: ctx.schema,
        version: Migrations.latestVersion,
        applied: applied.map(([id, name]) => ({ id, name })),
        grantedTo: grantTo
      })
    }
    yield* Console.log(
      applied.length === 0
        ? `schema ${ctx.schema} is current (version ${Migrations.latestVersion}): nothing to apply`
        : `schema ${ctx.schema} migrated to version ${Migrations.latestVersion}: applied ${applied.map(([id, name]) => `${id}_${name}`).join(", ")}`
    )
    for (const role of grantTo) yield* Console.log(`granted the runtime privileges on ${ctx.schema} to ${role}`)
  })
).pipe(Command.withDescription("Migrate the cuckmq schema to this version (safe to run from many processes at once)"))

const sql = Command.make(
  "sql",
  {
    from: Flag.Int("from").pipe(
      Flag.withDescription("Print only the migrations after this version (0: all)"),
      Flag.withDefault(0)
    ),
    grantTo
  },
  Effect.fn(function*({ from, grantTo }) {
    const ctx = yield* context
    if (from < 0 || from > Migrations.latestVersion) {
      return yield* badInput(`--from must be between 0 and ${Migrations.latestVersion} (the latest version), not ${from}`)
    }
    const migrations = yield* Migrations.generateMigrationSql(ctx.schema, { fromVersion: from }).pipe(Effect.mapError(toFailure(undefined)))
    const grants: Array<string> = []
    for (const role of grantTo) grants.push(...yield* Migrations.grantSql(ctx.schema, role).pipe(Effect.mapError(toFailure(undefined))))
    const statements = [...migrations, ...grants]
    if (ctx.json) return yield* printJson({ schema: ctx.schema, fromVersion: from, toVersion: Migrations.latestVersion, statements })
    // one transaction, as generateMigrationSql asks: `cuckmq sql | psql` applies all of it or nothing
    yield* Console.log(
      `-- cuckmq ${version}: schema ${ctx.schema}, version ${from} to ${Migrations.latestVersion}\nBEGIN;\n\n${
        statements.map((s) => `${s};`).join("\n\n")
      }\n\nCOMMIT;`
    )
  })
).pipe(Command.withDescription("Print the migration SQL (to apply with your own tools); needs no database"))

// ---------------------------------------------------------------------------------------------------------
// the admin service

/** The admin service on the schema: a Cuckmq context that neither migrates nor deploys, and CuckmqAdmin on it. */
const adminLayer = (ctx: Context) =>
  CuckmqAdmin.layer().pipe(
    Layer.provideMerge(
      Cuckmq.layer({ schema: ctx.schema, migrate: false, deploy: false, transactionPooler: ctx.transactionPooler })
    )
  )

/** Runs `effect` with the admin service (and the Cuckmq context) of the schema. */
const withAdmin = <A, E, R>(ctx: Context, effect: Effect.Effect<A, E, R>) =>
  withDatabase(ctx, effect.pipe(Effect.provide(adminLayer(ctx))))

const admin = CuckmqAdmin.CuckmqAdmin

// ---------------------------------------------------------------------------------------------------------
// status

const status = Command.make(
  "status",
  {},
  Effect.fn(function*() {
    const ctx = yield* context
    const stats = yield* withAdmin(ctx, admin.use((a) => a.statistics))
    if (ctx.json) return yield* printJson(stats)
    const count = CuckmqAdmin.formatCount
    const channels = table(stats.channels, [
      { header: "CHANNEL", cell: (c) => c.channel },
      { header: "STATE", cell: (c) => (c.paused ? "paused" : "active") },
      { header: "WAITING", cell: (c) => count(c.waiting), numeric: true },
      { header: "DELAYED", cell: (c) => count(c.delayed), numeric: true },
      { header: "HELD", cell: (c) => count(c.held), numeric: true },
      { header: "RUNNING", cell: (c) => count(c.running), numeric: true },
      { header: "OLDEST WAITING", cell: (c) => showDuration(secsToMs(c.oldestWaitingSecs)), numeric: true },
      { header: "SUCCEEDED 1H", cell: (c) => c.lastHour.succeeded, numeric: true },
      { header: "FAILED 1H", cell: (c) => c.lastHour.failed, numeric: true },
      { header: "PER MIN", cell: (c) => perMinute(c.throughputPerMinute), numeric: true },
      { header: "RATE LIMIT", cell: (c) => showRateLimit(c.rateLimit) }
    ], "(no channel: nothing is deployed and no job exists)")
    const definitions = table(stats.definitions, [
      { header: "DEFINITION", cell: (d) => d.definition + (d.deployed ? "" : " (undeployed)") },
      { header: "CHANNEL", cell: (d) => d.channel },
      { header: "WAITING", cell: (d) => count(d.waiting), numeric: true },
      { header: "DELAYED", cell: (d) => count(d.delayed), numeric: true },
      { header: "HELD", cell: (d) => count(d.held), numeric: true },
      { header: "RUNNING", cell: (d) => count(d.running), numeric: true },
      { header: "SUCCEEDED 1H", cell: (d) => d.lastHour.succeeded, numeric: true },
      { header: "FAILED 1H", cell: (d) => d.lastHour.failed, numeric: true },
      { header: "MEAN RUN", cell: (d) => showDuration(d.lastHour.meanRunMs), numeric: true },
      { header: "PER MIN", cell: (d) => perMinute(d.throughputPerMinute), numeric: true }
    ], "(no definition)")
    const t = stats.total
    yield* Console.log(
      [
        `schema ${ctx.schema} at ${stats.at.toISOString()}`,
        "",
        channels,
        "",
        definitions,
        "",
        `total: ${count(t.waiting)} waiting, ${count(t.delayed)} delayed, ${count(t.held)} held, ${count(t.running)} running; ` +
        `last hour: ${t.lastHour.succeeded} succeeded, ${t.lastHour.failed} failed, ${t.lastHour.errored} attempts errored; ` +
        `${perMinute(t.throughputPerMinute)} per minute`,
        `(counts stop at ${stats.countCap.toLocaleString("en-US")}: "+" means at least, "~" a planner estimate; ` +
        `last-hour figures come from the processes' counters, flushed every few seconds)`
      ].join("\n")
    )
  })
).pipe(Command.withDescription("Statistics per channel and definition: waiting, delayed, held, running, last hour, throughput"))

const secsToMs = (secs: number | undefined) => (secs === undefined ? undefined : secs * 1000)
const perMinute = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1))

// ---------------------------------------------------------------------------------------------------------
// jobs

const stateFlag = Flag.Literals("state", CuckmqAdmin.jobStates).pipe(
  Flag.withDescription(`Only jobs in this state (repeatable): ${CuckmqAdmin.jobStates.join(", ")}`),
  Flag.atLeast(0)
)
const filterFlags = {
  state: stateFlag,
  definition: Flag.String("definition").pipe(Flag.withDescription("Only jobs of this definition"), Flag.optional),
  channel: Flag.String("channel").pipe(Flag.withDescription("Only jobs on this channel"), Flag.optional),
  group: Flag.String("group").pipe(Flag.withDescription("Only jobs of this job group"), Flag.optional)
}

interface FilterInput {
  readonly state: ReadonlyArray<CuckmqAdmin.JobState>
  readonly definition: Option.Option<string>
  readonly channel: Option.Option<string>
  readonly group: Option.Option<string>
}

const toFilter = (input: FilterInput): CuckmqAdmin.JobFilter => ({
  ...(input.state.length > 0 ? { state: input.state } : {}),
  ...(Option.isSome(input.definition) ? { definition: input.definition.value } : {}),
  ...(Option.isSome(input.channel) ? { channel: input.channel.value } : {}),
  ...(Option.isSome(input.group) ? { jobGroup: input.group.value } : {})
})

const hasFilter = (input: FilterInput) =>
  input.state.length > 0 || Option.isSome(input.definition) || Option.isSome(input.channel) || Option.isSome(input.group)

/** A date for people: ISO to the second, in UTC. */
const showDate = (d: Date | undefined) => (d === undefined ? undefined : d.toISOString().replace(/\.\d{3}Z$/, "Z"))

/** At most `n` characters (an ellipsis marks the cut). */
const clip = (text: string | undefined, n: number) =>
  text === undefined ? undefined : text.length <= n ? text : `${text.slice(0, n - 1)}…`

const list = Command.make(
  "list",
  {
    ...filterFlags,
    sort: Flag.ChoiceWithValue("sort", [["id", "id"], ["run-at", "runAt"], ["finalized-at", "finalizedAt"]] as const).pipe(
      Flag.withDescription("Sort key (ties broken by id): id (enqueue order), run-at (live jobs), finalized-at (finalized jobs)"),
      Flag.optional
    ),
    direction: Flag.Literals("direction", ["asc", "desc"]).pipe(
      Flag.withDescription("Defaults to desc (newest first) for id and finalized-at, asc for run-at"),
      Flag.optional
    ),
    limit: Flag.Int("limit").pipe(Flag.withDescription("Jobs per page (1 to 1000)"), Flag.withDefault(50)),
    cursor: Flag.String("cursor").pipe(Flag.withDescription("The next page: the cursor the previous page printed"), Flag.optional)
  },
  Effect.fn(function*(input) {
    const ctx = yield* context
    const query: CuckmqAdmin.JobQuery = {
      ...toFilter(input),
      limit: input.limit,
      ...(Option.isSome(input.sort) ? { sort: input.sort.value } : {}),
      ...(Option.isSome(input.direction) ? { direction: input.direction.value } : {}),
      ...(Option.isSome(input.cursor) ? { cursor: input.cursor.value } : {})
    }
    const page = yield* withAdmin(ctx, admin.use((a) => a.listJobs(query)))
    if (ctx.json) return yield* printJson(page)
    yield* Console.log(table(page.jobs, [
      { header: "ID", cell: (j) => j.id, numeric: true },
      { header: "DEFINITION", cell: (j) => j.definition },
      { header: "CHANNEL", cell: (j) => j.channel },
      { header: "GROUP", cell: (j) => j.jobGroup },
      { header: "STATE", cell: (j) => j.state },
      { header: "ATTEMPTS", cell: (j) => `${j.attempts}/${j.maxAttempts}`, numeric: true },
      { header: "CREATED", cell: (j) => showDate(j.createdAt) },
      { header: "RUN AT / FINALIZED", cell: (j) => showDate(j.finalizedAt ?? j.runAt) },
      { header: "LAST ERROR", cell: (j) => clip(j.lastErrorMessage, 60) }
    ], "(no job matches)"))
    if (page.next !== undefined) yield* Console.log(`\nmore: add --cursor ${page.next} for the next page`)
  })
).pipe(Command.withDescription("List jobs, newest first, filtered by state, definition, channel or group (keyset pages)"))

const jobId = Argument.String("id").pipe(Argument.withDescription("The job's id"))

const show = Command.make(
  "show",
  { id: jobId },
  Effect.fn(function*({ id }) {
    const ctx = yield* context
    const job = yield* withAdmin(ctx, admin.use((a) => a.getJob(id)))
    if (ctx.json) return yield* printJson(job)
    // JSON escapes C0 controls but not DEL and C1 (U+007F to U+009F): each line goes through `printable` too
    const pretty = (v: unknown) => (v === undefined ? "-" : JSON.stringify(v, null, 2).split("\n").map(printable).join("\n"))
    const fields: ReadonlyArray<readonly [string, string | number | undefined]> = [
      ["id", job.id],
      ["definition", job.definition],
      ["channel", job.channel],
      ["group", job.jobGroup],
      ["state", job.state],
      ["attempts", `${job.attempts} of ${job.maxAttempts}`],
      ["claims", job.claims],
      ["crashes", job.crashes],
      ["priority", job.priority],
      ["created", showDate(job.createdAt)],
      ["run at", showDate(job.runAt)],
      ["scheduled for", showDate(job.scheduledFor)],
      ["finalized", showDate(job.finalizedAt)],
      ["worker", job.workerId]
    ]
    const width = Math.max(...fields.map(([k]) => k.length))
    yield* Console.log(
      [
        ...fields.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v === undefined ? "-" : printable(String(v))}`),
        "",
        "payload:",
        pretty(job.payload),
        "",
        "last error:",
        pretty(job.lastError)
      ].join("\n")
    )
  })
).pipe(Command.withDescription("Show one job: its state, attempts, payload and last error"))

/**
 * An action on jobs, by id or by filter: `byId` for each id given (a refusal is reported and the others go on;
 * the command then exits 1), or `byFilter` in bounded batches until nothing more matches (at most `--limit`
 * jobs in all). A filter is required, or `--all`, so that a bare `cuckmq jobs delete` does nothing.
 */
const jobAction = (
  name: string,
  verb: string,
  description: string,
  byId: (a: CuckmqAdmin.CuckmqAdmin["Service"], id: string) => Effect.Effect<CuckmqAdmin.ActionResult, unknown>,
  byFilter: (a: CuckmqAdmin.CuckmqAdmin["Service"], filter: CuckmqAdmin.ActionFilter) => Effect.Effect<CuckmqAdmin.ActionResult, unknown>
) =>
  Command.make(
    name,
    {
      ids: Argument.String("id").pipe(Argument.withDescription("Job ids (or none, with a filter)"), Argument.variadic()),
      ...filterFlags,
      all: Flag.Boolean("all").pipe(Flag.withDescription("With no id and no filter: every job the action applies to"), Flag.withDefault(false)),
      limit: Flag.Int("limit").pipe(Flag.withDescription("By filter: at most this many jobs in all"), Flag.optional)
    },
    Effect.fn(function*(input) {
      const ctx = yield* context
      const byIds = input.ids.length > 0
      if (byIds && (hasFilter(input) || input.all)) {
        return yield* badInput(`${name}: give job ids or a filter (--state, --definition, --channel, --group, --all), not both`)
      }
      if (!byIds && !hasFilter(input) && !input.all) {
        return yield* badInput(`${name}: give job ids, a filter (--state, --definition, --channel, --group), or --all for every job`)
      }
      if (Option.isSome(input.limit) && (byIds || input.limit.value < 1)) {
        return yield* badInput(`${name}: --limit applies to a filter and must be at least 1`)
      }
      const refused: Array<{ readonly jobId: string; readonly error: string; readonly message: string }> = []
      const done = yield* withAdmin(
        ctx,
        Effect.gen(function*() {
          const a = yield* admin
          const ids: Array<string> = []
          if (byIds) {
            for (const id of input.ids) {
              const result = yield* Effect.result(byId(a, id))
              if (result._tag === "Success") ids.push(...result.success.jobIds)
              else {
                const e = result.failure as { readonly _tag?: unknown; readonly message?: unknown }
                // a refusal or an unknown id is about that job; anything else (the database) stops the command
                if (e._tag !== "JobNotFound" && e._tag !== "JobActionRefused" && e._tag !== "JobDefinitionNotDeployed") {
                  return yield* Effect.fail(result.failure)
                }
                refused.push({ jobId: id, error: String(e._tag), message: String(e.message) })
              }
            }
            return ids
          }
          const filter = toFilter(input)
          let left = Option.getOrElse(input.limit, () => Infinity)
          while (left > 0) {
            const batch = Math.min(1000, left)
            const result = yield* byFilter(a, { ...filter, limit: batch })
            ids.push(...result.jobIds)
            left -= result.count
            if (!result.more || result.count === 0) break
          }
          return ids
        })
      )
      if (ctx.json) yield* printJson({ action: name, count: done.length, jobIds: done, refused })
      else {
        yield* Console.log(`${verb} ${done.length} job${done.length === 1 ? "" : "s"}${done.length > 0 && done.length <= 20 ? `: ${done.join(", ")}` : ""}`)
        for (const r of refused) yield* Console.error(`refused job ${r.jobId}: ${r.message}`)
      }
      if (refused.length > 0) {
        return yield* new Failure({ message: `${refused.length} of ${input.ids.length} jobs refused`, exitCode: exitFailed })
      }
    })
  ).pipe(Command.withDescription(description))

const retry = jobAction(
  "retry",
  "retried",
  "Retry failed jobs (redrive): waiting again, due now, attempts reset; by id or by filter",
  (a, id) => a.retryJob(id),
  (a, f) => a.retryJobs(f)
)
const cancel = jobAction(
  "cancel",
  "cancelled",
  "Cancel waiting jobs (finalized as failed, not run); running jobs are refused (not supported yet)",
  (a, id) => a.cancelJob(id),
  (a, f) => a.cancelJobs(f)
)
const deleteJobs = jobAction(
  "delete",
  "deleted",
  "Delete waiting or finalized jobs for good; running jobs are refused",
  (a, id) => a.deleteJob(id),
  (a, f) => a.deleteJobs(f)
)
const runNow = jobAction(
  "run-now",
  "made due",
  "Make delayed jobs due now",
  (a, id) => a.runJobNow(id),
  (a, f) => a.runJobsNow(f)
)

const jobs = Command.make("jobs").pipe(
  Command.withDescription("List, show, retry, cancel, delete jobs, or run delayed ones now"),
  Command.withSubcommands([list, show, retry, cancel, deleteJobs, runNow])
)

// ---------------------------------------------------------------------------------------------------------
// pause, resume, channels

const channelState = (ctx: Context, state: Cuckmq.ChannelState) =>
  ctx.json
    ? printJson(state)
    : Console.log(`channel ${state.channel}: ${state.paused ? "paused" : "active"} (rate limit: ${showRateLimit(state.rateLimit)})`)

const channelArgument = Argument.String("channel").pipe(Argument.withDescription("The channel's name"))

const pause = Command.make(
  "pause",
  { channel: channelArgument },
  Effect.fn(function*({ channel }) {
    const ctx = yield* context
    const state = yield* withAdmin(ctx, admin.use((a) => a.pauseChannel(channel)))
    yield* channelState(ctx, state)
  })
).pipe(Command.withDescription("Pause a known channel everywhere: no worker claims its jobs until it is resumed (enqueue goes on)"))

const resume = Command.make(
  "resume",
  { channel: channelArgument },
  Effect.fn(function*({ channel }) {
    const ctx = yield* context
    const state = yield* withAdmin(ctx, admin.use((a) => a.resumeChannel(channel)))
    yield* channelState(ctx, state)
  })
).pipe(Command.withDescription("Resume a paused channel and wake its workers"))

const channels = Command.make(
  "channels",
  {},
  Effect.fn(function*() {
    const ctx = yield* context
    const all = yield* withAdmin(ctx, admin.use((a) => a.channels))
    if (ctx.json) return yield* printJson(all)
    yield* Console.log(table(all, [
      { header: "CHANNEL", cell: (c) => c.channel },
      { header: "STATE", cell: (c) => (c.paused ? "paused" : "active") },
      { header: "RATE LIMIT", cell: (c) => showRateLimit(c.rateLimit) },
      { header: "DEFINITIONS", cell: (c) => c.definitions.join(", ") }
    ], "(no channel: nothing is deployed and no channel has settings)"))
  })
).pipe(Command.withDescription("The known channels and their flow control"))

// ---------------------------------------------------------------------------------------------------------
// workers, purge

const workers = Command.make(
  "workers",
  {},
  Effect.fn(function*() {
    const ctx = yield* context
    const all = yield* withAdmin(ctx, admin.use((a) => a.workers))
    if (ctx.json) return yield* printJson(all)
    const now = Date.now()
    yield* Console.log(table(all, [
      { header: "NAME", cell: (w) => w.name },
      { header: "HOST", cell: (w) => w.hostname },
      { header: "PID", cell: (w) => w.pid, numeric: true },
      { header: "CHANNELS", cell: (w) => w.channels.join(", ") },
      { header: "CONCURRENCY", cell: (w) => w.concurrency, numeric: true },
      { header: "IN FLIGHT", cell: (w) => w.inFlight, numeric: true },
      { header: "ALIVE", cell: (w) => (w.alive ? "yes" : "no") },
      { header: "LAST HEARTBEAT", cell: (w) => `${showDuration(Math.max(0, now - w.lastHeartbeatAt.getTime()))} ago`, numeric: true },
      { header: "STARTED", cell: (w) => showDate(w.startedAt) },
      { header: "ID", cell: (w) => w.id }
    ], "(no worker registered)"))
  })
).pipe(Command.withDescription("The registered workers: alive or not, channels, concurrency, in-flight jobs, last heartbeat"))

const purge = Command.make(
  "purge",
  {
    olderThan: Flag.String("older-than").pipe(
      Flag.withDescription('Delete jobs finalized more than this long ago: "7 days", "12 hours", "30 minutes"')
    ),
    state: Flag.Literals("state", ["succeeded", "failed"]).pipe(
      Flag.withDescription("Only succeeded or only failed jobs (default: both)"),
      Flag.optional
    )
  },
  Effect.fn(function*({ olderThan, state }) {
    const ctx = yield* context
    const duration = Duration.fromInput(olderThan.trim() as Duration.Input)
    if (Option.isNone(duration) || Duration.toMillis(duration.value) < 0 || !Duration.isFinite(duration.value)) {
      return yield* badInput(`--older-than ${JSON.stringify(olderThan)} is not a duration (e.g. "7 days", "12 hours", "30 minutes")`)
    }
    const total = yield* withAdmin(
      ctx,
      Effect.gen(function*() {
        const a = yield* admin
        let n = 0
        while (true) {
          const r = yield* a.purge({ olderThan: duration.value, ...(Option.isSome(state) ? { state: state.value } : {}) })
          n += r.count
          if (!r.more || r.count === 0) return n
        }
      })
    )
    if (ctx.json) return yield* printJson({ deleted: total, olderThanMs: Duration.toMillis(duration.value) })
    yield* Console.log(`purged ${total} finalized job${total === 1 ? "" : "s"} older than ${showDuration(duration.value)}`)
  })
).pipe(Command.withDescription("Delete finalized jobs older than a duration (in bounded batches)"))

// ---------------------------------------------------------------------------------------------------------
// dashboard

const dashboard = Command.make(
  "dashboard",
  {
    port: Flag.Int("port").pipe(Flag.withDescription("The TCP port (0: a free one)"), Flag.withDefault(CuckmqDashboard.defaults.port)),
    host: Flag.String("host").pipe(
      Flag.withDescription("The address to bind; 0.0.0.0 exposes it (put a proxy that authenticates in front)"),
      Flag.withDefault(CuckmqDashboard.defaults.host)
    ),
    token: Flag.Redacted("token").pipe(
      Flag.withDescription("The token actions need (at least 16 characters); prefer $CUCKMQ_DASHBOARD_TOKEN, which ps does not show"),
      Flag.optional
    ),
    readOnly: Flag.Boolean("read-only").pipe(Flag.withDescription("Refuse every action, even with a token"), Flag.withDefault(false)),
    refreshInterval: Flag.String("refresh-interval").pipe(
      Flag.withDescription('Time between two refreshes of the shared overview: "2 seconds" (default), "500 millis"'),
      Flag.optional
    ),
    title: Flag.String("title").pipe(Flag.withDescription("The title of the pages"), Flag.optional),
    allowedHost: Flag.String("allowed-host").pipe(
      Flag.withDescription("A host name the dashboard answers to besides loopback and the bound address (repeat it)"),
      Flag.atLeast(0)
    )
  },
  Effect.fn(function*(input) {
    const ctx = yield* context
    const env = yield* Effect.orElseSucceed(Config.option(Config.String("CUCKMQ_DASHBOARD_TOKEN")), () => Option.none<string>())
    const token = Option.isSome(input.token) ? Option.some(input.token.value) : Option.map(Option.filter(env, (t) => t !== ""), Redacted.make)
    let refreshInterval: Duration.Duration | undefined
    if (Option.isSome(input.refreshInterval)) {
      const d = Duration.fromInput(input.refreshInterval.value.trim() as Duration.Input)
      if (Option.isNone(d)) return yield* badInput(`--refresh-interval ${JSON.stringify(input.refreshInterval.value)} is not a duration`)
      refreshInterval = d.value
    }
    const options: CuckmqDashboard.Options = {
      port: input.port,
      host: input.host,
      ...(Option.isSome(token) ? { token: token.value } : {}),
      ...(input.readOnly ? { readOnly: true } : {}),
      ...(refreshInterval !== undefined ? { refreshInterval } : {}),
      ...(Option.isSome(input.title) ? { title: input.title.value } : {}),
      ...(input.allowedHost.length > 0 ? { allowedHosts: input.allowedHost } : {})
    }
    yield* withAdmin(
      ctx,
      Effect.gen(function*() {
        const d = yield* CuckmqDashboard.CuckmqDashboard
        // one line either way, printed once the server listens: a script can wait for it
        yield* ctx.json
          ? Console.log(JSON.stringify({ url: d.url, host: d.host, port: d.port, readOnly: d.readOnly }))
          : Console.log(`cuckmq dashboard on ${d.url} (${d.readOnly ? "read-only" : "actions need the token"}); Ctrl-C stops it`)
        return yield* Effect.never
      }).pipe(Effect.provide(CuckmqDashboard.layer(options)))
    )
  })
).pipe(Command.withDescription("Serve the web dashboard (127.0.0.1:8080 by default) until interrupted"))

// ---------------------------------------------------------------------------------------------------------
// main

/** The whole command tree. */
const cli = root.pipe(Command.withSubcommands([migrate, sql, status, jobs, pause, resume, channels, workers, purge, dashboard]))

/** Runs the command line on `process.argv` and exits with its exit code. */
export const main = (): void =>
  cli.pipe(
    Command.run({ version }),
    // stdout is for the command's output (a --json document must parse): logs go to stderr, and only
    // warnings and errors unless --log-level asks for more
    Effect.provideService(Logger.LogToStderr, true),
    Effect.provideService(References.MinimumLogLevel, "Warn"),
    Effect.provide(NodeServices.layer),
    NodeRuntime.runMain({ disableErrorReporting: true, teardown })
  )
