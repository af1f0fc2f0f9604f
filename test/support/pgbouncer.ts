/**
 * A real PgBouncer in transaction mode for the tests: Debian's `pgbouncer` binary, started with an ini of its
 * own in a temporary directory, on a free port of 127.0.0.1, in front of the run's database (whatever
 * `databaseUrl()` points at: the local server or the embedded one). `pgbouncerBinary()` is undefined when it
 * is not installed (the tests skip then; `.ci/run` installs it).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Layer, Redacted, type Scope } from "effect"
import { PgClient } from "@effect/sql-pg"
import { ClientSettings, type Connection, databaseUrl } from "./pg.js"

/** The pgbouncer binary, if installed (`PGBOUNCER` overrides the lookup). */
export const pgbouncerBinary = (): string | undefined => {
  const candidates = [process.env.PGBOUNCER, "/usr/sbin/pgbouncer", "/usr/bin/pgbouncer", "/usr/local/bin/pgbouncer"]
  for (const c of candidates) if (c !== undefined && c !== "" && fs.existsSync(c)) return c
  const which = spawnSync("sh", ["-c", "command -v pgbouncer"], { encoding: "utf8" })
  const found = which.stdout.trim()
  return which.status === 0 && found !== "" ? found : undefined
}

/** A running PgBouncer. */
export interface PgBouncer {
  /** The URL of the run's database through the pooler. */
  readonly url: string
  readonly port: number
  readonly stop: () => Promise<void>
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address() as net.AddressInfo
      server.close(() => resolve(address.port))
    })
  })

const canConnect = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

/** Quotes a value for pgbouncer's connection strings (`key='value'`). */
const quote = (value: string) => `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`

/**
 * Starts PgBouncer with `pool_mode = transaction` in front of `databaseUrl`. Clients log in with any name
 * (`auth_type = any`); PgBouncer logs in to the server as the URL's user. `settings` adds to or overrides
 * the `[pgbouncer]` section.
 */
export const startPgBouncer = async (
  databaseUrl: string,
  settings: Readonly<Record<string, string | number>> = {}
): Promise<PgBouncer> => {
  const binary = pgbouncerBinary()
  if (binary === undefined) throw new Error("pgbouncer is not installed (apt-get install -y pgbouncer)")
  const server = new URL(databaseUrl)
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cuckmq-pgbouncer-"))
  const serverParts = [
    `host=${quote(server.hostname || "127.0.0.1")}`,
    `port=${server.port || "5432"}`,
    `user=${quote(decodeURIComponent(server.username || "postgres"))}`,
    ...(server.password !== "" ? [`password=${quote(decodeURIComponent(server.password))}`] : [])
  ]
  const pgbouncerSection: Record<string, string | number> = {
    listen_addr: "127.0.0.1",
    listen_port: port,
    unix_socket_dir: "",
    auth_type: "any",
    pool_mode: "transaction",
    max_client_conn: 1000,
    default_pool_size: 40,
    // the tests' own database is any name: one pool per database the clients ask for
    max_db_connections: 0,
    server_reset_query: "DISCARD ALL",
    logfile: path.join(dir, "pgbouncer.log"),
    pidfile: path.join(dir, "pgbouncer.pid"),
    admin_users: "pgbouncer",
    ...settings
  }
  const ini = [
    "[databases]",
    `* = ${serverParts.join(" ")}`,
    "",
    "[pgbouncer]",
    ...Object.entries(pgbouncerSection).map(([k, v]) => `${k} = ${v}`),
    ""
  ].join("\n")
  const iniPath = path.join(dir, "pgbouncer.ini")
  fs.writeFileSync(iniPath, ini, { mode: 0o600 })
  // pgbouncer refuses to run as root: run it as postgres then (the directory must be theirs)
  const asRoot = process.getuid?.() === 0
  if (asRoot) {
    spawnSync("chown", ["-R", "postgres", dir])
  }
  const child: ChildProcess = spawn(binary, [...(asRoot ? ["-u", "postgres"] : []), iniPath], {
    stdio: ["ignore", "ignore", "pipe"]
  })
  let stderr = ""
  child.stderr?.on("data", (chunk: Buffer) => void (stderr += chunk.toString()))
  const exited = new Promise<void>((done) => child.once("exit", () => done()))
  let dead = false
  void exited.then(() => void (dead = true))
  const log = () => {
    try {
      return fs.readFileSync(path.join(dir, "pgbouncer.log"), "utf8")
    } catch {
      return ""
    }
  }
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true })
  const deadline = Date.now() + 10_000
  while (!(await canConnect(port))) {
    if (dead || Date.now() > deadline) {
      child.kill("SIGKILL")
      const detail = `${stderr}\n${log()}`.trim()
      cleanup()
      throw new Error(`pgbouncer did not start on 127.0.0.1:${port}: ${detail}`)
    }
    await new Promise((r) => setTimeout(r, 25))
  }
  const url = new URL(databaseUrl)
  url.hostname = "127.0.0.1"
  url.port = String(port)
  url.password = ""
  return {
    url: url.toString(),
    port,
    stop: async () => {
      if (!dead) {
        child.kill("SIGTERM") // immediate shutdown: the clients are gone by now
        const timer = setTimeout(() => child.kill("SIGKILL"), 3_000)
        await exited
        clearTimeout(timer)
      }
      cleanup()
    }
  }
}

/** PgBouncer as a scoped Effect: started on acquire, stopped on release. */
export const pgbouncer = (
  databaseUrl: string,
  settings: Readonly<Record<string, string | number>> = {}
): Effect.Effect<PgBouncer, never, Scope.Scope> =>
  Effect.acquireRelease(Effect.promise(() => startPgBouncer(databaseUrl, settings)), (b) => Effect.promise(() => b.stop()))

/**
 * How a suite connects through PgBouncer: its clients through a fresh PgBouncer in transaction mode (started
 * when the suite's layer is built, stopped when it is released) with unnamed statements only, and the store
 * told so (`transactionPooler`). `"direct-session"`: the session connection (LISTEN, liveness) reaches the
 * database directly (`directUrl`); `"poll-only"`: there is none.
 */
export const throughPgBouncer = (mode: "direct-session" | "poll-only"): Connection => ({
  name: `pgbouncer (${mode})`,
  layer: (options = {}) =>
    Layer.unwrap(Effect.map(pgbouncer(databaseUrl()), (b) =>
      Layer.merge(
        PgClient.layer({ url: Redacted.make(b.url), maxConnections: options.maxConnections ?? 10, prepare: false }),
        Layer.succeed(ClientSettings, { url: b.url, prepare: false })
      ))),
  store: mode === "poll-only"
    ? { transactionPooler: true }
    : { transactionPooler: true, directUrl: Redacted.make(databaseUrl()) }
})

/**
 * Whether the PgBouncer tests run: when pgbouncer is installed. Missing, they are skipped with a message,
 * unless `CUCKMQ_REQUIRE_PGBOUNCER=1` (set by `.ci/run`), where they fail instead.
 */
export const pgbouncerAvailable = (): boolean => {
  if (pgbouncerBinary() !== undefined) return true
  if (process.env.CUCKMQ_REQUIRE_PGBOUNCER === "1") {
    throw new Error("pgbouncer is not installed, and CUCKMQ_REQUIRE_PGBOUNCER=1 requires it (apt-get install -y pgbouncer)")
  }
  // eslint-disable-next-line no-console
  console.warn("[cuckmq tests] pgbouncer is not installed: the PgBouncer tests are skipped (apt-get install -y pgbouncer)")
  return false
}
