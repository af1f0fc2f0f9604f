/**
 * Events as Schema values (every kind through JSON and back, guards, matching, what subscribers receive on
 * PostgreSQL and on the test backend) and errors with a type id (guards on errors that real operations
 * produce, and on values that are not cuckmq errors).
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Match, Schema, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { Cuckmq, CuckmqError, CuckmqEvent, JobDefinition } from "../src/index.js"
import * as Events from "../src/internal/events.js"
import { CuckmqTest } from "../src/testing.js"
import { collect, startWorker, withContext } from "./support/harness.js"
import { PgTest, uniqueSchema } from "./support/pg.js"

const at = new Date("2026-12-02T00:00:00.123Z")
const job = { timestamp: at, jobId: "42", definitionName: "email" }

/** One event of every kind; the type makes sure no tag is missing. */
const samples: { readonly [T in CuckmqEvent.Tag]: Extract<CuckmqEvent.CuckmqEvent, { readonly _tag: T }> } = {
  JOB_DEFINITION_DEPLOY: new CuckmqEvent.JobDefinitionDeploy({ timestamp: at, definitionName: "email", changed: true }),
  JOB_DEFINITION_JOB_ENQUEUE: new CuckmqEvent.JobDefinitionJobEnqueue({ ...job, jobGroup: "account-7", delaySecs: 1.5 }),
  WORKER_JOB_DEQUEUE: new CuckmqEvent.WorkerJobDequeue({ ...job, workerId: "w1", attempt: 1 }),
  WORKER_JOB_ORPHAN: new CuckmqEvent.WorkerJobOrphan({ ...job, workerId: "w1" }),
  WORKER_JOB_RUN: new CuckmqEvent.WorkerJobRun({ ...job, workerId: "w1", attempt: 2 }),
  WORKER_JOB_RUN_ERROR: new CuckmqEvent.WorkerJobRunError({
    ...job,
    workerId: "w1",
    attempt: 1,
    error: { code: "E_SMTP", retryable: true },
    message: "SMTP said no",
    willRetry: true,
    retryAt: new Date("2026-12-02T00:00:30.123Z"),
    durationMs: 12.5
  }),
  WORKER_JOB_RUN_SUCCESS: new CuckmqEvent.WorkerJobRunSuccess({ ...job, workerId: "w1", attempt: 1, durationMs: 3 }),
  WORKER_JOB_EXPIRE: new CuckmqEvent.WorkerJobExpire({ ...job, workerId: "w1", attempts: 3 }),
  WORKER_JOB_INTERRUPT: new CuckmqEvent.WorkerJobInterrupt({ ...job, workerId: "w1", attempt: 1, reason: "lease-lost" }),
  WORKER_JOB_SNOOZE: new CuckmqEvent.WorkerJobSnooze({
    ...job,
    workerId: "w1",
    attempt: 1,
    snoozes: 2,
    delaySecs: 30,
    runAt: new Date("2026-12-02T00:00:30.123Z"),
    durationMs: 4
  }),
  JOB_CANCEL: new CuckmqEvent.JobCancel({ ...job, workerId: "w1", attempt: 1, running: true }),
  ORCHESTRATOR_JOB_DELETE: new CuckmqEvent.OrchestratorJobDelete(job),
  ORCHESTRATOR_JOB_GROUP_DELETE: new CuckmqEvent.OrchestratorJobGroupDelete({ timestamp: at, jobGroup: "account-7" }),
  ORCHESTRATOR_JOB_SCHEDULE: new CuckmqEvent.OrchestratorJobSchedule({ ...job, scheduledFor: new Date("2026-12-02T01:00:00Z") }),
  ORCHESTRATOR_JOB_SCHEDULE_ORPHAN: new CuckmqEvent.OrchestratorJobScheduleOrphan({ timestamp: at, definitionName: "gone" }),
  JOB_RESCUE: new CuckmqEvent.JobRescue({ ...job, workerId: "w0", finalized: false }),
  JOB_GROUP_UNLOCK: new CuckmqEvent.JobGroupUnlock({ timestamp: at, jobGroup: "account-7", jobId: "42", reason: "worker-dead" }),
  CHANNEL_UPDATE: new CuckmqEvent.ChannelUpdate({ timestamp: at, channel: "mail", paused: false, rateLimit: { limit: 100, periodSecs: 1 } }),
  GROUP_UPDATE: new CuckmqEvent.GroupUpdate({ timestamp: at, jobGroup: "account-7", concurrency: 3, rateLimit: undefined, running: 1 }),
  ADMIN_JOB_RETRY: new CuckmqEvent.AdminJobRetry({ timestamp: at, jobIds: ["42"], more: false }),
  ADMIN_JOB_CANCEL: new CuckmqEvent.AdminJobCancel({ timestamp: at, jobIds: ["42", "43"], more: true }),
  ADMIN_JOB_DELETE: new CuckmqEvent.AdminJobDelete({ timestamp: at, jobIds: [], more: false }),
  ADMIN_JOB_RUN_NOW: new CuckmqEvent.AdminJobRunNow({ timestamp: at, jobIds: ["7"], more: false }),
  ADMIN_JOB_PURGE: new CuckmqEvent.AdminJobPurge({ timestamp: at, jobIds: ["1"], more: false, before: new Date("2026-12-01T00:00:00Z") })
}

