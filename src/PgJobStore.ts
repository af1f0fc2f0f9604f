/**
 * The PostgreSQL backend of the `JobStore` contract, as layers to compose (in the style of Effect's
 * `SqlMessageStorage`):
 *
 * - `layer`: migrates the schema, then provides the store (what `Cuckmq.layer` does by default);
 * - `layerMigrations` / `migrate`: only the migrations (and, with `grantTo`, the runtime role's `GRANT`s),
 *   for a deploy step whose role may run DDL;
 * - `layerStore`: the store alone. It never runs DDL: it checks that the schema is at the version this
 *   package needs and fails with `SchemaNotMigrated`, naming the missing migrations, when it is behind. Run
 *   workers under a role that has only the runtime privileges (`Migrations.grantSql`).
 *
 * Each requires a `PgClient`: provide the one your app uses, so that enqueue joins your transactions.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Cuckmq, JobDefinition, PgJobStore } from "@cuckmq/effect"
 *
 * const SendEmail = JobDefinition.make({ name: "send-email", handler: () => Effect.log("sending") })
 *
 * // deploy step, as the schema owner: migrate, and grant the runtime role what it needs
 * export const Migrate = PgJobStore.layerMigrations({ schema: "jobs", grantTo: ["app_worker"] })
 *
 * // workers, as app_worker (no CREATE): no DDL at start, a typed error if the schema is behind
 * export const CuckmqLive = Cuckmq.layerStore({ schema: "jobs", definitions: [SendEmail] }).pipe(
 *   Layer.provide(PgJobStore.layerStore({ schema: "jobs" }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import { Effect, Layer, Redacted, type Scope } from "effect"
import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import {
  type InsufficientPrivilege,
  InvalidOptions,
  type InvalidSchemaName,
  type SchemaNotMigrated,
  StorageError
} from "./CuckmqError.js"
import * as PgStore from "./internal/pg/store.js"
import { JobStore } from "./JobStore.js"
import * as Migrations from "./Migrations.js"

/**
 * Options of the store.
 *
 * @since 0.1.0
 */
export interface Options {
  /** The PostgreSQL schema (a plain identifier). Defaults to `"_cuckmq"`. */
  readonly schema?: string | undefined
  /**
   * Keep finalized jobs in `job_finalized` for inspection, until the orchestrator deletes them after
   * `jobPostFinalizeDeleteSecs`. false deletes a job as it finalizes (`Cuckmq.layer` passes false when
   * `jobPostFinalizeDeleteSecs` is 0). Defaults to true.
   */
  readonly keepFinalized?: boolean | undefined
  /** Connections of the store's own pool (claims, settlements, maintenance). Defaults to the app client's `maxConnections` (or 10). */
  readonly maxConnections?: number | undefined
  /**
   * The app's `PgClient` connects through a pooler in transaction mode (PgBouncer `pool_mode =
   * transaction`), where nothing of a session outlives a transaction: the store then prepares no named
   * statements, sends no startup parameters, and runs no session of its own through the pooler. Its session
   * (LISTEN for wake-ups and notices, the liveness lock) uses `directUrl`; without one the process is
   * poll-only (README "Behind PgBouncer"). Give the app client `prepare: false` too. Defaults to false.
   */
  readonly transactionPooler?: boolean | undefined
  /**
   * A URL that reaches PostgreSQL directly (not through the pooler), for the process's one session
   * connection; the app client's other settings (ssl, password when the URL has none) apply to it. Defaults
   * to none: the session connects as the app client does (poll-only with `transactionPooler`).
   */
  readonly directUrl?: Redacted.Redacted | undefined
}

/**
 * Options of the migrations.
 *
 * @since 0.1.0
 */
export interface MigrationOptions {
  /** The PostgreSQL schema (a plain identifier). Defaults to `"_cuckmq"`. */
  readonly schema?: string | undefined
  /**
   * Roles to give the runtime privileges after migrating (`Migrations.grantSql`), every time (so that the
   * objects a new migration adds are covered too). Defaults to none.
   */
  readonly grantTo?: ReadonlyArray<string> | undefined
}

/**
 * The defaults of every option.
 *
 * @since 0.1.0
 */
export const defaults = {
  schema: Migrations.defaultSchema,
  keepFinalized: true
} as const

