/**
 * Shared pieces of the PostgreSQL backend: the driver's identifier escaping, the schema's qualified names,
 * row decoding helpers, and the mapping of driver errors to `StorageError` (with PostgreSQL's own message
 * and SQLSTATE).
 *
 * Every statement of the backend lives beside the code that builds its parameters and decodes its rows
 * (claim.ts, settle.ts, enqueue.ts, ...), compiled once per schema. Identifiers are escaped by the driver's
 * compiler (`PgClient.makeCompiler`); every value is a bind parameter. Statements run through
 * `sql.unsafe(text, params)`, which the driver prepares (named statements), so the hot ones are planned once
 * per connection.
 */
import { Effect } from "effect"
import type { SqlError } from "effect/sql"
import { Statement } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import { StorageError } from "../../CuckmqError.js"

const compiler = PgClient.makeCompiler()

/** The driver's escaping of a (possibly schema-qualified) identifier. */
export const ident = (name: string): string =>
  compiler.compile(Statement.fragment([Statement.identifier(name)]), true)[0]

/** The escaped, schema-qualified names of a schema's tables and functions. */
export const names = (schema: string) => ({
  schema: ident(schema),
  job: ident(`${schema}.job`),
  finalized: ident(`${schema}.job_finalized`),
  group: ident(`${schema}.job_group`),
  definition: ident(`${schema}.job_definition`),
  worker: ident(`${schema}.worker`),
  maintenance: ident(`${schema}.maintenance`),
  channel: ident(`${schema}.job_channel`),
  unique: ident(`${schema}.job_unique`),
  /** A function of the schema. */
  fn: (name: string) => ident(`${schema}.${name}`)
})

/** The qualified names of one schema. */
export type Names = ReturnType<typeof names>

/** The PostgreSQL NOTIFY channel of a schema (kept under the 63-byte identifier limit). */
export const notifyChannel = (schema: string): string => `cuckmq_${schema}`.slice(0, 63)

/**
 * The PostgreSQL NOTIFY channel of a schema's notices (`f:<id>` a job someone awaits finalized, `c:<id>` a
 * running job's cancellation was requested), apart from the wake-ups so that workers of older versions never
 * read them. Kept under the 63-byte identifier limit.
 */
export const noticeChannel = (schema: string): string => `cuckmq!${schema}`.slice(0, 63)

/**
 * The advisory-lock namespace of a schema (the first key of the two-key form), so that two cuckmq schemas in
 * one database never share a lock: FNV-1a of `cuckmq:<schema>` as a signed 32-bit integer. Key 0 of the
 * namespace is the rescuer's; liveness sessions use random non-zero keys.
 */
export const lockNamespace = (schema: string): number => {
  let hash = 0x811c9dc5
  for (const ch of `cuckmq:${schema}`) {
    hash ^= ch.codePointAt(0)!
    hash = Math.imul(hash, 0x01000193)
  }
  return hash | 0
}

/** A row as the driver returns it. */
export type Row = Record<string, unknown>

export const optionalString = (value: unknown): string | undefined =>
  value === null || value === undefined ? undefined : String(value)

export const optionalDate = (value: unknown): Date | undefined => value instanceof Date ? value : undefined

/** What PostgreSQL said, from a driver error: its message, SQLSTATE and detail, when the server sent them. */
export const databaseReason = (error: SqlError.SqlError): { readonly message: string; readonly code: string | undefined } => {
  const cause = (error.reason as { readonly cause?: unknown }).cause as
    | { readonly message?: unknown; readonly code?: unknown; readonly detail?: unknown }
    | undefined
  const code = typeof cause?.code === "string" ? cause.code : undefined
  const text = typeof cause?.message === "string" && cause.message.length > 0 ? cause.message : error.message
  const detail = typeof cause?.detail === "string" && cause.detail.length > 0 ? ` (${cause.detail})` : ""
  return { message: `${text}${detail}`, code }
}

/** Maps a driver error to a `StorageError` that says what cuckmq was doing and what the database said. */
export const toStorageError = (operation: string) => (error: SqlError.SqlError): StorageError => {
  const { code, message } = databaseReason(error)
  return new StorageError({
    operation,
    message: `${operation} failed: ${message}${code === undefined ? "" : ` [SQLSTATE ${code}]`}`,
    sqlState: code,
    cause: error
  })
}

/** `Effect.catchTag("SqlError", storageError(operation))`. */
export const storageError = (operation: string) => (error: SqlError.SqlError) =>
  Effect.fail(toStorageError(operation)(error))