const toJson = (event: CuckmqEvent.CuckmqEvent) => JSON.stringify(Schema.encodeSync(CuckmqEvent.CuckmqEvent)(event))
const fromJson = (text: string) => Schema.decodeUnknownSync(CuckmqEvent.CuckmqEvent)(JSON.parse(text))

/** The own fields of an event that have a value (an optional field left undefined and one left out are the same). */
const defined = (event: object) => Object.fromEntries(Object.entries(event).filter(([, value]) => value !== undefined))

/** Asserts that `event` survives JSON, whatever its kind (errors compared by their encoded form). */
const assertRoundTrip = (event: CuckmqEvent.CuckmqEvent) => {
  const text = toJson(event)
  const decoded = fromJson(text)
  assert.instanceOf(decoded, CuckmqEvent.CuckmqEvent.cases[event._tag] as never)
  assert.strictEqual(toJson(decoded), text)
  if (event._tag === "WORKER_JOB_RUN_ERROR" && (event.error instanceof Error)) {
    const { error, ...rest } = event
    const { error: decodedError, ...decodedRest } = decoded as CuckmqEvent.WorkerJobRunError
    assert.deepStrictEqual(defined(decodedRest), defined(rest))
    assert.instanceOf(decodedError, Error)
    assert.strictEqual((decodedError as Error).message, error.message)
    assert.strictEqual((decodedError as Error).name, error.name)
  } else {
    assert.deepStrictEqual(defined(decoded), defined(event))
  }
}

