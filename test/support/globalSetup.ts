/**
 * Runs once per `vitest run`: uses `DATABASE_URL` when set, otherwise starts an embedded PostgreSQL that is
 * stopped (and its directory deleted) when the run ends. Test files get the URL through `inject("databaseUrl")`
 * and each creates its own schema, so files run in parallel.
 */
import type { TestProject } from "vitest/node"
import { acquireDatabase, type Database } from "../../tools/database.js"

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string
    databaseEmbedded: boolean
  }
}

let db: Database | undefined

export async function setup(project: TestProject) {
  // fsync off: a throwaway test server does not need durability, and the tests run faster without it.
  db = await acquireDatabase({ fsync: "off", synchronous_commit: "off", full_page_writes: "off" })
  project.provide("databaseUrl", db.url)
  project.provide("databaseEmbedded", db.embedded)
  // eslint-disable-next-line no-console
  console.log(db.embedded ? "[cuckmq tests] embedded PostgreSQL (DATABASE_URL is unset)" : "[cuckmq tests] DATABASE_URL")
}

export async function teardown() {
  await db?.stop()
}
