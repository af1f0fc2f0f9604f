import { assert, describe, layer } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Option, Schema, Scope, Stream } from "effect"
import { SqlClient } from "effect/sql"
import { Cuckmq, JobDefinition } from "../src/index.js"
import { PgWithSchema, uniqueSchema } from "./support/pg.js"
import * as Engine from "../src/internal/engine.js"

const schema = uniqueSchema("enqueue")

const Email = JobDefinition.make({
  name: "email",
  payload: Schema.Struct({ to: Schema.String, sendAt: Schema.Date, count: Schema.Int }),
  numAttempts: 3,
  timeoutSecs: 7,
  channel: "mail",
  handler: () => Effect.void
})

const NeverDeployed = JobDefinition.make({ name: "never-deployed", handler: () => Effect.void })

const Tick = JobDefinition.make({ name: "tick", repeatSecs: 60, handler: () => Effect.void })

// repeatSecs only type-checks for an empty payload:
JobDefinition.make({
  name: "bad-repeat",
  payload: Schema.Struct({ a: Schema.String }),
  // @ts-expect-error repeatSecs requires the empty struct as payload
  repeatSecs: 5,
  handler: () => Effect.void
})
JobDefinition.make({
  name: "bad-cron",
  payload: Schema.Struct({ a: Schema.String }),
  // @ts-expect-error cron requires the empty struct as payload
  cron: "* * * * *",
  handler: () => Effect.void
})

const Sms = JobDefinition.make({
  name: "sms",
  payload: Schema.Struct({ n: Schema.Int }),
  handler: () => Effect.void
})

const TestLive = Cuckmq.layer({ schema, definitions: [Email, Tick, Sms] }).pipe(Layer.provideMerge(PgWithSchema(schema)))

