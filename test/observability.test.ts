/**
 * Observability: every job run is a span (job id, definition, attempt, channel) linked to the span that
 * enqueued it, and the metrics in CuckmqMetrics count what happened.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric, Schema, Tracer } from "effect"
import { CuckmqMetrics, JobDefinition } from "../src/index.js"
import { CuckmqTest } from "../src/testing.js"
import { recordingTracer } from "./support/harness.js"

const attributes = (span: Tracer.NativeSpan) => Object.fromEntries(span.attributes)

describe("observability", () => {
  it.effect("a job run is a span with the job's attributes, linked to the enqueue span", () => {
    const Job = JobDefinition.make({
      name: "traced",
      channel: "ch",
      payload: Schema.Struct({ n: Schema.Int }),
      handler: () => Effect.void
    })
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      const test = yield* CuckmqTest
      const id = yield* Job.enqueue({ n: 1 }, { jobGroup: "g" }).pipe(Effect.withSpan("http.request"))
      yield* test.drain
      const enqueue = spans.find((s) => s.name === "cuckmq.enqueue")!
      const run = spans.find((s) => s.name === "cuckmq.job traced")!
      assert.strictEqual(enqueue.kind, "producer")
      assert.strictEqual(enqueue.parent._tag === "Some" && (enqueue.parent.value as Tracer.Span).name, "http.request")
      assert.strictEqual(run.kind, "consumer")
      assert.deepInclude(attributes(run), {
        "cuckmq.job.id": id,
        "cuckmq.definition": "traced",
        "cuckmq.attempt": 1,
        "cuckmq.channel": "ch",
        "cuckmq.job_group": "g"
      })
      assert.isTrue(run.parent._tag === "None", "a job run starts its own trace")
      assert.deepStrictEqual(run.links.map((l) => [l.span.traceId, l.span.spanId]), [[enqueue.traceId, enqueue.spanId]])
      assert.strictEqual(run.status._tag, "Ended")
    }).pipe(Effect.provide(CuckmqTest.layer({ definitions: [Job] })), Effect.withTracer(tracer))
  })

  it.effect("public operations are spans: cuckmq.deploy and cuckmq.enqueue (one job or many)", () => {
    const Job = JobDefinition.make({ name: "spanned", handler: () => Effect.void })
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function*() {
      yield* Job.deploy.pipe(Effect.withSpan("app.boot"))
      yield* Job.enqueueMany([{ payload: {} }, { payload: {}, delay: "1 minute" }, { payload: {} }])
      const deploy = spans.find((s) => s.name === "cuckmq.deploy")!
      assert.deepInclude(attributes(deploy), { "cuckmq.definition": "spanned" })
      assert.strictEqual(deploy.parent._tag === "Some" && (deploy.parent.value as Tracer.Span).name, "app.boot")
      assert.strictEqual(deploy.status._tag, "Ended")
      const enqueue = spans.find((s) => s.name === "cuckmq.enqueue")!
      assert.strictEqual(enqueue.kind, "producer")
      assert.deepInclude(attributes(enqueue), { "cuckmq.definition": "spanned", "cuckmq.jobs": 3 })
      // a failed operation ends its span with the failure
      const bad = JobDefinition.make({ name: "spanned-bad", timeout: "-1 seconds", handler: () => Effect.void })
      yield* Effect.flip(bad.deploy)
      const failed = spans.filter((s) => s.name === "cuckmq.deploy").at(-1)!
      assert.isTrue(failed.status._tag === "Ended" && failed.status.exit._tag === "Failure")
    }).pipe(Effect.provide(CuckmqTest.layer({ definitions: [Job] })), Effect.withTracer(tracer))
  })

  it.effect("metrics count enqueued, succeeded, failed and expired jobs, with run time and queue wait", () => {
    const Ok = JobDefinition.make({ name: "metric-ok", handler: () => Effect.void })
    const Bad = JobDefinition.make({ name: "metric-bad", numAttempts: 2, timeoutSecs: 0, handler: () => Effect.fail("no") })
    const counter = (metric: Metric.Metric<number, { readonly count: number }>, definition: string) =>
      Effect.map(Metric.value(Metric.withAttributes(metric, { definition })), (s) => s.count)
    return Effect.gen(function*() {
      const test = yield* CuckmqTest
      yield* Ok.enqueueMany([{ payload: {} }, { payload: {} }])
      yield* Bad.enqueue({})
      yield* test.drain // Bad fails, retried at once (timeoutSecs 0): the same drain runs its second attempt
      assert.strictEqual(yield* counter(CuckmqMetrics.jobsEnqueued, "metric-ok"), 2)
      assert.strictEqual(yield* counter(CuckmqMetrics.jobsEnqueued, "metric-bad"), 1)
      assert.strictEqual(yield* counter(CuckmqMetrics.jobsSucceeded, "metric-ok"), 2)
      assert.strictEqual(yield* counter(CuckmqMetrics.jobsFailed, "metric-bad"), 2)
      assert.strictEqual(yield* counter(CuckmqMetrics.jobsExpired, "metric-bad"), 1)
      const runs = yield* Metric.value(Metric.withAttributes(CuckmqMetrics.runDuration, { definition: "metric-ok" }))
      assert.strictEqual(runs.count, 2)
      const waits = yield* Metric.value(Metric.withAttributes(CuckmqMetrics.queueWait, { definition: "metric-bad" }))
      assert.strictEqual(waits.count, 2)
    }).pipe(Effect.provide(CuckmqTest.layer({ definitions: [Ok, Bad] })))
  })
})
