/**
 * The typed errors of cuckmq. Every failure that a caller can cause or handle is one of these
 * `Schema.TaggedError` classes, each with a readable `message`; database failures are wrapped in
 * {@link StorageError} so that no driver error leaks through the public API.
 *
 * Like Effect's own errors, each carries a type id ({@link TypeId}), so that {@link isCuckmqError} tells a
 * cuckmq error from any other value (a driver's, a handler's, a plain object with the same `_tag`), and each
 * class has its own guard (`isStorageError`, `isInvalidPayload`, ...), usable on values of unknown type
 * (a squashed `Cause`, the `error` of a `WORKER_JOB_RUN_ERROR` event in the process that raised it).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CuckmqError } from "@cuckmq/effect"
 *
 * const describe = (u: unknown) =>
 *   CuckmqError.isStorageError(u) ? `database (${u.operation})` : CuckmqError.isCuckmqError(u) ? u._tag : "other"
 * const logged = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.tapError(effect, (e) => Effect.log(describe(e)))
 * ```
 *
 * @since 0.1.0
 */
import { Predicate, Schema } from "effect"

/**
 * The type id every cuckmq error carries (as a property whose key and value are this string).
 *
 * @since 0.1.0
 */
export const TypeId = "~cuckmq/CuckmqError" as const

/**
 * The type of {@link TypeId}.
 *
 * @since 0.1.0
 */
export type TypeId = typeof TypeId

/**
 * The schema name given to cuckmq is not a plain SQL identifier (`/^[A-Za-z_][A-Za-z0-9_]{0,62}$/`).
 * Raised before anything is written.
 *
 * @since 0.1.0
 */