describe("events as Schema values", () => {
  it("the samples cover every event class, each under its own tag", () => {
    assert.deepStrictEqual(Object.keys(samples).sort(), Object.keys(CuckmqEvent.CuckmqEvent.cases).sort())
    assert.strictEqual(Object.keys(samples).length, 24)
    for (const [tag, event] of Object.entries(samples)) assert.strictEqual(event._tag, tag)
  })

  for (const tag of Object.keys(samples) as Array<CuckmqEvent.Tag>) {
    it(`${tag} goes through JSON and back`, () => assertRoundTrip(samples[tag]))
  }

  it("publish's fast construction from plain fields gives the same value as the class constructor", () => {
    for (const event of Object.values(samples)) {
      const fields = { ...event } as Events.EventFields
      assert.notInstanceOf(fields, CuckmqEvent.CuckmqEvent.cases[event._tag] as never)
      const built = Events.fromFields(fields)
      assert.strictEqual(Object.getPrototypeOf(built), Object.getPrototypeOf(event))
      assert.deepStrictEqual(built, event)
      assert.deepStrictEqual(Object.keys(built).sort(), Object.keys(event).sort())
      assert.strictEqual(toJson(built), toJson(event))
      assert.strictEqual(String(built), String(event))
    }
  })

  it("encodes to plain JSON: dates as ISO strings, absent optional fields left out", () => {
    assert.deepStrictEqual(JSON.parse(toJson(samples.WORKER_JOB_RUN_ERROR)), {
      _tag: "WORKER_JOB_RUN_ERROR",
      timestamp: "2026-12-02T00:00:00.123Z",
      jobId: "42",
      definitionName: "email",
      workerId: "w1",
      attempt: 1,
      error: { code: "E_SMTP", retryable: true },
      message: "SMTP said no",
      willRetry: true,
      retryAt: "2026-12-02T00:00:30.123Z",
      durationMs: 12.5
    })
    const last = new CuckmqEvent.WorkerJobRunError({ ...samples.WORKER_JOB_RUN_ERROR, willRetry: false, retryAt: undefined })
    assert.notProperty(JSON.parse(toJson(last)), "retryAt")
    assertRoundTrip(last)
    const ungrouped = new CuckmqEvent.JobDefinitionJobEnqueue({ ...job, jobGroup: undefined, delaySecs: 0 })
    assert.deepStrictEqual(JSON.parse(toJson(ungrouped)), {
      _tag: "JOB_DEFINITION_JOB_ENQUEUE",
      timestamp: "2026-12-02T00:00:00.123Z",
      jobId: "42",
      definitionName: "email",
      delaySecs: 0
    })
    assertRoundTrip(ungrouped)
  })

  it("an Error in WORKER_JOB_RUN_ERROR travels as { name, message }, without its stack", () => {
    const failed = new CuckmqEvent.WorkerJobRunError({
      ...samples.WORKER_JOB_RUN_ERROR,
      error: new CuckmqError.PayloadDecodeError({ definitionName: "email", jobId: "42", message: "Expected string" })
    })
    assert.deepStrictEqual(JSON.parse(toJson(failed)).error, { name: "PayloadDecodeError", message: "Expected string" })
    assertRoundTrip(failed)
  })

  it("encoding never throws, whatever a handler failed with", () => {
    const cyclic: Record<string, unknown> = { a: 1 }
    cyclic.self = cyclic
    const odd = [Symbol("s"), () => 1, 10n, cyclic, new Error("outer", { cause: new Error("inner") }), undefined, NaN, new Map([[1, 2]])]
    for (const error of odd) {
      const event = new CuckmqEvent.WorkerJobRunError({ ...samples.WORKER_JOB_RUN_ERROR, error })
      const text = toJson(event)
      assert.strictEqual(toJson(fromJson(text)), text)
    }
    assert.deepStrictEqual(
      JSON.parse(toJson(new CuckmqEvent.WorkerJobRunError({ ...samples.WORKER_JOB_RUN_ERROR, error: odd[4] }))).error,
      { name: "Error", message: "outer", cause: { name: "Error", message: "inner" } }
    )
  })

  it("decoding rejects what is not an event", () => {
    const bad = [
      { ...JSON.parse(toJson(samples.WORKER_JOB_RUN)), _tag: "WORKER_JOB_RUNNING" },
      { ...JSON.parse(toJson(samples.WORKER_JOB_RUN)), timestamp: "yesterday" },
      { ...JSON.parse(toJson(samples.WORKER_JOB_RUN)), attempt: 1.5 },
      { ...JSON.parse(toJson(samples.WORKER_JOB_INTERRUPT)), reason: "tired" },
      { _tag: "WORKER_JOB_RUN", timestamp: "2026-12-02T00:00:00Z" },
      null,
      "WORKER_JOB_RUN"
    ]
    for (const input of bad) {
      const exit = Schema.decodeUnknownExit(CuckmqEvent.CuckmqEvent)(input)
      assert.isTrue(Exit.isFailure(exit), JSON.stringify(input))
    }
  })

  it("guards: is(tag...) and isCuckmqEvent take any value and accept only event instances", () => {
    const run: unknown = samples.WORKER_JOB_RUN
    assert.isTrue(CuckmqEvent.is("WORKER_JOB_RUN")(run))
    if (CuckmqEvent.is("WORKER_JOB_RUN")(run)) assert.strictEqual(run.attempt, 2) // narrowed
    assert.isTrue(CuckmqEvent.is("WORKER_JOB_RUN_ERROR", "WORKER_JOB_RUN")(run))
    assert.isFalse(CuckmqEvent.is("WORKER_JOB_RUN_SUCCESS")(run))
    for (const event of Object.values(samples)) assert.isTrue(CuckmqEvent.isCuckmqEvent(event))
    const plain = { ...samples.WORKER_JOB_RUN }
    for (const u of [plain, JSON.parse(toJson(samples.WORKER_JOB_RUN)), null, undefined, "WORKER_JOB_RUN", 1, {}]) {
      assert.isFalse(CuckmqEvent.isCuckmqEvent(u))
      assert.isFalse(CuckmqEvent.is("WORKER_JOB_RUN")(u))
    }
    assert.isFalse(CuckmqEvent.isCuckmqEvent({ _tag: "toString" }))
  })

  it("matches with Match, with the union's matchOrElse, and on _tag", () => {
    const describe = Match.type<CuckmqEvent.CuckmqEvent>().pipe(
      Match.tag("WORKER_JOB_RUN_ERROR", (e) => `failed: ${e.message}`),
      Match.tag("WORKER_JOB_RUN_SUCCESS", (e) => `ok in ${e.durationMs} ms`),
      Match.orElse((e) => e._tag)
    )
    assert.strictEqual(describe(samples.WORKER_JOB_RUN_ERROR), "failed: SMTP said no")
    assert.strictEqual(describe(samples.WORKER_JOB_RUN_SUCCESS), "ok in 3 ms")
    assert.strictEqual(describe(samples.JOB_RESCUE), "JOB_RESCUE")
    const retries = CuckmqEvent.CuckmqEvent.matchOrElse({ WORKER_JOB_RUN_ERROR: (e) => e.willRetry }, () => false)
    assert.isTrue(retries(samples.WORKER_JOB_RUN_ERROR))
    assert.isFalse(retries(samples.WORKER_JOB_RUN))
  })
})

