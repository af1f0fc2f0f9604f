/**
 * A worker never loses a job to a statement that does not answer, on both backends: a claim or a fast-path
 * insert whose answer never comes (it may have committed, claiming jobs for the worker) is given up on after
 * `stuckAfterMs`: it stops holding back reconciling and taking room, the worker reconciles, and what it
 * brings if it answers late is given back, never run.
 *
 * Before this, such a statement kept `claimsInFlight` (or `reserved`) above zero forever, so the worker
 * never reconciled (the release of a lost claim's jobs waits for nothing to be in flight, and so does the
 * periodic one): a job claimed for a live worker that did not know of it stayed claimed, never started nor
 * released (the interleaving test's drain timeout). Each test below hangs one statement on purpose through a
 * store wrapper, so it fails deterministically without the fix.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Deferred, Effect, Exit, Option, Schema, Scope } from "effect"
import { SqlClient } from "effect/sql"
import type { PgClient } from "@effect/sql-pg"
import { Cuckmq, JobDefinition } from "../src/index.js"
import { type JobSnooze, StorageError } from "../src/CuckmqError.js"
import type { JobStore } from "../src/JobStore.js"
import * as Engine from "../src/internal/engine.js"
import * as WorkerInternal from "../src/internal/worker/index.js"
import { type Backend, contextOn } from "./support/faults.js"
import { waitUntil } from "./support/harness.js"
import { PgTest, uniqueSchema } from "./support/pg.js"

/**
 * Every run of the test definition's handler, by job id; `outcome(n)` decides how the n-th run (from 1) ends
 * (it succeeds unless told otherwise).
 */
const makeRuns = (outcome: (n: number) => Effect.Effect<void, JobSnooze> = () => Effect.void) => {
  const runs: Array<{ readonly jobId: string; readonly attempt: number }> = []
  const Job = JobDefinition.make({
    name: "claim-loss",
    channel: "c",
    numAttempts: 3,
    timeoutSecs: 0,
    payload: Schema.Struct({ n: Schema.Number }),
    handler: (_payload, meta) =>
      Effect.suspend(() => {
        runs.push({ jobId: meta.jobId, attempt: meta.attempt })
        return outcome(runs.length)
      })
  })
  return { runs, Job }
}

/** A worker's resolved settings (the internal run, for `stuckAfterMs`). */
const config = (stuckAfterMs: number): WorkerInternal.Config => ({
  name: "claim-loss",
  channels: ["c"],
  concurrency: 2,
  prefetch: 0,
  pollIntervalSecs: 0.05,
  gracePeriodSecs: 1,
  heartbeatSecs: 0.2,
  leaseSecs: 1.5,
  priorityAgingSecs: 60,
  stuckAfterMs
})

/**
 * A context on `backend` whose store `wrap` changes, the test definition deployed, and a way to start the
 * worker (stopped with the returned effect).
 */
const setup = (
  backend: Backend,
  Job: JobDefinition.JobDefinition<any, any, never>,
  wrap: (store: JobStore["Service"]) => JobStore["Service"]
): Effect.Effect<
  { readonly cuckmq: Cuckmq.Cuckmq["Service"]; readonly start: (stuckAfterMs: number) => Effect.Effect<Effect.Effect<void>> },
  never,
  Scope.Scope | PgClient.PgClient | SqlClient.SqlClient
