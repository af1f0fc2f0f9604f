/**
 * Every example runs as written (as a separate process, against this run's database) and prints what its
 * comments promise.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { databaseUrl } from "./support/pg.js"
import { spawnFixture } from "./support/processes.js"

const runExample = (file: string, env: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const child = yield* spawnFixture(`../../examples/${file}`, { DATABASE_URL: databaseUrl(), ...env })
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

  it.live("transactional-enqueue: the job exists exactly when the app's row does", () =>
    Effect.gen(function*() {
      const { code, output } = yield* runExample("transactional-enqueue.ts")
      assert.strictEqual(code, 0, output)
      assert.include(output, "rolled back: SqlError")
      assert.include(output, "users: 1, welcome-email jobs: 1")
    }))
})
