/**
 * Events: what cuckmq did, published to every subscriber and read as a `Stream`
 * (`Cuckmq.events`, `Cuckmq.subscribe`, `Cuckmq.addEventHandler`).
 *
 * Each event is an instance of a `Schema.TaggedClass` whose `_tag` is the seed's event name, and
 * {@link CuckmqEvent} is their `Schema` union, so an event can be matched (on `_tag`, with `Match`, or with
 * `CuckmqEvent.match`), narrowed with {@link is}, and encoded to JSON and decoded back
 * (`Schema.encodeSync(CuckmqEvent.CuckmqEvent)`, `Schema.decodeUnknownSync(CuckmqEvent.CuckmqEvent)`).
 * The encoded form is plain JSON: dates are ISO 8601 strings and the `error` of `WORKER_JOB_RUN_ERROR` is
 * encoded with `Schema.Defect()` (see {@link WorkerJobRunError}).
 *
 * Every event carries the time it happened and the definition name and/or job id it concerns. Delivery is
 * best effort by design: each subscriber has a bounded buffer (`eventBufferSize`), and a subscriber that
 * falls behind loses its oldest events instead of slowing the workers down.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { CuckmqEvent } from "@cuckmq/effect"
 *
 * const toJson = (event: CuckmqEvent.CuckmqEvent) => JSON.stringify(Schema.encodeSync(CuckmqEvent.CuckmqEvent)(event))
 * const fromJson = (text: string) => Schema.decodeUnknownSync(CuckmqEvent.CuckmqEvent)(JSON.parse(text))
 * ```
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** Fields shared by events that concern one job. */
const jobFields = {
  timestamp: Schema.DateFromString,
  jobId: Schema.String,
  definitionName: Schema.String
}

/**
 * A definition's metadata was upserted into the database (`changed` is false when it was already current).
 *
 * @since 0.1.0
 */
export class JobDefinitionDeploy extends Schema.TaggedClass<JobDefinitionDeploy>()("JOB_DEFINITION_DEPLOY", {
  timestamp: Schema.DateFromString,
  definitionName: Schema.String,
  changed: Schema.Boolean
}) {}

/**
 * A job was enqueued (published after the enclosing transaction commits; never for a rolled-back one).
 * `jobGroup` is absent (undefined) for a job in its own group.
 *
 * @since 0.1.0
 */
export class JobDefinitionJobEnqueue extends Schema.TaggedClass<JobDefinitionJobEnqueue>()("JOB_DEFINITION_JOB_ENQUEUE", {
  ...jobFields,
  jobGroup: Schema.optional(Schema.String),
  delaySecs: Schema.Number
}) {}

/**
 * A worker claimed a job (its attempt counter was incremented).
 *
 * @since 0.1.0
 */
export class WorkerJobDequeue extends Schema.TaggedClass<WorkerJobDequeue>()("WORKER_JOB_DEQUEUE", {
  ...jobFields,
  workerId: Schema.String,
  attempt: Schema.Int
}) {}

/**
 * A worker claimed a job whose definition this process does not know; it went back to the queue with no
 * attempt spent, and this worker no longer claims that definition.
 *
 * @since 0.1.0
 */
export class WorkerJobOrphan extends Schema.TaggedClass<WorkerJobOrphan>()("WORKER_JOB_ORPHAN", {
  ...jobFields,
  workerId: Schema.String
}) {}

/**
 * A job's handler started.
 *
 * @since 0.1.0
 */
export class WorkerJobRun extends Schema.TaggedClass<WorkerJobRun>()("WORKER_JOB_RUN", {
  ...jobFields,
  workerId: Schema.String,
  attempt: Schema.Int
}) {}

/**
 * A job's handler failed (typed error, defect, or a payload that no longer decodes). `willRetry` says whether
 * the job goes back to the queue (at `retryAt`, absent when it does not) or, this being its last attempt, is
 * finalized as failed (a `WORKER_JOB_EXPIRE` follows).
 *
 * `error` is what the handler failed with (the squashed `Cause`: the typed error, else the defect), and
 * `message` its readable description. In the encoded (JSON) form `error` is `Schema.Defect()`'s: an `Error`
 * (a `Schema.TaggedError` included) becomes `{ name, message }` (plus `cause`, never the stack), any other
 * value its JSON form; decoding gives back an `Error` with that name and message, or the JSON value. The
 * error's own fields other than `name` and `message` do not travel: put what a remote reader needs in the
 * error's message.
 *
 * @since 0.1.0
 */
