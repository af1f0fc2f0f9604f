/**
 * The metrics cuckmq records, through Effect's `Metric` module: whatever exports your metrics (for example
 * `@effect/opentelemetry`, or `Metric.snapshot`) sees them with no extra code. Every series carries the
 * `definition` attribute; the in-flight gauge carries `worker` instead.
 *
 * | metric | type | meaning |
 * |---|---|---|
 * | `cuckmq_jobs_enqueued_total` | counter | jobs enqueued (after commit) |
 * | `cuckmq_jobs_succeeded_total` | counter | handler runs that succeeded |
 * | `cuckmq_jobs_failed_total` | counter | handler runs that failed (retried or not) |
 * | `cuckmq_jobs_expired_total` | counter | jobs finalized as failed (no attempt left) |
 * | `cuckmq_jobs_snoozed_total` | counter | handler runs that snoozed their job (no attempt spent) |
 * | `cuckmq_job_run_duration_seconds` | histogram | handler run time |
 * | `cuckmq_job_queue_wait_seconds` | histogram | from when a job became available to when its handler started |
 * | `cuckmq_jobs_in_flight` | gauge | handlers running in a worker |
 *
 * @since 0.1.0
 */
import { Metric } from "effect"

const seconds = Metric.exponentialBoundaries({ start: 0.001, factor: 2, count: 20 }) // 1 ms .. ~9 min

/**
 * Counter `cuckmq_jobs_enqueued_total`: jobs enqueued, counted after their transaction commits.
 *
 * @since 0.1.0
 */
export const jobsEnqueued = Metric.counter("cuckmq_jobs_enqueued_total", { description: "Jobs enqueued", incremental: true })

/**
 * Counter `cuckmq_jobs_succeeded_total`: handler runs that succeeded.
 *
 * @since 0.1.0
 */
export const jobsSucceeded = Metric.counter("cuckmq_jobs_succeeded_total", {
  description: "Handler runs that succeeded",
  incremental: true
})

/**
 * Counter `cuckmq_jobs_failed_total`: handler runs that failed, whether the job is retried or not.
 *
 * @since 0.1.0
 */
export const jobsFailed = Metric.counter("cuckmq_jobs_failed_total", {
  description: "Handler runs that failed (retried or not)",
  incremental: true
})

/**
 * Counter `cuckmq_jobs_expired_total`: jobs finalized as failed, with no attempt left.
 *
 * @since 0.1.0
 */
export const jobsExpired = Metric.counter("cuckmq_jobs_expired_total", {
  description: "Jobs finalized as failed after their last attempt",
  incremental: true
})

/**
 * Counter `cuckmq_jobs_snoozed_total`: handler runs that snoozed their job (`JobDefinition.snooze`: back to
 * the queue, no attempt spent). A snooze beyond `maxSnoozes` is counted as failed instead.
 *
 * @since 0.2.0
 */
export const jobsSnoozed = Metric.counter("cuckmq_jobs_snoozed_total", {
  description: "Handler runs that snoozed their job (no attempt spent)",
  incremental: true
})

/**
 * Histogram `cuckmq_job_run_duration_seconds`: handler run time.
 *
 * @since 0.1.0
 */
export const runDuration = Metric.histogram("cuckmq_job_run_duration_seconds", {
  description: "Handler run time in seconds",
  boundaries: seconds
})

/**
 * Histogram `cuckmq_job_queue_wait_seconds`: from when a job became available to when its handler started.
 *
 * @since 0.1.0
 */
export const queueWait = Metric.histogram("cuckmq_job_queue_wait_seconds", {
  description: "Seconds from when a job became available to when its handler started",
  boundaries: seconds
})

/**
 * Gauge `cuckmq_jobs_in_flight`: handlers running in a worker (attribute `worker`).
 *
 * @since 0.1.0
 */
export const jobsInFlight = Metric.gauge("cuckmq_jobs_in_flight", { description: "Handlers running in a worker" })
