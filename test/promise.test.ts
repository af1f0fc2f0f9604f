/**
 * The Promise API (`@cuckmq/effect/promise`), the seed's own API, on real PostgreSQL: the seed's README
 * "First Look" as a separate program (1,000 PING jobs, each run exactly once, and the program exits by
 * itself after `stop()`), retries, delays, job groups, events, `stop()`, migrations and typed errors.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Redacted } from "effect"
import { Pool } from "pg"
import {
  Context,
  type Event,
  generateMigrationSql,
  InvalidJobDefinition,
  InvalidPayload,
  InvalidSchemaName,
  JobDefinition,
  JobDefinitionNotDeployed,
  Orchestrator,
  SchemaNotMigrated,
  StorageError,
  Worker
} from "../src/promise.js"
import { latestVersion } from "../src/Migrations.js"
import * as PoolConfig from "../src/internal/promise/pool.js"
import { databaseUrl, uniqueSchema } from "./support/pg.js"
import { spawnFixture } from "./support/processes.js"

const root = path.resolve(import.meta.dirname, "..")

/** Each test's pool and schema, dropped after the test. */
const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

const setup = async (prefix: string, options: { readonly migrate?: boolean } = {}) => {
  const pool = new Pool({ connectionString: databaseUrl(), max: 4 })
  const schema = uniqueSchema(`promise_${prefix}`)
  const contexts: Array<Context> = []
  cleanups.push(async () => {
    await Promise.all(contexts.map((c) => c.close()))
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await pool.end()
  })
  if (options.migrate ?? true) await pool.query(generateMigrationSql(schema))
  const context = (extra: Partial<ConstructorParameters<typeof Context>[0]> = {}) => {
    const c = new Context({ pool, schema, ...extra })
    contexts.push(c)
    return c
  }
  return { pool, schema, context }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const until = async (what: string, condition: () => boolean, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

describe("Promise API", () => {
  it.live("the seed's First Look runs as written: 1,000 PING jobs, each exactly once, then the program exits", () =>
    Effect.gen(function*() {
      const schema = uniqueSchema("promise_first_look")
      const pool = new Pool({ connectionString: databaseUrl(), max: 1 })
      yield* Effect.addFinalizer(() =>
        Effect.promise(async () => {
          await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
          await pool.end()
        })
      )
      const child = yield* spawnFixture("promise-first-look.ts", { DATABASE_URL: databaseUrl(), CUCKMQ_SCHEMA: schema })
      const code = yield* child.exited.pipe(Effect.timeout("90 seconds"))
      const output = child.output()
      assert.strictEqual(code, 0, output)
      const runs = new Map<string, number>()
      for (const line of output.split("\n")) {
        if (line.startsWith("PING #")) runs.set(line, (runs.get(line) ?? 0) + 1)
      }
      const missing = Array.from({ length: 1000 }, (_, i) => `PING #${i}`).filter((m) => !runs.has(m))
      const duplicated = Array.from(runs).filter(([, n]) => n !== 1)
      assert.deepStrictEqual(missing, [])
      assert.deepStrictEqual(duplicated, [])
      assert.strictEqual(runs.size, 1000)
      // and the database agrees: 1,000 finalized PING jobs, nothing left waiting or running
      const done = yield* Effect.promise(() =>
        pool.query(`SELECT count(*)::int AS n FROM "${schema}".job_finalized WHERE name = 'PING' AND succeeded`)
      )
      const live = yield* Effect.promise(() => pool.query(`SELECT count(*)::int AS n FROM "${schema}".job`))
      assert.strictEqual(done.rows[0].n, 1000)
      assert.strictEqual(live.rows[0].n, 0)
    }).pipe(Effect.scoped))

  it("retries: a work function that throws or rejects fails the attempt, until numAttempts are spent", async () => {
    const { pool, schema, context: makeContext } = await setup("retries")
    const context = makeContext()
    const attempts: Record<string, Array<number>> = { flaky: [], doomed: [] }
    const flaky = new JobDefinition({
      name: "flaky",
      context,
      numAttempts: 3,
      timeoutSecs: 0,
      workFunction: async (_payload: {}, { attempt }) => {
        attempts.flaky!.push(attempt)
        if (attempt < 3) throw new Error(`flaky attempt ${attempt}`)
      }
    })
    const doomed = new JobDefinition({
      name: "doomed",
      context,
      numAttempts: 2,
      timeoutSecs: 0,
      workFunction: (_payload: {}, { attempt }) => {
        attempts.doomed!.push(attempt)
        throw new Error("always fails, synchronously") // not even a Promise
      }
    })
    const errors: Array<Event> = []
    context.addEventHandler((event) => {
      if (event._tag === "WORKER_JOB_RUN_ERROR" || event._tag === "WORKER_JOB_EXPIRE") errors.push(event)
    })
    await flaky.deploy()
    await doomed.deploy()
    const worker = new Worker({ context, pollIntervalSecs: 0.1 })
    const flakyId = await flaky.enqueue({})
    const doomedId = await doomed.enqueue({})
    await until("both jobs finalized", () => errors.some((e) => e._tag === "WORKER_JOB_EXPIRE") && attempts.flaky!.length === 3)
    await worker.stop()
    assert.deepStrictEqual(attempts, { flaky: [1, 2, 3], doomed: [1, 2] })
    const rows = await pool.query(`SELECT id::text, succeeded, attempts FROM "${schema}".job_finalized ORDER BY id`)
    assert.deepStrictEqual(rows.rows, [
      { id: flakyId, succeeded: true, attempts: 3 },
      { id: doomedId, succeeded: false, attempts: 2 }
    ])
    const messages = errors.flatMap((e) => e._tag === "WORKER_JOB_RUN_ERROR" ? [e.message] : [])
    assert.includeMembers(messages, ["flaky attempt 1", "flaky attempt 2", "always fails, synchronously"])
  })

  it("awaitResult and cancel: a running work function's signal is aborted, the job is cancelled, its group's next job runs", async () => {
    const { context: makeContext } = await setup("cancel")
    const context = makeContext()
    const log: Array<string> = []
    const slow = new JobDefinition({
      name: "slow",
      context,
      workFunction: (_: Record<string, never>, { signal }) =>
        new Promise<void>((resolve) => {
          log.push("started")
          signal.addEventListener("abort", () => {
            log.push("aborted")
            resolve()
          })
        })
    })
    const quick = new JobDefinition({ name: "quick", context, workFunction: () => void log.push("quick") })
    await slow.deploy()
    await quick.deploy()
    const worker = new Worker({ context, pollIntervalSecs: 0.1 })
    await worker.ready
    const a = await slow.enqueue({}, { jobGroup: "g" })
    const b = await quick.enqueue({}, { jobGroup: "g" })
    await until("the slow job started", () => log.includes("started"))
    assert.strictEqual(await context.cancel(a), "cancelling")
    const rejected = await slow.awaitResult(a).then(() => undefined, (e: { _tag: string }) => e._tag)
    assert.strictEqual(rejected, "JobCancelled")
    await quick.awaitResult(b)
    assert.deepStrictEqual(log, ["started", "aborted", "quick"])
    const waiting = await quick.enqueue({}, { delaySecs: 3600 })
    assert.deepStrictEqual(await context.cancelWhere({ definition: "quick" }), { cancelled: [waiting], cancelling: [] })
    await worker.stop()
  })

  it("delaySecs: a delayed job does not run before its delay, and does not hold up other jobs", async () => {
    const { context: makeContext } = await setup("delay")
    const context = makeContext()
    const ranAt = new Map<string, number>()
    const job = new JobDefinition({
      name: "delayed",
      context,
      workFunction: (payload: { name: string }) => {
        ranAt.set(payload.name, Date.now())
      }
    })
    await job.deploy()
    const worker = new Worker({ context, pollIntervalSecs: 0.1 })
    await worker.ready
    const start = Date.now()
    await job.enqueue({ name: "later" }, { delaySecs: 1.5 })
    await job.enqueue({ name: "now" })
    await until("both ran", () => ranAt.size === 2)
    await worker.stop()
    assert.isBelow(ranAt.get("now")!, ranAt.get("later")!)
    assert.isAtLeast(ranAt.get("later")! - start, 1500)
  })

  it("jobGroup: never two jobs of one group at once (start/end times), while other groups run alongside", async () => {
    const { context: makeContext } = await setup("groups")
    const context = makeContext()
    const runs: Array<{ group: string; start: number; end: number }> = []
    const job = new JobDefinition({
      name: "grouped",
      context,
      workFunction: async (payload: { group: string }) => {
        const start = performance.now()
        await sleep(25)
        runs.push({ group: payload.group, start, end: performance.now() })
      }
    })
    await job.deploy()
    const jobs = Array.from({ length: 24 }, (_, i) => ({ payload: { group: `g${i % 3}` }, jobGroup: `g${i % 3}` }))
    await job.enqueueMany(jobs)
    const workers = [new Worker({ context, concurrency: 10 }), new Worker({ context, concurrency: 10 })]
    await until("24 runs", () => runs.length === 24, 60_000)
    await Promise.all(workers.map((w) => w.stop()))
    for (const group of ["g0", "g1", "g2"]) {
      const mine = runs.filter((r) => r.group === group).sort((a, b) => a.start - b.start)
      assert.strictEqual(mine.length, 8)
      for (let i = 1; i < mine.length; i++) {
        assert.isAtLeast(mine[i]!.start, mine[i - 1]!.end, `${group}: run ${i} started before run ${i - 1} ended`)
      }
    }
    // the workers did run jobs at the same time (of different groups), so the check above could fail
    const overlaps = runs.some((a) => runs.some((b) => a !== b && a.start < b.end && b.start < a.end))
    assert.isTrue(overlaps)
  })

  it("addEventHandler: events by _tag with their fields, failing handlers carry on, late handlers join, removal stops", async () => {
    const { context: makeContext } = await setup("events")
    const context = makeContext()
    const seen: Array<Event> = []
    let thrown = 0
    context.addEventHandler((event) => {
      seen.push(event)
    })
    context.addEventHandler(async () => {
      thrown++
      throw new Error("a handler that always fails")
    })
    const job = new JobDefinition({ name: "evented", context, workFunction: () => undefined })
    await job.deploy()
    const worker = new Worker({ context })
    await worker.ready
    const late: Array<Event> = []
    const removeLate = context.addEventHandler((event) => {
      late.push(event)
    })
    const id = await job.enqueue({ hello: "world" }, { jobGroup: "evented-group" })
    await until("the run's success", () => seen.some((e) => e._tag === "WORKER_JOB_RUN_SUCCESS"))
    await until("the late handler's success", () => late.some((e) => e._tag === "WORKER_JOB_RUN_SUCCESS"))
    removeLate()
    const tags = seen.map((e) => e._tag)
    for (const tag of ["JOB_DEFINITION_DEPLOY", "JOB_DEFINITION_JOB_ENQUEUE", "WORKER_JOB_DEQUEUE", "WORKER_JOB_RUN", "WORKER_JOB_RUN_SUCCESS"]) {
      assert.include(tags, tag)
    }
    const enqueued = seen.find((e) => e._tag === "JOB_DEFINITION_JOB_ENQUEUE")!
    assert.deepInclude(enqueued, { jobId: id, definitionName: "evented", jobGroup: "evented-group" })
    const ran = seen.find((e) => e._tag === "WORKER_JOB_RUN")!
    assert.deepInclude(ran, { jobId: id, definitionName: "evented", attempt: 1 })
    assert.isAtLeast(thrown, 5) // it kept receiving events after failing
    assert.include(late.map((e) => e._tag), "WORKER_JOB_RUN_SUCCESS")
    const lateCount = late.length
    await job.enqueue({ hello: "again" })
    await until("the second run", () => seen.filter((e) => e._tag === "WORKER_JOB_RUN_SUCCESS").length === 2)
    await worker.stop()
    assert.strictEqual(late.length, lateCount) // removed: nothing more
  })

  it("stop(): resolves after running jobs finish, claims nothing more, and is idempotent", async () => {
    const { pool, schema, context: makeContext } = await setup("stop")
    const context = makeContext()
    let started = 0
    let finishedAt = 0
    const job = new JobDefinition({
      name: "slow",
      context,
      workFunction: async () => {
        started++
        await sleep(600)
        finishedAt = performance.now()
      }
    })
    await job.deploy()
    const worker = new Worker({ context, pollIntervalSecs: 0.1 })
    const id = await job.enqueue({})
    await until("the job started", () => started === 1)
    const stopping = worker.stop()
    assert.strictEqual(worker.stop(), stopping)
    await stopping
    const stoppedAt = performance.now()
    assert.isAbove(finishedAt, 0)
    assert.isAtMost(finishedAt, stoppedAt)
    const done = await pool.query(`SELECT id::text, succeeded FROM "${schema}".job_finalized`)
    assert.deepStrictEqual(done.rows, [{ id, succeeded: true }])
    // a stopped worker runs nothing
    const later = await job.enqueue({})
    await sleep(800)
    assert.strictEqual(started, 1)
    const waiting = await pool.query(`SELECT id::text, worker_id FROM "${schema}".job`)
    assert.deepStrictEqual(waiting.rows, [{ id: later, worker_id: null }])
  })

  it("stop(): enqueues in flight on the worker's connections finish before they close", async () => {
    const { pool, schema, context: makeContext } = await setup("stop_race")
    const context = makeContext()
    const job = new JobDefinition({ name: "raced", context, workFunction: () => undefined })
    await job.deploy()
    const worker = new Worker({ context })
    await worker.ready
    const racing = Array.from({ length: 200 }, (_, i) => job.enqueue({ i }, { delaySecs: 3600 }))
    await worker.stop()
    const settled = await Promise.allSettled(racing)
    assert.deepStrictEqual(settled.filter((r) => r.status === "rejected"), [])
    const rows = await pool.query(`SELECT count(*)::int AS n FROM "${schema}".job`)
    assert.strictEqual(rows.rows[0].n, 200)
  })

  it("stop(): a job still running after gracePeriodSecs is aborted and goes back with no attempt spent", async () => {
    const { pool, schema, context: makeContext } = await setup("grace")
    const context = makeContext()
    let aborted = false
    let started = 0
    const job = new JobDefinition({
      name: "stuck",
      context,
      workFunction: (_payload: {}, { signal }) =>
        new Promise<void>((_resolve, reject) => {
          started++
          signal.addEventListener("abort", () => {
            aborted = true
            reject(new Error("aborted"))
          })
        })
    })
    await job.deploy()
    const worker = new Worker({ context, gracePeriodSecs: 0.3, pollIntervalSecs: 0.1 })
    const id = await job.enqueue({})
    await until("the job started", () => started === 1)
    await worker.stop()
    assert.isTrue(aborted)
    const rows = await pool.query(`SELECT id::text, attempts, worker_id FROM "${schema}".job`)
    assert.deepStrictEqual(rows.rows, [{ id, attempts: 0, worker_id: null }])
  })

  it("bad input rejects (or throws) with the library's typed errors, readable, and writes nothing", async () => {
    const { pool, schema, context: makeContext } = await setup("errors")
    const context = makeContext()
    const job = new JobDefinition({ name: "typed", context, workFunction: (_payload: { n: unknown }) => undefined })

    const notDeployed = await job.enqueue({ n: 1 }).then(() => undefined, (e: unknown) => e)
    assert.instanceOf(notDeployed, JobDefinitionNotDeployed)
    assert.strictEqual((notDeployed as JobDefinitionNotDeployed)._tag, "JobDefinitionNotDeployed")
    assert.include((notDeployed as Error).message, "typed")

    await job.deploy()
    for (const [payload, why] of [[{ n: 1n }, "BigInt"], [{ n: "a\u0000b" }, "NUL"]] as const) {
      const error = await job.enqueue(payload).then(() => undefined, (e: unknown) => e)
      assert.instanceOf(error, InvalidPayload)
      assert.strictEqual((error as InvalidPayload)._tag, "InvalidPayload")
      assert.include((error as Error).message, `Invalid payload for job definition "typed"`)
      assert.include((error as Error).message, why)
    }
    const cyclic: { n: unknown } = { n: undefined }
    cyclic.n = cyclic
    const many = await job.enqueueMany([{ payload: { n: 1 } }, { payload: cyclic }]).then(() => undefined, (e: unknown) => e)
    assert.instanceOf(many, InvalidPayload)
    assert.include((many as Error).message, "(job 1)")
    const options = await job.enqueue({ n: 1 }, { delaySecs: -1 }).then(() => undefined, (e: unknown) => e)
    assert.strictEqual((options as { _tag: string })._tag, "InvalidEnqueueOptions")
    assert.include((options as Error).message, "delaySecs")
    const rows = await pool.query(`SELECT count(*)::int AS n FROM "${schema}".job`)
    assert.strictEqual(rows.rows[0].n, 0)

    assert.throws(() => new Context({ pool, schema: "no spaces allowed" }), InvalidSchemaName, "Invalid schema name")
    assert.throws(() => generateMigrationSql("a; DROP TABLE b"), InvalidSchemaName, "Invalid schema name")
    assert.throws(() => new JobDefinition({ name: "typed", context, workFunction: () => undefined }), InvalidJobDefinition, "already defined")
    assert.throws(
      () => new JobDefinition({ name: "zero", context, numAttempts: 0, workFunction: () => undefined }),
      InvalidJobDefinition,
      "numAttempts"
    )
    const worker = new Worker({ context, concurrency: 0 })
    const startError = await worker.ready.then(() => undefined, (e: unknown) => e)
    assert.strictEqual((startError as { _tag: string })._tag, "InvalidOptions")
    assert.include((startError as Error).message, "concurrency")
    await worker.stop() // resolves: nothing to stop
  })

  it("migrations: generateMigrationSql is idempotent and agrees with context.migrate()", async () => {
    const { pool, schema, context: makeContext } = await setup("migrate", { migrate: false })
    const context = makeContext()
    const applied = await context.migrate()
    assert.deepStrictEqual(applied.map(([id]) => id), Array.from({ length: latestVersion }, (_, i) => i + 1))
    const before = await pool.query(`SELECT migration_id, name FROM "${schema}".cuckmq_migrations ORDER BY 1`)
    await pool.query(generateMigrationSql(schema)) // finds it current: applies and records nothing
    await Promise.all([pool.query(generateMigrationSql(schema)), pool.query(generateMigrationSql(schema))])
    const after = await pool.query(`SELECT migration_id, name FROM "${schema}".cuckmq_migrations ORDER BY 1`)
    assert.deepStrictEqual(after.rows, before.rows)
    assert.deepStrictEqual(await context.migrate(), [])
    // and the SQL alone builds a schema the queue runs on
    const other = `${schema}_sql`
    cleanups.push(async () => void await pool.query(`DROP SCHEMA IF EXISTS "${other}" CASCADE`))
    await pool.query(generateMigrationSql(other))
    const otherContext = makeContext({ schema: other })
    assert.deepStrictEqual(await otherContext.migrate(), [])
    let ran = false
    const job = new JobDefinition({ name: "m", context: otherContext, workFunction: () => void (ran = true) })
    await job.deploy()
    const worker = new Worker({ context: otherContext })
    await job.enqueue({})
    await until("the job ran", () => ran)
    await worker.stop()
  })

  it("Orchestrator: enqueues a repeatSecs definition's jobs (payload {}), run by a worker; stop() ends both", async () => {
    const { context: makeContext } = await setup("repeat")
    const context = makeContext()
    const payloads: Array<unknown> = []
    const tick = new JobDefinition({ name: "tick", context, repeatSecs: 0.5, workFunction: (payload: {}) => void payloads.push(payload) })
    await tick.deploy()
    const worker = new Worker({ context, pollIntervalSecs: 0.1 })
    const orchestrator = new Orchestrator({ context, jobSchedulePollSecs: 0.2 })
    await until("two ticks", () => payloads.length >= 2)
    await Promise.all([orchestrator.stop(), worker.stop()])
    assert.deepStrictEqual(payloads.slice(0, 2), [{}, {}])
  })

  it("a schema that was never migrated: deploy rejects with SchemaNotMigrated, which says what to do", async () => {
    const { schema, context: makeContext } = await setup("unmigrated", { migrate: false })
    const context = makeContext()
    const job = new JobDefinition({ name: "early", context, workFunction: () => undefined })
    const error = await job.deploy().then(() => undefined, (e: unknown) => e)
    assert.instanceOf(error, SchemaNotMigrated)
    assert.deepStrictEqual((error as SchemaNotMigrated).missing.length, latestVersion)
    assert.include((error as Error).message, `Schema ${schema} is not migrated`)
    assert.include((error as Error).message, "generateMigrationSql")
  })

  it("no database at the pool's address: migrate and enqueue reject with a StorageError", async () => {
    const pool = new Pool({ connectionString: "postgres://postgres@127.0.0.1:1/test", connectionTimeoutMillis: 2000 })
    const context = new Context({ pool, schema: "unreachable" })
    cleanups.push(async () => {
      await context.close()
      await pool.end()
    })
    const job = new JobDefinition({ name: "nowhere", context, workFunction: () => undefined })
    for (const attempt of [() => context.migrate(), () => job.enqueue({})]) {
      const error = await attempt().then(() => undefined, (e: unknown) => e)
      assert.instanceOf(error, StorageError)
      assert.match((error as Error).message, /failed: .*connect/i)
    }
  })

  it("a pg Pool's settings become the client's, resolved as pg resolves them", () => {
    const password = () => Promise.resolve("secret")
    const config = PoolConfig.config(
      new Pool({
        connectionString: "postgres://alice:pw@db.example.com:6543/app?application_name=billing",
        max: 3,
        idleTimeoutMillis: 5000,
        connectionTimeoutMillis: 2000
      })
    )
    assert.deepInclude(config, { host: "db.example.com", port: 6543, username: "alice", database: "app", applicationName: "billing", maxConnections: 3 })
    assert.strictEqual(Redacted.value(config.password as Redacted.Redacted), "pw")
    assert.strictEqual(Duration.toMillis(Duration.fromInputUnsafe(config.idleTimeout!)), 5000)
    assert.strictEqual(Duration.toMillis(Duration.fromInputUnsafe(config.connectTimeout!)), 2000)
    const other = PoolConfig.config(new Pool({ host: "/var/run/postgresql", user: "bob", database: "x", password, ssl: { rejectUnauthorized: false } }))
    assert.deepInclude(other, { host: "/var/run/postgresql", username: "bob", database: "x", maxConnections: 10 })
    assert.deepStrictEqual(other.ssl, { rejectUnauthorized: false })
    assert.isTrue(Effect.isEffect(other.password))
  })

  it("the README shows the First Look exactly as it runs, with the package's import line", () => {
    const program = fs.readFileSync(path.join(root, "test/fixtures/promise-first-look.ts"), "utf8")
    const body = program.split("// first-look:start\n")[1]!.split("// first-look:end")[0]!
    const readme = fs.readFileSync(path.join(root, "README.md"), "utf8")
    const block = readme.split("<!-- promise first look -->\n```ts\n")[1]!.split("```")[0]!
    assert.strictEqual(
      block,
      `import { Pool } from "pg"\nimport { Context, generateMigrationSql, JobDefinition, Orchestrator, Worker } from "@cuckmq/effect/promise"\n\n${body}`
    )
  })
})
