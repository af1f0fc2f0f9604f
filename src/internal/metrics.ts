/**
 * Synchronous metric updates for the hot paths: the metric objects with their `definition` (or `worker`)
 * attribute are built once per name and updated with `updateUnsafe` against the context captured when the
 * context layer was built (so a `MetricRegistry` provided by the app is the one used).
 */
import { type Context, Metric } from "effect"
import * as M from "../CuckmqMetrics.js"

export interface Recorder {
  readonly enqueued: (definition: string, n: number) => void
  readonly succeeded: (definition: string, seconds: number) => void
  readonly failed: (definition: string, seconds: number, expired: boolean) => void
  readonly waited: (definition: string, seconds: number) => void
  readonly inFlight: (worker: string, n: number) => void
}

export const make = (context: Context.Context<never>): Recorder => {
  const cache = new Map<string, Metric.Metric<number, any>>()
  const get = (metric: Metric.Metric<number, any>, key: string, value: string) => {
    const id = `${metric.id}\u0000${value}`
    let tagged = cache.get(id)
    if (tagged === undefined) {
      tagged = Metric.withAttributes(metric, { [key]: value })
      cache.set(id, tagged)
    }
    return tagged
  }
  return {
    enqueued: (definition, n) => get(M.jobsEnqueued, "definition", definition).updateUnsafe(n, context),
    succeeded: (definition, seconds) => {
      get(M.jobsSucceeded, "definition", definition).updateUnsafe(1, context)
      get(M.runDuration, "definition", definition).updateUnsafe(seconds, context)
    },
    failed: (definition, seconds, expired) => {
      get(M.jobsFailed, "definition", definition).updateUnsafe(1, context)
      get(M.runDuration, "definition", definition).updateUnsafe(seconds, context)
      if (expired) get(M.jobsExpired, "definition", definition).updateUnsafe(1, context)
    },
    waited: (definition, seconds) => get(M.queueWait, "definition", definition).updateUnsafe(seconds, context),
    inFlight: (worker, n) => get(M.jobsInFlight, "worker", worker).updateUnsafe(n, context)
  }
}
