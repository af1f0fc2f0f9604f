/**
 * Time options in both forms (a `Duration.Input`, preferred, and the seed's seconds), the both-forms rule,
 * `layerConfig` from `Config`, and the spans of public operations: on real PostgreSQL, and on the memory
 * backend (TestClock) where that is enough.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Config, ConfigProvider, Context, Deferred, Duration, Effect, Exit, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import { SqlClient } from "effect/sql"
import { Cuckmq, JobDefinition, Migrations, Orchestrator, Worker } from "../src/index.js"
import { CuckmqTest } from "../src/testing.js"
import { recordingTracer, startWorker, waitUntil } from "./support/harness.js"
import { databaseUrl, PgWithSchema, uniqueSchema } from "./support/pg.js"
import { spawnFixture } from "./support/processes.js"

const schema = uniqueSchema("config_duration")

/** Local run times of the `ran` jobs, by job id. */
const ranAt = new Map<string, number>()
const Ran = JobDefinition.make({
  name: "ran",
  channel: "ran",
  handler: (_, { jobId }) => Effect.sync(() => void ranAt.set(jobId, Date.now()))
})

const Timed = JobDefinition.make({
  name: "timed",
  timeout: "90 seconds",
  repeatEvery: Duration.minutes(5),
  handler: () => Effect.void
})
const TimedSecs = JobDefinition.make({ name: "timed-secs", timeoutSecs: 90, repeatSecs: 300, handler: () => Effect.void })

const TestLive = Cuckmq.layer({ schema, definitions: [Ran, Timed, TimedSecs] }).pipe(
  Layer.provideMerge(PgWithSchema(schema))
)

const env = (values: Record<string, string>) => ConfigProvider.layer(ConfigProvider.fromEnv({ env: values }))

