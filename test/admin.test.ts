/**
 * The admin API (`CuckmqAdmin`): one suite, run on real PostgreSQL and on the memory backend. Statistics
 * after a known mix of jobs; keyset pagination stable while another fiber inserts; each action's effect,
 * its event, and its refusals. Counting, never timing: deadlines only keep a broken test from hanging.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Clock, Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Logger, Schema, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import { SqlClient } from "effect/sql"
import type { PgClient } from "@effect/sql-pg"
import { Cuckmq, CuckmqAdmin, CuckmqError, type CuckmqEvent, JobDefinition } from "../src/index.js"
import { StorageError } from "../src/CuckmqError.js"
import * as Engine from "../src/internal/engine.js"
import * as Outcomes from "../src/internal/outcomes.js"
import * as PgAdmin from "../src/internal/pg/admin.js"
import { JobStore, type OutcomeCounts } from "../src/JobStore.js"
import { CuckmqTest } from "../src/testing.js"
import { expected, modeOf, Outcome } from "./fixtures/outcome-definitions.js"
import { count, startWorker, waitUntil } from "./support/harness.js"
import { databaseUrl, PgTest, uniqueSchema } from "./support/pg.js"
import { spawnFixture } from "./support/processes.js"

type Ctx = Cuckmq.Cuckmq | CuckmqAdmin.CuckmqAdmin

/** What differs between the backends: building a context, running the due jobs, moving time. */
interface Backend {
  readonly name: "postgres" | "memory"
  /** Builds a fresh context (and admin, cap 100) with `definitions` for `body`. */
  readonly withAdmin: <A, E>(
    definitions: ReadonlyArray<JobDefinition.Any>,
    body: Effect.Effect<A, E, Ctx | Scope.Scope | PgClient.PgClient | SqlClient.SqlClient>
  ) => Effect.Effect<A, E | unknown, PgClient.PgClient | SqlClient.SqlClient>
  /** Runs every due job of the context to an end (its outcome recorded by this process's counters). */
  readonly drain: Effect.Effect<void, unknown, Ctx>
  /** A second admin layer on the same context (what a process running the CLI's admin and a dashboard builds). */
  readonly secondAdmin: Layer.Layer<unknown, unknown, Cuckmq.Cuckmq>
  /**
   * Two contexts on one store, as two processes: `worker`, with `definitions` and no admin layer (in a scope
   * of its own: `closeWorker` releases it), and `reader`, an admin with no definitions.
   */
  readonly withoutAdmin: <A, E>(
    definitions: ReadonlyArray<JobDefinition.Any>,
    body: (contexts: {
      readonly worker: Context.Context<Cuckmq.Cuckmq>
      readonly closeWorker: Effect.Effect<void>
      readonly reader: Context.Context<Ctx>
    }) => Effect.Effect<A, E, Scope.Scope | PgClient.PgClient | SqlClient.SqlClient>
  ) => Effect.Effect<A, E | unknown, PgClient.PgClient | SqlClient.SqlClient>
  /** Runs every job of the context (no admin in it) to its end, retries included. */
  readonly runAll: Effect.Effect<void, unknown, Cuckmq.Cuckmq | PgClient.PgClient | SqlClient.SqlClient>
  /** Lets the counters' flush interval pass (memory: moves the TestClock; PostgreSQL: nothing, the reader waits). */
  readonly flushIntervalPasses: Effect.Effect<void>
}

const Payload = Schema.Struct({ i: Schema.Int, fail: Schema.optional(Schema.Boolean) })

/** A definition whose jobs fail while `payload.fail` is set and `broken.on` is true. */
const makeDef = (name: string, channel: string, broken: { on: boolean } = { on: true }) =>
  JobDefinition.make({
    name,
    channel,
    payload: Payload,
    numAttempts: 1,
    handler: ({ fail }) => fail === true && broken.on ? Effect.fail(new Error(`job of ${name} failed`)) : Effect.void
  })

const admin = CuckmqAdmin.CuckmqAdmin

/** Subscribes now; the returned effect collects the next `n` events with `tag`. */
const nextEvents = (tag: CuckmqEvent.Tag, n: number) =>
  Effect.gen(function*() {
    const cuckmq = yield* Cuckmq.Cuckmq
    const events = yield* cuckmq.subscribe
    const fiber = yield* events.pipe(Stream.filter((e) => e._tag === tag), Stream.take(n), Stream.runCollect, Effect.forkScoped)
    return Fiber.join(fiber)
  })

/** A job held by a fake worker: registered and claimed through the store (running, as far as anyone sees). */
const claimOne = (channel: string) =>
  Effect.gen(function*() {
    const store = Engine.get(yield* Cuckmq.Cuckmq).store
    const workerId = crypto.randomUUID()
    yield* store.registerWorker({ id: workerId, name: "fake", hostname: "test", pid: 1, channels: [channel], leaseSecs: 3600, sessionKey: undefined })
    const claimed = yield* store.claim({ workerId, channels: [channel], excludeNames: [], limit: 1, priorityAgingSecs: 60 })
    assert.strictEqual(claimed.jobs.length, 1)
    return { workerId, job: claimed.jobs[0]! }
  })

/** Retires a definition behind the context's back (Cuckmq.undeploy refuses one this context registers). */
const undeploy = (name: string) =>
  Effect.gen(function*() {
    yield* Engine.get(yield* Cuckmq.Cuckmq).store.undeploy(name, "keep")
  })

const failureOf = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.flip(effect)

