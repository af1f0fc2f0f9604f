/**
 * Events: what cuckmq did, published on the context's PubSub and read as a `Stream`
 * (`Cuckmq.events`, `Cuckmq.subscribe`, `Cuckmq.addEventHandler`).
 *
 * The `_tag` of each event is the seed's event name. Every event carries the time it happened and the
 * definition name and/or job id it concerns. Delivery is best effort by design: each subscriber has a
 * bounded buffer (`eventBufferSize`), and a subscriber that falls behind loses its oldest events instead
 * of slowing the workers down.
 *
 * @since 0.1.0
 */

/** Fields shared by events that concern one job. */
interface JobFields {
  readonly timestamp: Date
  readonly jobId: string
  readonly definitionName: string
}

/**
 * A definition's metadata was upserted into the database (`changed` is false when it was already current).
 *
 * @since 0.1.0
 */
export interface JobDefinitionDeploy {
  readonly _tag: "JOB_DEFINITION_DEPLOY"
  readonly timestamp: Date
  readonly definitionName: string
  readonly changed: boolean
}

/**
 * A job was enqueued (published after the enclosing transaction commits; never for a rolled-back one).
 *
 * @since 0.1.0
 */
export interface JobDefinitionJobEnqueue extends JobFields {
  readonly _tag: "JOB_DEFINITION_JOB_ENQUEUE"
  readonly jobGroup: string | undefined
  readonly delaySecs: number
}

/**
 * A worker claimed a job (its attempt counter was incremented).
 *
 * @since 0.1.0
 */
export interface WorkerJobDequeue extends JobFields {
  readonly _tag: "WORKER_JOB_DEQUEUE"
  readonly workerId: string
  readonly attempt: number
}

/**
 * A worker claimed a job whose definition this process does not know; it went back to the queue with no
 * attempt spent, and this worker no longer claims that definition.
 *
 * @since 0.1.0
 */
export interface WorkerJobOrphan extends JobFields {
  readonly _tag: "WORKER_JOB_ORPHAN"
  readonly workerId: string
}

/**
 * A job's handler started.
 *
 * @since 0.1.0
 */
export interface WorkerJobRun extends JobFields {
  readonly _tag: "WORKER_JOB_RUN"
  readonly workerId: string
  readonly attempt: number
}

/**
 * A job's handler failed (typed error, defect, or a payload that no longer decodes). `willRetry` says whether
 * the job goes back to the queue (at `retryAt`) or, this being its last attempt, is finalized as failed
 * (a `WORKER_JOB_EXPIRE` follows).
 *
 * @since 0.1.0
 */
export interface WorkerJobRunError extends JobFields {
  readonly _tag: "WORKER_JOB_RUN_ERROR"
  readonly workerId: string
  readonly attempt: number
  readonly error: unknown
  readonly message: string
  readonly willRetry: boolean
  readonly retryAt: Date | undefined
  readonly durationMs: number
}

/**
 * A job's handler succeeded; the job is finalized as succeeded.
 *
 * @since 0.1.0
 */
export interface WorkerJobRunSuccess extends JobFields {
  readonly _tag: "WORKER_JOB_RUN_SUCCESS"
  readonly workerId: string
  readonly attempt: number
  readonly durationMs: number
}

/**
 * A job spent its last attempt and was finalized as failed.
 *
 * @since 0.1.0
 */
export interface WorkerJobExpire extends JobFields {
  readonly _tag: "WORKER_JOB_EXPIRE"
  readonly workerId: string
  readonly attempts: number
}

/**
 * A running job was interrupted because its worker stopped (grace period over) or lost its lease; it went
 * back to the queue with no attempt spent.
 *
 * @since 0.1.0
 */
export interface WorkerJobInterrupt extends JobFields {
  readonly _tag: "WORKER_JOB_INTERRUPT"
  readonly workerId: string
  readonly attempt: number
  readonly reason: "shutdown" | "lease-lost"
}

/**
 * The orchestrator deleted a finalized job past its retention (`jobPostFinalizeDeleteSecs`).
 *
 * @since 0.1.0
 */
export interface OrchestratorJobDelete extends JobFields {
  readonly _tag: "ORCHESTRATOR_JOB_DELETE"
}

/**
 * The orchestrator deleted a job group that no live job refers to any more.
 *
 * @since 0.1.0
 */
export interface OrchestratorJobGroupDelete {
  readonly _tag: "ORCHESTRATOR_JOB_GROUP_DELETE"
  readonly timestamp: Date
  readonly jobGroup: string
}

/**
 * The orchestrator enqueued a repeating job for its due time.
 *
 * @since 0.1.0
 */
export interface OrchestratorJobSchedule extends JobFields {
  readonly _tag: "ORCHESTRATOR_JOB_SCHEDULE"
  readonly scheduledFor: Date
}

/**
 * A repeating definition is due but this process does not know it; it was left for an orchestrator that does.
 *
 * @since 0.1.0
 */
export interface OrchestratorJobScheduleOrphan {
  readonly _tag: "ORCHESTRATOR_JOB_SCHEDULE_ORPHAN"
  readonly timestamp: Date
  readonly definitionName: string
}

/**
 * A job whose worker died (its heartbeat lease expired) was taken back, by an orchestrator or by another
 * worker's heartbeat: it is available again (`finalized: false`) once its `timeoutSecs` lease has passed or,
 * with no attempts left, finalized as failed (`finalized: true`).
 *
 * @since 0.1.0
 */
export interface JobRescue extends JobFields {
  readonly _tag: "JOB_RESCUE"
  readonly workerId: string
  readonly finalized: boolean
}

/**
 * A group lock whose holder is gone (dead worker) or that was held past `jobGroupUnlockSecs` was released,
 * by an orchestrator or by another worker's heartbeat.
 *
 * @since 0.1.0
 */
export interface JobGroupUnlock {
  readonly _tag: "JOB_GROUP_UNLOCK"
  readonly timestamp: Date
  readonly jobGroup: string
  readonly jobId: string
  readonly reason: "worker-dead" | "ceiling"
}

/**
 * Every event cuckmq publishes.
 *
 * @since 0.1.0
 */
export type CuckmqEvent =
  | JobDefinitionDeploy
  | JobDefinitionJobEnqueue
  | WorkerJobDequeue
  | WorkerJobOrphan
  | WorkerJobRun
  | WorkerJobRunError
  | WorkerJobRunSuccess
  | WorkerJobExpire
  | WorkerJobInterrupt
  | OrchestratorJobDelete
  | OrchestratorJobGroupDelete
  | OrchestratorJobSchedule
  | OrchestratorJobScheduleOrphan
  | JobRescue
  | JobGroupUnlock

/**
 * The `_tag` of every event, for filtering.
 *
 * @since 0.1.0
 */
export type Tag = CuckmqEvent["_tag"]

/**
 * Narrows an event union to one tag: `Stream.filter(events, CuckmqEvent.is("WORKER_JOB_RUN_SUCCESS"))`.
 *
 * @since 0.1.0
 */
export const is = <T extends Tag>(...tags: ReadonlyArray<T>) =>
(event: CuckmqEvent): event is Extract<CuckmqEvent, { readonly _tag: T }> => tags.includes(event._tag as T)
