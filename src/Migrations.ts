/**
 * The cuckmq schema: an Effect that migrates a chosen PostgreSQL schema (versioned, safe when many processes
 * boot at once) and `generateMigrationSql` for users who apply SQL with their own tools.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { Migrator, SqlClient, type SqlError } from "effect/sql"
import { InsufficientPrivilege, InvalidOptions, InvalidSchemaName, SchemaNotMigrated, StorageError } from "./CuckmqError.js"
import * as Ddl from "./internal/pg/ddl.js"
import { databaseReason } from "./internal/pg/sql.js"

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
 * export const program = Effect.gen(function*() {
 *   const statements = yield* Migrations.generateMigrationSql("_cuckmq")
 *   console.log(statements.join(";\n\n") + ";")
 * })
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

/** The insufficient_privilege SQLSTATE. */
const insufficientPrivilege = "42501"

/** Maps a driver error to `InsufficientPrivilege` (SQLSTATE 42501) or `StorageError`. */
const sqlFailure = (operation: string, schema: string, privilege: string) => (cause: SqlError.SqlError) =>
  Effect.gen(function*() {
    const { code, message } = databaseReason(cause)
    if (code === insufficientPrivilege) {
      const sql = yield* SqlClient.SqlClient
      const role = yield* sql<{ readonly role: string }>`SELECT current_user AS role`.pipe(
        Effect.map((rows) => rows[0]?.role ?? "?"),
        Effect.orElseSucceed(() => "?")
      )
      return yield* new InsufficientPrivilege({
        operation,
        role,
        privilege,
        message: `${operation} on schema ${schema} needs ${privilege}; role ${JSON.stringify(role)} lacks it: ${message}`
      })
    }
    return yield* new StorageError({
      operation,
      message: `${operation} on schema ${schema} failed: ${message}${code === undefined ? "" : ` [SQLSTATE ${code}]`}`,
      sqlState: code,
      cause
    })
  })

/**
 * Migrates `schema` to the latest cuckmq version and returns the migrations it applied (`[id, name]`;
 * empty when the schema was already current).
 *
 * Versioned: applied migrations are recorded in `<schema>.cuckmq_migrations`, and only newer ones run.
 * Safe when many processes run it at once: the whole run happens in one transaction that first takes a
 * transaction-scoped advisory lock for the schema, so concurrent callers wait and then find nothing to do.
 *
 * Needs a role that may run DDL: `CREATE` on the database while the schema does not exist, then `CREATE` on
 * the schema (its owner has it) and ownership of its tables. It checks that first and fails with
 * `InsufficientPrivilege` naming what is missing, even when there is nothing to migrate, so that a deploy
 * step under the wrong role fails before the release that needs it. Workers can run under a role without
 * `CREATE` (see `grantSql` and `PgJobStore.layerStore`).
 *
 * @since 0.1.0
 */
export const migrate = (
  schema: string = defaultSchema
): Effect.Effect<
  ReadonlyArray<readonly [id: number, name: string]>,
  InvalidSchemaName | InsufficientPrivilege | StorageError,
  SqlClient.SqlClient
> =>
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
      const [rights] = yield* sql<{ readonly role: string; readonly exists: boolean; readonly create: boolean; readonly db: string }>`
SELECT current_user AS role, n.oid IS NOT NULL AS exists, current_database() AS db,
  CASE WHEN n.oid IS NULL THEN has_database_privilege(current_database(), 'CREATE')
  ELSE has_schema_privilege(n.oid, 'CREATE') END AS create
FROM (SELECT 1) one LEFT JOIN pg_namespace n ON n.nspname = ${s}`
      if (rights !== undefined && !rights.create) {
        const privilege = rights.exists ? `CREATE ON SCHEMA ${Ddl.ident(s)}` : `CREATE ON DATABASE ${Ddl.ident(rights.db)}`
        return yield* new InsufficientPrivilege({
          operation: "migrate",
          role: rights.role,
          privilege,
          message: `Migrating schema ${s} needs ${privilege}${rights.exists ? " (and ownership of its tables)" : ""}; role ${
            JSON.stringify(rights.role)
          } lacks it. Run the migrations under a role that may run DDL (e.g. a deploy step with PgJobStore.layerMigrations), ` +
            `and the workers under PgJobStore.layerStore, which runs no DDL`
        })
      }
      // CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists
      if (rights?.exists !== true) yield* sql`CREATE SCHEMA IF NOT EXISTS ${sql(s)}`
      return yield* Migrator.make({})({ loader, table: `${s}.${migrationsTable}` })
    }))
  }).pipe(
    Effect.catchTag("SqlError", sqlFailure("migrate", schema, "ownership of the schema and its tables")),
    Effect.catchTag("MigrationError", (cause) =>
      cause.cause !== undefined && (cause.cause as { readonly _tag?: unknown })._tag === "SqlError"
        ? sqlFailure("migrate", schema, "ownership of the schema and its tables")(cause.cause as SqlError.SqlError)
        : Effect.fail(
          new StorageError({ operation: "migrate", message: `Migrating schema ${schema} failed: ${cause.message}`, cause })
        )),
    Effect.withSpan("cuckmq.migrate", { attributes: { schema } })
  )

