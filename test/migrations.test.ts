import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { Migrations } from "../src/index.js"
import { DropSchema, PgTest, uniqueSchema } from "./support/pg.js"

const schema = uniqueSchema("migrations")

describe("Migrations", () => {
  layer(Layer.provideMerge(DropSchema(schema), PgTest({ maxConnections: 12 })), { excludeTestServices: true })((it) => {
    it.effect("ten concurrent migrations of one schema: one applies, nine find nothing to do", () =>
      Effect.gen(function*() {
        const results = yield* Effect.all(
          Array.from({ length: 10 }, () => Migrations.migrate(schema)),
          { concurrency: "unbounded" }
        )
        const applied = results.filter((r) => r.length > 0)
        assert.strictEqual(applied.length, 1)
        assert.deepStrictEqual(applied[0]!.map(([id, name]) => [id, name]), [[1, "init"]])
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql<{ id: number; name: string }>`SELECT migration_id AS id, name FROM ${sql(`${schema}.cuckmq_migrations`)}`
        assert.deepStrictEqual(rows.map((r) => [r.id, r.name]), [[1, "init"]])
        const tables = yield* sql<{ table_name: string }>`
          SELECT table_name FROM information_schema.tables WHERE table_schema = ${schema} ORDER BY table_name`
        assert.deepStrictEqual(tables.map((t) => t.table_name), [
          "cuckmq_migrations", "job", "job_definition", "job_finalized", "job_group", "worker"
        ])
        // a rerun applies nothing
        assert.deepStrictEqual(yield* Migrations.migrate(schema), [])
      }))

    it.effect("an invalid schema name is a typed error and creates nothing", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        for (const bad of ["", "1abc", "a.b", "x\"; DROP TABLE y; --", "with space", "a".repeat(64)]) {
          const error = yield* Effect.flip(Migrations.migrate(bad))
          assert.strictEqual(error._tag, "InvalidSchemaName")
          assert.include(error.message, "Invalid schema name")
          const found = yield* sql`SELECT 1 FROM pg_namespace WHERE nspname = ${bad}`
          assert.strictEqual(found.length, 0)
        }
      }))

    it.effect("generateMigrationSql returns idempotent statements that apply twice", () =>
      Effect.gen(function*() {
        const other = `${schema}_manual`
        const sql = yield* SqlClient.SqlClient
        const statements = yield* Migrations.generateMigrationSql(other)
        assert.isAbove(statements.length, 5)
        assert.include(statements[0]!, `CREATE SCHEMA IF NOT EXISTS "${other}"`)
        for (let i = 0; i < 2; i++) {
          for (const s of statements) yield* sql.unsafe(s)
        }
        const tables = yield* sql<{ n: bigint }>`
          SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = ${other}`
        assert.strictEqual(Number(tables[0]!.n), 5)
        yield* sql`DROP SCHEMA ${sql(other)} CASCADE`
        const error = yield* Effect.flip(Migrations.generateMigrationSql("bad.name"))
        assert.strictEqual(error._tag, "InvalidSchemaName")
      }))
  })
})