/**
 * The errors the runtime store can fail with at start.
 *
 * @since 0.1.0
 */
export type StoreError = InvalidSchemaName | InvalidOptions | SchemaNotMigrated | InsufficientPrivilege | StorageError

/**
 * The errors the migrations can fail with.
 *
 * @since 0.1.0
 */
export type MigrationError = InvalidSchemaName | InvalidOptions | InsufficientPrivilege | StorageError

/**
 * Migrates the schema (see `Migrations.migrate`) and grants the runtime privileges to `grantTo`. Returns the
 * migrations it applied. An Effect for a deploy step that migrates and exits.
 *
 * @since 0.1.0
 */
export const migrate: (
  options?: MigrationOptions
) => Effect.Effect<ReadonlyArray<readonly [id: number, name: string]>, MigrationError, SqlClient.SqlClient> = Effect.fn(
  "PgJobStore.migrate"
)(function*(options: MigrationOptions = {}) {
  const schema = options.schema ?? defaults.schema
  const applied = yield* Migrations.migrate(schema)
  const sql = yield* SqlClient.SqlClient
  for (const role of options.grantTo ?? []) {
    for (const statement of yield* Migrations.grantSql(schema, role)) {
      yield* sql.unsafe(statement).pipe(
        Effect.catchTag("SqlError", (cause) =>
          Effect.fail(
            new StorageError({
              operation: "grant",
              message: `Granting the runtime privileges on ${schema} to ${role} failed: ${cause.message}`,
              cause
            })
          ))
      )
    }
  }
  return applied
})

/** `transactionPooler` is a boolean; `directUrl` a `Redacted` postgres:// URL. */
const validatePooler = (options: Pick<Options, "transactionPooler" | "directUrl">): Effect.Effect<void, InvalidOptions> => {
  if (options.directUrl !== undefined && !Redacted.isRedacted(options.directUrl)) {
    return Effect.fail(new InvalidOptions({ message: "directUrl must be a Redacted URL (Redacted.make(\"postgres://...\"))" }))
  }
  const problem = PgStore.poolerProblem({
    transactionPooler: options.transactionPooler,
    directUrl: options.directUrl === undefined ? undefined : Redacted.value(options.directUrl)
  })
  return problem === undefined ? Effect.void : Effect.fail(new InvalidOptions({ message: problem }))
}

/**
 * Builds the store on a migrated schema without running any DDL: it first checks the schema version
 * (`SchemaNotMigrated` when it is behind). The store lives as long as the scope.
 *
 * @since 0.1.0
 */
export const make: (options?: Options) => Effect.Effect<JobStore["Service"], StoreError, PgClient.PgClient | Scope.Scope> = Effect
  .fnUntraced(function*(options: Options = {}) {
    const schema = options.schema ?? defaults.schema
    yield* validatePooler(options)
    const pg = yield* PgClient.PgClient
    yield* Migrations.check(schema).pipe(Effect.provideService(SqlClient.SqlClient, pg))
    return yield* PgStore.make({
      schema,
      keepFinalized: options.keepFinalized ?? defaults.keepFinalized,
      maxConnections: options.maxConnections,
      transactionPooler: options.transactionPooler,
      directUrl: options.directUrl
    })
  })

/**
 * Only the migrations (and grants): a layer that provides nothing, for a deploy step whose role may run
 * DDL (`Layer.launch` would keep it running: use `migrate` for a step that exits, or build this layer
 * before the rest, as `layer` does).
 *
 * @since 0.1.0
 */
export const layerMigrations = (options: MigrationOptions = {}): Layer.Layer<never, MigrationError, PgClient.PgClient> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const pg = yield* PgClient.PgClient
    yield* migrate(options).pipe(Effect.provideService(SqlClient.SqlClient, pg))
  }))

/**
 * The store alone, for processes whose role has only the runtime privileges: no DDL, a version check at
 * start.
 *
 * @since 0.1.0
 */
export const layerStore = (options: Options = {}): Layer.Layer<JobStore, StoreError, PgClient.PgClient> =>
  Layer.effect(JobStore, make(options))

/**
 * Migrates, then provides the store: the default (`Cuckmq.layer` does this).
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<JobStore, StoreError | MigrationError, PgClient.PgClient> =>
  layerStore(options).pipe(Layer.provide(layerMigrations({ schema: options.schema })))
