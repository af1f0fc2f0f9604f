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