/**
 * The migrations (`<id>_<name>`, in order) that `schema` still needs to reach the version this package
 * runs on; empty when it is current. Reads `<schema>.cuckmq_migrations` and runs no DDL, so it works under
 * the runtime role.
 *
 * @since 0.1.0
 */
export const pending = (
  schema: string = defaultSchema
): Effect.Effect<
  { readonly version: number; readonly missing: ReadonlyArray<string> },
  InvalidSchemaName | InsufficientPrivilege | StorageError,
  SqlClient.SqlClient
> =>
  Effect.gen(function*() {
    const s = yield* validateSchemaName(schema)
    const sql = yield* SqlClient.SqlClient
    const table = `${Ddl.ident(s)}.${Ddl.ident(migrationsTable)}`
    const [present] = yield* sql<{ readonly present: boolean }>`SELECT to_regclass(${table}) IS NOT NULL AS present`
    const applied = present?.present === true
      ? new Set((yield* sql<{ readonly id: number }>`SELECT migration_id AS id FROM ${sql(`${s}.${migrationsTable}`)}`).map((r) =>
        Number(r.id)
      ))
      : new Set<number>()
    const missing = Ddl.migrations(s).filter(([id]) => !applied.has(id)).map(([id, name]) => `${id}_${name}`)
    return { version: applied.size === 0 ? 0 : Math.max(...applied), missing }
  }).pipe(
    Effect.catchTag("SqlError", sqlFailure("check the schema version", schema, `USAGE ON SCHEMA ${schema} and SELECT on its tables`))
  )

/**
 * Fails with `SchemaNotMigrated` (naming the missing migrations) unless `schema` is at the version this
 * package runs on. Runs no DDL: what the runtime layers check at start.
 *
 * @since 0.1.0
 */
export const check = (
  schema: string = defaultSchema
): Effect.Effect<void, InvalidSchemaName | SchemaNotMigrated | InsufficientPrivilege | StorageError, SqlClient.SqlClient> =>
  Effect.flatMap(pending(schema), ({ missing, version }) =>
    missing.length === 0 ? Effect.void : Effect.fail(
      new SchemaNotMigrated({
        schema,
        version,
        required: latestVersion,
        missing,
        message: `Schema ${schema} is ${version === 0 ? "not migrated" : `at version ${version}`}; this cuckmq needs version ${latestVersion}: ` +
          `missing migration${missing.length > 1 ? "s" : ""} ${missing.join(", ")}. Run the migrations under a role that may run DDL ` +
          `(PgJobStore.layerMigrations, Migrations.migrate, or the SQL of Migrations.generateMigrationSql) before starting this layer`
      })
    ))

const rolePattern = /^[^.\u0000]{1,63}$/

/**
 * The `GRANT`s that let `role` run everything cuckmq does at runtime (enqueue, workers, orchestrators, the
 * version check, undeploy) on `schema`, and nothing more: no `CREATE`, no `TRUNCATE`, no ownership. Run them
 * as the schema's owner after every migration (tables and functions a migration adds need them too;
 * `PgJobStore.migrate({ grantTo })` does that). The role also needs `CONNECT` on the database.
 *
 * - `USAGE` on the schema;
 * - `SELECT, INSERT, UPDATE, DELETE` on its tables, then only `SELECT` on the migrations table (the version
 *   check);
 * - `USAGE` on its sequences (an enqueue of unique jobs allocates job ids before it inserts them; grant it
 *   again to roles granted before migration 6);
 * - `EXECUTE` on its functions (PL/pgSQL, `SECURITY INVOKER`: they run with the role's own table rights).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Migrations } from "@cuckmq/effect"
 *
 * export const printGrants = Effect.gen(function*() {
 *   const statements = yield* Migrations.grantSql("_cuckmq", "app_worker")
 *   console.log(statements.join(";\n") + ";")
 * })
 * ```
 *
 * @since 0.1.0
 */
export const grantSql = (
  schema: string,
  role: string
): Effect.Effect<ReadonlyArray<string>, InvalidSchemaName | InvalidOptions> =>
  Effect.flatMap(validateSchemaName(schema), (s) => {
    if (typeof role !== "string" || !rolePattern.test(role)) {
      return Effect.fail(
        new InvalidOptions({ message: `Invalid role name ${JSON.stringify(role)}: expected 1 to 63 characters, no dot` })
      )
    }
    const r = Ddl.ident(role)
    const q = Ddl.ident(s)
    return Effect.succeed([
      `GRANT USAGE ON SCHEMA ${q} TO ${r}`,
      `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${q} TO ${r}`,
      `REVOKE INSERT, UPDATE, DELETE ON ${Ddl.ident(`${s}.${migrationsTable}`)} FROM ${r}`,
      `GRANT USAGE ON ALL SEQUENCES IN SCHEMA ${q} TO ${r}`,
      `GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA ${q} TO ${r}`
    ])
  })
