/**
 * The cuckmq schema: an Effect that migrates a chosen PostgreSQL schema (versioned, safe when many processes
 * boot at once) and `generateMigrationSql` for users who apply SQL with their own tools.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { Migrator, SqlClient } from "effect/sql"
import { InvalidSchemaName, StorageError } from "./CuckmqError.js"
import * as Ddl from "./internal/ddl.js"

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
 * Checks that a schema name is a plain SQL identifier: a letter or underscore, then letters, digits or
 * underscores, at most 63 characters (PostgreSQL's limit). Dots, quotes and spaces are refused so that the
 * name can never be read as anything but one identifier.
 *
 * @since 0.1.0
 */
export const validateSchemaName = (schema: string): Effect.Effect<string, InvalidSchemaName> =>
  typeof schema === "string" && schemaNamePattern.test(schema)
    ? Effect.succeed(schema)
    : Effect.fail(
      new InvalidSchemaName({
        schema: String(schema),
        message: `Invalid schema name ${JSON.stringify(schema)}: expected a letter or underscore followed by ` +
          `letters, digits or underscores, at most 63 characters`
      })
    )

/**
 * The idempotent SQL statements that create the latest cuckmq schema in `schema`, one statement per
 * element (run them in order; running them again changes nothing).
 *
 * @example
 * ```ts
 * const statements = yield* generateMigrationSql("_cuckmq")
 * console.log(statements.join(";\n\n") + ";")
 * ```
 *
 * @since 0.1.0
 */
export const generateMigrationSql = (
  schema: string = defaultSchema
): Effect.Effect<ReadonlyArray<string>, InvalidSchemaName> =>
  Effect.map(
    validateSchemaName(schema),
    (s) => Ddl.compile(Ddl.migrations(s).flatMap(([, , statements]) => statements))
  )

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
        Effect.forEach(statements, (statement) => sql`${statement}`, { discard: true })
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