describe("time options on PostgreSQL", () => {
  layer(TestLive, { excludeTestServices: true })((it) => {
    it.effect("a definition's Duration options persist as the same seconds as the seed's form", () =>
      Effect.gen(function*() {
        assert.strictEqual(Timed.timeoutSecs, 90)
        assert.deepStrictEqual(Timed.repeat, { _tag: "Every", secs: 300 })
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql<{ name: string; timeout_secs: number; repeat_secs: number | null }>`
          SELECT name, timeout_secs, repeat_secs FROM ${sql(`${schema}.job_definition`)}
          WHERE name IN ('timed', 'timed-secs') ORDER BY name`
        assert.deepStrictEqual(rows.map((r) => [r.name, r.timeout_secs, r.repeat_secs]), [
          ["timed", 90, 300],
          ["timed-secs", 90, 300]
        ])
      }))

    it.effect("an enqueue with delay: \"2 seconds\" is not claimable before", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [delayed] = yield* Ran.enqueueMany([{ payload: {}, delay: "2 seconds" }])
        const [now] = yield* Ran.enqueueMany([{ payload: {} }])
        const stop = yield* startWorker({ channels: ["ran"], pollInterval: "50 millis" })
        yield* waitUntil("the undelayed job ran", Effect.sync(() => ranAt.has(now!)), "20 seconds")
        // the worker is idle and polling: the delayed job must still wait
        yield* Effect.sleep("300 millis")
        const [waiting] = yield* sql<{ waiting: boolean; delay_ms: number }>`
          SELECT worker_id IS NULL AND attempts = 0 AND run_at > now() AS waiting,
                 extract(epoch FROM run_at - created_at) * 1000 AS delay_ms
          FROM ${sql(`${schema}.job`)} WHERE id = ${delayed!}`
        assert.isTrue(waiting!.waiting, "the delayed job is still waiting")
        assert.strictEqual(Number(waiting!.delay_ms), 2000)
        assert.isFalse(ranAt.has(delayed!))
        yield* waitUntil("the delayed job ran", Effect.sync(() => ranAt.has(delayed!)), "20 seconds")
        yield* stop
      }))

    it.effect("delay and delaySecs give the same run time; Duration objects and millisecond numbers work", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const ids = yield* Ran.enqueueMany([
          { payload: {}, delay: "1 hour" },
          { payload: {}, delaySecs: 3600 },
          { payload: {}, delay: Duration.hours(1) },
          { payload: {}, delay: 3_600_000 }, // a plain number in the Duration form is milliseconds
          { payload: {}, delay: { minutes: 59, seconds: 60 } }
        ])
        const rows = yield* sql<{ id: string; delay_secs: number }>`
          SELECT id::text AS id, extract(epoch FROM run_at - created_at) AS delay_secs
          FROM ${sql(`${schema}.job`)} WHERE ${sql.in("id", ids)} ORDER BY id`
        assert.deepStrictEqual(rows.map((r) => Number(r.delay_secs)), [3600, 3600, 3600, 3600, 3600])
        yield* sql`DELETE FROM ${sql(`${schema}.job`)} WHERE ${sql.in("id", ids)}`
      }))

    it.effect("bad delays in either form are typed errors and insert nothing", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const count = Effect.map(
          sql<{ n: string }>`SELECT count(*)::text AS n FROM ${sql(`${schema}.job`)}`,
          ([row]) => Number(row!.n)
        )
        const before = yield* count
        const cases: ReadonlyArray<readonly [JobDefinition.EnqueueOptions, string]> = [
          [{ delay: "2 seconds", delaySecs: 2 }, "give delay or delaySecs, not both"],
          [{ delay: "soon" as Duration.Input }, `delay must be a Duration.Input such as "30 seconds"`],
          [{ delay: Number.NaN }, "delay must be a Duration.Input"],
          [{ delay: "-1 seconds" }, `delay must be a finite Duration >= 0 seconds`],
          [{ delay: Duration.days(40_000) }, "at most 100 years, got 40000d"],
          [{ delay: "Infinity" }, "delay must be a finite Duration"],
          [{ delaySecs: -1 }, "delaySecs must be a finite number >= 0"],
          [{ delaySecs: Number.NaN }, "delaySecs must be a finite number >= 0"],
          [{ delaySecs: 40_000 * 86_400 }, "delaySecs must be a finite number >= 0 and at most 3155760000 (100 years)"]
        ]
        for (const [options, message] of cases) {
          const error = yield* Effect.flip(Ran.enqueue({}, options))
          assert.strictEqual(error._tag, "InvalidEnqueueOptions")
          assert.include(error.message, message)
        }
        const bulk = yield* Effect.flip(Ran.enqueueMany([{ payload: {} }, { payload: {}, delay: "-5 minutes" }]))
        assert.include(bulk.message, `got "-5 minutes" (job 1)`)
        assert.strictEqual(yield* count, before)
      }))

    it.effect("a definition's bad time options fail deploy with InvalidJobDefinition, in either form", () =>
      Effect.gen(function*() {
        const cases: ReadonlyArray<readonly [JobDefinition.Any, string]> = [
          [
            JobDefinition.make({ name: "both-t", timeout: "1 minute", timeoutSecs: 60, handler: () => Effect.void }),
            "give timeout or timeoutSecs, not both"
          ],
          [
            JobDefinition.make({ name: "both-r", repeatEvery: "1 minute", repeatSecs: 60, handler: () => Effect.void }),
            "give repeatEvery or repeatSecs, not both"
          ],
          [
            JobDefinition.make({ name: "cron-and-r", repeatEvery: "1 minute", cron: "* * * * *", handler: () => Effect.void }),
            "give repeatEvery (or repeatSecs) or cron, not both"
          ],
          [
            JobDefinition.make({ name: "neg-t", timeout: "-1 seconds", handler: () => Effect.void }),
            "timeout must be a finite Duration >= 0 seconds"
          ],
          [
            JobDefinition.make({ name: "neg-ts", timeoutSecs: -1, handler: () => Effect.void }),
            "timeoutSecs must be a finite number >= 0"
          ],
          [
            JobDefinition.make({ name: "zero-r", repeatEvery: "0 seconds", handler: () => Effect.void }),
            "repeatEvery must be a finite Duration > 0 seconds"
          ],
          [
            JobDefinition.make({ name: "zero-rs", repeatSecs: 0, handler: () => Effect.void }),
            "repeatSecs must be a finite number > 0"
          ],
          [
            JobDefinition.make({ name: "nan-r", repeatEvery: Number.NaN, handler: () => Effect.void }),
            "repeatEvery must be a Duration.Input"
          ],
          [
            JobDefinition.make({ name: "far-t", timeout: Duration.days(40_000), handler: () => Effect.void }),
            "timeout must be a finite Duration >= 0 seconds and at most 100 years, got 40000d"
          ]
        ]
        for (const [definition, message] of cases) {
          const error = yield* Effect.flip(definition.deploy)
          assert.strictEqual(error._tag, "InvalidJobDefinition")
          assert.include(error.message, message)
        }
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`SELECT 1 FROM ${sql(`${schema}.job_definition`)} WHERE ${
          sql.in("name", cases.map(([d]) => d.name))
        }`
        assert.strictEqual(rows.length, 0)
      }))

    it.effect("Cuckmq.layer: both forms at once and out-of-bounds durations are InvalidOptions", () =>
      Effect.gen(function*() {
        const build = (options: Cuckmq.Options<readonly []>) =>
          Layer.build(Cuckmq.layer({ schema, deploy: false, ...options })).pipe(
            Effect.map((ctx) => Context.get(ctx, Cuckmq.Cuckmq).settings),
            Effect.scoped
          )
        const settings = yield* build({ jobGroupUnlock: "2 hours", jobPostFinalizeDelete: Duration.days(7) })
        assert.strictEqual(settings.jobGroupUnlockSecs, 7200)
        assert.strictEqual(settings.jobPostFinalizeDeleteSecs, 7 * 86400)
        const zero = yield* build({ jobPostFinalizeDelete: "0 seconds" })
        assert.strictEqual(zero.jobPostFinalizeDeleteSecs, 0)
        const cases: ReadonlyArray<readonly [Cuckmq.Options<readonly []>, string]> = [
          [{ jobGroupUnlock: "1 hour", jobGroupUnlockSecs: 3600 }, "give jobGroupUnlock or jobGroupUnlockSecs, not both"],
          [{ jobGroupUnlock: "0 seconds" }, "jobGroupUnlock must be a finite Duration > 0 seconds"],
          [{ jobGroupUnlockSecs: 0 }, "jobGroupUnlockSecs must be a finite number > 0"],
          [{ jobPostFinalizeDelete: "-1 seconds" }, "jobPostFinalizeDelete must be a finite Duration >= 0 seconds"],
          [{ jobPostFinalizeDeleteSecs: Number.NaN }, "jobPostFinalizeDeleteSecs must be a finite number >= 0"],
          [{ jobPostFinalizeDelete: Duration.days(40_000) }, "at most 100 years, got 40000d"]
        ]
        for (const [options, message] of cases) {
          const error = yield* Effect.flip(build(options))
          assert.strictEqual(error._tag, "InvalidOptions")
          assert.include(error.message, message)
        }
      }))

    it.effect("Worker and Orchestrator: both forms, bounds and lease vs heartbeat apply to the Duration form", () =>
      Effect.gen(function*() {
        const worker = (options: Worker.Options) =>
          Effect.flip(Layer.build(Worker.layer({ channels: ["ran"], ...options })).pipe(Effect.scoped))
        const workerCases: ReadonlyArray<readonly [Worker.Options, string]> = [
          [{ pollInterval: "1 second", pollIntervalSecs: 1 }, "give pollInterval or pollIntervalSecs, not both"],
          [{ gracePeriod: "1 second", gracePeriodSecs: 1 }, "give gracePeriod or gracePeriodSecs, not both"],
          [{ pollInterval: "0 millis" }, "pollInterval must be a finite Duration >= 0.001 seconds"],
          [{ gracePeriod: "-1 seconds" }, "gracePeriod must be a finite Duration >= 0 seconds"],
          [{ heartbeat: "soon" as Duration.Input }, "heartbeat must be a Duration.Input"],
          [{ lease: "8 seconds", heartbeat: "5 seconds" }, `lease ("8 seconds") must exceed twice heartbeat ("5 seconds")`],
          [{ lease: "8 seconds", heartbeatSecs: 5 }, `lease ("8 seconds") must exceed twice heartbeatSecs (5)`],
          [{ leaseSecs: 8, heartbeatSecs: 5 }, "leaseSecs (8) must exceed twice heartbeatSecs (5)"]
        ]
        for (const [options, message] of workerCases) {
          const error = yield* worker(options)
          assert.strictEqual(error._tag, "InvalidOptions")
          assert.include(error.message, message)
        }
        const orchestrator = (options: Orchestrator.Options) =>
          Effect.flip(Layer.build(Orchestrator.layer(options)).pipe(Effect.scoped))
        const orchestratorCases: ReadonlyArray<readonly [Orchestrator.Options, string]> = [
          [{ jobSchedulePoll: "5 seconds", jobSchedulePollSecs: 5 }, "give jobSchedulePoll or jobSchedulePollSecs, not both"],
          [{ jobSchedulePoll: "0 seconds" }, "jobSchedulePoll must be a finite Duration > 0 seconds"],
          [{ rescueIntervalSecs: 0 }, "rescueIntervalSecs must be a finite number > 0"],
          [{ cleanupInterval: "-1 minutes" }, "cleanupInterval must be a finite Duration > 0 seconds"],
          [{ deleteBatchSize: 0.5 }, "deleteBatchSize must be an integer > 0"]
        ]
        for (const [options, message] of orchestratorCases) {
          const error = yield* orchestrator(options)
          assert.strictEqual(error._tag, "InvalidOptions")
          assert.include(error.message, message)
        }
      }))

    it.effect("Worker.layerConfig reads its options from Config and runs jobs", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        yield* Layer.buildWithScope(
          Worker.layerConfig({
            channels: Config.succeed(["ran"]),
            concurrency: Config.Int("WORKER_CONCURRENCY"),
            pollInterval: Config.Duration("WORKER_POLL_INTERVAL"),
            gracePeriod: Config.Duration("WORKER_GRACE_PERIOD").pipe(Config.withDefault("1 second"))
          }).pipe(Layer.provide(env({ WORKER_CONCURRENCY: "2", WORKER_POLL_INTERVAL: "50 millis" }))),
          scope
        )
        const id = yield* Ran.enqueue({})
        yield* waitUntil("the job ran", Effect.sync(() => ranAt.has(id)), "20 seconds")
        yield* Scope.close(scope, Exit.void)
      }))

    it.effect("invalid config fails layerConfig with a readable ConfigError; out of bounds with InvalidOptions", () =>
      Effect.gen(function*() {
        const build = <E>(layer: Layer.Layer<never, E, Cuckmq.Cuckmq>, values: Record<string, string>) =>
          Effect.flip(Layer.build(layer.pipe(Layer.provide(env(values)))).pipe(Effect.scoped))
        const workerConfig = Worker.layerConfig({
          channels: Config.succeed(["ran"]),
          concurrency: Config.Int("WORKER_CONCURRENCY"),
          heartbeat: Config.Duration("WORKER_HEARTBEAT").pipe(Config.withDefault("5 seconds"))
        })
        const malformed = yield* build(workerConfig, { WORKER_CONCURRENCY: "many" })
        assert.strictEqual(malformed._tag, "ConfigError")
        assert.include(malformed.message, "WORKER_CONCURRENCY")
        assert.include(malformed.message, "Expected")
        const missing = yield* build(workerConfig, {})
        assert.strictEqual(missing._tag, "ConfigError")
        assert.include(missing.message, "WORKER_CONCURRENCY")
        const badDuration = yield* build(workerConfig, { WORKER_CONCURRENCY: "2", WORKER_HEARTBEAT: "often" })
        assert.strictEqual(badDuration._tag, "ConfigError")
        assert.include(badDuration.message, "WORKER_HEARTBEAT")
        const outOfBounds = yield* build(workerConfig, { WORKER_CONCURRENCY: "0" })
        assert.strictEqual(outOfBounds._tag, "InvalidOptions")
        assert.include(outOfBounds.message, "concurrency must be an integer >= 1, got 0")

        const orchestratorConfig = Orchestrator.layerConfig({ jobSchedulePoll: Config.Duration("SCHEDULE_POLL") })
        const badPoll = yield* build(orchestratorConfig, { SCHEDULE_POLL: "5 parsecs" })
        assert.strictEqual(badPoll._tag, "ConfigError")
        assert.include(badPoll.message, "SCHEDULE_POLL")
        const zeroPoll = yield* build(orchestratorConfig, { SCHEDULE_POLL: "0 seconds" })
        assert.strictEqual(zeroPoll._tag, "InvalidOptions")
      }))

    it.effect("Cuckmq.layerConfig reads settings from Config; definitions are passed plainly", () =>
      Effect.gen(function*() {
        const layer = Cuckmq.layerConfig({
          definitions: [Timed],
          schema: Config.String("CUCKMQ_SCHEMA"),
          jobGroupUnlock: Config.Duration("CUCKMQ_GROUP_UNLOCK").pipe(Config.withDefault("3 hours")),
          eventBufferSize: Config.Int("CUCKMQ_EVENT_BUFFER").pipe(Config.withDefault(16))
        })
        const built = (values: Record<string, string>) =>
          Layer.build(layer.pipe(Layer.provide(env(values)))).pipe(
            Effect.map((ctx) => Context.get(ctx, Cuckmq.Cuckmq)),
            Effect.scoped
          )
        const cuckmq = yield* built({ CUCKMQ_SCHEMA: schema, CUCKMQ_GROUP_UNLOCK: "90 minutes" })
        assert.strictEqual(cuckmq.schema, schema)
        assert.strictEqual(cuckmq.settings.jobGroupUnlockSecs, 5400)
        assert.strictEqual(cuckmq.settings.eventBufferSize, 16)
        assert.deepStrictEqual(Array.from(cuckmq.definitions.keys()), ["timed"])

        const missing = yield* Effect.flip(built({}))
        assert.strictEqual(missing._tag, "ConfigError")
        assert.include(missing.message, "CUCKMQ_SCHEMA")
        const malformed = yield* Effect.flip(built({ CUCKMQ_SCHEMA: schema, CUCKMQ_EVENT_BUFFER: "lots" }))
        assert.strictEqual(malformed._tag, "ConfigError")
        assert.include(malformed.message, "CUCKMQ_EVENT_BUFFER")
        const badSchema = yield* Effect.flip(built({ CUCKMQ_SCHEMA: "no.dots" }))
        assert.strictEqual(badSchema._tag, "InvalidSchemaName")

        // the settings as one Config
        const whole = yield* Layer.build(
          Cuckmq.layerConfig(Config.all({ schema: Config.String("S"), deploy: Config.succeed(false) }))
            .pipe(Layer.provide(env({ S: schema })))
        ).pipe(Effect.map((ctx) => Context.get(ctx, Cuckmq.Cuckmq).schema), Effect.scoped)
        assert.strictEqual(whole, schema)
      }))

    it.effect("deploy, enqueue and migrate are spans named cuckmq.*", () => {
      const { spans, tracer } = recordingTracer()
      return Effect.gen(function*() {
        yield* Migrations.migrate(schema)
        yield* Timed.deploy
        yield* Ran.enqueueMany([{ payload: {}, delay: "1 hour" }, { payload: {}, delay: "1 hour" }])
        const migrate = spans.find((s) => s.name === "cuckmq.migrate")!
        assert.strictEqual(Object.fromEntries(migrate.attributes)["schema"], schema)
        assert.strictEqual(migrate.status._tag, "Ended")
        const deploy = spans.find((s) => s.name === "cuckmq.deploy")!
        assert.strictEqual(Object.fromEntries(deploy.attributes)["cuckmq.definition"], "timed")
        const enqueue = spans.find((s) => s.name === "cuckmq.enqueue")!
        assert.strictEqual(enqueue.kind, "producer")
        assert.deepInclude(Object.fromEntries(enqueue.attributes), { "cuckmq.definition": "ran", "cuckmq.jobs": 2 })
        const failed = yield* Effect.flip(Migrations.migrate("no.dots"))
        assert.strictEqual(failed._tag, "InvalidSchemaName")
        const failedSpan = spans.filter((s) => s.name === "cuckmq.migrate").at(-1)!
        assert.isTrue(failedSpan.status._tag === "Ended" && Exit.isFailure(failedSpan.status.exit))
      }).pipe(Effect.withTracer(tracer))
    })
  })
})

