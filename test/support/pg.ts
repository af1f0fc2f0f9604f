/**
 * Test helpers for integration tests on real PostgreSQL: a `PgClient` layer on the run's database, and a
 * fresh schema per test file (dropped when the layer is released).
 */
import { randomBytes } from "node:crypto"
import { Context, Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import { inject } from "vitest"
import type {} from "./globalSetup.js" // the ProvidedContext keys

/** The URL of the run's database (see globalSetup.ts). */
export const databaseUrl = (): string => inject("databaseUrl")

/** A PgClient on the run's database. */
export const PgTest = (options: { readonly maxConnections?: number } = {}) =>
  PgClient.layer({
    url: Redacted.make(databaseUrl()),
    maxConnections: options.maxConnections ?? 10
  })

/** A unique schema name for one test file. */
export const uniqueSchema = (prefix: string): string =>
  `t_${prefix.replace(/[^A-Za-z0-9_]/g, "_").slice(0, 30)}_${randomBytes(4).toString("hex")}`

/** Drops `schema` (and everything in it) when the surrounding scope closes. */
export const dropSchemaOnExit = (schema: string) =>
  Effect.addFinalizer(() =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
    }).pipe(Effect.ignore)
  )

/** A layer that provides nothing but drops `schema` when released. */
export const DropSchema = (schema: string) => Layer.effectDiscard(dropSchemaOnExit(schema))

/**
 * A PgClient (exposed too, for assertions) plus a fresh schema that is dropped when the layer is released,
 * after everything built on top of it.
 */
export const PgWithSchema = (schema: string, options: { readonly maxConnections?: number } = {}) =>
  Layer.provideMerge(DropSchema(schema), PgTest(options))

/**
 * Where a suite's clients connect (the run's database directly, or through PgBouncer), so that a suite can
 * run both ways: any further client a test makes uses these settings.
 */
export class ClientSettings extends Context.Service<ClientSettings, {
  readonly url: string
  /** false behind a transaction-mode pooler: unnamed statements only */
  readonly prepare: boolean
}>()("test/ClientSettings") {}

/** How a shared suite connects: its clients' layer, and the store options every context of the suite gets. */
export interface Connection {
  readonly name: string
  /** The suite's `PgClient` (also as `SqlClient`) and its `ClientSettings`. */
  readonly layer: (options?: { readonly maxConnections?: number }) => Layer.Layer<PgClient.PgClient | SqlClient.SqlClient | ClientSettings, unknown>
  /** Given to every `Cuckmq.layer` / `PgJobStore.layer` of the suite. */
  readonly store: { readonly transactionPooler?: boolean; readonly directUrl?: Redacted.Redacted }
}

/** The run's database, directly (the default of every suite). */
export const direct: Connection = {
  name: "direct",
  layer: (options = {}) =>
    Layer.merge(PgTest(options), Layer.succeed(ClientSettings, { url: databaseUrl(), prepare: true })),
  store: {}
}