class SmtpRefused extends Schema.TaggedError<SmtpRefused>()("SmtpRefused", { message: Schema.String }) {}

const Ok = JobDefinition.make({ name: "ok", payload: Schema.Struct({ n: Schema.Int }), handler: () => Effect.void })
const Refused = JobDefinition.make({
  name: "refused",
  handler: () => Effect.fail(new SmtpRefused({ message: "550 mailbox unavailable" }))
})
const NeverDeployed = JobDefinition.make({ name: "never-deployed", handler: () => Effect.void })

layer(PgTest(), { excludeTestServices: true })("on PostgreSQL", (it) => {
  it.effect("subscribers receive class instances, and every real event survives JSON", () =>
    withContext("events", { definitions: [Ok, Refused] }, ({ cuckmq }) =>
      Effect.gen(function*() {
        const handled: Array<unknown> = []
        yield* cuckmq.addEventHandler((event) => Effect.sync(() => void handled.push(event)))
        const stream = yield* cuckmq.subscribe
        const expired = yield* collect(cuckmq, "WORKER_JOB_EXPIRE", 1)
        const succeeded = yield* collect(cuckmq, "WORKER_JOB_RUN_SUCCESS", 1)
        yield* Ok.enqueue({ n: 1 }, { jobGroup: "g1" })
        yield* Refused.enqueue({})
        const stop = yield* startWorker()
        yield* Fiber.join(expired)
        yield* Fiber.join(succeeded)
        yield* stop
        const events = yield* stream.pipe(
          Stream.takeUntil((e) => e._tag === "WORKER_JOB_EXPIRE"),
          Stream.runCollect
        )
        const tags = new Set(events.map((e) => e._tag))
        for (const tag of ["JOB_DEFINITION_JOB_ENQUEUE", "WORKER_JOB_DEQUEUE", "WORKER_JOB_RUN", "WORKER_JOB_RUN_ERROR"]) {
          assert.isTrue(tags.has(tag as CuckmqEvent.Tag), `saw ${tag}`)
        }
        for (const event of events) {
          assert.isTrue(CuckmqEvent.isCuckmqEvent(event), event._tag)
          assert.instanceOf(event.timestamp, Date)
          assertRoundTrip(event)
        }
        assert.isAtLeast(handled.length, 1)
        for (const event of handled) assert.isTrue(CuckmqEvent.isCuckmqEvent(event))

        const enqueued = events.filter(CuckmqEvent.is("JOB_DEFINITION_JOB_ENQUEUE"))
        assert.deepStrictEqual(enqueued.map((e) => [e.definitionName, e.jobGroup]), [["ok", "g1"], ["refused", undefined]])
        const [failure] = events.filter(CuckmqEvent.is("WORKER_JOB_RUN_ERROR"))
        assert.instanceOf(failure!.error, SmtpRefused) // in process: the handler's own error
        assert.isFalse(failure!.willRetry)
        assert.isUndefined(failure!.retryAt)
        const shipped = JSON.parse(toJson(failure!))
        assert.deepStrictEqual(shipped.error, { name: "SmtpRefused", message: "550 mailbox unavailable" })
        assert.strictEqual(shipped.message, "550 mailbox unavailable")
      })
    ))

  it.effect("errors from real operations carry the type id; the guards tell them apart", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient

      // a payload that fails its Schema, on the PostgreSQL store
      const invalid = yield* withContext("errors", { definitions: [Ok] }, () => Effect.flip(Ok.enqueue({ n: 1.5 })))
      assert.isTrue(CuckmqError.isCuckmqError(invalid))
      assert.isTrue(CuckmqError.isInvalidPayload(invalid))
      assert.isFalse(CuckmqError.isStorageError(invalid))
      assert.isFalse(CuckmqError.isJobDefinitionNotDeployed(invalid))
      assert.strictEqual(invalid[CuckmqError.TypeId], CuckmqError.TypeId)

      const undeployed = yield* withContext("errors", {}, () => Effect.flip(NeverDeployed.enqueue({})))
      assert.isTrue(CuckmqError.isJobDefinitionNotDeployed(undeployed))
      assert.isFalse(CuckmqError.isInvalidPayload(undeployed))

      // a schema that was never migrated, under the runtime path (no DDL): a version check refuses it
      const schema = uniqueSchema("errors_unmigrated")
      const behind = yield* Effect.flip(Layer.build(Cuckmq.layer({ schema, migrate: false, definitions: [Ok] })).pipe(Effect.scoped))
      assert.isTrue(CuckmqError.isSchemaNotMigrated(behind), String(behind))
      assert.isTrue(CuckmqError.isCuckmqError(behind))
      assert.isFalse(CuckmqError.isStorageError(behind))
      // a statement that fails: the store's own enqueue into a table that is gone
      const storage = yield* withContext("errors_dropped", { definitions: [Ok] }, ({ schema: dropped }) =>
        Effect.gen(function*() {
          yield* sql`DROP TABLE ${sql(`${dropped}.job`)} CASCADE`
          return yield* Effect.flip(Ok.enqueue({ n: 1 }))
        }))
      assert.isTrue(CuckmqError.isStorageError(storage), String(storage))
      assert.isTrue(CuckmqError.isCuckmqError(storage))
      if (CuckmqError.isStorageError(storage)) assert.strictEqual(storage.sqlState, "42P01") // undefined_table

      const badName = yield* Effect.flip(Layer.build(Cuckmq.layer({ schema: "no-dashes" })).pipe(Effect.scoped))
      assert.isTrue(CuckmqError.isInvalidSchemaName(badName))

      // not cuckmq errors: the driver's own error, an Error, a look-alike object, other values
      const driver = yield* Effect.flip(sql`SELECT * FROM ${sql(`${schema}.nope`)}`)
      const lookAlike = { _tag: "StorageError", operation: "claim", message: "fake" }
      for (const u of [driver, new Error("x"), lookAlike, null, undefined, "StorageError", 0]) {
        assert.isFalse(CuckmqError.isCuckmqError(u))
        assert.isFalse(CuckmqError.isStorageError(u))
        assert.isFalse(CuckmqError.isInvalidPayload(u))
      }
    }))
})