export class WorkerJobRunError extends Schema.TaggedClass<WorkerJobRunError>()("WORKER_JOB_RUN_ERROR", {
  ...jobFields,
  workerId: Schema.String,
  attempt: Schema.Int,
  error: Schema.Defect(),
  message: Schema.String,
  willRetry: Schema.Boolean,
  retryAt: Schema.optional(Schema.DateFromString),
  durationMs: Schema.Number
}) {}

/**
 * A job's handler succeeded; the job is finalized as succeeded.
 *
 * @since 0.1.0
 */
export class WorkerJobRunSuccess extends Schema.TaggedClass<WorkerJobRunSuccess>()("WORKER_JOB_RUN_SUCCESS", {
  ...jobFields,
  workerId: Schema.String,
  attempt: Schema.Int,
  durationMs: Schema.Number
}) {}

/**
 * A job spent its last attempt and was finalized as failed.
 *
 * @since 0.1.0
 */
export class WorkerJobExpire extends Schema.TaggedClass<WorkerJobExpire>()("WORKER_JOB_EXPIRE", {
  ...jobFields,
  workerId: Schema.String,
  attempts: Schema.Int
}) {}

/**
 * A running job was interrupted because its worker stopped (grace period over) or lost its lease; it went
 * back to the queue with no attempt spent.
 *
 * @since 0.1.0
 */
export class WorkerJobInterrupt extends Schema.TaggedClass<WorkerJobInterrupt>()("WORKER_JOB_INTERRUPT", {
  ...jobFields,
  workerId: Schema.String,
  attempt: Schema.Int,
  reason: Schema.Literals(["shutdown", "lease-lost"])
}) {}

/**
 * A job was finalized as cancelled (`Cuckmq.cancel` / `cancelWhere`): a waiting one at once, by the process
 * that cancelled it (`workerId` absent, `running` false); a claimed one by its worker once its handler was
 * interrupted, or before it started (`running` false), with `attempt` the attempt it would be or was.
 *
 * @since 0.2.0
 */
export class JobCancel extends Schema.TaggedClass<JobCancel>()("JOB_CANCEL", {
  ...jobFields,
  workerId: Schema.optional(Schema.String),
  attempt: Schema.optional(Schema.Int),
  running: Schema.Boolean
}) {}

/**
 * A handler snoozed its job (`JobDefinition.snooze`): it went back to the queue until `runAt`, with no
 * attempt spent. `snoozes` counts this one (the job's snoozes so far); beyond the definition's `maxSnoozes`
 * a snooze is a failed attempt instead (a `WORKER_JOB_RUN_ERROR` with `JobSnoozeLimitExceeded`).
 *
 * @since 0.2.0
 */
export class WorkerJobSnooze extends Schema.TaggedClass<WorkerJobSnooze>()("WORKER_JOB_SNOOZE", {
  ...jobFields,
  workerId: Schema.String,
  attempt: Schema.Int,
  snoozes: Schema.Int,
  delaySecs: Schema.Number,
  runAt: Schema.DateFromString,
  durationMs: Schema.Number
}) {}

/**
 * The orchestrator deleted a finalized job past its retention (`jobPostFinalizeDeleteSecs`).
 *
 * @since 0.1.0
 */
export class OrchestratorJobDelete extends Schema.TaggedClass<OrchestratorJobDelete>()("ORCHESTRATOR_JOB_DELETE", {
  ...jobFields
}) {}

/**
 * The orchestrator deleted a job group that no live job refers to any more.
 *
 * @since 0.1.0
 */
export class OrchestratorJobGroupDelete
  extends Schema.TaggedClass<OrchestratorJobGroupDelete>()("ORCHESTRATOR_JOB_GROUP_DELETE", {
    timestamp: Schema.DateFromString,
    jobGroup: Schema.String
  })
{}

/**
 * The orchestrator enqueued a repeating job for its due time.
 *
 * @since 0.1.0
 */
