/**
 * Synchronous metric updates for the hot paths: the metric objects with their `definition` (or `worker`)
 * attribute are built once per name and updated with `updateUnsafe` against the context captured when the
 * context layer was built (so a `MetricRegistry` provided by the app is the one used). An attempt's outcome
 * also goes to the context's outcome counters (`CuckmqAdmin`'s statistics: src/internal/outcomes.ts), in
 * the same call.
 */
import { type Context, Metric } from "effect"
import * as M from "../CuckmqMetrics.js"
import type { Outcomes } from "./outcomes.js"

export interface Recorder {
  readonly enqueued: (definition: string, n: number) => void
  /** An attempt succeeded, after `durationMs`, ending at `at` (a `Clock` time in ms). */
  readonly succeeded: (definition: string, durationMs: number, at: number) => void
  /** An attempt failed; `expired`: it was the job's last (finalized as failed). */
  readonly failed: (definition: string, durationMs: number, expired: boolean, at: number) => void
  readonly waited: (definition: string, seconds: number) => void
  /** A handler snoozed its job (no attempt spent). */
  readonly snoozed: (definition: string) => void
  readonly inFlight: (worker: string, n: number) => void
}

interface PerDefinition {
  readonly enqueued: Metric.Metric<number, any>
  readonly succeeded: Metric.Metric<number, any>
  readonly failed: Metric.Metric<number, any>
  readonly expired: Metric.Metric<number, any>
  readonly snoozed: Metric.Metric<number, any>
  readonly runDuration: Metric.Metric<number, any>
  readonly queueWait: Metric.Metric<number, any>
}

export const make = (context: Context.Context<never>, outcomes: Outcomes): Recorder => {
  const definitions = new Map<string, PerDefinition>()
  const forDefinition = (definition: string): PerDefinition => {
    let handles = definitions.get(definition)
    if (handles === undefined) {
      const tag = <I, S>(metric: Metric.Metric<I, S>) => Metric.withAttributes(metric, { definition })
      handles = {
        enqueued: tag(M.jobsEnqueued),
        succeeded: tag(M.jobsSucceeded),
        failed: tag(M.jobsFailed),
        expired: tag(M.jobsExpired),
        snoozed: tag(M.jobsSnoozed),
        runDuration: tag(M.runDuration),
        queueWait: tag(M.queueWait)
      }
      definitions.set(definition, handles)
    }
    return handles
  }
  const workers = new Map<string, Metric.Metric<number, any>>()
  const forWorker = (worker: string) => {
    let gauge = workers.get(worker)
    if (gauge === undefined) {
      gauge = Metric.withAttributes(M.jobsInFlight, { worker })
      workers.set(worker, gauge)
    }
    return gauge
  }
  return {
    enqueued: (definition, n) => forDefinition(definition).enqueued.updateUnsafe(n, context),
    succeeded: (definition, durationMs, at) => {
      const m = forDefinition(definition)
      m.succeeded.updateUnsafe(1, context)
      m.runDuration.updateUnsafe(durationMs / 1000, context)
      outcomes.succeeded(definition, durationMs, at)
    },
    failed: (definition, durationMs, expired, at) => {
      const m = forDefinition(definition)
      m.failed.updateUnsafe(1, context)
      m.runDuration.updateUnsafe(durationMs / 1000, context)
      if (expired) m.expired.updateUnsafe(1, context)
      outcomes.errored(definition, durationMs, expired, at)
    },
    waited: (definition, seconds) => forDefinition(definition).queueWait.updateUnsafe(seconds, context),
    snoozed: (definition) => forDefinition(definition).snoozed.updateUnsafe(1, context),
    inFlight: (worker, n) => forWorker(worker).updateUnsafe(n, context)
  }
}
