/**
 * The storage contract's conformance suite, written once and run against every backend
 * (test/conformance-postgres.test.ts, test/conformance-memory.test.ts). It calls the JobStore directly.
 * `advance(secs)` moves time: `TestClock.adjust` for the memory store, a real sleep for PostgreSQL.
 */
import { randomUUID } from "node:crypto"
import { assert, type Vitest } from "@effect/vitest"
import { Effect, Option, type Scope } from "effect"
import * as Definition from "../../src/internal/definition.js"
import { JobStore } from "../../src/JobStore.js"
import type * as Store from "../../src/JobStore.js"

type Tester = Vitest.Test<JobStore | Scope.Scope>

/** Each definition publishes on its own channel (its name): tests share one store but never each other's jobs. */
const def = (name: string, extra: Partial<Store.DefinitionRecord> = {}): Store.DefinitionRecord => ({
  name,
  channel: name,
  numAttempts: 1,
  timeoutSecs: 0.3,
  repeat: undefined,
  firstDue: undefined,
  ...extra
})

const newJob = (payload: unknown, extra: Partial<Store.NewJob> = {}): Store.NewJob => ({
  payloadJson: JSON.stringify(payload),
  delaySecs: 0,
  jobGroup: undefined,
  traceId: undefined,
  spanId: undefined,
  ...extra
})

const worker = (leaseSecs = 60) => {
  const id = randomUUID()
  return { id, name: "w", hostname: "h", pid: 1, channels: ["_default"], leaseSecs }
}

const state = (store: JobStore["Service"], id: string) =>
  Effect.map(store.getJob(id), (j) => Option.getOrThrow(j))

const noCommit = () => Effect.void

