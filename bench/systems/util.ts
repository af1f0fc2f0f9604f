/** Small helpers shared by the adapters. */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import pg from "pg"

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")

/**
 * The installed version of a package, read from node_modules: the benchmark's own (bench/node_modules) or,
 * for what it shares with the library (effect, @effect/sql-pg, tsx), the repository's.
 */
export const installedVersion = (pkg: string): string => {
  const dirs = [path.join(repoRoot, "bench", "node_modules"), path.join(repoRoot, "node_modules")]
  const file = dirs.map((dir) => path.join(dir, pkg, "package.json")).find((f) => fs.existsSync(f))
  if (file === undefined) throw new Error(`${pkg} is not installed (npm run bench installs bench/ on first use)`)
  return (JSON.parse(fs.readFileSync(file, "utf8")) as { version: string }).version
}

/** Runs one statement on a short-lived connection (purges between workloads; not part of any measurement). */
export const adminQuery = async (databaseUrl: string, text: string): Promise<void> => {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    await client.query(text)
  } finally {
    await client.end()
  }
}

/** The payload index of a job, checked. */
export const indexOf = (payload: unknown): number => {
  const i = (payload as { i?: unknown } | null)?.i
  if (typeof i !== "number") throw new Error(`bench: unexpected payload ${JSON.stringify(payload)}`)
  return i
}
