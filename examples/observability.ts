/**
 * Observability: every job run is a span (linked to the span that enqueued it) and cuckmq's metrics go
 * through Effect's Metric, so @effect/opentelemetry exports both with no extra code. Here to the
 * OpenTelemetry console exporters; in production, swap in an OTLP exporter.
 *
 *   npx tsx examples/observability.ts
 */
import { Effect, Layer, Metric, Schema } from "effect"
import { NodeRuntime } from "@effect/platform-node"
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { ConsoleSpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { ConsoleMetricExporter, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { Cuckmq, CuckmqMetrics, JobDefinition, Worker } from "@cuckmq/effect"
import { exampleSchema, PgLive } from "../tools/database.js"

// Everything this example writes (cuckmq's tables) lives in a schema of its own, dropped when it ends, also on
// a failure or Ctrl-C, so it never touches data that is not its own. An app passes the schema its queue lives
// in (or keeps cuckmq's default, "_cuckmq") and provides its own `PgClient.layer`.
const schema = exampleSchema("observability")

const Resize = JobDefinition.make({
  name: "resize-image",
  payload: Schema.Struct({ image: Schema.String }),
  handler: ({ image }) => Effect.sleep("5 millis").pipe(Effect.withSpan("resize", { attributes: { image } }))
})

// 1. The OpenTelemetry SDK as a Layer: spans and metrics to the console.
const Telemetry = NodeSdk.layer(() => ({
  resource: { serviceName: "cuckmq-example" },
  spanProcessor: new SimpleSpanProcessor(new ConsoleSpanExporter()),
  metricReader: new PeriodicExportingMetricReader({ exporter: new ConsoleMetricExporter(), exportIntervalMillis: 1000 })
}))

const program = Effect.gen(function*() {
  // 2. Enqueue inside a span of your own: the job's run links to it.
  yield* Resize.enqueueMany([{ payload: { image: "a.png" } }, { payload: { image: "b.png" } }]).pipe(
    Effect.withSpan("http POST /images")
  )
  // 3. Wait until both ran, reading cuckmq's own counter.
  const succeeded = Metric.withAttributes(CuckmqMetrics.jobsSucceeded, { definition: "resize-image" })
  while ((yield* Metric.value(succeeded)).count < 2) yield* Effect.sleep("20 millis")
  yield* Effect.log("2 jobs ran: their spans (cuckmq.job resize-image) and the metrics are printed above/below")
  yield* Effect.sleep("1200 millis") // one more metric export
})

program.pipe(
  Effect.provide(
    Worker.layer().pipe(
      Layer.provideMerge(Cuckmq.layer({ schema, definitions: [Resize] })),
      // the database, with the example's schema: created now, dropped (CASCADE) when the program ends
      Layer.provide(PgLive({ scratchSchema: schema })),
      Layer.provideMerge(Telemetry)
    )
  ),
  NodeRuntime.runMain
)