const suite = (backend: Backend, test: (name: string, body: () => Effect.Effect<void, unknown, PgClient.PgClient | SqlClient.SqlClient>) => void) => {
  const withAdmin = backend.withAdmin

  test("statistics after a known mix: exact counts per channel, capped beyond the cap, outcomes from the counters", () => {
    const A = makeDef("stats-a", "shared")
    const C = makeDef("stats-c", "shared")
    const B = makeDef("stats-b", "alone")
    const D = makeDef("stats-d", "big")
    const D2 = makeDef("stats-d2", "big")
    const E = makeDef("stats-e", "groups")
    return withAdmin([A, B, C, D, D2, E], Effect.gen(function*() {
      // B: 4 succeed, 2 fail (numAttempts 1), run to an end first
      yield* B.enqueueMany([0, 1, 2, 3, 4, 5].map((i) => ({ payload: { i, fail: i >= 4 } })))
      yield* backend.drain
      // then, left waiting: B 5 due; A 3 due + 2 delayed; C 1 due; D 150 due (over the cap of 100); E 1 + 1 held
      yield* B.enqueueMany([0, 1, 2, 3, 4].map((i) => ({ payload: { i } })))
      yield* A.enqueueMany([0, 1, 2].map((i) => ({ payload: { i } })))
      yield* A.enqueueMany([3, 4].map((i) => ({ payload: { i }, delaySecs: 3600 })))
      yield* C.enqueue({ i: 0 })
      yield* D.enqueueMany(Array.from({ length: 150 }, (_, i) => ({ payload: { i } })))
      yield* D2.enqueueMany([0, 1, 2].map((i) => ({ payload: { i } })))
      yield* E.enqueueMany([0, 1].map((i) => ({ payload: { i }, jobGroup: "tenant-1" })))

      const stats = yield* admin.use((a) => a.statistics)
      const channel = (name: string) => stats.channels.find((c) => c.channel === name)!
      const definition = (name: string) => stats.definitions.find((d) => d.definition === name)!
      const exact = (value: number) => ({ value, accuracy: "exact" as const })
      assert.strictEqual(stats.countCap, 100)
      assert.deepStrictEqual(stats.channels.map((c) => c.channel), ["alone", "big", "groups", "shared"])

      const alone = channel("alone")
      assert.deepStrictEqual([alone.waiting, alone.delayed, alone.held, alone.running], [exact(5), exact(0), exact(0), exact(0)])
      assert.deepStrictEqual(alone.definitions, ["stats-b"])
      assert.isDefined(alone.oldestWaitingSecs)
      assert.isAtLeast(alone.oldestWaitingSecs!, 0)
      assert.deepStrictEqual(
        { succeeded: alone.lastHour.succeeded, failed: alone.lastHour.failed, errored: alone.lastHour.errored },
        { succeeded: 4, failed: 2, errored: 2 }
      )
      // the current minute holds all six; the 60-minute series sums to the hour
      assert.strictEqual(alone.minutes.length, 60)
      assert.strictEqual(alone.minutes.reduce((s, m) => s + m.succeeded + m.failed, 0), 6)
      assert.strictEqual(alone.throughputPerMinute, 6 / 5)
      assert.isDefined(alone.lastHour.meanRunMs)

      // a definition alone on its channel has the channel's exact counts
      const b = definition("stats-b")
      assert.deepStrictEqual([b.waiting, b.delayed, b.channel, b.deployed], [exact(5), exact(0), "alone", true])
      assert.strictEqual(b.lastHour.succeeded, 4)

      const shared = channel("shared")
      assert.deepStrictEqual([shared.waiting, shared.delayed], [exact(4), exact(2)])
      assert.deepStrictEqual(shared.definitions, ["stats-a", "stats-c"])
      // sharing a channel under the cap: exact per definition too
      assert.deepStrictEqual([definition("stats-a").waiting, definition("stats-a").delayed], [exact(3), exact(2)])
      assert.deepStrictEqual([definition("stats-c").waiting, definition("stats-c").delayed], [exact(1), exact(0)])

      // beyond the cap: "100+"; per definition on the shared channel, lower bounds from the capped sample
      // (the first 101 in claim order are all D's)
      assert.deepStrictEqual(channel("big").waiting, { value: 100, accuracy: "atLeast" })
      assert.deepStrictEqual(definition("stats-d").waiting, { value: 100, accuracy: "atLeast" })
      assert.deepStrictEqual(definition("stats-d2").waiting, { value: 0, accuracy: "atLeast" })
      assert.strictEqual(CuckmqAdmin.formatCount(definition("stats-d2").waiting), "0+")
      assert.strictEqual(CuckmqAdmin.formatCount(channel("big").waiting), "100+")
      assert.deepStrictEqual(stats.total.waiting, { value: 100, accuracy: "atLeast" })

      const groups = channel("groups")
      assert.deepStrictEqual([groups.waiting, groups.held], [exact(1), exact(1)])
      assert.deepStrictEqual(stats.total.lastHour.succeeded, 4)

      // running: a claimed job counts, exactly
      yield* claimOne("alone")
      const again = yield* admin.use((x) => x.statistics)
      const alone2 = again.channels.find((c) => c.channel === "alone")!
      assert.deepStrictEqual([alone2.waiting, alone2.running], [exact(4), exact(1)])
    }))
  })

  test("listing: keyset pages are stable while another fiber inserts, in both directions; filters", () => {
    const P = makeDef("list-p", "list")
    const Q = makeDef("list-q", "list")
    return withAdmin([P, Q], Effect.gen(function*() {
      const original = yield* P.enqueueMany(Array.from({ length: 30 }, (_, i) => ({ payload: { i }, jobGroup: i % 3 === 0 ? "g" : undefined })))
      yield* Q.enqueueMany(Array.from({ length: 5 }, (_, i) => ({ payload: { i } })))
      // another fiber keeps inserting P jobs while we page
      let inserting = true
      let inserted = 0
      const writer = yield* Effect.forkChild(Effect.gen(function*() {
        while (inserting) {
          yield* P.enqueue({ i: 1000 + inserted })
          inserted++
          yield* Effect.yieldNow
        }
      }))
      const pageAll = (direction: "asc" | "desc") =>
        Effect.gen(function*() {
          const seen: Array<string> = []
          let cursor: string | undefined
          let pages = 0
          do {
            const page = yield* admin.use((x) => x.listJobs({ definition: "list-p", limit: 7, direction, cursor }))
            seen.push(...page.jobs.map((j) => j.id))
            cursor = page.next
            pages++
            yield* Effect.yieldNow
          } while (cursor !== undefined && pages < 1000 && (direction === "desc" || seen.length < 60))
          return seen
        })
      const desc = yield* pageAll("desc")
      const asc = yield* pageAll("asc")
      inserting = false
      yield* Fiber.join(writer)
      assert.isAbove(inserted, 0)
      for (const [name, ids] of [["desc", desc], ["asc", asc]] as const) {
        assert.strictEqual(new Set(ids).size, ids.length, `${name}: no job twice`)
        const order = ids.map(Number)
        const sorted = [...order].sort((x, y) => name === "desc" ? y - x : x - y)
        assert.deepStrictEqual(order, sorted, `${name}: in order`)
      }
      // newest first: every job that existed when paging started is on some page (new ones come before page 1)
      const originalSet = new Set(original)
      assert.deepStrictEqual(desc.filter((id) => originalSet.has(id)), [...original].reverse())
      assert.deepStrictEqual(asc.slice(0, 30), [...original])

      // filters
      const byGroup = yield* admin.use((x) => x.listJobs({ jobGroup: "g", limit: 100 }))
      assert.strictEqual(byGroup.jobs.length, 10)
      assert.isTrue(byGroup.jobs.every((j) => j.jobGroup === "g"))
      const heldOnly = yield* admin.use((x) => x.listJobs({ state: "held", limit: 100 }))
      assert.strictEqual(heldOnly.jobs.length, 9) // the group's first job is claimable, the others wait behind it
      const q = yield* admin.use((x) => x.listJobs({ definition: "list-q", channel: "list", state: ["waiting"], sort: "runAt" }))
      assert.strictEqual(q.jobs.length, 5)
      assert.isUndefined(q.next)
      // by run time, two a page: ties (one enqueue, one run time) broken by id, no job twice
      const byRunAt: Array<string> = []
      let cursor: string | undefined
      do {
        const page = yield* admin.use((x) => x.listJobs({ definition: "list-q", state: "waiting", sort: "runAt", limit: 2, cursor }))
        byRunAt.push(...page.jobs.map((j) => j.id))
        cursor = page.next
      } while (cursor !== undefined)
      assert.deepStrictEqual(byRunAt, q.jobs.map((j) => j.id))
      assert.deepStrictEqual(byRunAt.map(Number), [...byRunAt.map(Number)].sort((x, y) => x - y))

      // refusals
      const bad = yield* failureOf(admin.use((x) => x.listJobs({ state: "nope" as never })))
      assert.isTrue(CuckmqError.isInvalidOptions(bad))
      const badCursor = yield* failureOf(admin.use((x) => x.listJobs({ cursor: "not-a-cursor" })))
      assert.match(badCursor.message, /cursor/)
      const page1 = yield* admin.use((x) => x.listJobs({ definition: "list-p", limit: 2 }))
      const otherFilter = yield* failureOf(admin.use((x) => x.listJobs({ definition: "list-q", limit: 2, cursor: page1.next })))
      assert.match(otherFilter.message, /other filters/)
      const wrongSort = yield* failureOf(admin.use((x) => x.listJobs({ sort: "finalizedAt", state: "waiting" })))
      assert.isTrue(CuckmqError.isInvalidOptions(wrongSort))
    }))
  })

  test("retry: a failed job is waiting again and then succeeds; refused for other states; by filter in batches", () => {
    const broken = { on: true }
    const R = makeDef("retry-r", "retry", broken)
    return withAdmin([R], Effect.gen(function*() {
      const ids = yield* R.enqueueMany([0, 1, 2, 3].map((i) => ({ payload: { i, fail: true } })))
      yield* backend.drain
      const failed = yield* admin.use((x) => x.getJob(ids[0]!))
      assert.strictEqual(failed.state, "failed")
      assert.match(failed.lastErrorMessage ?? "", /failed/)

      const events = yield* nextEvents("ADMIN_JOB_RETRY", 1)
      const done = yield* admin.use((x) => x.retryJob(ids[0]!))
      assert.deepStrictEqual(done, { jobIds: [ids[0]!], count: 1, more: false })
      const [event] = yield* events
      assert.deepStrictEqual((event as CuckmqEvent.AdminJobRetry).jobIds, [ids[0]!])
      const waiting = yield* admin.use((x) => x.getJob(ids[0]!))
      assert.deepStrictEqual([waiting.state, waiting.attempts], ["waiting", 0])

      // retrying a waiting job is refused, with its state; an unknown id is not found
      const refused = yield* failureOf(admin.use((x) => x.retryJob(ids[0]!)))
      assert.isTrue(CuckmqError.isJobActionRefused(refused))
      assert.deepInclude(refused, { action: "retry", jobId: ids[0]!, state: "waiting" })
      const missing = yield* failureOf(admin.use((x) => x.retryJob("987654321")))
      assert.isTrue(CuckmqError.isJobNotFound(missing))
      const malformed = yield* failureOf(admin.use((x) => x.retryJob("abc")))
      assert.isTrue(CuckmqError.isInvalidOptions(malformed))

      // fixed: the retried job succeeds
      broken.on = false
      yield* backend.drain
      assert.strictEqual((yield* admin.use((x) => x.getJob(ids[0]!))).state, "succeeded")
      const succeeded = yield* failureOf(admin.use((x) => x.retryJob(ids[0]!)))
      assert.deepInclude(succeeded, { state: "succeeded" })

      // by filter, two at a time: 3 failed left
      const first = yield* admin.use((x) => x.retryJobs({ definition: "retry-r", limit: 2 }))
      assert.deepStrictEqual([first.count, first.more], [2, true])
      const second = yield* admin.use((x) => x.retryJobs({ definition: "retry-r", limit: 2 }))
      assert.deepStrictEqual([second.count, second.more], [1, false])
      const none = yield* admin.use((x) => x.retryJobs({ definition: "retry-r" }))
      assert.deepStrictEqual(none, { jobIds: [], count: 0, more: false })
      const wrongState = yield* failureOf(admin.use((x) => x.retryJobs({ state: "waiting" })))
      assert.isTrue(CuckmqError.isInvalidOptions(wrongState))
      yield* backend.drain
      const all = yield* admin.use((x) => x.listJobs({ definition: "retry-r", state: "succeeded" }))
      assert.strictEqual(all.jobs.length, 4)
      // by finalization time, newest first, one a page
      const byFinalized: Array<Date> = []
      let cursor: string | undefined
      do {
        const page = yield* admin.use((x) => x.listJobs({ state: "succeeded", sort: "finalizedAt", limit: 1, cursor }))
        byFinalized.push(...page.jobs.map((j) => j.finalizedAt!))
        cursor = page.next
      } while (cursor !== undefined)
      assert.strictEqual(byFinalized.length, 4)
      assert.isTrue(byFinalized.every((d, i) => i === 0 || d.getTime() <= byFinalized[i - 1]!.getTime()))
    }))
  })

  test("retry of a job whose definition is gone: JobDefinitionNotDeployed; by filter it is skipped", () => {
    const G = makeDef("gone-g", "gone")
    return withAdmin([G], Effect.gen(function*() {
      const [id] = yield* G.enqueueMany([{ payload: { i: 0, fail: true } }, { payload: { i: 1, fail: true } }])
      yield* backend.drain
      // retire it behind the context's back (Cuckmq.undeploy refuses a definition this context registers)
      yield* Engine.get(yield* Cuckmq.Cuckmq).store.undeploy("gone-g", "keep")
      const refused = yield* failureOf(admin.use((x) => x.retryJob(id!)))
      assert.isTrue(CuckmqError.isJobDefinitionNotDeployed(refused))
      assert.match(refused.message, /not deployed/)
      assert.strictEqual((yield* admin.use((x) => x.getJob(id!))).state, "failed")
      const skipped = yield* admin.use((x) => x.retryJobs({ definition: "gone-g" }))
      assert.strictEqual(skipped.count, 0)
      const stats = yield* admin.use((x) => x.statistics)
      assert.deepInclude(stats.definitions.find((d) => d.definition === "gone-g")!, { deployed: false })
    }))
  })

  test("cancel by filter racing claims: every job ends up claimed or cancelled, never both, none lost", () => {
    const Z = makeDef("race-z", "race")
    return withAdmin([Z], Effect.gen(function*() {
      const ids = yield* Z.enqueueMany(Array.from({ length: 200 }, (_, i) => ({ payload: { i } })))
      const store = Engine.get(yield* Cuckmq.Cuckmq).store
      const workerId = crypto.randomUUID()
      yield* store.registerWorker({ id: workerId, name: "racer", hostname: "test", pid: 1, channels: ["race"], leaseSecs: 3600, sessionKey: undefined })
      const claimed: Array<string> = []
      const cancelled: Array<string> = []
      const claimer = Effect.gen(function*() {
        while (true) {
          const r = yield* store.claim({ workerId, channels: ["race"], excludeNames: [], limit: 7, priorityAgingSecs: 60 })
          claimed.push(...r.jobs.map((j) => j.id))
          if (r.jobs.length === 0) return
          yield* Effect.yieldNow
        }
      })
      const canceller = Effect.gen(function*() {
        while (true) {
          const r = yield* admin.use((x) => x.cancelJobs({ definition: "race-z", limit: 9 }))
          cancelled.push(...r.jobIds)
          if (r.count === 0 && !r.more) return
          yield* Effect.yieldNow
        }
      })
      yield* Effect.all([claimer, canceller, claimer], { concurrency: "unbounded" })
      const both = claimed.filter((id) => cancelled.includes(id))
      assert.deepStrictEqual(both, [])
      assert.strictEqual(new Set(claimed).size, claimed.length)
      assert.strictEqual(new Set(cancelled).size, cancelled.length)
      assert.sameMembers([...claimed, ...cancelled], [...ids])
      assert.isAbove(cancelled.length, 0)
      // and the store agrees: the claimed ones are running, the cancelled ones failed
      const running = yield* admin.use((x) => x.listJobs({ definition: "race-z", state: "running", limit: 1000 }))
      assert.sameMembers(running.jobs.map((j) => j.id), claimed)
      const failed = yield* admin.use((x) => x.listJobs({ definition: "race-z", state: "failed", limit: 1000 }))
      assert.sameMembers(failed.jobs.map((j) => j.id), cancelled)
    }))
  })

  test("cancel, delete, run now: effects, events and refusals (a running job is never touched)", () => {
    const K = makeDef("act-k", "act")
    return withAdmin([K], Effect.gen(function*() {
      const [due1, due2, due3] = yield* K.enqueueMany([0, 1, 2].map((i) => ({ payload: { i } })))
      const [later1, later2] = yield* K.enqueueMany([3, 4].map((i) => ({ payload: { i }, delaySecs: 3600 })))
      const { job: running, workerId } = yield* claimOne("act")
      assert.strictEqual(running.id, due1)

      // running: refused by every action
      for (const action of ["cancelJob", "deleteJob", "retryJob", "runJobNow"] as const) {
        const refused = yield* failureOf(admin.use((x) => x[action](due1!)))
        assert.isTrue(CuckmqError.isJobActionRefused(refused), action)
        assert.strictEqual((refused as CuckmqError.JobActionRefused).state, "running")
      }
      const cancelRunning = yield* failureOf(admin.use((x) => x.cancelJob(due1!)))
      assert.match(cancelRunning.message, /not supported yet/)

      // cancel a waiting job: finalized as failed, with a Cancelled error
      const cancelEvents = yield* nextEvents("ADMIN_JOB_CANCEL", 1)
      yield* admin.use((x) => x.cancelJob(due2!))
      assert.deepStrictEqual((yield* cancelEvents).map((e) => (e as CuckmqEvent.AdminJobCancel).jobIds), [[due2!]])
      const cancelled = yield* admin.use((x) => x.getJob(due2!))
      assert.strictEqual(cancelled.state, "failed")
      assert.strictEqual((cancelled.lastError as { _tag: string })._tag, "Cancelled")
      const twice = yield* failureOf(admin.use((x) => x.cancelJob(due2!)))
      assert.deepInclude(twice, { state: "failed" })

      // run now: a delayed job becomes due; a due one is refused
      const runEvents = yield* nextEvents("ADMIN_JOB_RUN_NOW", 1)
      yield* admin.use((x) => x.runJobNow(later1!))
      yield* runEvents
      assert.strictEqual((yield* admin.use((x) => x.getJob(later1!))).state, "waiting")
      const dueAlready = yield* failureOf(admin.use((x) => x.runJobNow(due3!)))
      assert.deepInclude(dueAlready, { state: "waiting", action: "runNow" })
      const byFilter = yield* admin.use((x) => x.runJobsNow({ definition: "act-k" }))
      assert.deepStrictEqual(byFilter.jobIds, [later2!])

      // delete: waiting and finalized jobs go; the running one stays
      const deleteEvents = yield* nextEvents("ADMIN_JOB_DELETE", 1)
      yield* admin.use((x) => x.deleteJob(due2!)) // finalized (cancelled)
      yield* deleteEvents
      assert.isTrue(CuckmqError.isJobNotFound(yield* failureOf(admin.use((x) => x.getJob(due2!)))))
      const deleted = yield* admin.use((x) => x.deleteJobs({ definition: "act-k" }))
      assert.sameMembers([...deleted.jobIds], [due3!, later1!, later2!])
      assert.strictEqual((yield* admin.use((x) => x.getJob(due1!))).state, "running")

      // workers: the fake worker, holding one job
      const workers = yield* admin.use((x) => x.workers)
      const mine = workers.find((w) => w.id === workerId)!
      assert.deepInclude(mine, { name: "fake", inFlight: 1, alive: true })
      assert.deepStrictEqual(mine.channels, ["act"])
    }))
  })

  test("pause and resume: a known channel only; purge finalized jobs", () => {
    const S = makeDef("pause-s", "pausable")
    return withAdmin([S], Effect.gen(function*() {
      const unknown = yield* failureOf(admin.use((x) => x.pauseChannel("no-such-channel")))
      assert.isTrue(CuckmqError.isChannelNotFound(unknown))
      assert.match(unknown.message, /Unknown channel "no-such-channel"/)
      const updates = yield* nextEvents("CHANNEL_UPDATE", 2)
      const paused = yield* admin.use((x) => x.pauseChannel("pausable"))
      assert.isTrue(paused.paused)
      const channels = yield* admin.use((x) => x.channels)
      assert.deepInclude(channels.find((c) => c.channel === "pausable")!, { paused: true })
      // paused: a drain runs nothing of it
      yield* S.enqueue({ i: 0 })
      yield* backend.drain
      const stats = yield* admin.use((x) => x.statistics)
      const p = stats.channels.find((c) => c.channel === "pausable")!
      assert.deepStrictEqual([p.paused, p.waiting.value], [true, 1])
      yield* admin.use((x) => x.resumeChannel("pausable"))
      assert.deepStrictEqual((yield* updates).map((e) => (e as CuckmqEvent.ChannelUpdate).paused), [true, false])
      yield* backend.drain
      assert.strictEqual((yield* admin.use((x) => x.statistics)).channels.find((c) => c.channel === "pausable")!.lastHour.succeeded, 1)

      // purge: the finalized job goes (older than 0 seconds); nothing is older than a day
      const none = yield* admin.use((x) => x.purge({ olderThan: "1 day" }))
      assert.strictEqual(none.count, 0)
      if (backend.name === "memory") yield* TestClock.adjust(Duration.seconds(1))
      else yield* Effect.sleep(Duration.millis(10))
      const purgeEvents = yield* nextEvents("ADMIN_JOB_PURGE", 1)
      const purged = yield* admin.use((x) => x.purge({ olderThan: 0, state: "succeeded" }))
      assert.deepStrictEqual([purged.count, purged.more], [1, false])
      yield* purgeEvents
      const bad = yield* failureOf(admin.use((x) => x.purge({ olderThan: "soon" as never })))
      assert.isTrue(CuckmqError.isInvalidOptions(bad))
    }))
  })

  test("retry by filter is not stuck behind more than `limit` failed jobs whose definition is gone", () => {
    const G = makeDef("stuck-g", "stuck-gone")
    const H = makeDef("stuck-h", "stuck")
    return withAdmin([G, H], Effect.gen(function*() {
      // the lowest ids belong to the definition that goes away: more of them than the batch's limit
      yield* G.enqueueMany([0, 1, 2].map((i) => ({ payload: { i, fail: true } })))
      const deployed = yield* H.enqueueMany([0, 1].map((i) => ({ payload: { i, fail: true } })))
      yield* backend.drain
      yield* undeploy("stuck-g")
      const first = yield* admin.use((x) => x.retryJobs({ limit: 2 }))
      assert.sameMembers([...first.jobIds], [...deployed])
      const second = yield* admin.use((x) => x.retryJobs({ limit: 2 }))
      assert.deepStrictEqual(second, { jobIds: [], count: 0, more: false })
      // the undeployed definition's jobs are still failed, untouched
      const left = yield* admin.use((x) => x.listJobs({ definition: "stuck-g", state: "failed" }))
      assert.strictEqual(left.jobs.length, 3)
    }))
  })

  test("retry keeps the definition's priority", () => {
    const P = JobDefinition.make({
      name: "prio-p",
      channel: "prio",
      payload: Payload,
      numAttempts: 1,
      priority: 7,
      handler: () => Effect.fail(new Error("always"))
    })
    return withAdmin([P], Effect.gen(function*() {
      const [id] = yield* P.enqueueMany([{ payload: { i: 0 } }])
      yield* backend.drain
      assert.strictEqual((yield* admin.use((x) => x.getJob(id!))).state, "failed")
      yield* admin.use((x) => x.retryJob(id!))
      const back = yield* admin.use((x) => x.getJob(id!))
      assert.deepStrictEqual([back.state, back.priority], ["waiting", 7])
    }))
  })

  test("job groups: cancel and delete promote the next held job; a retried job waits behind its busy group; run now refuses a held job", () => {
    const T = makeDef("group-t", "grouped")
    return withAdmin([T], Effect.gen(function*() {
      const [a, b, c] = yield* T.enqueueMany([0, 1, 2].map((i) => ({ payload: { i }, jobGroup: "tenant" })))
      const state = (id: string) => Effect.map(admin.use((x) => x.getJob(id)), (j) => j.state)
      assert.deepStrictEqual([yield* state(a!), yield* state(b!), yield* state(c!)], ["waiting", "held", "held"])
      // run now applies to delayed jobs: a held one is refused, with why
      const heldRefused = yield* failureOf(admin.use((x) => x.runJobNow(b!)))
      assert.deepInclude(heldRefused, { action: "runNow", state: "held" })
      assert.match(heldRefused.message, /held behind its full job group/)
      // cancelling the group's claimable job frees its slot: the next one becomes claimable
      yield* admin.use((x) => x.cancelJob(a!))
      assert.deepStrictEqual([yield* state(b!), yield* state(c!)], ["waiting", "held"])
      // deleting it does the same
      yield* admin.use((x) => x.deleteJob(b!))
      assert.strictEqual(yield* state(c!), "waiting")

      // a failed job of a group whose slot is taken by a running job: retried, it is held behind it
      const [failing] = yield* T.enqueueMany([{ payload: { i: 3, fail: true }, jobGroup: "busy" }])
      yield* admin.use((x) => x.cancelJob(c!))
      yield* backend.drain
      assert.strictEqual(yield* state(failing!), "failed")
      const [busy] = yield* T.enqueueMany([{ payload: { i: 4 }, jobGroup: "busy" }])
      const { job } = yield* claimOne("grouped")
      assert.strictEqual(job.id, busy)
      yield* admin.use((x) => x.retryJob(failing!))
      assert.strictEqual(yield* state(failing!), "held")
      // cancelling the running job is refused, and the held one stays held
      assert.isTrue(CuckmqError.isJobActionRefused(yield* failureOf(admin.use((x) => x.cancelJob(busy!)))))
      assert.strictEqual(yield* state(failing!), "held")
    }))
  })

  test("a second admin layer on a context does not count its outcomes twice", () => {
    const X = makeDef("once-x", "once")
    return withAdmin([X], Effect.gen(function*() {
      const succeeded = Effect.map(admin.use((x) => x.statistics), (s) => s.definitions.find((d) => d.definition === "once-x")?.lastHour.succeeded ?? 0)
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Effect.all([Layer.build(backend.secondAdmin), Layer.build(backend.secondAdmin)], { concurrency: "unbounded" })
        yield* X.enqueueMany([0, 1].map((i) => ({ payload: { i } })))
        yield* backend.drain
        assert.strictEqual(yield* succeeded, 2)
      }))
      // the second layers are gone (their scope closed); the context still counts, once
      yield* X.enqueue({ i: 2 })
      yield* backend.drain
      assert.strictEqual(yield* succeeded, 3)
    }))
  })

  test("a worker in a context without any admin layer is counted: an admin in another context sees its outcomes", () =>
    backend.withoutAdmin([Outcome], ({ closeWorker, reader, worker }) =>
      Effect.gen(function*() {
        const lastHour = admin.use((a) => a.statistics).pipe(
          Effect.map((s) => {
            const h = s.definitions.find((d) => d.definition === "outcome")?.lastHour
            return { succeeded: h?.succeeded ?? 0, failed: h?.failed ?? 0, errored: h?.errored ?? 0 }
          }),
          Effect.provide(reader)
        )
        const batch = (from: number, n: number) =>
          Outcome.enqueueMany(Array.from({ length: n }, (_, i) => ({ payload: { i: from + i, mode: modeOf(i) } }))).pipe(
            Effect.provide(worker)
          )
        // a known mix, run by the worker context: 10 jobs, 8 succeed (2 of them at their second attempt), 2 fail twice
        yield* batch(0, 10)
        yield* backend.runAll.pipe(Effect.provide(worker))
        if (backend.name === "memory") {
          // not flushed yet: what the reader sees is what the worker's context flushed, nothing shared in memory
          assert.deepStrictEqual(yield* lastHour, { succeeded: 0, failed: 0, errored: 0 })
        }
        // the periodic flush (the reader's statistics flush only the reader's own counters)
        yield* backend.flushIntervalPasses
        yield* waitUntil("the worker context flushed", Effect.map(lastHour, (h) => h.succeeded + h.failed === 10))
        assert.deepStrictEqual(yield* lastHour, expected(10))
        const stats = yield* admin.use((a) => a.statistics).pipe(Effect.provide(reader))
        const outcomes = stats.channels.find((c) => c.channel === "outcomes")!
        assert.deepStrictEqual([outcomes.lastHour.succeeded, outcomes.lastHour.failed, outcomes.lastHour.errored], [8, 2, 6])
        assert.isDefined(outcomes.lastHour.meanRunMs)

        // the last flush, when the context is released: another batch, then close it at once
        yield* batch(10, 5)
        yield* backend.runAll.pipe(Effect.provide(worker))
        yield* closeWorker
        const total = expected(10)
        const more = expected(5)
        assert.deepStrictEqual(yield* lastHour, {
          succeeded: total.succeeded + more.succeeded,
          failed: total.failed + more.failed,
          errored: total.errored + more.errored
        })
      })
    ))

  test("statistics: a channel with only jobs of a retired definition is listed; totals of exact parts stay exact", () => {
    const O = makeDef("orphan-o", "orphan-channel")
    const L = makeDef("left-l", "left")
    const R = makeDef("right-r", "right")
    return withAdmin([O, L, R], Effect.gen(function*() {
      yield* O.enqueue({ i: 0 })
      yield* undeploy("orphan-o")
      // 60 + 60 waiting: each channel exact under the cap of 100, and so is their sum beyond it
      yield* L.enqueueMany(Array.from({ length: 60 }, (_, i) => ({ payload: { i } })))
      yield* R.enqueueMany(Array.from({ length: 60 }, (_, i) => ({ payload: { i } })))
      const stats = yield* admin.use((x) => x.statistics)
      assert.deepStrictEqual(stats.channels.map((c) => c.channel), ["left", "orphan-channel", "right"])
      assert.deepStrictEqual(stats.channels.find((c) => c.channel === "orphan-channel")!.waiting, { value: 1, accuracy: "exact" })
      assert.deepStrictEqual(stats.total.waiting, { value: 121, accuracy: "exact" })
    }))
  })
}

