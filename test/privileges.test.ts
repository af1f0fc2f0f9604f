/**
 * The runtime under a role without DDL rights. A database of its own (so that no other test's privileges
 * matter) where PUBLIC has nothing: not even TEMP, so the runtime cannot create temporary tables either. The
 * schema is migrated as postgres with `PgJobStore.migrate({ grantTo })`, then everything a worker process
 * does runs as the role: deploy, enqueue, a worker (retries, a job group, a job taken back from a dead
 * worker), an orchestrator (a repeating job, retention, rescue) and undeploy. Any DDL the runtime tried would
 * fail for lack of privilege, and the scenarios would not complete. The migrations run as the role fail with
 * `InsufficientPrivilege`, and the runtime store on a schema that is behind fails with `SchemaNotMigrated`.
 */
import { randomBytes } from "node:crypto"
import { assert, describe, layer } from "@effect/vitest"
import { Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Cuckmq, type CuckmqEvent, JobDefinition, Migrations, PgJobStore } from "../src/index.js"
import * as Engine from "../src/internal/engine.js"
import * as Ddl from "../src/internal/pg/ddl.js"
import { databaseReason } from "../src/internal/pg/sql.js"
import { startOrchestrator, startWorker, waitUntil } from "./support/harness.js"
import { databaseUrl, PgTest } from "./support/pg.js"

const suffix = randomBytes(4).toString("hex")
const database = `cuckmq_priv_${suffix}`
const role = `cuckmq_rt_${suffix}`
const schema = "jobs"

// the role's password (hex: a server that asks for passwords, such as the embedded one, gets it)
const rolePassword = randomBytes(12).toString("hex")
/** The URL of the test database as `user` (the admin keeps the run's own password). */
const urlFor = (user: string) => {
  const url = new URL(databaseUrl())
  if (user === role) url.password = rolePassword
  url.username = user
  url.pathname = `/${database}`
  return url.toString()
}
const pgAs = (user: string, maxConnections = 4) => PgClient.layer({ url: Redacted.make(urlFor(user)), maxConnections })
const adminUser = () => decodeURIComponent(new URL(databaseUrl()).username || "postgres")

/** Creates the database and the role (dropped when the layer is released), and migrates as the admin. */
class Setup extends Context.Service<Setup, { readonly ready: true }>()("test/privileges/Setup") {}
const SetupLive = Layer.effect(
  Setup,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* Effect.addFinalizer(() =>
      Effect.ignore(Effect.gen(function*() {
        yield* sql.unsafe(`DROP DATABASE IF EXISTS ${Ddl.ident(database)} WITH (FORCE)`)
        yield* sql.unsafe(`DROP ROLE IF EXISTS ${Ddl.ident(role)}`)
      }))
    )
    yield* sql.unsafe(`CREATE ROLE ${Ddl.ident(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '${rolePassword}'`)
    yield* sql.unsafe(`CREATE DATABASE ${Ddl.ident(database)}`)
    // PUBLIC gets nothing on this database (no TEMP, no CREATE); the role may only connect
    yield* sql.unsafe(`REVOKE ALL ON DATABASE ${Ddl.ident(database)} FROM PUBLIC`)
    yield* sql.unsafe(`GRANT CONNECT ON DATABASE ${Ddl.ident(database)} TO ${Ddl.ident(role)}`)
    yield* Effect.scoped(Effect.gen(function*() {
      const admin = Context.get(yield* Layer.build(pgAs(adminUser(), 2)), PgClient.PgClient)
      yield* admin.unsafe(`REVOKE ALL ON SCHEMA public FROM PUBLIC`)
      const applied = yield* deployStep(role).pipe(Effect.provideService(SqlClient.SqlClient, admin))
      assert.deepStrictEqual(applied.map(([id]) => id), Ddl.migrations("jobs").map(([id]) => id))
      // a schema left at version 1, for the version check
      yield* admin.unsafe(`CREATE SCHEMA behind`)
      yield* admin.unsafe(`CREATE TABLE behind.${Migrations.migrationsTable} (
  migration_id integer primary key, created_at timestamp with time zone not null default now(), name text not null)`)
      for (const statement of Ddl.migrations("behind")[0]![2]) yield* admin.unsafe(statement)
      yield* admin.unsafe(`INSERT INTO behind.${Migrations.migrationsTable} (migration_id, name) VALUES (1, 'init')`)
      for (const statement of yield* Migrations.grantSql("behind", role)) yield* admin.unsafe(statement)
    }))
    return Setup.of({ ready: true })
  }).pipe(Effect.orDie)
)

