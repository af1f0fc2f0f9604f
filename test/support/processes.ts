/**
 * Child processes for multi-process tests: a fixture program run with this project's Node (22+) and tsx,
 * killed on scope exit if still alive.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as path from "node:path"
import { Effect, Layer, type Scope } from "effect"
import { SqlClient } from "effect/sql"
import { Cuckmq, type JobDefinition, Migrations } from "../../src/index.js"
import { uniqueSchema } from "./pg.js"

export interface Child {
  readonly pid: number
  /** Resolves once the child printed READY. */
  readonly ready: Effect.Effect<void>
  /** Sends a signal. */
  readonly kill: (signal: NodeJS.Signals) => Effect.Effect<void>
  /** Waits for the child to exit and returns its exit code (or the signal's name). */
  readonly exited: Effect.Effect<number | string>
  readonly output: () => string
}

const root = path.resolve(import.meta.dirname, "../..")

/**
 * Runs a fixture; `options.prefix` is a command to run it under (e.g. `ip netns exec <ns>`, which execs the
 * program itself, so the pid and signals are the fixture's).
 */
export const spawnFixture = (
  fixture: string,
  env: Record<string, string>,
  options: { readonly prefix?: ReadonlyArray<string> } = {}
): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const argv = [...(options.prefix ?? []), process.execPath, "--import", "tsx", path.resolve(root, "test/fixtures", fixture)]
      const child: ChildProcess = spawn(argv[0]!, argv.slice(1), {
        cwd: root,
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let out = ""
      let readyResolve: () => void
      const readyPromise = new Promise<void>((resolve) => (readyResolve = resolve))
      const exitPromise = new Promise<number | string>((resolve) =>
        child.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown"))
      )
      child.stdout!.on("data", (chunk: Buffer) => {
        out += chunk.toString()
        if (out.includes("READY")) readyResolve()
      })
      child.stderr!.on("data", (chunk: Buffer) => {
        out += chunk.toString()
      })
      const handle: Child = {
        pid: child.pid!,
        ready: Effect.promise(() => Promise.race([readyPromise, exitPromise.then((code) => {
          throw new Error(`fixture ${fixture} exited (${code}) before READY:\n${out}`)
        })])),
        kill: (signal) => Effect.sync(() => void child.kill(signal)),
        exited: Effect.promise(() => exitPromise),
        output: () => out
      }
      return { child, handle }
    }),
    ({ child }) => Effect.sync(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    })
  ).pipe(Effect.map(({ handle }) => handle))

/**
 * A fresh schema with the cuckmq tables plus the fixtures' `runs` table (see fixtures/definitions.ts; dropped
 * when the scope closes), and a context on it to enqueue with.
 */
export const processSchema = (prefix: string, definitions: ReadonlyArray<JobDefinition.JobDefinition<any, any, SqlClient.SqlClient>>) =>
  Effect.gen(function*() {
    const schema = uniqueSchema(prefix)
    const sql = yield* SqlClient.SqlClient
    yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`))
    yield* Migrations.migrate(schema)
    yield* sql`CREATE TABLE ${sql(`${schema}.runs`)} (
      id serial PRIMARY KEY, job_id bigint NOT NULL, pid int NOT NULL, attempt int NOT NULL,
      started_at timestamptz NOT NULL DEFAULT clock_timestamp(), ended_at timestamptz)`
    const context = yield* Layer.build(Cuckmq.layer({ schema, definitions }))
    const table = (name: string) => sql(`${schema}.${name}`)
    return { schema, context, table }
  })