// ---- PostgreSQL ----

const pgBackend: Backend = {
  name: "postgres",
  withAdmin: (definitions, body) =>
    Effect.gen(function*() {
      const schema = uniqueSchema("admin")
      const sql = yield* SqlClient.SqlClient
      yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`))
      const context = yield* Layer.build(
        CuckmqAdmin.layer({ countCap: 100 }).pipe(Layer.provideMerge(Cuckmq.layer({ schema, definitions: definitions as never })))
      )
      return yield* body.pipe(Effect.provide(context))
    }).pipe(Effect.scoped),
  drain: Effect.gen(function*() {
    const stop = yield* startWorker({ concurrency: 4, pollIntervalSecs: 0.1 })
    // until nothing is due or running (delayed jobs stay)
    yield* waitUntil(
      "the due jobs ran",
      Effect.map(admin.use((a) => a.statistics), (s) =>
        s.channels.every((c) => c.paused || (c.waiting.value === 0 && c.running.value === 0)))
    )
    yield* stop
  }).pipe(Effect.scoped),
  secondAdmin: CuckmqAdmin.layer() as never,
  withoutAdmin: (definitions, body) =>
    Effect.gen(function*() {
      const schema = uniqueSchema("admin_noadmin")
      const sql = yield* SqlClient.SqlClient
      yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`))
      const workerScope = yield* Scope.make()
      yield* Effect.addFinalizer(() => Scope.close(workerScope, Exit.void))
      const worker = yield* Layer.buildWithScope(Cuckmq.layer({ schema, definitions: definitions as never }), workerScope)
      const reader = yield* Layer.build(
        CuckmqAdmin.layer({ countCap: 100 }).pipe(Layer.provideMerge(Cuckmq.layer({ schema, migrate: false })))
      )
      return yield* body({ worker, closeWorker: Scope.close(workerScope, Exit.void), reader })
    }).pipe(Effect.scoped),
  runAll: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const schema = (yield* Cuckmq.Cuckmq).schema
    const stop = yield* startWorker({ concurrency: 4, pollIntervalSecs: 0.1 })
    // every job finalized: the live table is empty (a retried job stays in it, delayed)
    yield* waitUntil("every job ended", Effect.map(count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql(`${schema}.job`)}`), (n) => n === 0))
    yield* stop
  }).pipe(Effect.scoped),
  flushIntervalPasses: Effect.void
}

describe("CuckmqAdmin counters across processes (PostgreSQL)", () => {
  // the test's client (4) and one context (its store pool sized from it, and a session), plus two child processes
  layer(PgTest({ maxConnections: 4 }), { excludeTestServices: true })((it) => {
    it.effect("two worker processes with no admin layer flush rows of their own; an admin in a third context sums them", () =>
      Effect.gen(function*() {
        const schema = uniqueSchema("admin_processes")
        const sql = yield* SqlClient.SqlClient
        yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`))
        // the third context: the admin (and enqueue), no worker of its own
        const reader = yield* Layer.build(
          CuckmqAdmin.layer().pipe(Layer.provideMerge(Cuckmq.layer({ schema, definitions: [Outcome] })))
        )
        const lastHour = admin.use((a) => a.statistics).pipe(
          Effect.map((s) => {
            const h = s.definitions.find((d) => d.definition === "outcome")?.lastHour
            return { succeeded: h?.succeeded ?? 0, failed: h?.failed ?? 0, errored: h?.errored ?? 0 }
          }),
          Effect.provide(reader)
        )
        const live = count(sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql(`${schema}.job`)}`)
        const batch = (from: number) =>
          Outcome.enqueueMany(Array.from({ length: 10 }, (_, i) => ({ payload: { i: from + i, mode: modeOf(i) } }))).pipe(
            Effect.provide(reader)
          )
        const env = { DATABASE_URL: databaseUrl(), CUCKMQ_SCHEMA: schema }

        // the first process runs a batch and, still running, flushes it within its interval
        const first = yield* spawnFixture("outcome-worker.ts", env)
        yield* first.ready
        yield* batch(0)
        yield* waitUntil("the first process's outcomes are flushed", Effect.map(lastHour, (h) => h.succeeded + h.failed === 10))
        assert.deepStrictEqual(yield* lastHour, expected(10))
        yield* first.kill("SIGTERM")
        yield* first.exited

        // the second runs the next batch and is stopped as soon as the jobs ended: its last flush, on the way out
        const second = yield* spawnFixture("outcome-worker.ts", env)
        yield* second.ready
        yield* batch(10)
        yield* waitUntil("the second batch ended", Effect.map(live, (n) => n === 0))
        yield* second.kill("SIGTERM")
        const code = yield* second.exited
        assert.isTrue(code === 0 || code === 130 || code === 143, `exit code ${code}: ${second.output()}`)
        const one = expected(10)
        assert.deepStrictEqual(yield* lastHour, { succeeded: 2 * one.succeeded, failed: 2 * one.failed, errored: 2 * one.errored })

        // rows of their own: one set per process that ran jobs, none shared; the reader wrote none
        const rows = yield* sql<{ processes: string; ran: string }>`
          SELECT count(DISTINCT process_id)::text AS processes, sum(succeeded + failed)::text AS ran
          FROM ${sql(`${schema}.stats_minute`)}`
        assert.strictEqual(rows[0]!.ran, "20")
        assert.strictEqual(rows[0]!.processes, "2")
      }).pipe(Effect.scoped), 90_000)
  })
})

describe("CuckmqAdmin on PostgreSQL: statements", () => {
  // the test's client (6: one held by a transaction), the context's store pool (6) and its session
  layer(PgTest({ maxConnections: 6 }), { excludeTestServices: true })((it) => {
    it.effect("cancel by filter re-checks the requested state on the row's newest version: a delayed job made due meanwhile is left alone", () => {
      const K = makeDef("recheck-k", "recheck")
      return pgBackend.withAdmin([K], Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const schema = (yield* Cuckmq.Cuckmq).schema
        const [id] = yield* K.enqueueMany([{ payload: { i: 0 }, delaySecs: 3600 }])
        // another transaction makes it due and holds the row until told
        const locked = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const mover = yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`UPDATE ${sql(`${schema}.job`)} SET run_at = now() - interval '1 second', sort_at = now() - interval '1 second'
            WHERE id = ${id!}`
          yield* Deferred.succeed(locked, undefined)
          yield* Deferred.await(release)
        })).pipe(Effect.forkChild)
        yield* Deferred.await(locked)
        // the cancel's snapshot still sees it delayed: it picks it, and its DELETE waits for the row
        const cancel = yield* admin.use((x) => x.cancelJobs({ state: "delayed", definition: "recheck-k" })).pipe(Effect.forkChild)
        yield* waitUntil(
          "the cancel waits for the row lock",
          Effect.map(
            sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
              WHERE wait_event_type = 'Lock' AND query LIKE ${`%${schema}%DELETE FROM%`}`,
            (rows) => rows[0]!.n > 0
          )
        )
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(mover)
        const result = yield* Fiber.join(cancel)
        // re-checked on the committed version: due now, so not a delayed job any more
        assert.deepStrictEqual(result, { jobIds: [], count: 0, more: false })
        assert.strictEqual((yield* admin.use((x) => x.getJob(id!))).state, "waiting")
      }))
    }, 60_000)

    it.effect("a refresh counts at most cap + 1 ready entries per channel and state, however many priority levels", () => {
      const L = makeDef("levels-l", "levels")
      return pgBackend.withAdmin([L], Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const schema = (yield* Cuckmq.Cuckmq).schema
        for (const priority of [-1, 0, 1]) {
          yield* L.enqueueMany(Array.from({ length: 60 }, (_, i) => ({ payload: { i }, priority })))
        }
        const stats = yield* admin.use((x) => x.statistics)
        assert.deepStrictEqual(stats.channels.find((c) => c.channel === "levels")!.waiting, { value: 100, accuracy: "atLeast" })
        // the statement itself: three levels, and one budget of cap + 1 = 101 shared by them (not 101 each)
        const rows = yield* sql.unsafe<{ p: number; due_n: string }>(PgAdmin.refreshStatements(schema).channelCountsSql, [["levels"], 101, []])
        assert.deepStrictEqual(rows.map((r) => Number(r.p)), [-1, 0, 1])
        assert.deepStrictEqual(rows.map((r) => Number(r.due_n)), [60, 41, 0])
      }))
    }, 60_000)
  })
})

