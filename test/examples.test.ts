/**
 * Every example runs as written (as a separate process, against this run's database) and prints what its
 * comments promise.
 */
import { randomBytes } from "node:crypto"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import { databaseUrl } from "./support/pg.js"
import { spawnFixture } from "./support/processes.js"

// The examples use the default schema, so they get a database of their own, dropped afterwards.
const database = `cuckmq_examples_${randomBytes(4).toString("hex")}`
const exampleUrl = () => {
  const url = new URL(databaseUrl())
  url.pathname = `/${database}`
  return url.toString()
}
const admin = <A, E>(f: (sql: SqlClient.SqlClient) => Effect.Effect<A, E>) =>
  Effect.runPromise(
    Effect.gen(function*() {
      return yield* f(yield* SqlClient.SqlClient)
    }).pipe(
      Effect.provide(PgClient.layer({ url: Redacted.make(databaseUrl()), maxConnections: 1 })),
      Effect.scoped
    ) as Effect.Effect<A, E, never>
  )

beforeAll(() => admin((sql) => sql`CREATE DATABASE ${sql(database)}`))
afterAll(() => admin((sql) => sql`DROP DATABASE IF EXISTS ${sql(database)} WITH (FORCE)`))

const runExample = (file: string, env: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const child = yield* spawnFixture(`../../examples/${file}`, { DATABASE_URL: exampleUrl(), ...env })
    const code = yield* child.exited
    return { code, output: child.output() }
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
      assert.include(output, "users: 1, welcome-email jobs: 1")
    }))
})