> =>
  Effect.gen(function*() {
    const schema = uniqueSchema(`claim_loss_${backend}`)
    if (backend === "postgres") {
      const sql = yield* SqlClient.SqlClient
      yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`))
    }
    const cuckmq = yield* contextOn(backend, { schema, definitions: [Job] }, wrap).pipe(Effect.orDie)
    const engine = Engine.get(cuckmq)
    const start = (stuckAfterMs: number) =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        yield* Scope.provide(WorkerInternal.run(engine, config(stuckAfterMs)), scope)
        return Scope.close(scope, Exit.void)
      })
    return { cuckmq, start }
  })

const jobState = (cuckmq: Cuckmq.Cuckmq["Service"], id: string) =>
  Effect.map(Engine.get(cuckmq).store.getJob(id), (job) => Option.getOrThrow(job))

describe("a worker and statements that never answer", () => {
  layer(PgTest({ maxConnections: 10 }), { excludeTestServices: true })((it) => {
    for (const backend of ["postgres", "memory"] as const) {
      it.effect(`${backend}: a claim that committed and never answers is given up on; the worker reconciles and runs the job`, () =>
        Effect.gen(function*() {
          const { Job, runs } = makeRuns()
          let hung = 0
          const { cuckmq, start } = yield* setup(backend, Job, (store) => ({
            ...store,
            // the first claim that takes a job commits, and its answer never comes
            claim: (request) =>
              Effect.flatMap(store.claim(request), (result) =>
                result.jobs.length > 0 && hung++ === 0 ? Effect.never : Effect.succeed(result))
          }))
          const id = yield* Job.enqueue({ n: 1 }).pipe(Effect.provideService(Cuckmq.Cuckmq, cuckmq))
          const stop = yield* start(300)
          yield* waitUntil("the job succeeded", Effect.map(jobState(cuckmq, id), (j) => j.state === "succeeded"), "10 seconds")
          const job = yield* jobState(cuckmq, id)
          yield* stop
          assert.strictEqual(hung, 2, "the hung claim took the job, a later one took it again")
          assert.deepStrictEqual(runs, [{ jobId: id, attempt: 1 }])
          assert.strictEqual(job.attempts, 1)
        }).pipe(Effect.scoped))

      it.effect(`${backend}: a claim that never answers (and never ran) gives its room back: the worker keeps claiming`, () =>
        Effect.gen(function*() {
          const { Job, runs } = makeRuns()
          let calls = 0
          const { cuckmq, start } = yield* setup(backend, Job, (store) => ({
            ...store,
            claim: (request) => calls++ === 0 ? Effect.never : store.claim(request),
            // no fast path: the job must come through a claim
            enqueue: (name, jobs, onCommit) => store.enqueue(name, jobs, onCommit)
          }))
          const stop = yield* start(300)
          yield* waitUntil("the first claim was sent", Effect.sync(() => calls > 0), "10 seconds")
          const id = yield* Job.enqueue({ n: 1 }).pipe(Effect.provideService(Cuckmq.Cuckmq, cuckmq))
          yield* waitUntil("the job succeeded", Effect.map(jobState(cuckmq, id), (j) => j.state === "succeeded"), "10 seconds")
          yield* stop
          assert.deepStrictEqual(runs, [{ jobId: id, attempt: 1 }])
        }).pipe(Effect.scoped))

      it.effect(`${backend}: a claim that answers after it was given up on has its jobs given back, not run`, () =>
        Effect.gen(function*() {
          const { Job, runs } = makeRuns()
          let late = 0
          let answered = false
          const { cuckmq, start } = yield* setup(backend, Job, (store) => ({
            ...store,
            // the first claim that takes a job answers 1.5 s late: by then a reconcile released the job and a
            // later claim ran it
            claim: (request) =>
              Effect.flatMap(store.claim(request), (result) =>
                result.jobs.length > 0 && late++ === 0
                  ? Effect.as(Effect.sleep("1500 millis"), result).pipe(Effect.ensuring(Effect.sync(() => void (answered = true))))
                  : Effect.succeed(result))
          }))
          const id = yield* Job.enqueue({ n: 1 }).pipe(Effect.provideService(Cuckmq.Cuckmq, cuckmq))
          const stop = yield* start(300)
          yield* waitUntil("the job succeeded", Effect.map(jobState(cuckmq, id), (j) => j.state === "succeeded"), "10 seconds")
          yield* waitUntil("the late claim answered", Effect.sync(() => answered), "10 seconds")
          yield* Effect.sleep("200 millis") // its jobs reach the executor (and must not start)
          yield* stop
          assert.deepStrictEqual(runs, [{ jobId: id, attempt: 1 }])
          assert.deepInclude(yield* jobState(cuckmq, id), { state: "succeeded", attempts: 1, claims: 2 })
        }).pipe(Effect.scoped))

      it.effect(`${backend}: a fast-path insert that claimed the job and never answers is given up on; the worker reconciles and runs the job`, () =>
        Effect.gen(function*() {
          const { Job, runs } = makeRuns()
          let swallowed = 0
          const { cuckmq, start } = yield* setup(backend, Job, (store) => ({
            ...store,
            // the insert claims the job for the reserving worker and commits, but its answer never reaches it
            enqueue: (name, jobs, onCommit, local) =>
              store.enqueue(name, jobs, onCommit, local === undefined ? undefined : {
                reserve: (definitionName) => {
                  const reservation = local.reserve(definitionName)
                  return reservation === undefined ? undefined : {
                    ...reservation,
                    deliver: (job) => {
                      if (swallowed++ > 0) reservation.deliver(job)
                    }
                  }
                }
              })
          }))
          const engine = Engine.get(cuckmq)
          const stop = yield* start(300)
          yield* waitUntil(
            "the worker registered",
            Effect.sync(() => WorkerInternal.inspect(engine).some((w) => w.registered)),
            "10 seconds"
          )
          const id = yield* Job.enqueue({ n: 1 }).pipe(Effect.provideService(Cuckmq.Cuckmq, cuckmq))
          assert.strictEqual(swallowed, 1, "the enqueue took the fast path")
          assert.isDefined((yield* jobState(cuckmq, id)).workerId, "claimed at insert")
          yield* waitUntil("the job succeeded", Effect.map(jobState(cuckmq, id), (j) => j.state === "succeeded"), "10 seconds")
          yield* stop
          assert.deepStrictEqual(runs, [{ jobId: id, attempt: 1 }])
        }).pipe(Effect.scoped))

      it.effect(`${backend}: a job owned under an earlier claim whose settlement is still being retried is released by the reconcile when a lost claim took it again`, () =>
        Effect.gen(function*() {
          // found by test/interleaving.test.ts (memory, a drain that hung 40 s): the worker kept every job id it
          // owned, whatever the claim, so a job it had settled (answer lost, retry pending) and claimed again
          // (answer lost) stayed held for it, unknown, until the next periodic reconcile a minute later
          // the first run snoozes for no time: the job is waiting again as soon as that settlement commits
          const { Job, runs } = makeRuns((n) => n === 1 ? JobDefinition.snooze(0) : Effect.void)
          const reconciled = yield* Deferred.make<void>()
          let phase: "first run" | "claim to lose" | "lost" = "first run"
          let snoozeWrites = 0
          const lost = (operation: string) =>
            new StorageError({ operation, message: `${operation} failed: injected fault (response lost)`, cause: undefined })
          const { cuckmq, start } = yield* setup(backend, Job, (store) => ({
            ...store,
            // the snooze commits and its answer is lost; its retry waits until the worker has reconciled
            settle: (workerId, settlements) => {
              if (!settlements.some((x) => x.outcome === "Snooze")) return store.settle(workerId, settlements)
              if (snoozeWrites++ > 0) return Effect.andThen(Deferred.await(reconciled), store.settle(workerId, settlements))
              return Effect.andThen(store.settle(workerId, settlements), Effect.suspend(() => {
                phase = "claim to lose"
                return Effect.fail(lost("settle"))
              }))
            },
            // meanwhile the next claim takes the job again, commits, and its answer is lost too
            claim: (request) =>
              Effect.flatMap(store.claim(request), (result) => {
                if (phase !== "claim to lose" || result.jobs.length === 0) return Effect.succeed(result)
                phase = "lost"
                return Effect.fail(lost("claim"))
              }),
            releaseUnowned: (workerId, owned) =>
              Effect.tap(store.releaseUnowned(workerId, owned), () => phase === "lost" ? Deferred.succeed(reconciled, undefined) : Effect.void),
            // no fast path: the job must come through a claim
            enqueue: (name, jobs, onCommit) => store.enqueue(name, jobs, onCommit)
          }))
          const stop = yield* start(60_000)
          const id = yield* Job.enqueue({ n: 1 }).pipe(Effect.provideService(Cuckmq.Cuckmq, cuckmq))
          // (without the fix the job stays claimed for the worker until its periodic reconcile, a minute on)
          yield* waitUntil("the job succeeded", Effect.map(jobState(cuckmq, id), (j) => j.state === "succeeded"), "30 seconds")
          yield* stop
          assert.strictEqual(phase, "lost")
          assert.strictEqual(snoozeWrites, 2, "the snooze was written, then written again (a no-op)")
          assert.deepStrictEqual(runs, [{ jobId: id, attempt: 1 }, { jobId: id, attempt: 1 }], "run twice, the snooze spending no attempt")
          assert.deepInclude(yield* jobState(cuckmq, id), { state: "succeeded", attempts: 1, claims: 3 })
        }).pipe(Effect.scoped))
    }
  })
})