describe("time options on the memory backend", () => {
  it.effect("delay in either form: not due before, due at the time (TestClock)", () => {
    const Job = JobDefinition.make({ name: "mem", handler: () => Effect.void })
    return Effect.gen(function*() {
      const test = yield* CuckmqTest
      yield* Job.enqueue({}, { delay: "2 seconds" })
      yield* Job.enqueue({}, { delaySecs: 2 })
      yield* Job.enqueue({}, { delay: Duration.millis(1500) })
      assert.strictEqual((yield* test.drain).succeeded, 0)
      yield* TestClock.adjust("1499 millis")
      assert.strictEqual((yield* test.drain).succeeded, 0)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual((yield* test.drain).succeeded, 1)
      yield* TestClock.adjust("499 millis")
      assert.strictEqual((yield* test.drain).succeeded, 0)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual((yield* test.drain).succeeded, 2)
    }).pipe(Effect.provide(CuckmqTest.layer({ definitions: [Job] })))
  })

  it.effect("timeout as a Duration: a failed attempt is retried that long later (TestClock)", () => {
    const Flaky = JobDefinition.make({
      name: "flaky",
      numAttempts: 2,
      timeout: "30 seconds",
      handler: (_, { attempt }) => attempt === 1 ? Effect.fail("first") : Effect.void
    })
    return Effect.gen(function*() {
      const test = yield* CuckmqTest
      yield* Flaky.enqueue({})
      assert.deepStrictEqual(yield* test.drain, { succeeded: 0, retried: 1, failed: 0 })
      yield* TestClock.adjust("29 seconds")
      assert.strictEqual((yield* test.drain).succeeded, 0)
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* test.drain).succeeded, 1)
    }).pipe(Effect.provide(CuckmqTest.layer({ definitions: [Flaky] })))
  })

  it.effect("the test layer validates jobPostFinalizeDelete in both forms", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(CuckmqTest.layer({ jobPostFinalizeDelete: "1 hour", jobPostFinalizeDeleteSecs: 3600 })).pipe(
          Effect.scoped
        )
      )
      assert.strictEqual(error._tag, "InvalidOptions")
      const deferred = yield* Deferred.make<void>()
      const Once = JobDefinition.make({ name: "once", handler: () => Deferred.succeed(deferred, undefined) })
      // zero retention: a finalized job is deleted as it finalizes, whichever form says so
      const remaining = yield* Effect.gen(function*() {
        const test = yield* CuckmqTest
        yield* Once.enqueue({})
        yield* test.drain
        yield* Deferred.await(deferred)
        return (yield* test.jobs).finalized.length
      }).pipe(Effect.provide(CuckmqTest.layer({ definitions: [Once], jobPostFinalizeDelete: "0 seconds" })))
      assert.strictEqual(remaining, 0)
    }))
})