const table = (name: string) => `${schema}.${name}`
const countJobs = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql(table("job"))}`
  return Number(row!.n)
})

describe("deploy and enqueue", () => {
  layer(TestLive, { excludeTestServices: true })((it) => {
    it.effect("the layer deployed its definitions; deploy updates changed settings", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql<{ name: string; channel: string; num_attempts: number; timeout_secs: number; repeat_secs: number | null }>`
          SELECT name, channel, num_attempts, timeout_secs, repeat_secs FROM ${sql(table("job_definition"))} ORDER BY name`
        assert.deepStrictEqual(rows.map((r) => [r.name, r.channel, r.num_attempts, r.timeout_secs, r.repeat_secs]), [
          ["email", "mail", 3, 7, null],
          ["sms", "_default", 1, 60, null],
          ["tick", "_default", 1, 60, 60]
        ])
        const cuckmq = yield* Cuckmq.Cuckmq
        const events = yield* cuckmq.subscribe
        // unchanged: no update
        yield* Email.deploy
        // changed: updated
        const Email2 = JobDefinition.make({ ...Email, numAttempts: 5, handler: Email.handler })
        yield* Email2.deploy
        const [after] = yield* sql<{ num_attempts: number }>`
          SELECT num_attempts FROM ${sql(table("job_definition"))} WHERE name = 'email'`
        assert.strictEqual(after!.num_attempts, 5)
        const deploys = yield* events.pipe(Stream.take(2), Stream.runCollect)
        assert.deepStrictEqual(deploys.map((e) => e._tag === "JOB_DEFINITION_DEPLOY" && [e.definitionName, e.changed]), [
          ["email", false],
          ["email", true]
        ])
        yield* Email.deploy // restore
      }).pipe(Effect.scoped))

    it.effect("enqueue stores the JSON-encoded payload with the definition's settings and returns the id", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const cuckmq = yield* Cuckmq.Cuckmq
        const events = yield* cuckmq.subscribe
        const id = yield* Email.enqueue(
          { to: "a@b.c", sendAt: new Date("2030-01-02T03:04:05Z"), count: 2 },
          { delaySecs: 3600, jobGroup: "user-1" }
        )
        assert.match(id, /^\d+$/)
        const [row] = yield* sql<Record<string, unknown>>`
          SELECT name, channel, payload, job_group, max_attempts, timeout_secs, attempts, worker_id,
            run_at >= now() + interval '3599 seconds' AS delayed
          FROM ${sql(table("job"))} WHERE id = ${id}`
        assert.deepStrictEqual(row, {
          name: "email",
          channel: "mail",
          payload: { to: "a@b.c", sendAt: "2030-01-02T03:04:05.000Z", count: 2 },
          job_group: "user-1",
          max_attempts: 3,
          timeout_secs: 7,
          attempts: 0,
          worker_id: null,
          delayed: true
        })
        const [event] = yield* events.pipe(Stream.take(1), Stream.runCollect)
        assert.deepInclude(event, { _tag: "JOB_DEFINITION_JOB_ENQUEUE", jobId: id, definitionName: "email", jobGroup: "user-1", delaySecs: 3600 })
        const info = yield* Engine.get(cuckmq).store.getJob(id)
        assert.isTrue(Option.isSome(info))
        assert.strictEqual(Option.getOrThrow(info).state, "waiting")
      }).pipe(Effect.scoped))

    it.effect("enqueue joins the caller's transaction: rollback leaves no job and no event, commit keeps it", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const cuckmq = yield* Cuckmq.Cuckmq
        const events = yield* cuckmq.subscribe
        const before = yield* countJobs
        const payload = { to: "tx@b.c", sendAt: new Date(0), count: 1 }
        const rolledBack = yield* sql.withTransaction(Effect.gen(function*() {
          yield* Email.enqueue(payload)
          yield* Email.enqueueMany([{ payload }, { payload }])
          assert.strictEqual(yield* countJobs, before + 3) // visible inside the transaction
          return yield* Effect.fail("boom" as const)
        })).pipe(Effect.exit)
        assert.isTrue(Exit.isFailure(rolledBack))
        assert.strictEqual(yield* countJobs, before)
        const committedId = yield* sql.withTransaction(Email.enqueue(payload))
        assert.strictEqual(yield* countJobs, before + 1)
        // the only enqueue event is the committed one
        const [event] = yield* events.pipe(Stream.take(1), Stream.runCollect)
        assert.strictEqual(event!._tag === "JOB_DEFINITION_JOB_ENQUEUE" && event.jobId, committedId)
      }).pipe(Effect.scoped))

    it.effect("bulk enqueue inserts 10,000 jobs in one statement, ids in input order", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const items = Array.from({ length: 10_000 }, (_, i) => ({
          payload: { to: `u${i}@x`, sendAt: new Date(i * 1000), count: i },
          ...(i % 2 === 0 ? { jobGroup: `g${i % 10}` } : {}),
          delaySecs: i % 3 === 0 ? 0.5 : 0
        }))
        const ids = yield* Email.enqueueMany(items)
        assert.strictEqual(ids.length, 10_000)
        const rows = yield* sql<{ id: bigint; count: number; job_group: string | null; created_at: Date }>`
          SELECT id, (payload->>'count')::int AS count, job_group, created_at FROM ${sql(table("job"))}
          WHERE id IN (SELECT unnest(${ids}::bigint[]))`
        assert.strictEqual(rows.length, 10_000)
        const byId = new Map(rows.map((r) => [String(r.id), r]))
        ids.forEach((id, i) => {
          const row = byId.get(id)!
          assert.strictEqual(row.count, i)
          assert.strictEqual(row.job_group, i % 2 === 0 ? `g${i % 10}` : null)
        })
        // one statement = one transaction: every row has the same transaction timestamp
        assert.strictEqual(new Set(rows.map((r) => r.created_at.getTime())).size, 1)
      }))

    it.effect("concurrent single enqueues are written together; each caller gets its own job's id, and a row the database rejects fails only its caller", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        // cuckmq refuses every input PostgreSQL would refuse before sending it; a constraint of the app's own
        // is what can still make the database refuse a row
        yield* sql`ALTER TABLE ${sql(table("job"))} ADD CONSTRAINT no_rejected CHECK (payload->>'to' NOT LIKE 'rejected%')`
        yield* Effect.addFinalizer(() => Effect.ignore(sql`ALTER TABLE ${sql(table("job"))} DROP CONSTRAINT no_rejected`))
        type Call =
          | { readonly kind: "email"; readonly i: number; readonly group?: string; readonly delay: number }
          | { readonly kind: "sms"; readonly i: number }
          | { readonly kind: "undeployed"; readonly i: number }
          | { readonly kind: "rejected"; readonly i: number }
        const calls: Array<Call> = Array.from({ length: 400 }, (_, i): Call =>
          i % 97 === 13
            ? { kind: "rejected", i }
            : i % 50 === 7
            ? { kind: "undeployed", i }
            : i % 3 === 0
            ? { kind: "sms", i }
            : { kind: "email", i, delay: i % 4 === 0 ? 30 : 0, ...(i % 5 === 0 ? { group: `g${i % 7}` } : {}) }
        )
        const run = (call: Call) => {
          switch (call.kind) {
            case "email":
              return Email.enqueue(
                { to: `u${call.i}@x`, sendAt: new Date(0), count: call.i },
                { delaySecs: call.delay, ...(call.group === undefined ? {} : { jobGroup: call.group }) }
              )
            case "sms":
              return Sms.enqueue({ n: call.i })
            case "undeployed":
              return NeverDeployed.enqueue({})
            case "rejected": // a row the database refuses: the constraint added below
              return Email.enqueue({ to: `rejected${call.i}@x`, sendAt: new Date(0), count: call.i })
          }
        }
        const check = (calls: ReadonlyArray<Call>) =>
          Effect.gen(function*() {
            const results = yield* Effect.forEach(calls, (call) => Effect.exit(run(call)), { concurrency: "unbounded" })

            const ids: Array<string> = []
            results.forEach((exit, k) => {
              const call = calls[k]!
              if (call.kind === "undeployed") {
                assert.isTrue(Exit.isFailure(exit))
                const error = Exit.isFailure(exit) ? Option.getOrThrow(Exit.findErrorOption(exit)) : undefined
                assert.strictEqual(error?._tag, "JobDefinitionNotDeployed")
              } else if (call.kind === "rejected") {
                const error = Exit.isFailure(exit) ? Option.getOrThrow(Exit.findErrorOption(exit)) : undefined
                assert.strictEqual(error?._tag, "StorageError")
              } else {
                assert.isTrue(Exit.isSuccess(exit), `call ${k} failed`)
                if (Exit.isSuccess(exit)) ids.push(exit.value)
              }
            })
            assert.strictEqual(new Set(ids).size, ids.length)

            const rows = yield* sql<{
              id: bigint
              name: string
              n: number
              job_group: string | null
              delayed: boolean
              created_at: Date
            }>`
              SELECT id, name, coalesce((payload->>'count')::int, (payload->>'n')::int) AS n, job_group,
                run_at > created_at + interval '10 seconds' AS delayed, created_at
              FROM ${sql(table("job"))} WHERE id IN (SELECT unnest(${ids}::bigint[]))`
            assert.strictEqual(rows.length, ids.length)
            const byId = new Map(rows.map((r) => [String(r.id), r]))
            let k = 0
            for (const call of calls) {
              if (call.kind !== "email" && call.kind !== "sms") continue
              const row = byId.get(ids[k++]!)!
              assert.strictEqual(row.name, call.kind)
              assert.strictEqual(row.n, call.i)
              assert.strictEqual(row.job_group, call.kind === "email" ? call.group ?? null : null)
              assert.strictEqual(row.delayed, call.kind === "email" && call.delay > 0)
            }
            // nothing of the rejected or undeployed calls was written
            const [stray] = yield* sql<{ n: bigint }>`
              SELECT count(*) AS n FROM ${sql(table("job"))} WHERE payload->>'to' LIKE 'rejected%'`
            assert.strictEqual(Number(stray!.n), 0)
            return rows
          })
        // without a row the database rejects, concurrent calls are written together: far fewer transactions
        // (one timestamp each) than calls
        const rows = yield* check(calls.filter((call) => call.kind !== "rejected"))
        assert.isBelow(new Set(rows.map((r) => r.created_at.getTime())).size, 100)
        // with some: a batch that holds one is written row by row, and only the rejected calls fail
        yield* check(calls)
      }))

    it.effect("a payload that cannot be written as JSON fails only its own call, among concurrent ones", () =>
      Effect.gen(function*() {
        const Loose = JobDefinition.make({ name: "sms", payload: Schema.Any, handler: () => Effect.void })
        const circular: Record<string, unknown> = {}
        circular.self = circular
        const payloads: Array<unknown> = Array.from({ length: 60 }, (_, i) =>
          i === 17 ? { n: 10n } : i === 41 ? circular : i === 50 ? undefined : { n: i }
        )
        const results = yield* Effect.forEach(payloads, (p) => Effect.exit(Loose.enqueue(p)), { concurrency: "unbounded" })
        results.forEach((exit, i) => {
          if (i === 17 || i === 41 || i === 50) {
            const error = Exit.isFailure(exit) ? Option.getOrThrow(Exit.findErrorOption(exit)) : undefined
            assert.strictEqual(error?._tag, "InvalidPayload", `call ${i}`)
            assert.include(error?.message, i === 50 ? "encodes to no JSON value" : "cannot be written as JSON")
          } else {
            assert.isTrue(Exit.isSuccess(exit), `call ${i}`)
          }
        })
      }))

    it.effect("once the store's layer is closed, enqueue fails with a StorageError rather than waiting", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(Cuckmq.layer({ schema, definitions: [Sms] }), scope)
        const enqueue = (n: number) => Sms.enqueue({ n }).pipe(Effect.provideContext(context))
        const ids = yield* Effect.forEach([1, 2, 3], enqueue, { concurrency: "unbounded" })
        assert.strictEqual(ids.length, 3)
        yield* Scope.close(scope, Exit.void)
        const errors = yield* Effect.forEach([4, 5, 6], (n) => Effect.flip(enqueue(n)), { concurrency: "unbounded" })
        for (const error of errors) {
          assert.strictEqual(error._tag, "StorageError")
          assert.include(error.message, "closed")
        }
      }))

    it.effect("closing the store while its inserts wait on a lock: every caller is answered, with its id or a StorageError", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(Cuckmq.layer({ schema, definitions: [Sms] }), scope)
        // inserts block behind a lock another transaction holds until told to go
        const go = yield* Deferred.make<void>()
        const locked = yield* Deferred.make<void>()
        const holder = yield* Effect.forkChild(sql.withTransaction(Effect.gen(function*() {
          yield* sql`LOCK TABLE ${sql(table("job"))} IN SHARE ROW EXCLUSIVE MODE`
          yield* Deferred.succeed(locked, undefined)
          yield* Deferred.await(go)
        })))
        yield* Deferred.await(locked)
        const base = 900_000
        const calls = yield* Effect.forkChild(Effect.forEach(
          Array.from({ length: 50 }, (_, k) => base + k),
          (n) => Effect.result(Sms.enqueue({ n }).pipe(Effect.provideContext(context))),
          { concurrency: "unbounded" }
        ))
        yield* Effect.sleep("300 millis") // the first batches are in flight, the rest wait for them
        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* Effect.sleep("300 millis")
        yield* Deferred.succeed(go, undefined)
        yield* Fiber.join(holder)
        const results = yield* Fiber.join(calls).pipe(Effect.timeoutOrElse({
          duration: "30 seconds",
          orElse: () => Effect.die(new Error("a caller was never answered after the store closed"))
        }))
        yield* Fiber.join(closing)
        const ids = results.flatMap((r) => (r._tag === "Success" ? [r.success] : []))
        for (const r of results) {
          if (r._tag === "Failure") {
            assert.strictEqual(r.failure._tag, "StorageError")
            assert.include(r.failure.message, "closed")
          }
        }
        const [row] = yield* sql<{ n: bigint }>`
          SELECT count(*) AS n FROM ${sql(table("job"))} WHERE name = 'sms' AND (payload->>'n')::int >= ${base}`
        // a job whose caller got an id was written; one that was refused (closed) may or may not have been
        assert.isAtLeast(Number(row!.n), ids.length)
        yield* sql`DELETE FROM ${sql(table("job"))} WHERE name = 'sms' AND (payload->>'n')::int >= ${base}`
      }))

    it.effect("bad input is a typed error with a readable message and writes nothing", () =>
      Effect.gen(function*() {
        const before = yield* countJobs
        const ok = { to: "x@y", sendAt: new Date(0), count: 1 }

        const notDeployed = yield* Effect.flip(NeverDeployed.enqueue({}))
        assert.strictEqual(notDeployed._tag, "JobDefinitionNotDeployed")
        assert.include(notDeployed.message, "never deployed")

        const badPayload = yield* Effect.flip(Email.enqueue({ ...ok, count: 1.5 }))
        assert.strictEqual(badPayload._tag, "InvalidPayload")
        assert.include(badPayload.message, "Expected an integer")

        const wrongShape = yield* Effect.flip(Email.enqueue({ to: 42 } as any))
        assert.strictEqual(wrongShape._tag, "InvalidPayload")

        // jsonb cannot store NUL: refused before it reaches the database
        const nul = yield* Effect.flip(Email.enqueue({ ...ok, to: "a\u0000b" }))
        assert.strictEqual(nul._tag, "InvalidPayload")
        assert.include(nul.message, "the value at to contains a NUL character")
        const nulBulk = yield* Effect.flip(Email.enqueueMany([{ payload: ok }, { payload: { ...ok, to: "\u0000" } }]))
        assert.include(nulBulk.message, "(job 1): the value at to contains a NUL character")

        for (const delaySecs of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
          const badDelay = yield* Effect.flip(Email.enqueue(ok, { delaySecs }))
          assert.strictEqual(badDelay._tag, "InvalidEnqueueOptions")
          assert.include(badDelay.message, "delaySecs")
        }
        const badGroup = yield* Effect.flip(Email.enqueue(ok, { jobGroup: "" }))
        assert.strictEqual(badGroup._tag, "InvalidEnqueueOptions")

        // bulk: one bad item rejects the whole batch
        const bulk = yield* Effect.flip(Email.enqueueMany([{ payload: ok }, { payload: { ...ok, count: 0.1 } }]))
        assert.strictEqual(bulk._tag, "InvalidPayload")
        assert.include(bulk.message, "(job 1)")
        const bulkNotDeployed = yield* Effect.flip(NeverDeployed.enqueueMany([{ payload: {} }, { payload: {} }]))
        assert.strictEqual(bulkNotDeployed._tag, "JobDefinitionNotDeployed")

        assert.strictEqual(yield* countJobs, before)
      }))

    it.effect("invalid definitions and layer options are typed errors", () =>
      Effect.gen(function*() {
        const bad = JobDefinition.make({ name: "bad", numAttempts: 0, handler: () => Effect.void })
        const e1 = yield* Effect.flip(bad.deploy)
        assert.strictEqual(e1._tag, "InvalidJobDefinition")
        assert.include(e1.message, "numAttempts")
        const badCron = JobDefinition.make({ name: "bad-cron2", cron: "61 * * * *", handler: () => Effect.void })
        const e2 = yield* Effect.flip(badCron.deploy)
        assert.strictEqual(e2._tag, "InvalidJobDefinition")
        const badTz = JobDefinition.make({ name: "bad-tz", cron: "* * * * *", cronTimeZone: "Mars/Olympus", handler: () => Effect.void })
        assert.strictEqual((yield* Effect.flip(badTz.deploy))._tag, "InvalidJobDefinition")
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`SELECT 1 FROM ${sql(table("job_definition"))} WHERE name IN ('bad', 'bad-cron2', 'bad-tz')`
        assert.strictEqual(rows.length, 0)

        const buildWith = (options: Cuckmq.Options<ReadonlyArray<JobDefinition.JobDefinition<any, any, never>>>) =>
          Effect.flip(Layer.build(Cuckmq.layer(options)).pipe(Effect.scoped))
        const e3 = yield* buildWith({ schema: "no.dots" })
        assert.strictEqual(e3._tag, "InvalidSchemaName")
        const e4 = yield* buildWith({ schema, jobGroupUnlockSecs: -1 })
        assert.strictEqual(e4._tag, "InvalidOptions")
        const e4b = yield* buildWith({ schema, jobGroupUnlockSecs: 0 }) // 0 would release every lock at once
        assert.strictEqual(e4b._tag, "InvalidOptions")
        const e5 = yield* buildWith({ schema, definitions: [Email, Email] })
        assert.strictEqual(e5._tag, "InvalidJobDefinition")
        assert.include(e5.message, "registered twice")
        const none = yield* sql`SELECT 1 FROM pg_namespace WHERE nspname = 'no.dots'`
        assert.strictEqual(none.length, 0)
      }))
  })
})
