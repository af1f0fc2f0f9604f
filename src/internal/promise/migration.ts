/**
 * `generateMigrationSql` for the Promise API: the core's migrations as ONE statement (a `DO` block) that a
 * `pg` pool runs as is, every time a program starts, as the seed's users do. It is what `Migrations.migrate`
 * does, in SQL: it takes the same transaction-level advisory lock (so it waits for, and is waited for by,
 * any concurrent migration of the schema), creates the schema and the migrations table, and applies and
 * records each migration the table does not list yet. A `DO` block is one statement, so it commits whole or
 * not at all.
 */
import * as Ddl from "../pg/ddl.js"
import { migrationsTable } from "../../Migrations.js"

/** A dollar-quoted literal of `text` whose tag does not occur in it. */
const dollarQuote = (text: string, base: string): string => {
  let n = 0
  let tag = `$${base}$`
  while (text.includes(tag)) tag = `$${base}_${++n}$`
  return `${tag}${text}${tag}`
}

/** The migration SQL for `schema`, which must already be a valid schema name. */
export const sql = (schema: string): string => {
  const table = Ddl.ident(`${schema}.${migrationsTable}`)
  // the schema name is a plain identifier (validated), so it is safe inside a string literal too
  const steps = Ddl.migrations(schema).map(([id, name, statements]) =>
    [
      `  IF NOT EXISTS (SELECT 1 FROM ${table} WHERE migration_id = ${id}) THEN`,
      ...statements.map((statement) => `    EXECUTE ${dollarQuote(statement, "cuckmq_statement")};`),
      `    INSERT INTO ${table} (migration_id, name) VALUES (${id}, '${name}');`,
      `  END IF;`
    ].join("\n")
  )
  const body = [
    "BEGIN",
    `  PERFORM pg_advisory_xact_lock(hashtext('cuckmq'), hashtext('${schema}'));`,
    `  CREATE SCHEMA IF NOT EXISTS ${Ddl.ident(schema)};`,
    `  CREATE TABLE IF NOT EXISTS ${table} (
    migration_id integer primary key,
    created_at timestamp with time zone not null default now(),
    name text not null
  );`,
    ...steps,
    "END"
  ].join("\n")
  return `DO ${dollarQuote(body, "cuckmq_migrate")}`
}
