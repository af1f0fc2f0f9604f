/**
 * Every example runs as written (as a separate process, against a database of its own) and prints what its
 * comments promise, and leaves nothing behind: each works in a schema of its own (see `PgLive`'s
 * `scratchSchema` in tools/database.ts) and drops it when it ends, also when it is interrupted or fails.
 */
import { randomBytes } from "node:crypto"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Cuckmq, JobDefinition } from "../src/index.js"
import { exampleSchema, PgLive } from "../tools/database.js"
import { databaseUrl } from "./support/pg.js"
import { spawnFixture } from "./support/processes.js"

// A database of their own for the examples (dropped afterwards), so that "nothing left behind" can be checked
// as "nothing at all besides an empty public schema".
const database = `cuckmq_examples_${randomBytes(4).toString("hex")}`
const exampleUrl = () => {
  const url = new URL(databaseUrl())
  url.pathname = `/${database}`
  return url.toString()
}
const withSql = <A, E>(url: string, f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    return yield* f(yield* SqlClient.SqlClient)
  }).pipe(
    Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })),
    Effect.scoped
  ) as Effect.Effect<A, E, never>

beforeAll(() => Effect.runPromise(withSql(databaseUrl(), (sql) => sql`CREATE DATABASE ${sql(database)}`)))
afterAll(() => Effect.runPromise(withSql(databaseUrl(), (sql) => sql`DROP DATABASE IF EXISTS ${sql(database)} WITH (FORCE)`)))

/**
 * What the examples' database holds besides a fresh one's contents: every schema but `public` and the system
 * ones (cuckmq's default `_cuckmq` included, so no cuckmq row can hide anywhere), and every table, view,
 * sequence, index, function or type in `public`.
 */
const leftovers = withSql(exampleUrl(), (sql) =>
  Effect.gen(function*() {
    const rows = yield* sql<{ what: string }>`
      SELECT 'schema ' || nspname AS what FROM pg_namespace
       WHERE nspname NOT IN ('public', 'information_schema') AND nspname NOT LIKE 'pg\_%'
      UNION ALL
      SELECT 'relation public.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'public'
      UNION ALL
      SELECT 'function public.' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = 'public'
      UNION ALL
      SELECT 'type public.' || t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
       WHERE n.nspname = 'public'
      ORDER BY 1`
    return rows.map((row) => row.what)
  }))

/**
 * `leftovers`, after which the database is cleaned anyway, so that one example that leaves something behind
 * fails its own test only.
 */
const leftoversThenClean = Effect.gen(function*() {
  const found = yield* leftovers
  if (found.length > 0) {
    yield* withSql(exampleUrl(), (sql) =>
      Effect.gen(function*() {
        for (const what of found.filter((w) => w.startsWith("schema "))) {
          yield* sql`DROP SCHEMA IF EXISTS ${sql(what.slice("schema ".length))} CASCADE`
        }
        yield* sql`DROP SCHEMA public CASCADE`
        yield* sql`CREATE SCHEMA public`
      }))
  }
  return found
})

/** Runs `effect` (in this process) with DATABASE_URL set to the examples' database, which PgLive reads. */
const onExampleDatabase = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const saved = process.env.DATABASE_URL
      process.env.DATABASE_URL = exampleUrl()
      return saved
    }),
    () => effect,
    (saved) => Effect.sync(() => {
      if (saved === undefined) delete process.env.DATABASE_URL
      else process.env.DATABASE_URL = saved
    })
  )

const runExample = (file: string, env: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const child = yield* spawnFixture(`../../examples/${file}`, { DATABASE_URL: exampleUrl(), ...env })
    const code = yield* child.exited
    const output = child.output()
    // the example's own schema was used, and is gone
    assert.match(output, /using DATABASE_URL/)
    assert.deepStrictEqual(yield* leftoversThenClean, [], `${file} left this behind:\n${output}`)
    return { code, output }
  }).pipe(Effect.scoped)