describe("on the test backend", () => {
  it.effect("subscribers receive class instances", () =>
    Effect.gen(function*() {
      const cuckmq = yield* Cuckmq.Cuckmq
      const test = yield* CuckmqTest
      const stream = yield* cuckmq.subscribe
      yield* Ok.enqueue({ n: 1 })
      yield* Refused.enqueue({})
      yield* test.drain
      const events = yield* stream.pipe(Stream.takeUntil(CuckmqEvent.is("WORKER_JOB_EXPIRE")), Stream.runCollect)
      assert.deepStrictEqual(events.slice(0, 2).map((e) => e._tag), ["JOB_DEFINITION_JOB_ENQUEUE", "JOB_DEFINITION_JOB_ENQUEUE"])
      assert.isTrue(events.some(CuckmqEvent.is("WORKER_JOB_RUN_SUCCESS")))
      for (const event of events) {
        assert.isTrue(CuckmqEvent.isCuckmqEvent(event))
        assertRoundTrip(event)
      }
      const failure = events.find(CuckmqEvent.is("WORKER_JOB_RUN_ERROR"))
      assert.instanceOf(failure!.error, SmtpRefused)
    }).pipe(Effect.scoped, Effect.provide(CuckmqTest.layer({ definitions: [Ok, Refused] }))))
})