export class OrchestratorJobSchedule extends Schema.TaggedClass<OrchestratorJobSchedule>()("ORCHESTRATOR_JOB_SCHEDULE", {
  ...jobFields,
  scheduledFor: Schema.DateFromString
}) {}

/**
 * A repeating definition is due but this process does not know it; it was left for an orchestrator that does.
 *
 * @since 0.1.0
 */
export class OrchestratorJobScheduleOrphan
  extends Schema.TaggedClass<OrchestratorJobScheduleOrphan>()("ORCHESTRATOR_JOB_SCHEDULE_ORPHAN", {
    timestamp: Schema.DateFromString,
    definitionName: Schema.String
  })
{}

/**
 * A job whose worker died (its heartbeat lease expired) was taken back, by an orchestrator or by another
 * worker's heartbeat: it is available again (`finalized: false`) once its `timeoutSecs` lease has passed or,
 * with no attempts left, finalized as failed (`finalized: true`).
 *
 * @since 0.1.0
 */
export class JobRescue extends Schema.TaggedClass<JobRescue>()("JOB_RESCUE", {
  ...jobFields,
  workerId: Schema.String,
  finalized: Schema.Boolean
}) {}

/**
 * A group lock whose holder is gone (dead worker) or that was held past `jobGroupUnlockSecs` was released,
 * by an orchestrator or by another worker's heartbeat.
 *
 * @since 0.1.0
 */
export class JobGroupUnlock extends Schema.TaggedClass<JobGroupUnlock>()("JOB_GROUP_UNLOCK", {
  timestamp: Schema.DateFromString,
  jobGroup: Schema.String,
  jobId: Schema.String,
  reason: Schema.Literals(["worker-dead", "ceiling"])
}) {}

/** A rate limit as events carry it: at most `limit` claims per window of `periodSecs` seconds. */
const rateLimit = Schema.Struct({ limit: Schema.Int, periodSecs: Schema.Number })

/**
 * A channel's flow control was changed (`Cuckmq.pauseChannel`, `resumeChannel`, `setChannelRateLimit`), by
 * this process: its new state. `rateLimit` is absent when the channel has none.
 *
 * @since 0.2.0
 */
export class ChannelUpdate extends Schema.TaggedClass<ChannelUpdate>()("CHANNEL_UPDATE", {
  timestamp: Schema.DateFromString,
  channel: Schema.String,
  paused: Schema.Boolean,
  rateLimit: Schema.optional(rateLimit)
}) {}

/**
 * A job group's explicit limits were changed (`Cuckmq.setGroupLimits`), by this process: its new state.
 * `concurrency` and `rateLimit` are absent when the group has no setting of its own (its definitions'
 * `groupConcurrency` and `groupRateLimit` apply); `running` is the slots taken at the time.
 *
 * @since 0.2.0
 */
export class GroupUpdate extends Schema.TaggedClass<GroupUpdate>()("GROUP_UPDATE", {
  timestamp: Schema.DateFromString,
  jobGroup: Schema.String,
  concurrency: Schema.optional(Schema.Int),
  rateLimit: Schema.optional(rateLimit),
  running: Schema.Int
}) {}

/** Fields shared by the admin actions' events: the jobs the action changed, and whether more matched. */
const adminFields = {
  timestamp: Schema.DateFromString,
  /** The ids of the jobs the action changed (at most its batch limit). */
  jobIds: Schema.Array(Schema.String),
  /** The action was given by filter and more jobs matched than its batch: run it again for the rest. */
  more: Schema.Boolean
}

/**
 * An operator retried failed jobs (`CuckmqAdmin.retryJob`, `retryJobs`): they are waiting again, due now,
 * with their attempts reset.
 *
 * @since 0.2.0
 */
export class AdminJobRetry extends Schema.TaggedClass<AdminJobRetry>()("ADMIN_JOB_RETRY", adminFields) {}

/**
 * An operator cancelled waiting jobs (`CuckmqAdmin.cancelJob`, `cancelJobs`): they were finalized as failed,
 * with a `Cancelled` error, without running.
 *
 * @since 0.2.0
 */
export class AdminJobCancel extends Schema.TaggedClass<AdminJobCancel>()("ADMIN_JOB_CANCEL", adminFields) {}