describe("examples", () => {
  it.live("quickstart: 1,000 PING jobs over two workers, then a graceful stop", () =>
    Effect.gen(function*() {
      const { code, output } = yield* runExample("quickstart.ts")
      assert.strictEqual(code, 0, output)
      assert.strictEqual(output.match(/PING job \d+ \(attempt 1\): hello #\d+/g)?.length, 1000)
      assert.include(output, "all 1000 PING jobs ran")
      assert.include(output, "worker-1")
      assert.include(output, "worker-2")
    }))

  it.live("channels: a reserved worker runs urgent jobs while the default backlog waits", () =>
    Effect.gen(function*() {
      const { code, output } = yield* runExample("channels.ts")
      assert.strictEqual(code, 0, output)
      assert.strictEqual(output.match(/reset link sent to/g)?.length, 3)
      assert.include(output, "all 3 password resets ran while the report backlog was still waiting")
    }))

  it.live("job-groups: one sync per account at a time", () =>
    Effect.gen(function*() {
      const { code, output } = yield* runExample("job-groups.ts")
      assert.strictEqual(code, 0, output)
      assert.include(output, "30 batches synced with 20 worker slots; overlapping syncs of one account: 0")
    }))

  it.live("flow-control: priorities, a paused channel, group concurrency, group and channel rate limits", () =>
    Effect.gen(function*() {
      const { code, output } = yield* runExample("flow-control.ts")
      assert.strictEqual(code, 0, output)
      assert.include(output, "reports paused: true")
      assert.include(output, "while paused, reports run: 0")
      assert.include(output, "reports ran by priority: 10 10 5 0 0 0")
      // the limits bound what runs at once; they do not promise that a limit is reached
      const most = /18 syncs; most at once: acme (\d+) \(its own limit 3\), globex (\d+) \(the definition's groupConcurrency 2\)/
        .exec(output)
      assert.isNotNull(most, output)
      assert.isAtMost(Number(most![1]), 3)
      assert.isAtMost(Number(most![2]), 2)
      assert.match(output, /6 notifications for acme \(2 per second\) and 25 partner-api calls \(10 per second\) took/)
      assert.include(output, "partner-api rate limit: 10 per 1s")
      assert.strictEqual(output.match(/CHANNEL_UPDATE: /g)?.length, 3)
      assert.strictEqual(output.match(/GROUP_UPDATE: acme/g)?.length, 1)
    }))

  it.live("repeating: an interval job and a cron job run when due", () =>
    Effect.gen(function*() {
      const { code, output } = yield* runExample("repeating.ts")
      assert.strictEqual(code, 0, output)
      assert.match(output, /ran \d+ heartbeats and \d+ cron cleanups/)
      assert.include(output, "cron cleanup due at")
    }))

  it.live("events: a handler logs failures and a Stream counts events", () =>
    Effect.gen(function*() {
      const { code, output } = yield* runExample("events.ts")
      assert.strictEqual(code, 0, output)
      assert.strictEqual(output.match(/failed \(attempt 1, retry: true\)/g)?.length, 4)
      assert.include(output, "WORKER_JOB_RUN_SUCCESS: 20")
      assert.match(output, /shipped 4 failures as JSON, e\.g\. \{\\?"_tag\\?":\\?"WORKER_JOB_RUN_ERROR\\?"/)
      assert.match(output, /decoded 4 WORKER_JOB_RUN_ERROR, retries at \d{4}-\d\d-\d\dT/)
    }))

  it.live("observability: job spans linked to the enqueue span, and the metrics, reach the OpenTelemetry exporters", () =>
    Effect.gen(function*() {
      const { code, output } = yield* runExample("observability.ts")
      assert.strictEqual(code, 0, output)
      assert.strictEqual(output.match(/name: 'cuckmq\.job resize-image'/g)?.length, 2)
      assert.include(output, "name: 'cuckmq.enqueue'")
      assert.include(output, "links: [")
      assert.include(output, "name: 'cuckmq_jobs_succeeded_total'")
      assert.include(output, "name: 'cuckmq_job_run_duration_seconds'")
    }))

  it.live("transactional-enqueue: the job exists exactly when the app's row does", () =>
    Effect.gen(function*() {
      const { code, output } = yield* runExample("transactional-enqueue.ts")
      assert.strictEqual(code, 0, output)
      assert.include(output, "rolled back: SqlError")
      assert.include(output, "refused: ")
      assert.include(output, "users: 1, welcome-email jobs: 1")
    }))

  it.live("an example interrupted by Ctrl-C (SIGINT) still drops its schema", () =>
    Effect.gen(function*() {
      const child = yield* spawnFixture("../../examples/repeating.ts", { DATABASE_URL: exampleUrl() })
      // wait until it runs (its schema exists, with a deployed repeating definition), then interrupt it
      for (let i = 0; i < 600 && !child.output().includes("heartbeat due at"); i++) yield* Effect.sleep("50 millis")
      assert.include(child.output(), "heartbeat due at")
      const during = yield* leftovers
      assert.strictEqual(during.length, 1, during.join(", "))
      assert.match(during[0]!, /^schema cuckmq_example_repeating_[0-9a-f]{8}$/)
      yield* child.kill("SIGINT")
      yield* child.exited
      assert.notInclude(child.output(), "heartbeats and") // it stopped before its end
      assert.deepStrictEqual(yield* leftoversThenClean, [], child.output())
    }).pipe(Effect.scoped))

  it.live("a program on PgLive({ scratchSchema }) that fails still drops its schema", () =>
    Effect.gen(function*() {
      const schema = exampleSchema("failing")
      const Noop = JobDefinition.make({ name: "noop", handler: () => Effect.void })
      const program = Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE ${sql(`${schema}.app_table`)} (id int)`
        yield* Noop.enqueue({})
        return yield* Effect.fail("the program failed")
      })
      const exit = yield* program.pipe(
        Effect.provide(Cuckmq.layer({ schema, definitions: [Noop] }).pipe(Layer.provideMerge(PgLive({ scratchSchema: schema })))),
        onExampleDatabase,
        Effect.exit
      )
      assert.deepStrictEqual(exit, Exit.fail("the program failed"))
      assert.deepStrictEqual(yield* leftoversThenClean, [])
    }))

  it.live("attempt-control: a capped exponential retry policy, retryAfter, snooze, a time limit", () =>
    Effect.gen(function*() {
      const { code, output } = yield* runExample("attempt-control.ts")
      assert.strictEqual(code, 0, output)
      assert.include(output, "flaky-upload attempt 1 failed (upload failed (attempt 1)): retry in 100 ms")
      assert.include(output, "flaky-upload attempt 2 failed (upload failed (attempt 2)): retry in 200 ms")
      assert.include(output, "flaky-upload attempt 3 failed (upload failed (attempt 3)): retry in 300 ms")
      assert.include(output, "call-throttled-api attempt 1 failed (HTTP 429): retry in 250 ms")
      assert.include(output, "publish-when-ready snoozed (2 so far), again in 100 ms")
      assert.include(output, "published launch-post on attempt 1 after 2 snoozes")
      assert.include(output, "render attempt 1 interrupted at its time limit")
      assert.include(output, "rendered on attempt 2")
      assert.include(output, "all 4 jobs done")
    }))

  it.live("unique-jobs: kept, replaced, debounced, a period, a rolled-back transaction frees its key", () =>
    Effect.gen(function*() {
      const { code, output } = yield* runExample("unique-jobs.ts")
      assert.strictEqual(code, 0, output)
      assert.include(output, "receipt: inserted, then kept (same job: true)")
      assert.include(output, "profile: inserted, replaced")
      assert.include(output, "synced u-1 as Ada Lovelace")
      assert.notInclude(output, "synced u-1 as Ada {")
      assert.include(output, "edit 1: inserted")
      assert.include(output, "edit 3: debounced")
      assert.strictEqual(output.split("reindexed doc-7").length - 1, 1, "one reindex")
      assert.include(output, "digest after a rollback: inserted")
      assert.include(output, "digest again within the hour: kept")
      assert.include(output, "all done: 4 jobs ran")
    }))

  it.live("results-cancellation: a typed result, a typed failure, a running job cancelled and its group's next job run", () =>
    Effect.gen(function*() {
      const { code, output } = yield* runExample("results-cancellation.ts")
      assert.strictEqual(code, 0, output)
      assert.include(output, "resized: https://example.com/cat.png?w=320 (32000 bytes)")
      assert.include(output, "resize failed: JobFailed")
      assert.include(output, "cannot resize to width 0")
      assert.include(output, "cancel: cancelling")
      assert.include(output, "export interrupted: temporary files removed")
      assert.include(output, "export: JobCancelled")
      assert.include(output, "tenant notified")
      assert.include(output, "done")
      assert.isBelow(output.indexOf("export interrupted"), output.indexOf("tenant notified"))
    }))

  it.live("a scratch schema is never one that exists already", () =>
    Effect.gen(function*() {
      const schema = exampleSchema("taken")
      yield* withSql(exampleUrl(), (sql) => sql`CREATE SCHEMA ${sql(schema)}`)
      const exit = yield* Layer.build(PgLive({ scratchSchema: schema })).pipe(Effect.scoped, onExampleDatabase, Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      // the schema that was there is left alone
      assert.deepStrictEqual(yield* leftovers, [`schema ${schema}`])
      yield* withSql(exampleUrl(), (sql) => sql`DROP SCHEMA ${sql(schema)}`)
      assert.deepStrictEqual(yield* leftovers, [])
    }))
})