// ---- memory ----

const memoryBackend: Backend = {
  name: "memory",
  withAdmin: (definitions, body) =>
    Effect.gen(function*() {
      const context = yield* Layer.build(
        CuckmqAdmin.layerMemory({ countCap: 100 }).pipe(Layer.provideMerge(CuckmqTest.layer({ definitions: definitions as never })))
      )
      return yield* body.pipe(Effect.provide(context))
    }).pipe(Effect.scoped),
  drain: Effect.gen(function*() {
    const test = yield* CuckmqTest
    yield* test.drain
  }) as never,
  secondAdmin: CuckmqAdmin.layerMemory() as never,
  withoutAdmin: (definitions, body) =>
    Effect.gen(function*() {
      const workerScope = yield* Scope.make()
      yield* Effect.addFinalizer(() => Scope.close(workerScope, Exit.void))
      const worker = yield* Layer.buildWithScope(CuckmqTest.layer({ definitions: definitions as never }), workerScope)
      // a second context on the same memory store: what another process on the same database would be
      const store = Engine.get(Context.get(worker, Cuckmq.Cuckmq)).store
      const reader = yield* Layer.build(
        CuckmqAdmin.layerMemory({ countCap: 100 }).pipe(
          Layer.provideMerge(Cuckmq.layerStore({})),
          Layer.provide(Layer.succeed(JobStore, store))
        )
      )
      return yield* body({ worker: worker as Context.Context<Cuckmq.Cuckmq>, closeWorker: Scope.close(workerScope, Exit.void), reader })
    }).pipe(Effect.scoped),
  runAll: Effect.gen(function*() {
    const test = yield* CuckmqTest
    // retries are due timeoutSecs (0.2 s) after their failed attempt
    for (let round = 0; round < 10; round++) {
      yield* test.drain
      if ((yield* test.jobs).waiting.length === 0) return
      yield* TestClock.adjust("1 second")
    }
    assert.fail("jobs left after 10 rounds")
  }) as never,
  flushIntervalPasses: TestClock.adjust("5 seconds")
}