describe("examples/configuration.ts", () => {
  const run = (env: Record<string, string>) =>
    Effect.gen(function*() {
      const child = yield* spawnFixture("../../examples/configuration.ts", { DATABASE_URL: databaseUrl(), ...env })
      const code = yield* child.exited
      return { code, output: child.output() }
    }).pipe(Effect.scoped)

  it.live("runs from environment variables, and drops its own schema", () =>
    Effect.gen(function*() {
      const exampleSchema = uniqueSchema("cfg_example")
      const { code, output } = yield* run({
        CUCKMQ_SCHEMA: exampleSchema,
        WORKER_POLL_INTERVAL: "100 millis",
        CUCKMQ_SCHEDULE_POLL: "200 millis"
      })
      assert.strictEqual(code, 0, output)
      assert.include(output, "reminder: stand up and stretch")
      assert.include(output, "the reminder ran after its delay")
      const sql = yield* SqlClient.SqlClient
      const left = yield* sql`SELECT 1 FROM pg_namespace WHERE nspname = ${exampleSchema}`
      assert.strictEqual(left.length, 0)
    }).pipe(Effect.provide(PgWithSchema(uniqueSchema("cfg_unused")))))

  it.live("a malformed variable stops it at start with a ConfigError naming the variable", () =>
    Effect.gen(function*() {
      const { code, output } = yield* run({ CUCKMQ_SCHEMA: uniqueSchema("cfg_example"), WORKER_CONCURRENCY: "many" })
      assert.notStrictEqual(code, 0)
      assert.include(output, "ConfigError")
      assert.include(output, "WORKER_CONCURRENCY")
    }))
})