// ---- definitions the role's processes run ----
const attemptsOf = new Map<string, Array<number>>()
const runs = new Set<string>()
let groupRunning = 0
let groupOverlap = false

const Plain = JobDefinition.make({
  name: "plain",
  payload: Schema.Struct({ i: Schema.Int }),
  handler: (_, meta) => Effect.sync(() => void runs.add(meta.jobId))
})
const Flaky = JobDefinition.make({
  name: "flaky",
  numAttempts: 3,
  timeoutSecs: 0.2,
  handler: (_, meta) =>
    Effect.suspend(() => {
      attemptsOf.set(meta.jobId, [...(attemptsOf.get(meta.jobId) ?? []), meta.attempt])
      return meta.attempt < 2 ? Effect.fail("not yet") : Effect.void
    })
})
const Grouped = JobDefinition.make({
  name: "grouped",
  handler: () =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        if (++groupRunning > 1) groupOverlap = true
      }),
      () => Effect.sleep("50 millis"),
      () => Effect.sync(() => void groupRunning--)
    )
})
const Tick = JobDefinition.make({ name: "tick", repeatSecs: 0.5, handler: () => Effect.void })
/** Unique jobs: the enqueue allocates job ids from the sequence (USAGE), the retention pass sweeps keys. */
const Deduped = JobDefinition.make({
  name: "deduped",
  payload: Schema.Struct({ k: Schema.String }),
  unique: { key: ({ k }) => k },
  handler: (_, meta) => Effect.sync(() => void runs.add(meta.jobId))
})
/** Deployed and enqueued, never registered: what `undeploy` retires. */
const Retired = JobDefinition.make({ name: "retired", channel: "retired", handler: () => Effect.void })

// ---- what the README shows ----
// the deploy step, as the schema's owner: migrate, then grant the runtime role what it needs
const deployStep = (runtimeRole: string) => PgJobStore.migrate({ schema: "jobs", grantTo: [runtimeRole] })

// the workers' context, as the runtime role: no DDL at start, SchemaNotMigrated if the schema is behind
const CuckmqRuntime = Cuckmq.layerStore({
  schema: "jobs",
  definitions: [Plain, Flaky, Grouped, Tick, Deduped],
  jobPostFinalizeDeleteSecs: 1 // (this test wants to see retention)
}).pipe(Layer.provide(PgJobStore.layerStore({ schema: "jobs" })))

// a deploy step, once no process registers "retired" any more: its waiting jobs go, its schedule stops
const retire = Cuckmq.undeploy("retired", { waiting: "delete" })

const state = (cuckmq: Cuckmq.Cuckmq["Service"], id: string) =>
  Effect.map(Engine.get(cuckmq).store.getJob(id), Option.getOrUndefined)

