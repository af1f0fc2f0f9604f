/**
 * The cuckmq schema: an Effect that migrates a chosen PostgreSQL schema (versioned, safe when many processes
 * boot at once) and `generateMigrationSql` for users who apply SQL with their own tools.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { Migrator, SqlClient } from "effect/sql"
import { InvalidSchemaName, StorageError } from "./CuckmqError.js"
import * as Ddl from "./internal/pg/ddl.js"

/**
 * The schema cuckmq uses when none is given.
 *
 * @since 0.1.0
 */
export const defaultSchema = "_cuckmq"

/**
 * The name of the table (inside the cuckmq schema) where applied migrations are recorded.
 *
 * @since 0.1.0
 */
export const migrationsTable = "cuckmq_migrations"

const schemaNamePattern = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

/**
 * Checks that a schema name is a plain SQL identifier that PostgreSQL accepts for a new schema: a letter or
 * underscore, then letters, digits or underscores, at most 63 characters (PostgreSQL's limit), and not
 * starting with `pg_` (reserved for system schemas, in any case here). Dots, quotes and spaces are refused
 * so that the name can never be read as anything but one identifier.
 *
 * @since 0.1.0
 */
export const validateSchemaName = (schema: string): Effect.Effect<string, InvalidSchemaName> => {
  const fail = (why: string) =>
    Effect.fail(new InvalidSchemaName({ schema: String(schema), message: `Invalid schema name ${JSON.stringify(schema)}: ${why}` }))
  if (typeof schema !== "string" || !schemaNamePattern.test(schema)) {
    return fail("expected a letter or underscore followed by letters, digits or underscores, at most 63 characters")
  }
  if (/^pg_/i.test(schema)) return fail("names starting with pg_ are reserved by PostgreSQL for system schemas")
  return Effect.succeed(schema)
}

/**
 * The SQL that migrates `schema` from version `fromVersion` (0: nothing yet) to the latest, one statement
 * per element, for users who apply SQL with their own tools: run them in order, in one transaction. The
 * statements also record the versions in `<schema>.cuckmq_migrations`, as `migrate` does, so that a later
 * `migrate` (or `Cuckmq.layer`) finds the schema current.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Migrations } from "@cuckmq/effect"
 *
 * Effect.gen(function*() {
 *   const statements = yield* Migrations.generateMigrationSql("_cuckmq")
 *   console.log(statements.join(";\n\n") + ";")
 * }).pipe(Effect.runPromise)
 * ```
 *
 * @since 0.1.0
 */
export const generateMigrationSql = (
  schema: string = defaultSchema,
  options: { readonly fromVersion?: number | undefined } = {}
): Effect.Effect<ReadonlyArray<string>, InvalidSchemaName> =>
  Effect.map(validateSchemaName(schema), (s) => {
    const from = options.fromVersion ?? 0
    const pending = Ddl.migrations(s).filter(([id]) => id > from)
    const table = Ddl.ident(`${s}.${migrationsTable}`)
    return [
      `CREATE SCHEMA IF NOT EXISTS ${Ddl.ident(s)}`,
      // the table Effect's migrator keeps (effect/sql Migrator, PostgreSQL dialect)
      `CREATE TABLE IF NOT EXISTS ${table} (
  migration_id integer primary key,
  created_at timestamp with time zone not null default now(),
  name text not null
)`,
      ...pending.flatMap(([, , statements]) => statements),
      ...pending.map(([id, name]) => `INSERT INTO ${table} (migration_id, name) VALUES (${id}, '${name}')`)
    ]
  })

/**
 * The latest schema version this package migrates to.
 *
 * @since 0.1.0
 */
export const latestVersion: number = Ddl.migrations(defaultSchema).at(-1)![0]

/**
 * Migrates `schema` to the latest cuckmq version and returns the migrations it applied (`[id, name]`;
 * empty when the schema was already current).
 *
 * Versioned: applied migrations are recorded in `<schema>.cuckmq_migrations`, and only newer ones run.
 * Safe when many processes run it at once: the whole run happens in one transaction that first takes a
 * transaction-scoped advisory lock for the schema, so concurrent callers wait and then find nothing to do.
 *
 * @since 0.1.0
 */
export const migrate = (
  schema: string = defaultSchema
): Effect.Effect<ReadonlyArray<readonly [id: number, name: string]>, InvalidSchemaName | StorageError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const s = yield* validateSchemaName(schema)
    const sql = yield* SqlClient.SqlClient
    const loader = Migrator.fromRecord(Object.fromEntries(
      Ddl.migrations(s).map(([id, name, statements]) => [
        `${id}_${name}`,
        Effect.forEach(statements, (statement) => sql.unsafe(statement), { discard: true })
      ])
    ))
    return yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql`SELECT pg_advisory_xact_lock(hashtext('cuckmq'), hashtext(${s}))`
      yield* sql`CREATE SCHEMA IF NOT EXISTS ${sql(s)}`
      return yield* Migrator.make({})({ loader, table: `${s}.${migrationsTable}` })
    }))
  }).pipe(
    Effect.catchTag(["SqlError", "MigrationError"], (cause) =>
      Effect.fail(
        new StorageError({ operation: "migrate", message: `Migrating schema ${schema} failed: ${cause.message}`, cause })
      )),
    Effect.withSpan("cuckmq.migrate", { attributes: { schema } })
  )
