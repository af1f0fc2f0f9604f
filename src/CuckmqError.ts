/**
 * The typed errors of cuckmq. Every failure that a caller can cause or handle is one of these
 * `Schema.TaggedError` classes, each with a readable `message`; database failures are wrapped in
 * {@link StorageError} so that no driver error leaks through the public API.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * The schema name given to cuckmq is not a plain SQL identifier (`/^[A-Za-z_][A-Za-z0-9_]{0,62}$/`).
 * Raised before anything is written.
 *
 * @since 0.1.0
 */
export class InvalidSchemaName extends Schema.TaggedError<InvalidSchemaName>()("InvalidSchemaName", {
  schema: Schema.String,
  message: Schema.String
}) {}

/**
 * Options given to a cuckmq Layer or function are invalid (for example a negative number of seconds or a
 * concurrency below 1). Raised before anything starts or is written.
 *
 * @since 0.1.0
 */
export class InvalidOptions extends Schema.TaggedError<InvalidOptions>()("InvalidOptions", {
  message: Schema.String
}) {}

/**
 * A job definition's settings are invalid (empty name, `numAttempts` below 1, a negative timeout, a repeat
 * interval that is not positive, a cron expression that does not parse, or two definitions with one name).
 *
 * @since 0.1.0
 */
export class InvalidJobDefinition extends Schema.TaggedError<InvalidJobDefinition>()("InvalidJobDefinition", {
  definitionName: Schema.String,
  message: Schema.String
}) {}

/**
 * Enqueue was called for a definition whose metadata was never deployed to this schema
 * (see `JobDefinition.deploy`). Nothing was inserted.
 *
 * @since 0.1.0
 */
export class JobDefinitionNotDeployed extends Schema.TaggedError<JobDefinitionNotDeployed>()(
  "JobDefinitionNotDeployed",
  { definitionName: Schema.String, message: Schema.String }
) {}

/**
 * A payload given to enqueue does not satisfy the definition's Schema. Nothing was inserted.
 *
 * @since 0.1.0
 */
export class InvalidPayload extends Schema.TaggedError<InvalidPayload>()("InvalidPayload", {
  definitionName: Schema.String,
  message: Schema.String
}) {}

/**
 * Enqueue options are invalid (a negative or non-finite `delaySecs`, an empty `jobGroup`).
 * Nothing was inserted.
 *
 * @since 0.1.0
 */
export class InvalidEnqueueOptions extends Schema.TaggedError<InvalidEnqueueOptions>()("InvalidEnqueueOptions", {
  definitionName: Schema.String,
  message: Schema.String
}) {}

/**
 * A stored payload no longer decodes with the definition's Schema (for example after an incompatible change
 * to the Schema). The attempt fails with this error, which the `WORKER_JOB_RUN_ERROR` event carries.
 *
 * @since 0.1.0
 */
export class PayloadDecodeError extends Schema.TaggedError<PayloadDecodeError>()("PayloadDecodeError", {
  definitionName: Schema.String,
  jobId: Schema.String,
  message: Schema.String
}) {}

/**
 * `undeploy` with `waiting: "fail"` found live jobs of the definition (waiting or running): nothing was
 * changed. Undeploy with `waiting: "delete"` or `"keep"`, or let the jobs drain first.
 *
 * @since 0.1.0
 */
export class JobDefinitionInUse extends Schema.TaggedError<JobDefinitionInUse>()("JobDefinitionInUse", {
  definitionName: Schema.String,
  waiting: Schema.Number,
  running: Schema.Number,
  message: Schema.String
}) {}

/**
 * The PostgreSQL schema is not migrated to the version this package needs, and the layer was not allowed
 * to migrate it (`PgJobStore.layerStore`, or `Cuckmq.layer({ migrate: false })`). `missing` names the
 * migrations to apply (`<id>_<name>`, in order), with `PgJobStore.layerMigrations` or
 * `Migrations.generateMigrationSql`, under a role that may run DDL. Nothing was started.
 *
 * @since 0.1.0
 */
export class SchemaNotMigrated extends Schema.TaggedError<SchemaNotMigrated>()("SchemaNotMigrated", {
  schema: Schema.String,
  /** The schema's current version (0: not migrated at all). */
  version: Schema.Number,
  /** The version this package needs. */
  required: Schema.Number,
  missing: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/**
 * The database role lacks a privilege cuckmq needs for `operation` (for example running the migrations under
 * the runtime role, which has no `CREATE`). `privilege` names what is missing, as a `GRANT` would
 * (`CREATE ON SCHEMA "jobs"`); `message` carries what the database said, when it said something.
 *
 * @since 0.1.0
 */
export class InsufficientPrivilege extends Schema.TaggedError<InsufficientPrivilege>()("InsufficientPrivilege", {
  operation: Schema.String,
  role: Schema.String,
  privilege: Schema.String,
  message: Schema.String
}) {}

/**
 * The database (or the storage backend) failed: connection lost, statement failed, migration failed.
 * `operation` says what cuckmq was doing; `message` carries what the database said (and its SQLSTATE, also
 * in `sqlState` when the server sent one); `cause` keeps the original error.
 *
 * @since 0.1.0
 */
export class StorageError extends Schema.TaggedError<StorageError>()("StorageError", {
  operation: Schema.String,
  message: Schema.String,
  sqlState: Schema.optional(Schema.String),
  cause: Schema.Defect()
}) {}

/**
 * Every error that enqueueing a job can fail with.
 *
 * @since 0.1.0
 */
export type EnqueueError =
  | JobDefinitionNotDeployed
  | InvalidPayload
  | InvalidEnqueueOptions
  | StorageError