describe("Runtime under a role without DDL rights", () => {
  layer(Layer.provideMerge(SetupLive, PgTest({ maxConnections: 4 })), { excludeTestServices: true })((it) => {
    it.effect("the role has the runtime privileges only: no CREATE on the database or the schema, no TEMP", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [p] = yield* sql<{ db_create: boolean; temp: boolean; super: boolean }>`
          SELECT has_database_privilege(${role}, ${database}, 'CREATE') AS db_create,
                 has_database_privilege(${role}, ${database}, 'TEMP') AS temp,
                 (SELECT rolsuper FROM pg_roles WHERE rolname = ${role}) AS super`
        assert.deepInclude(p, { db_create: false, temp: false, super: false })
        const rolePg = Context.get(yield* Layer.build(pgAs(role, 1)), PgClient.PgClient)
        const [q] = yield* rolePg<{ schema_create: boolean; usage: boolean; public_create: boolean }>`
          SELECT has_schema_privilege(${schema}, 'CREATE') AS schema_create, has_schema_privilege(${schema}, 'USAGE') AS usage,
                 has_schema_privilege('public', 'CREATE') AS public_create`
        assert.deepStrictEqual({ ...q }, { schema_create: false, usage: true, public_create: false })
        const temp = yield* Effect.flip(rolePg`CREATE TEMP TABLE t (x int)`)
        assert.deepStrictEqual(databaseReason(temp), { code: "42501", message: `permission denied to create temporary tables in database "${database}"` })
      }).pipe(Effect.scoped))

    it.effect("workers, an orchestrator, a rescue and undeploy run as the role", () =>
      Effect.gen(function*() {
        const RolePg = pgAs(role, 4)
        const context = yield* Layer.build(CuckmqRuntime.pipe(Layer.provideMerge(RolePg)))
        const cuckmq = Context.get(context, Cuckmq.Cuckmq)
        const events: Array<CuckmqEvent.CuckmqEvent> = []
        yield* cuckmq.addEventHandler((event) => Effect.sync(() => void events.push(event)))

        return yield* Effect.gen(function*() {
          // a job claimed by a worker that then dies (its lease runs out, it never settles)
          const [rescued] = yield* Plain.enqueueMany([{ payload: { i: -1 } }])
          const store = Engine.get(cuckmq).store
          const deadId = crypto.randomUUID()
          yield* store.registerWorker({
            id: deadId,
            name: "dead",
            hostname: "h",
            pid: 0,
            channels: ["_default"],
            leaseSecs: 0.5,
            sessionKey: undefined
          })
          const claimed = yield* store.claim({ workerId: deadId, channels: ["_default"], excludeNames: [], limit: 1, priorityAgingSecs: 60 })
          assert.deepStrictEqual(claimed.jobs.map((j) => j.id), [rescued])

          const plain = yield* Plain.enqueueMany(Array.from({ length: 20 }, (_, i) => ({ payload: { i } })))
          const flaky = yield* Flaky.enqueue({})
          const grouped = yield* Grouped.enqueueMany(Array.from({ length: 4 }, () => ({ payload: {}, jobGroup: "g" })))
          yield* Retired.deploy
          yield* Retired.enqueueMany([{ payload: {} }, { payload: {} }])
          const deduped = yield* Deduped.enqueueManyWithOutcome([{ payload: { k: "a" } }, { payload: { k: "a" } }, { payload: { k: "b" } }])
          assert.deepStrictEqual(deduped.map((o) => o.outcome), ["inserted", "kept", "inserted"])

          const stopWorker = yield* startWorker({ concurrency: 4, pollIntervalSecs: 0.1, heartbeatSecs: 0.2, leaseSecs: 1 })
          const stopOrchestrator = yield* startOrchestrator({
            jobSchedulePollSecs: 0.2,
            rescueIntervalSecs: 0.2,
            cleanupIntervalSecs: 0.5
          })
          const done = (id: string) => Effect.map(state(cuckmq, id), (j) => j?.state === "succeeded" || j === undefined)
          yield* waitUntil("the plain jobs ran", Effect.map(Effect.forEach([rescued!, ...plain], done), (ok) => ok.every(Boolean)))
          yield* waitUntil("the flaky job succeeded on its second attempt", done(flaky))
          yield* waitUntil("the group ran", Effect.map(Effect.forEach(grouped, done), (ok) => ok.every(Boolean)))
          yield* waitUntil("the repeating job ran twice", Effect.sync(() =>
            events.filter((e) => e._tag === "WORKER_JOB_RUN_SUCCESS" && e.definitionName === "tick").length >= 2))
          yield* waitUntil("retention deleted finalized jobs", Effect.sync(() => events.some((e) => e._tag === "ORCHESTRATOR_JOB_DELETE")))

          assert.deepStrictEqual(attemptsOf.get(flaky), [1, 2])
          assert.isFalse(groupOverlap, "two jobs of one group ran at once")
          assert.isTrue(runs.has(rescued!))
          assert.isTrue(events.some((e) => e._tag === "JOB_RESCUE" && e.jobId === rescued), "the dead worker's job was rescued")
          for (const id of plain) assert.isTrue(runs.has(id), `job ${id} ran`)
          yield* waitUntil("the unique jobs ran", Effect.map(Effect.forEach([deduped[0]!.id, deduped[2]!.id], done), (ok) => ok.every(Boolean)))

          // undeploy, as the role: the retired definition's waiting jobs go, it can no longer be enqueued
          const result = yield* retire
          assert.deepStrictEqual(result, { undeployed: true, deleted: 2, kept: 0, running: 0 })
          assert.strictEqual((yield* Effect.flip(Retired.enqueue({})))._tag, "JobDefinitionNotDeployed")
          // a registered definition is refused: this process would deploy it again
          assert.strictEqual((yield* Effect.flip(Cuckmq.undeploy(Tick))).message.includes("registered in this context"), true)

          yield* stopOrchestrator
          yield* stopWorker
          // the default layer with migrate: false is the same runtime path
          yield* Effect.scoped(Layer.build(Cuckmq.layer({ schema, migrate: false, definitions: [Plain] }).pipe(Layer.provide(RolePg))))
        }).pipe(Effect.provideService(Cuckmq.Cuckmq, cuckmq))
      }).pipe(Effect.scoped))

    it.effect("the migrations as the role fail with InsufficientPrivilege naming the privilege", () =>
      Effect.gen(function*() {
        const rolePg = Context.get(yield* Layer.build(pgAs(role, 1)), PgClient.PgClient)
        const asRole = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Effect.provideService(effect, SqlClient.SqlClient, rolePg)
        const error = yield* Effect.flip(asRole(PgJobStore.migrate({ schema })))
        assert.strictEqual(error._tag, "InsufficientPrivilege")
        if (error._tag !== "InsufficientPrivilege") return
        assert.strictEqual(error.privilege, `CREATE ON SCHEMA "${schema}"`)
        assert.strictEqual(error.role, role)
        assert.match(error.message, /needs CREATE ON SCHEMA "jobs"/)
        // a schema that does not exist yet needs CREATE on the database
        const fresh = yield* Effect.flip(asRole(Migrations.migrate("fresh")))
        assert.deepInclude(fresh, { _tag: "InsufficientPrivilege", privilege: `CREATE ON DATABASE "${database}"` })
        // the layers too: the migrations layer, and the default Cuckmq.layer (which migrates)
        const layerError = yield* Effect.flip(Effect.scoped(Layer.build(
          PgJobStore.layerMigrations({ schema }).pipe(Layer.provide(Layer.succeed(PgClient.PgClient, rolePg)))
        )))
        assert.strictEqual(layerError._tag, "InsufficientPrivilege")
        const cuckmqError = yield* Effect.flip(Effect.scoped(Layer.build(
          Cuckmq.layer({ schema }).pipe(Layer.provide(Layer.succeed(PgClient.PgClient, rolePg)))
        )))
        assert.strictEqual(cuckmqError._tag, "InsufficientPrivilege")
      }).pipe(Effect.scoped))

    it.effect("the runtime store on a schema that is behind fails with SchemaNotMigrated naming the missing migration", () =>
      Effect.gen(function*() {
        const RolePg = pgAs(role, 2)
        const behind = yield* Effect.flip(Effect.scoped(Layer.build(PgJobStore.layerStore({ schema: "behind" }).pipe(Layer.provide(RolePg)))))
        assert.strictEqual(behind._tag, "SchemaNotMigrated")
        if (behind._tag !== "SchemaNotMigrated") return
        assert.deepInclude(behind, { schema: "behind", version: 1, required: Migrations.latestVersion })
        assert.deepStrictEqual(behind.missing, Ddl.migrations("behind").slice(1).map(([id, name]) => `${id}_${name}`))
        assert.match(behind.message, /at version 1; this cuckmq needs version 8: missing migrations 2_claims_starts_slots_sessions, 3_flow_control, 4_admin_statistics, 5_attempt_control, 6_unique_jobs, 7_results_cancellation, 8_promotion_clock/)
        const none = yield* Effect.flip(Effect.scoped(Layer.build(
          Cuckmq.layer({ schema: "nothing_here", migrate: false }).pipe(Layer.provide(RolePg))
        )))
        assert.deepInclude(none, { _tag: "SchemaNotMigrated", version: 0 })
      }))
  })
})