export class InvalidSchemaName extends Schema.TaggedError<InvalidSchemaName>()("InvalidSchemaName", {
  schema: Schema.String,
  message: Schema.String
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

/**
 * Options given to a cuckmq Layer or function are invalid (for example a negative number of seconds or a
 * concurrency below 1). Raised before anything starts or is written.
 *
 * @since 0.1.0
 */
export class InvalidOptions extends Schema.TaggedError<InvalidOptions>()("InvalidOptions", {
  message: Schema.String
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

/**
 * A job definition's settings are invalid (empty name, `numAttempts` below 1, a negative timeout, a repeat
 * interval that is not positive, a cron expression that does not parse, or two definitions with one name).
 *
 * @since 0.1.0
 */
export class InvalidJobDefinition extends Schema.TaggedError<InvalidJobDefinition>()("InvalidJobDefinition", {
  definitionName: Schema.String,
  message: Schema.String
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

/**
 * Enqueue was called for a definition whose metadata was never deployed to this schema
 * (see `JobDefinition.deploy`). Nothing was inserted.
 *
 * @since 0.1.0
 */
export class JobDefinitionNotDeployed extends Schema.TaggedError<JobDefinitionNotDeployed>()(
  "JobDefinitionNotDeployed",
  { definitionName: Schema.String, message: Schema.String }
) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

/**
 * A payload given to enqueue does not satisfy the definition's Schema. Nothing was inserted.
 *
 * @since 0.1.0
 */
export class InvalidPayload extends Schema.TaggedError<InvalidPayload>()("InvalidPayload", {
  definitionName: Schema.String,
  message: Schema.String
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

/**
 * Enqueue options are invalid (a negative or non-finite `delaySecs`, an empty `jobGroup`).
 * Nothing was inserted.
 *
 * @since 0.1.0
 */
export class InvalidEnqueueOptions extends Schema.TaggedError<InvalidEnqueueOptions>()("InvalidEnqueueOptions", {
  definitionName: Schema.String,
  message: Schema.String
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

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
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

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
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

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
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

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
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

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
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

/**
 * An admin action or read (`CuckmqAdmin`) named a job id that no job has: not a live job, and not a finalized
 * one kept for inspection (it may have been deleted, by retention or by hand). Nothing was changed.
 *
 * @since 0.2.0
 */
export class JobNotFound extends Schema.TaggedError<JobNotFound>()("JobNotFound", {
  jobId: Schema.String,
  message: Schema.String
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

/**
 * An admin action (`CuckmqAdmin`) does not apply to the job in its current state, for example retrying a
 * job that is running or waiting, running now a job that is already due, or cancelling a running job
 * (cancelling running jobs is not supported yet). `action` names the action, `state` the job's state when
 * it was refused; `message` says why and what would apply instead. Nothing was changed.
 *
 * @since 0.2.0
 */
export class JobActionRefused extends Schema.TaggedError<JobActionRefused>()("JobActionRefused", {
  action: Schema.String,
  jobId: Schema.String,
  state: Schema.String,
  message: Schema.String
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

/**
 * An admin action (`CuckmqAdmin.pauseChannel`, `resumeChannel`) named a channel that cuckmq does not know:
 * no deployed definition uses it and it has no settings (it was never paused or rate limited). A typo is
 * refused rather than creating settings for a channel nothing reads. (`Cuckmq.pauseChannel` still accepts
 * any channel, so that one can be paused before its first deploy.) Nothing was changed.
 *
 * @since 0.2.0
 */
export class ChannelNotFound extends Schema.TaggedError<ChannelNotFound>()("ChannelNotFound", {
  channel: Schema.String,
  message: Schema.String
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

/**
 * A handler's answer "not now, run me again in `delaySecs`" (`JobDefinition.snooze`): the job goes back to
 * the queue without spending an attempt, and its snooze counter grows. Beyond the definition's `maxSnoozes`
 * a snooze fails the attempt instead, with {@link JobSnoozeLimitExceeded}. Not an error of cuckmq's own:
 * a handler fails with it to steer its job (it is never reported as a failure).
 *
 * @since 0.2.0
 */
export class JobSnooze extends Schema.TaggedError<JobSnooze>()("JobSnooze", {
  /** Seconds from the end of the attempt until the job may run again (>= 0). */
  delaySecs: Schema.Number,
  message: Schema.String
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

/**
 * A handler's failure that chooses its own retry delay (`JobDefinition.retryAfter`): the attempt is spent,
 * as for any failure, and if attempts remain the job runs again `delaySecs` after the attempt ended, instead
 * of the definition's retry policy or `timeout`. With no attempt left the job is finalized as failed.
 *
 * @since 0.2.0
 */
export class JobRetryAfter extends Schema.TaggedError<JobRetryAfter>()("JobRetryAfter", {
  /** Seconds from the end of the attempt until the retry (>= 0). */
  delaySecs: Schema.Number,
  message: Schema.String
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

/**
 * An attempt ran past its time limit (the definition's `timeLimit`, or the enqueue's): its handler was
 * interrupted and the attempt failed with this error, retried as any failure is. `limitSecs` is the limit.
 *
 * @since 0.2.0
 */
export class JobTimeLimitExceeded extends Schema.TaggedError<JobTimeLimitExceeded>()("JobTimeLimitExceeded", {
  jobId: Schema.String,
  limitSecs: Schema.Number,
  message: Schema.String
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

/**
 * A handler snoozed a job that had already snoozed `maxSnoozes` times (its definition's bound): the snooze
 * counts as a failed attempt with this error (retried while attempts remain, as any failure is).
 *
 * @since 0.2.0
 */
export class JobSnoozeLimitExceeded extends Schema.TaggedError<JobSnoozeLimitExceeded>()("JobSnoozeLimitExceeded", {
  jobId: Schema.String,
  snoozes: Schema.Number,
  maxSnoozes: Schema.Number,
  message: Schema.String
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

/**
 * A handler's value did not encode with its definition's `success` Schema (the attempt fails with this
 * error, retried as any failure is), or a stored result did not decode with it (`awaitResult`: the Schema
 * changed since the job ran).
 *
 * @since 0.2.0
 */
export class InvalidResult extends Schema.TaggedError<InvalidResult>()("InvalidResult", {
  definitionName: Schema.String,
  jobId: Schema.String,
  message: Schema.String
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

/**
 * `awaitResult`: the job was finalized as failed. `error` is its last error as stored (the JSON the worker
 * recorded: `message`, `tag`, `defect`, `pretty`).
 *
 * @since 0.2.0
 */
export class JobFailed extends Schema.TaggedError<JobFailed>()("JobFailed", {
  definitionName: Schema.String,
  jobId: Schema.String,
  attempts: Schema.Number,
  error: Schema.Unknown,
  message: Schema.String
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

/**
 * `awaitResult`: the job was cancelled (`Cuckmq.cancel`), before it ran or while it ran.
 *
 * @since 0.2.0
 */
export class JobCancelled extends Schema.TaggedError<JobCancelled>()("JobCancelled", {
  definitionName: Schema.String,
  jobId: Schema.String,
  message: Schema.String
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

/**
 * `awaitResult`: the job had not finished when the wait's `timeout` ran out (the job itself is untouched).
 *
 * @since 0.2.0
 */
export class JobResultTimeout extends Schema.TaggedError<JobResultTimeout>()("JobResultTimeout", {
  jobId: Schema.String,
  timeoutMs: Schema.Number,
  message: Schema.String
}) {
  /** The cuckmq error type id (see `isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

/**
 * Every error that `awaitResult` can fail with. `JobNotFound`: no job has the id, or it was finalized and
 * deleted since (retention: `jobPostFinalizeDelete`), or it is a job of another definition; `InvalidOptions`:
 * a `timeout` or `pollInterval` that is not a finite Duration of at least 1 ms.
 *
 * @since 0.2.0
 */
export type AwaitError =
  | JobFailed
  | JobCancelled
  | JobResultTimeout
  | JobNotFound
  | InvalidResult
  | InvalidOptions
  | StorageError

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

/**
 * Every error cuckmq fails with.
 *
 * @since 0.1.0
 */
export type CuckmqError =
  | InvalidSchemaName
  | InvalidOptions
  | InvalidJobDefinition
  | JobDefinitionNotDeployed
  | InvalidPayload
  | InvalidEnqueueOptions
  | PayloadDecodeError
  | JobDefinitionInUse
  | SchemaNotMigrated
  | InsufficientPrivilege
  | StorageError
  | JobNotFound
  | JobActionRefused
  | ChannelNotFound
  | JobSnooze
  | JobRetryAfter
  | JobTimeLimitExceeded
  | JobSnoozeLimitExceeded
  | InvalidResult
  | JobFailed
  | JobCancelled
  | JobResultTimeout

/**
 * Whether a value is a cuckmq error (any of the classes of this module; checked by {@link TypeId}, so a
 * plain object with the same `_tag`, a driver's `SqlError` or an `Error` is not).
 *
 * @since 0.1.0
 */
export const isCuckmqError = (u: unknown): u is CuckmqError => Predicate.hasProperty(u, TypeId)

const guard = <E extends CuckmqError>(tag: E["_tag"]) => (u: unknown): u is E => isCuckmqError(u) && u._tag === tag

/**
 * Whether a value is an {@link InvalidSchemaName} (a cuckmq error, see {@link isCuckmqError}, with that tag).
 *
 * @since 0.1.0
 */
export const isInvalidSchemaName: (u: unknown) => u is InvalidSchemaName = guard<InvalidSchemaName>("InvalidSchemaName")

/**
 * Whether a value is an {@link InvalidOptions} (a cuckmq error, see {@link isCuckmqError}, with that tag).
 *
 * @since 0.1.0
 */
export const isInvalidOptions: (u: unknown) => u is InvalidOptions = guard<InvalidOptions>("InvalidOptions")

/**
 * Whether a value is an {@link InvalidJobDefinition} (a cuckmq error, see {@link isCuckmqError}, with that tag).
 *
 * @since 0.1.0
 */
export const isInvalidJobDefinition: (u: unknown) => u is InvalidJobDefinition = guard<InvalidJobDefinition>("InvalidJobDefinition")

/**
 * Whether a value is a {@link JobDefinitionNotDeployed} (a cuckmq error, see {@link isCuckmqError}, with that tag).
 *
 * @since 0.1.0
 */
export const isJobDefinitionNotDeployed: (u: unknown) => u is JobDefinitionNotDeployed = guard<JobDefinitionNotDeployed>("JobDefinitionNotDeployed")

/**
 * Whether a value is an {@link InvalidPayload} (a cuckmq error, see {@link isCuckmqError}, with that tag).
 *
 * @since 0.1.0
 */
export const isInvalidPayload: (u: unknown) => u is InvalidPayload = guard<InvalidPayload>("InvalidPayload")

/**
 * Whether a value is an {@link InvalidEnqueueOptions} (a cuckmq error, see {@link isCuckmqError}, with that tag).
 *
 * @since 0.1.0
 */
export const isInvalidEnqueueOptions: (u: unknown) => u is InvalidEnqueueOptions = guard<InvalidEnqueueOptions>("InvalidEnqueueOptions")

/**
 * Whether a value is a {@link PayloadDecodeError} (a cuckmq error, see {@link isCuckmqError}, with that tag).
 *
 * @since 0.1.0
 */
export const isPayloadDecodeError: (u: unknown) => u is PayloadDecodeError = guard<PayloadDecodeError>("PayloadDecodeError")

/**
 * Whether a value is a {@link StorageError} (a cuckmq error, see {@link isCuckmqError}, with that tag).
 *
 * @since 0.1.0
 */
export const isStorageError: (u: unknown) => u is StorageError = guard<StorageError>("StorageError")

/**
 * Whether a value is a {@link JobDefinitionInUse} (a cuckmq error, see {@link isCuckmqError}, with that tag).
 *
 * @since 0.1.0
 */
export const isJobDefinitionInUse: (u: unknown) => u is JobDefinitionInUse = guard<JobDefinitionInUse>("JobDefinitionInUse")

/**
 * Whether a value is a {@link SchemaNotMigrated} (a cuckmq error, see {@link isCuckmqError}, with that tag).
 *
 * @since 0.1.0
 */
export const isSchemaNotMigrated: (u: unknown) => u is SchemaNotMigrated = guard<SchemaNotMigrated>("SchemaNotMigrated")

/**
 * Whether a value is a {@link InsufficientPrivilege} (a cuckmq error, see {@link isCuckmqError}, with that tag).
 *
 * @since 0.1.0
 */
export const isInsufficientPrivilege: (u: unknown) => u is InsufficientPrivilege = guard<InsufficientPrivilege>("InsufficientPrivilege")

/**
 * Whether a value is a {@link JobNotFound}.
 *
 * @since 0.2.0
 */
export const isJobNotFound: (u: unknown) => u is JobNotFound = guard<JobNotFound>("JobNotFound")

/**
 * Whether a value is a {@link JobActionRefused}.
 *
 * @since 0.2.0
 */
export const isJobActionRefused: (u: unknown) => u is JobActionRefused = guard<JobActionRefused>("JobActionRefused")

/**
 * Whether a value is a {@link ChannelNotFound}.
 *
 * @since 0.2.0
 */
export const isChannelNotFound: (u: unknown) => u is ChannelNotFound = guard<ChannelNotFound>("ChannelNotFound")

/**
 * Whether a value is a {@link JobTimeLimitExceeded}.
 *
 * @since 0.2.0
 */
export const isJobTimeLimitExceeded: (u: unknown) => u is JobTimeLimitExceeded = guard<JobTimeLimitExceeded>(
  "JobTimeLimitExceeded"
)

/**
 * Whether a value is a {@link JobSnoozeLimitExceeded}.
 *
 * @since 0.2.0
 */
export const isJobSnoozeLimitExceeded: (u: unknown) => u is JobSnoozeLimitExceeded = guard<JobSnoozeLimitExceeded>(
  "JobSnoozeLimitExceeded"
)

/**
 * Whether a value is a {@link JobSnooze} (what `JobDefinition.snooze` fails with).
 *
 * @since 0.2.0
 */
export const isJobSnooze: (u: unknown) => u is JobSnooze = guard<JobSnooze>("JobSnooze")

/**
 * Whether a value is a {@link JobRetryAfter} (what `JobDefinition.retryAfter` fails with).
 *
 * @since 0.2.0
 */
export const isJobRetryAfter: (u: unknown) => u is JobRetryAfter = guard<JobRetryAfter>("JobRetryAfter")
