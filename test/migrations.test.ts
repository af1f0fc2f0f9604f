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
        const all = [[1, "init"], [2, "claims_starts_slots_sessions"], [3, "flow_control"], [4, "admin_statistics"],
          [5, "attempt_control"], [6, "unique_jobs"], [7, "results_cancellation"], [8, "promotion_clock"]]
        assert.deepStrictEqual(applied[0]!.map(([id, name]) => [id, name]), all)
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql<{ id: number; name: string }>`
          SELECT migration_id AS id, name FROM ${sql(`${schema}.cuckmq_migrations`)} ORDER BY migration_id`
        assert.deepStrictEqual(rows.map((r) => [r.id, r.name]), all)
        const tables = yield* sql<{ table_name: string }>`
          SELECT table_name FROM information_schema.tables WHERE table_schema = ${schema} ORDER BY table_name`
        assert.deepStrictEqual(tables.map((t) => t.table_name), [
          "cuckmq_migrations", "job", "job_channel", "job_definition", "job_finalized", "job_group", "job_unique", "maintenance", "stats_minute", "worker"
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

    it.effect("generateMigrationSql: the statements of every migration, recorded as migrate records them", () =>
      Effect.gen(function*() {
        const other = `${schema}_manual`
        const sql = yield* SqlClient.SqlClient
        yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(other)} CASCADE`))
        const statements = yield* Migrations.generateMigrationSql(other)
        assert.isAbove(statements.length, 5)
        assert.include(statements[0]!, `CREATE SCHEMA IF NOT EXISTS "${other}"`)
        yield* sql.withTransaction(Effect.forEach(statements, (s) => sql.unsafe(s), { discard: true }))
        const tables = yield* sql<{ n: bigint }>`
          SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = ${other}`
        assert.strictEqual(Number(tables[0]!.n), 10)
        // migrate finds the schema current
        assert.deepStrictEqual(yield* Migrations.migrate(other), [])
        const error = yield* Effect.flip(Migrations.generateMigrationSql("bad.name"))
        assert.strictEqual(error._tag, "InvalidSchemaName")
      }).pipe(Effect.scoped))

    it.effect("generateMigrationSql with fromVersion upgrades a schema of that version", () =>
      Effect.gen(function*() {
        const other = `${schema}_upgrade`
        const sql = yield* SqlClient.SqlClient
        yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(other)} CASCADE`))
        const all = yield* Migrations.generateMigrationSql(other)
        const upgrade = yield* Migrations.generateMigrationSql(other, { fromVersion: 1 })
        // apply version 1 only (everything but the upgrade's own statements), then the upgrade
        const ownOfUpgrade = upgrade.slice(2) // after its CREATE SCHEMA and migrations table
        const v1 = all.filter((s) => !ownOfUpgrade.includes(s))
        yield* sql.withTransaction(Effect.forEach(v1, (s) => sql.unsafe(s), { discard: true }))
        const [before] = yield* sql<{ n: bigint }>`SELECT max(migration_id) AS n FROM ${sql(`${other}.cuckmq_migrations`)}`
        assert.strictEqual(Number(before!.n), 1)
        yield* sql.withTransaction(Effect.forEach(upgrade, (s) => sql.unsafe(s), { discard: true }))
        assert.deepStrictEqual(yield* Migrations.migrate(other), [])
        assert.strictEqual(Migrations.latestVersion, 8)
      }).pipe(Effect.scoped))

    it.effect("migration 5 upgrades a version-4 schema with live jobs: snoozes 0, no time limit, settle_v2 kept", () =>
      Effect.gen(function*() {
        const other = `${schema}_v4`
        const sql = yield* SqlClient.SqlClient
        yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(other)} CASCADE`))
        const all = yield* Migrations.generateMigrationSql(other)
        const v5 = yield* Migrations.generateMigrationSql(other, { fromVersion: 4 })
        const own = v5.slice(2)
        yield* sql.withTransaction(Effect.forEach(all.filter((s) => !own.includes(s)), (s) => sql.unsafe(s), { discard: true }))
        const q = (t: string) => sql(`${other}.${t}`)
        yield* sql`INSERT INTO ${q("job_definition")} (name, channel, num_attempts, timeout_secs) VALUES ('d', '_default', 3, 5)`
        yield* sql`INSERT INTO ${q("job")} (name, channel, payload, max_attempts, timeout_secs) VALUES ('d', '_default', '{}', 3, 5)`
        yield* sql.withTransaction(Effect.forEach(v5, (s) => sql.unsafe(s), { discard: true }))
        const [job] = yield* sql<{ snoozes: number; time_limit_secs: number | null }>`
          SELECT snoozes, time_limit_secs FROM ${q("job")}`
        assert.deepStrictEqual({ ...job }, { snoozes: 0, time_limit_secs: null })
        const fns = yield* sql<{ proname: string }>`
          SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = ${other} AND p.proname LIKE 'settle_%' ORDER BY p.proname`
        assert.deepStrictEqual(fns.map((f) => f.proname), ["settle_v2", "settle_v3", "settle_v4"])
        // a time limit must be positive
        const bad = yield* Effect.flip(sql`UPDATE ${q("job")} SET time_limit_secs = 0`)
        assert.strictEqual(bad._tag, "SqlError")
        assert.deepStrictEqual(yield* Migrations.migrate(other), [])
      }).pipe(Effect.scoped))

    it.effect("migration 7 upgrades a version-6 schema with live and finalized jobs: not cancelled, no result, settle_v3 kept", () =>
      Effect.gen(function*() {
        const other = `${schema}_v6`
        const sql = yield* SqlClient.SqlClient
        yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(other)} CASCADE`))
        const all = yield* Migrations.generateMigrationSql(other)
        const v7 = yield* Migrations.generateMigrationSql(other, { fromVersion: 6 })
        const own = v7.slice(2)
        yield* sql.withTransaction(Effect.forEach(all.filter((s) => !own.includes(s)), (s) => sql.unsafe(s), { discard: true }))
        const q = (t: string) => sql(`${other}.${t}`)
        yield* sql`INSERT INTO ${q("job")} (name, channel, payload, max_attempts, timeout_secs) VALUES ('d', '_default', '{}', 3, 5)`
        yield* sql`INSERT INTO ${q("job_finalized")} (id, name, channel, payload, attempts, max_attempts, succeeded, created_at)
          VALUES (99, 'd', '_default', '{}', 1, 1, false, now())`
        yield* sql.withTransaction(Effect.forEach(v7, (s) => sql.unsafe(s), { discard: true }))
        const [job] = yield* sql<{ cancel_requested: boolean; awaited: boolean }>`SELECT cancel_requested, awaited FROM ${q("job")}`
        assert.deepStrictEqual({ ...job }, { cancel_requested: false, awaited: false })
        const [fin] = yield* sql<{ cancelled: boolean; result: unknown }>`SELECT cancelled, result FROM ${q("job_finalized")}`
        assert.deepStrictEqual({ ...fin }, { cancelled: false, result: null })
        const fns = yield* sql<{ proname: string }>`
          SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = ${other} AND p.proname LIKE 'settle_%' ORDER BY p.proname`
        assert.deepStrictEqual(fns.map((f) => f.proname), ["settle_v2", "settle_v3", "settle_v4"])
        assert.deepStrictEqual(yield* Migrations.migrate(other), [])
      }).pipe(Effect.scoped))

    it.effect("migration 8 replaces free_slots_v3 of a version-7 schema in place: the same signature, dated by the snapshot's clock", () =>
      Effect.gen(function*() {
        const other = `${schema}_v7`
        const sql = yield* SqlClient.SqlClient
        yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(other)} CASCADE`))
        const all = yield* Migrations.generateMigrationSql(other)
        const v8 = yield* Migrations.generateMigrationSql(other, { fromVersion: 7 })
        const own = v8.slice(2)
        yield* sql.withTransaction(Effect.forEach(all.filter((s) => !own.includes(s)), (s) => sql.unsafe(s), { discard: true }))
        const freeSlots = sql<{ src: string; args: string }>`
          SELECT p.prosrc AS src, pg_get_function_identity_arguments(p.oid) AS args
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = ${other} AND p.proname = 'free_slots_v3'`
        const [before] = yield* freeSlots
        assert.notInclude(before!.src, "clock_timestamp()")
        yield* sql.withTransaction(Effect.forEach(v8, (s) => sql.unsafe(s), { discard: true }))
        const after = yield* freeSlots
        assert.strictEqual(after.length, 1, "replaced, not overloaded")
        assert.strictEqual(after[0]!.args, before!.args)
        assert.include(after[0]!.src, "(SELECT clock_timestamp())")
        assert.deepStrictEqual(yield* Migrations.migrate(other), [])
      }).pipe(Effect.scoped))

    it.effect("a schema name PostgreSQL reserves (pg_ prefix) is refused before anything is written", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const error = yield* Effect.flip(Migrations.migrate("pg_cuckmq"))
        assert.strictEqual(error._tag, "InvalidSchemaName")
        assert.include(error.message, "reserved")
        assert.strictEqual((yield* sql`SELECT 1 FROM pg_namespace WHERE nspname = 'pg_cuckmq'`).length, 0)
      }))
  })
})