/** Registers the suite's tests with `it` (inside a `layer(...)` that provides JobStore). */
export const conformance = (
  it: { readonly effect: Tester },
  advance: (secs: number) => Effect.Effect<void>,
  prefix: string
) => {
  const n = (name: string) => `${prefix}-${name}` // definitions are per-test, so tests share one store

  it.effect("enqueue stores jobs with the definition's settings; an undeployed definition is refused", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("a"), { numAttempts: 3, channel: "c1" })])
      let committed: ReadonlyArray<string> = []
      const ids = yield* store.enqueue(n("a"), [newJob({ x: 1 }), newJob({ x: 2 }, { jobGroup: "g" })], (ids) =>
        Effect.sync(() => {
          committed = ids
        }))
      assert.deepStrictEqual(committed, ids)
      assert.isTrue(Number(ids[1]) > Number(ids[0]))
      const job = yield* state(store, ids[1]!)
      assert.deepInclude(job, { name: n("a"), channel: "c1", jobGroup: "g", state: "waiting", attempts: 0, maxAttempts: 3 })
      assert.deepStrictEqual(job.payload, { x: 2 })
      const error = yield* Effect.flip(store.enqueue(n("missing"), [newJob({})], noCommit))
      assert.strictEqual(error._tag, "JobDefinitionNotDeployed")
      assert.isTrue(Option.isNone(yield* store.getJob("999999999")))
    }))

  it.effect("claim: in run order, at most `limit`, only the worker's channels, never excluded names, never before run time", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("order")), def(n("other")), def(n("skip"), { channel: n("order") })])
      const w = worker()
      yield* store.registerWorker(w)
      const [later] = yield* store.enqueue(n("order"), [newJob({ i: 0 }, { delaySecs: 0.2 })], noCommit)
      const first = yield* store.enqueue(n("order"), [newJob({ i: 1 }), newJob({ i: 2 }), newJob({ i: 3 })], noCommit)
      yield* store.enqueue(n("other"), [newJob({})], noCommit)
      yield* store.enqueue(n("skip"), [newJob({})], noCommit)
      const request = { workerId: w.id, channels: [n("order")], excludeNames: [n("skip")], limit: 2 }
      const a = yield* store.claim(request)
      assert.deepStrictEqual(a.map((j) => j.id), first.slice(0, 2))
      assert.isTrue(a.every((j) => j.attempt === 1))
      const b = yield* store.claim(request)
      assert.deepStrictEqual(b.map((j) => j.id), [first[2]])
      assert.deepStrictEqual(yield* store.claim(request), []) // `later` is not due, `skip` excluded
      yield* advance(0.25)
      const c = yield* store.claim(request)
      assert.deepStrictEqual(c.map((j) => j.id), [later])
      assert.strictEqual((yield* state(store, later!)).state, "running")
      yield* store.settle(w.id, [...a, ...b, ...c].map((j) => ({ id: j.id, attempt: j.attempt, outcome: "Succeeded" as const })))
    }))

  it.effect("claim needs a live lease: an unregistered or expired worker claims nothing", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("lease"))])
      yield* store.enqueue(n("lease"), [newJob({})], noCommit)
      const ghost = { workerId: randomUUID(), channels: [n("lease")], excludeNames: [], limit: 10 }
      assert.deepStrictEqual(yield* store.claim(ghost), [])
      const w = worker(0.2)
      yield* store.registerWorker(w)
      assert.isTrue(yield* store.heartbeat(w.id, 0.2))
      yield* advance(0.3)
      assert.isFalse(yield* store.heartbeat(w.id, 0.2))
      assert.deepStrictEqual(yield* store.claim({ ...ghost, workerId: w.id }), [])
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("job groups: one job per group per claim, a locked group is skipped, settling releases the lock", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("grp"))])
      const w = worker()
      yield* store.registerWorker(w)
      const g1 = yield* store.enqueue(n("grp"), [1, 2, 3].map((i) => newJob({ i }, { jobGroup: `${prefix}-g1` })), noCommit)
      const g2 = yield* store.enqueue(n("grp"), [1, 2].map((i) => newJob({ i }, { jobGroup: `${prefix}-g2` })), noCommit)
      const free = yield* store.enqueue(n("grp"), [newJob({ free: true })], noCommit)
      const request = { workerId: w.id, channels: [n("grp")], excludeNames: [], limit: 10 }
      const a = yield* store.claim(request)
      assert.deepStrictEqual(a.map((j) => j.id).sort(), [g1[0], g2[0], free[0]].sort())
      assert.deepStrictEqual(yield* store.claim(request), [])
      const other = worker()
      yield* store.registerWorker(other)
      assert.deepStrictEqual(yield* store.claim({ ...request, workerId: other.id }), [])
      const g1Job = a.find((j) => j.id === g1[0])!
      yield* store.settle(w.id, [{ id: g1Job.id, attempt: g1Job.attempt, outcome: "Succeeded" }])
      const b = yield* store.claim({ ...request, workerId: other.id })
      assert.deepStrictEqual(b.map((j) => j.id), [g1[1]])
      yield* store.deregisterWorker(w.id)
      yield* store.deregisterWorker(other.id)
    }))

  it.effect("settle: Succeeded, Retry (available again after timeoutSecs), Expired, Released (attempt refunded)", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("settle"), { numAttempts: 2, timeoutSecs: 0.3 })])
      const w = worker()
      yield* store.registerWorker(w)
      const ids = yield* store.enqueue(n("settle"), [newJob({ i: 1 }), newJob({ i: 2 }), newJob({ i: 3 }), newJob({ i: 4 })], noCommit)
      const request = { workerId: w.id, channels: [n("settle")], excludeNames: [], limit: 4 }
      const claimed = yield* store.claim(request)
      const [s, r, e, x] = claimed
      yield* store.settle(w.id, [
        { id: s!.id, attempt: 1, outcome: "Succeeded" },
        { id: r!.id, attempt: 1, outcome: "Retry", error: { message: "again" } },
        { id: e!.id, attempt: 1, outcome: "Expired", error: { message: "dead" } },
        { id: x!.id, attempt: 1, outcome: "Released" }
      ])
      assert.deepInclude(yield* state(store, ids[0]!), { state: "succeeded", attempts: 1 })
      assert.deepInclude(yield* state(store, ids[1]!), { state: "waiting", attempts: 1, lastError: { message: "again" } })
      assert.deepInclude(yield* state(store, ids[2]!), { state: "failed", attempts: 1, lastError: { message: "dead" } })
      assert.deepInclude(yield* state(store, ids[3]!), { state: "waiting", attempts: 0 })
      // the released job is available now, the retried one only after its timeout
      assert.deepStrictEqual((yield* store.claim(request)).map((j) => j.id), [ids[3]])
      yield* advance(0.35)
      const retried = yield* store.claim(request)
      assert.deepStrictEqual(retried.map((j) => [j.id, j.attempt]), [[ids[1], 2]])
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("settle is fenced: a settlement from another worker or for another attempt changes nothing", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("fence"))])
      const w = worker()
      yield* store.registerWorker(w)
      const [id] = yield* store.enqueue(n("fence"), [newJob({}, { jobGroup: `${prefix}-fence` })], noCommit)
      yield* store.claim({ workerId: w.id, channels: [n("fence")], excludeNames: [], limit: 1 })
      yield* store.settle(randomUUID(), [{ id: id!, attempt: 1, outcome: "Succeeded" }])
      yield* store.settle(w.id, [{ id: id!, attempt: 2, outcome: "Succeeded" }])
      assert.deepInclude(yield* state(store, id!), { state: "running", attempts: 1, workerId: w.id })
      yield* store.deregisterWorker(w.id)
      assert.deepInclude(yield* state(store, id!), { state: "waiting", attempts: 0 })
    }))

  it.effect("rescue: a dead worker's jobs come back after their lease (or are finalized with no attempt left) and its groups unlock", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const channels = [n("rescue")]
      yield* store.deploy([
        def(n("again"), { numAttempts: 2, timeoutSecs: 0.5, channel: n("rescue") }),
        def(n("once"), { numAttempts: 1, channel: n("rescue") })
      ])
      const dead = worker(0.2)
      const live = worker(60)
      yield* store.registerWorker(dead)
      yield* store.registerWorker(live)
      const [again] = yield* store.enqueue(n("again"), [newJob({}, { jobGroup: `${prefix}-dead` })], noCommit)
      const [once] = yield* store.enqueue(n("once"), [newJob({})], noCommit)
      const [kept] = yield* store.enqueue(n("once"), [newJob({})], noCommit)
      const [blocked] = yield* store.enqueue(n("once"), [newJob({}, { jobGroup: `${prefix}-dead` })], noCommit)
      yield* store.claim({ workerId: dead.id, channels, excludeNames: [], limit: 2 })
      yield* store.claim({ workerId: live.id, channels, excludeNames: [], limit: 1 })
      assert.strictEqual((yield* state(store, kept!)).workerId, live.id)
      yield* advance(0.3) // the dead worker's lease expires (the live one's does not)
      const { groups, jobs } = yield* store.rescue(3600)
      assert.deepStrictEqual(
        jobs.map((j) => [j.jobId, j.finalized, j.workerId]).sort(),
        [[again, false, dead.id], [once, true, dead.id]].sort()
      )
      assert.deepStrictEqual(groups.map((g) => [g.jobGroup, g.jobId, g.reason]), [[`${prefix}-dead`, again, "worker-dead"]])
      assert.deepInclude(yield* state(store, once!), { state: "failed" })
      assert.deepInclude(yield* state(store, kept!), { state: "running", workerId: live.id })
      // the group's next job is claimable right away; the rescued job once its timeoutSecs lease passed
      const now = yield* store.claim({ workerId: live.id, channels, excludeNames: [], limit: 5 })
      assert.deepStrictEqual(now.map((j) => j.id), [blocked])
      yield* store.settle(live.id, now.map((j) => ({ id: j.id, attempt: j.attempt, outcome: "Succeeded" as const })))
      yield* advance(0.3)
      const later = yield* store.claim({ workerId: live.id, channels, excludeNames: [], limit: 5 })
      assert.deepStrictEqual(later.map((j) => [j.id, j.attempt]), [[again, 2]])
      assert.deepStrictEqual((yield* store.rescue(3600)).jobs, [])
      yield* store.deregisterWorker(live.id)
    }))

  it.effect("rescue releases a live worker's group lock only past the jobGroupUnlockSecs ceiling", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("ceiling"))])
      const w = worker(60)
      yield* store.registerWorker(w)
      const [id] = yield* store.enqueue(n("ceiling"), [newJob({}, { jobGroup: `${prefix}-ceil` })], noCommit)
      yield* store.claim({ workerId: w.id, channels: [n("ceiling")], excludeNames: [], limit: 1 })
      assert.deepStrictEqual((yield* store.rescue(3600)).groups.filter((g) => g.jobId === id), [])
      yield* advance(0.3)
      const { groups } = yield* store.rescue(0.2)
      assert.deepStrictEqual(groups.filter((g) => g.jobId === id).map((g) => g.reason), ["ceiling"])
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("releaseUnowned gives back what a worker holds but does not know about", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("unowned"))])
      const w = worker()
      yield* store.registerWorker(w)
      const ids = yield* store.enqueue(n("unowned"), [newJob({}), newJob({})], noCommit)
      yield* store.claim({ workerId: w.id, channels: [n("unowned")], excludeNames: [], limit: 2 })
      assert.strictEqual(yield* store.releaseUnowned(w.id, [ids[0]!]), 1)
      assert.deepInclude(yield* state(store, ids[0]!), { state: "running" })
      assert.deepInclude(yield* state(store, ids[1]!), { state: "waiting", attempts: 0 })
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("scheduleDue: a due repeating job is enqueued once per due time; unknown ones are reported", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([
        def(n("every"), { repeat: { _tag: "Every", secs: 0.5 } }),
        def(n("unknown"), { repeat: { _tag: "Every", secs: 0.5 } })
      ])
      const known = new Set([n("every")])
      const first = yield* store.scheduleDue(known, Definition.advance, 100)
      assert.deepStrictEqual(first.scheduled.filter((s) => s.definitionName === n("every")).length, 1)
      assert.include(first.orphans, n("unknown"))
      const again = yield* store.scheduleDue(known, Definition.advance, 100)
      assert.deepStrictEqual(again.scheduled.filter((s) => s.definitionName === n("every")), [])
      assert.isAbove(again.nextDueInSecs!, 0)
      assert.isAtMost(again.nextDueInSecs!, 0.5)
      yield* advance(0.55)
      const third = yield* store.scheduleDue(known, Definition.advance, 100)
      const mine = third.scheduled.filter((s) => s.definitionName === n("every"))
      assert.strictEqual(mine.length, 1)
      assert.strictEqual(mine[0]!.scheduledFor.getTime() - first.scheduled.find((s) => s.definitionName === n("every"))!.scheduledFor.getTime(), 500)
      const job = yield* state(store, mine[0]!.jobId)
      assert.deepInclude(job, { name: n("every"), state: "waiting" })
      assert.deepStrictEqual(job.payload, {})
    }))

  it.effect("retention: deleteFinalized takes only jobs finalized longer ago than asked, in batches", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("ret"))])
      const w = worker()
      yield* store.registerWorker(w)
      const old = yield* store.enqueue(n("ret"), [newJob({}), newJob({}), newJob({})], noCommit)
      const claimed = yield* store.claim({ workerId: w.id, channels: [n("ret")], excludeNames: [], limit: 3 })
      yield* store.settle(w.id, claimed.map((j) => ({ id: j.id, attempt: j.attempt, outcome: "Succeeded" as const })))
      yield* advance(0.4)
      const young = yield* store.enqueue(n("ret"), [newJob({})], noCommit)
      const c2 = yield* store.claim({ workerId: w.id, channels: [n("ret")], excludeNames: [], limit: 1 })
      yield* store.settle(w.id, c2.map((j) => ({ id: j.id, attempt: j.attempt, outcome: "Succeeded" as const })))
      const mine = (rows: ReadonlyArray<{ id: string }>) => rows.map((r) => r.id).filter((id) => [...old, ...young].includes(id))
      const batch1 = yield* store.deleteFinalized(0.3, 2)
      const batch2 = yield* store.deleteFinalized(0.3, 100)
      assert.strictEqual(batch1.length, 2)
      assert.deepStrictEqual([...mine(batch1), ...mine(batch2)].sort(), [...old].sort())
      assert.deepInclude(yield* state(store, young[0]!), { state: "succeeded" })
      // groups: a group row exists once a job of it was claimed; unreferenced and unlocked ones are deleted
      const request = { workerId: w.id, channels: [n("ret")], excludeNames: [], limit: 10 }
      yield* store.enqueue(n("ret"), [newJob({}, { jobGroup: `${prefix}-done` })], noCommit)
      yield* store.enqueue(n("ret"), [newJob({}, { jobGroup: `${prefix}-kept` }), newJob({}, { jobGroup: `${prefix}-kept` })], noCommit)
      yield* store.enqueue(n("ret"), [newJob({}, { jobGroup: `${prefix}-locked` })], noCommit)
      const c3 = yield* store.claim(request) // done, kept (first), locked
      const settleAllBut = c3.filter((j) => j.jobGroup !== `${prefix}-locked`)
      yield* store.settle(w.id, settleAllBut.map((j) => ({ id: j.id, attempt: j.attempt, outcome: "Succeeded" as const })))
      const deleted = (yield* store.deleteUnreferencedGroups(1000)).filter((g) => g.startsWith(prefix))
      assert.deepStrictEqual(deleted, [`${prefix}-done`])
      yield* store.deregisterWorker(w.id)
    }))
}