/**
 * An operator deleted jobs (`CuckmqAdmin.deleteJob`, `deleteJobs`): waiting or finalized jobs, gone for good.
 *
 * @since 0.2.0
 */
export class AdminJobDelete extends Schema.TaggedClass<AdminJobDelete>()("ADMIN_JOB_DELETE", adminFields) {}

/**
 * An operator made delayed jobs due now (`CuckmqAdmin.runJobNow`, `runJobsNow`).
 *
 * @since 0.2.0
 */
export class AdminJobRunNow extends Schema.TaggedClass<AdminJobRunNow>()("ADMIN_JOB_RUN_NOW", adminFields) {}

/**
 * An operator purged finalized jobs finalized before `before` (`CuckmqAdmin.purge`).
 *
 * @since 0.2.0
 */
export class AdminJobPurge extends Schema.TaggedClass<AdminJobPurge>()("ADMIN_JOB_PURGE", {
  ...adminFields,
  before: Schema.DateFromString
}) {}

/**
 * Every event cuckmq publishes, as a `Schema`: the union of the event classes, tagged on `_tag`.
 * Besides encoding and decoding, it carries Schema's tagged-union helpers: `CuckmqEvent.cases` (the class
 * of each tag), `CuckmqEvent.guards`, `CuckmqEvent.match` (every tag handled) and `CuckmqEvent.matchOrElse`.
 *
 * @since 0.1.0
 */
export const CuckmqEvent = Schema.Union([
  JobDefinitionDeploy,
  JobDefinitionJobEnqueue,
  WorkerJobDequeue,
  WorkerJobOrphan,
  WorkerJobRun,
  WorkerJobRunError,
  WorkerJobRunSuccess,
  WorkerJobExpire,
  WorkerJobInterrupt,
  WorkerJobSnooze,
  JobCancel,
  OrchestratorJobDelete,
  OrchestratorJobGroupDelete,
  OrchestratorJobSchedule,
  OrchestratorJobScheduleOrphan,
  JobRescue,
  JobGroupUnlock,
  ChannelUpdate,
  GroupUpdate,
  AdminJobRetry,
  AdminJobCancel,
  AdminJobDelete,
  AdminJobRunNow,
  AdminJobPurge
]).pipe(Schema.toTaggedUnion("_tag"))

/**
 * Every event cuckmq publishes: an instance of one of the event classes.
 *
 * @since 0.1.0
 */
export type CuckmqEvent = typeof CuckmqEvent.Type

/**
 * The JSON form of an event (what `Schema.encodeSync(CuckmqEvent.CuckmqEvent)` returns).
 *
 * @since 0.1.0
 */
export type Encoded = typeof CuckmqEvent.Encoded

/**
 * The `_tag` of every event, for filtering.
 *
 * @since 0.1.0
 */
export type Tag = CuckmqEvent["_tag"]

/**
 * Whether a value is a cuckmq event (an instance of one of the event classes; a plain object with a
 * matching `_tag` is not: decode it with the `CuckmqEvent` schema first).
 *
 * @since 0.1.0
 */
export const isCuckmqEvent = (u: unknown): u is CuckmqEvent => {
  if (typeof u !== "object" || u === null) return false
  const tag = (u as { readonly _tag?: unknown })._tag
  if (typeof tag !== "string" || !Object.hasOwn(CuckmqEvent.cases, tag)) return false
  return u instanceof (CuckmqEvent.cases as Record<string, new(...args: Array<any>) => unknown>)[tag]!
}

/**
 * The type guard of one or more events, by tag: `CuckmqEvent.is("WORKER_JOB_RUN_SUCCESS")(u)` narrows `u`
 * to a `WorkerJobRunSuccess`, and `Stream.filter(events, CuckmqEvent.is("WORKER_JOB_RUN", "WORKER_JOB_RUN_ERROR"))`
 * to either. It accepts any value, so it also checks values whose type is unknown.
 *
 * @since 0.1.0
 */
export const is = <const T extends Tag>(...tags: ReadonlyArray<T>) => {
  const wanted: ReadonlySet<string> = new Set(tags)
  return (u: unknown): u is Extract<CuckmqEvent, { readonly _tag: T }> => isCuckmqEvent(u) && wanted.has(u._tag)
}