describe("CuckmqAdmin on PostgreSQL", () => {
  // the test's client (6), the context's store pool (6) and its session: under 15 connections
  layer(PgTest({ maxConnections: 6 }), { excludeTestServices: true })((it) => {
    suite(pgBackend, (name, body) => it.effect(name, body as never, 60_000))
  })
})

describe("CuckmqAdmin on the memory backend", () => {
  suite(memoryBackend, (name, body) => it.effect(name, body as never))
})

describe("the outcome counters' flush", () => {
  /** A store whose `recordOutcomes` fails while `failing` says so (with `sqlState`), and keeps what it got. */
  const flakyStore = (failing: { on: boolean; sqlState?: string }) => {
    const received: Array<ReadonlyArray<OutcomeCounts>> = []
    const store = {
      recordOutcomes: (_processId: string, counts: ReadonlyArray<OutcomeCounts>) =>
        Effect.suspend(() => {
          if (failing.on) {
            return Effect.fail(new StorageError({ operation: "record outcomes", message: "down", sqlState: failing.sqlState, cause: undefined }))
          }
          received.push(counts)
          return Effect.void
        })
    } as unknown as JobStore["Service"]
    const totals = () => {
      const t = { succeeded: 0, failed: 0, errored: 0, attempts: 0, rows: 0 }
      for (const batch of received) {
        for (const c of batch) {
          t.succeeded += c.succeeded
          t.failed += c.failed
          t.errored += c.errored
          t.attempts += c.attempts
          t.rows++
        }
      }
      return t
    }
    return { store, received, totals }
  }

  it.effect("a failed flush keeps its counts for the next one: nothing lost, nothing sent twice; one delta per definition and minute", () =>
    Effect.gen(function*() {
      const failing = { on: true }
      const { received, store, totals } = flakyStore(failing)
      const outcomes = yield* Outcomes.make(store, () => "c")
      const t0 = 120_000
      outcomes.succeeded("a", 5, t0)
      outcomes.errored("a", 5, false, t0 + 1)
      outcomes.errored("a", 5, true, t0 + 2)
      outcomes.succeeded("a", 5, t0 + 60_000) // the next minute
      outcomes.succeeded("a", 5, t0 + 3) // a late one for the first minute: merged into its delta
      outcomes.failed("b", t0)
      assert.isTrue(Exit.isFailure(yield* Effect.exit(outcomes.flush)))
      outcomes.succeeded("a", 5, t0 + 4) // counted while the store is down
      failing.on = false
      yield* outcomes.flush
      assert.strictEqual(received.length, 1)
      assert.deepStrictEqual(totals(), { succeeded: 4, failed: 2, errored: 2, attempts: 6, rows: 3 })
      // nothing left: another flush sends nothing
      yield* outcomes.flush
      assert.strictEqual(received.length, 1)
    }))

  it.effect("the flusher writes a few seconds after the first count, never while idle, and once more on close; a missing table warns once", () =>
    Effect.gen(function*() {
      const failing = { on: false, sqlState: "42P01" }
      const { received, store, totals } = flakyStore(failing)
      const warnings: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel === "Warn") warnings.push(String(Array.isArray(message) ? message[0] : message))
      })
      const scope = yield* Scope.make()
      const outcomes = yield* Outcomes.make(store, () => "c")
      yield* Outcomes.flusher(outcomes).pipe(Scope.provide(scope), Effect.provide(Logger.layer([logger])))
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(received.length, 0, "idle: no write")
      outcomes.succeeded("a", 1, yield* Clock.currentTimeMillis)
      yield* TestClock.adjust("4 seconds")
      assert.strictEqual(received.length, 0)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(received.length, 1)
      // the table is missing: one warning, then quiet retries every interval; the counts are kept
      failing.on = true
      outcomes.succeeded("a", 1, yield* Clock.currentTimeMillis)
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual(warnings.filter((w) => w.includes("cannot be written")).length, 1)
      assert.strictEqual(received.length, 1)
      failing.on = false
      outcomes.succeeded("a", 1, yield* Clock.currentTimeMillis)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(totals().succeeded, 3)
    }))
})

