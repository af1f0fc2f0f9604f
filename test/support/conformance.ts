/**
 * The storage contract's conformance suite, written once and run against every backend
 * (test/conformance-postgres.test.ts, test/conformance-memory.test.ts). It calls the JobStore directly,
 * sequentially where the semantics are about one call and concurrently (many fibers) where they are about
 * interleavings. `advance(secs)` moves time: `TestClock.adjust` for the memory store, a real sleep for
 * PostgreSQL.
 */
import { randomUUID } from "node:crypto"
import { assert, type Vitest } from "@effect/vitest"
import { Clock, Duration, Effect, Fiber, Option, type Scope, Stream } from "effect"
import * as Definition from "../../src/internal/definition.js"
import { JobStore } from "../../src/JobStore.js"
import type * as Store from "../../src/JobStore.js"
import { uniqueCases } from "./conformance-unique.js"

type Tester = Vitest.Test<JobStore | Scope.Scope>

/** Each definition publishes on its own channel (its name): tests share one store but never each other's jobs. */
export const def = (name: string, extra: Partial<Store.DefinitionRecord> = {}): Store.DefinitionRecord => ({
  name,
  channel: name,
  numAttempts: 1,
  timeoutSecs: 0.3,
  priority: 0,
  repeat: undefined,
  groupConcurrency: 1,
  groupRateLimit: undefined,
  ...extra
})

export const newJob = (payload: unknown, extra: Partial<Store.NewJob> = {}): Store.NewJob => ({
  payloadJson: JSON.stringify(payload),
  delaySecs: 0,
  priority: 0,
  jobGroup: undefined,
  traceId: undefined,
  spanId: undefined,
  ...extra
})

export const worker = (leaseSecs = 60, sessionKey?: number): Store.WorkerRegistration => ({
  id: randomUUID(),
  name: "w",
  hostname: "h",
  pid: 1,
  channels: ["_default"],
  leaseSecs,
  sessionKey
})

export const state = (store: JobStore["Service"], id: string) => Effect.map(store.getJob(id), (j) => Option.getOrThrow(j))

export const noCommit = () => Effect.void

const rescueNow = (overrides: Partial<Store.RescueOptions> = {}): Store.RescueOptions => ({
  jobGroupUnlockSecs: 3600,
  sessionGraceSecs: 3600,
  limit: 1000,
  minIntervalSecs: 0,
  ...overrides
})

export const settled = (
  jobs: ReadonlyArray<Store.ClaimedJob>,
  outcome: Store.Settlement["outcome"] = "Succeeded"
): ReadonlyArray<Store.Settlement> => jobs.map((j) => ({ id: j.id, claim: j.claim, outcome }))

export const ids = (jobs: ReadonlyArray<Store.ClaimedJob>) => jobs.map((j) => j.id)

/** Registers the suite's tests with `it` (inside a `layer(...)` that provides JobStore). */
export const conformance = (
  it: { readonly effect: Tester },
  advance: (secs: number) => Effect.Effect<void>,
  prefix: string
) => {
  const n = (name: string) => `${prefix}-${name}` // definitions are per-test, so tests share one store
  const claimOf = (workerId: string, channel: string, limit = 10, extra: Partial<Store.ClaimRequest> = {}) =>
    Effect.flatMap(JobStore, (store) => store.claim({ workerId, channels: [channel], excludeNames: [], limit, priorityAgingSecs: 60, ...extra }))

  it.effect("enqueue stores jobs with the definition's settings; an undeployed definition is refused", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("a"), { numAttempts: 3, channel: "c1" })], Definition.firstDue)
      let committed: ReadonlyArray<string> = []
      const ids = yield* store.enqueue(n("a"), [newJob({ x: 1 }), newJob({ x: 2 }, { jobGroup: "g" })], (ids) =>
        Effect.sync(() => {
          committed = ids
        }))
      assert.deepStrictEqual(committed, ids)
      assert.isTrue(Number(ids[1]) > Number(ids[0]))
      const job = yield* state(store, ids[1]!)
      assert.deepInclude(job, {
        name: n("a"),
        channel: "c1",
        jobGroup: "g",
        state: "waiting",
        attempts: 0,
        maxAttempts: 3,
        claims: 0,
        crashes: 0,
        held: false
      })
      assert.deepStrictEqual(job.payload, { x: 2 })
      const error = yield* Effect.flip(store.enqueue(n("missing"), [newJob({})], noCommit))
      assert.strictEqual(error._tag, "JobDefinitionNotDeployed")
      assert.isTrue(Option.isNone(yield* store.getJob("999999999")))
    }))

  it.effect("claim: in claim order, at most `limit`, only the worker's channels, never excluded names, never before run time", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("order")), def(n("other")), def(n("skip"), { channel: n("order") })], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const [later] = yield* store.enqueue(n("order"), [newJob({ i: 0 }, { delaySecs: 1 })], noCommit)
      const first = yield* store.enqueue(n("order"), [newJob({ i: 1 }), newJob({ i: 2 }), newJob({ i: 3 })], noCommit)
      yield* store.enqueue(n("other"), [newJob({})], noCommit)
      yield* store.enqueue(n("skip"), [newJob({})], noCommit)
      const request = { workerId: w.id, channels: [n("order")], excludeNames: [n("skip")], limit: 2, priorityAgingSecs: 60 }
      const a = (yield* store.claim(request)).jobs
      assert.deepStrictEqual(ids(a), first.slice(0, 2))
      assert.isTrue(a.every((j) => j.attempt === 1 && j.claim === 1 && j.crashes === 0))
      const b = (yield* store.claim(request)).jobs
      assert.deepStrictEqual(ids(b), [first[2]])
      assert.deepStrictEqual((yield* store.claim(request)).jobs, []) // `later` is not due, `skip` excluded
      yield* advance(1.05)
      const c = (yield* store.claim(request)).jobs
      assert.deepStrictEqual(ids(c), [later])
      // claiming does not spend an attempt: only a recorded start does
      assert.deepInclude(yield* state(store, later!), { state: "running", attempts: 0, claims: 1 })
      yield* store.settle(w.id, settled([...a, ...b, ...c]))
      assert.deepInclude(yield* state(store, later!), { state: "succeeded", attempts: 1 })
    }))

  it.effect("claim across channels merges them in claim order", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("x")), def(n("y"))], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const order: Array<string> = []
      for (let i = 0; i < 6; i++) {
        const [id] = yield* store.enqueue(i % 2 === 0 ? n("x") : n("y"), [newJob({ i })], noCommit)
        order.push(id!)
        yield* advance(0.002)
      }
      for (let i = 0; i < 6; i++) {
        const [id] = yield* store.enqueue(i % 2 === 0 ? n("x") : n("y"), [newJob({ i }, { priority: i === 5 ? 1 : 0 })], noCommit)
        order.push(id!)
        yield* advance(0.002)
      }
      const request = { workerId: w.id, channels: [n("y"), n("x")], excludeNames: [], limit: 4, priorityAgingSecs: 60 }
      // the priority-1 job is a minute ahead of its run time: first
      assert.deepStrictEqual(ids((yield* store.claim(request)).jobs), [order[11]!, ...order.slice(0, 3)])
      // the next claims (a backend may take a cheaper path after a full one): the same order
      assert.deepStrictEqual(ids((yield* store.claim(request)).jobs), order.slice(3, 7))
      assert.deepStrictEqual(ids((yield* store.claim(request)).jobs), order.slice(7, 11))
      assert.deepStrictEqual((yield* store.claim(request)).jobs, [])
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("claim needs a live lease: an unregistered or expired worker claims nothing", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("lease"))], Definition.firstDue)
      yield* store.enqueue(n("lease"), [newJob({})], noCommit)
      assert.deepStrictEqual((yield* claimOf(randomUUID(), n("lease"))).jobs, [])
      const w = worker(0.2)
      yield* store.registerWorker(w)
      assert.isTrue(yield* store.heartbeat(w.id, 0.2))
      yield* advance(0.3)
      assert.isFalse(yield* store.heartbeat(w.id, 0.2))
      assert.deepStrictEqual((yield* claimOf(w.id, n("lease"))).jobs, [])
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("job groups: a busy group's new jobs are held at enqueue; a freed slot makes the oldest held job claimable", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("grp"))], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const g1 = [] as Array<string>
      for (let i = 0; i < 3; i++) g1.push(...yield* store.enqueue(n("grp"), [newJob({ i }, { jobGroup: `${prefix}-g1` })], noCommit))
      const g2 = yield* store.enqueue(n("grp"), [1, 2].map((i) => newJob({ i }, { jobGroup: `${prefix}-g2` })), noCommit)
      const free = yield* store.enqueue(n("grp"), [newJob({ free: true })], noCommit)
      // one by one or in one call: only a group's head is claimable (concurrency 1), the rest held at once
      assert.isFalse((yield* state(store, g1[0]!)).held)
      assert.isTrue((yield* state(store, g1[1]!)).held)
      assert.isTrue((yield* state(store, g1[2]!)).held)
      assert.isTrue((yield* state(store, g2[1]!)).held)
      const a = yield* claimOf(w.id, n("grp"))
      assert.deepStrictEqual(ids(a.jobs).sort(), [g1[0], g2[0], free[0]].sort())
      assert.strictEqual(a.held, 0, "nothing left to hold: the backlogs were held at enqueue")
      assert.deepStrictEqual((yield* claimOf(w.id, n("grp"))).jobs, [])
      const other = worker()
      yield* store.registerWorker(other)
      assert.deepStrictEqual((yield* claimOf(other.id, n("grp"))).jobs, [])
      const g1Job = a.jobs.find((j) => j.id === g1[0])!
      yield* store.settle(w.id, settled([g1Job]))
      const b = yield* claimOf(other.id, n("grp"))
      assert.deepStrictEqual(ids(b.jobs), [g1[1]])
      assert.isTrue((yield* state(store, g1[2]!)).held)
      yield* store.deregisterWorker(w.id)
      yield* store.deregisterWorker(other.id)
    }))

  it.effect("a group backlog at the head of the queue costs a claim nothing: only the group's head is a candidate", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("window"))], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const group = `${prefix}-head`
      // a backlog written one job at a time, ahead of three free jobs
      const backlog: Array<string> = []
      for (let i = 0; i < 5; i++) backlog.push(...yield* store.enqueue(n("window"), [newJob({ i }, { jobGroup: group })], noCommit))
      yield* advance(0.002)
      const free = yield* store.enqueue(n("window"), [newJob({}), newJob({}), newJob({})], noCommit)
      const first = yield* claimOf(w.id, n("window"), 3)
      assert.deepStrictEqual(ids(first.jobs), [backlog[0], free[0], free[1]], "the window is full: the head and two free jobs")
      assert.strictEqual(first.held, 0)
      const second = yield* claimOf(w.id, n("window"), 3)
      assert.deepStrictEqual(ids(second.jobs), [free[2]])
      assert.strictEqual(second.held, 0)
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("settle: Succeeded, Retry (available again after timeoutSecs), Expired, Released (no attempt spent)", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("settle"), { numAttempts: 2, timeoutSecs: 0.3 })], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const jobIds = yield* store.enqueue(n("settle"), [1, 2, 3, 4, 5].map((i) => newJob({ i })), noCommit)
      const claimed = (yield* claimOf(w.id, n("settle"), 5)).jobs
      const [s, r, e, x, m] = claimed
      yield* store.settle(w.id, [{ id: m!.id, claim: m!.claim, outcome: "Started" }])
      assert.deepInclude(yield* state(store, m!.id), { state: "running", attempts: 1 })
      yield* store.settle(w.id, [
        { id: s!.id, claim: s!.claim, outcome: "Succeeded" },
        { id: r!.id, claim: r!.claim, outcome: "Retry", error: { message: "again" } },
        { id: e!.id, claim: e!.claim, outcome: "Expired", error: { message: "dead" } },
        { id: x!.id, claim: x!.claim, outcome: "Released" },
        { id: m!.id, claim: m!.claim, outcome: "Released" }
      ])
      assert.deepInclude(yield* state(store, jobIds[0]!), { state: "succeeded", attempts: 1 })
      assert.deepInclude(yield* state(store, jobIds[1]!), { state: "waiting", attempts: 1, lastError: { message: "again" } })
      assert.deepInclude(yield* state(store, jobIds[2]!), { state: "failed", attempts: 1, lastError: { message: "dead" } })
      assert.deepInclude(yield* state(store, jobIds[3]!), { state: "waiting", attempts: 0, claims: 1 })
      assert.deepInclude(yield* state(store, jobIds[4]!), { state: "waiting", attempts: 0, claims: 1 }, "a recorded start is refunded")
      // released jobs are available now, in their place; the retried one only after its timeout
      assert.deepStrictEqual(ids((yield* claimOf(w.id, n("settle"), 5)).jobs), [jobIds[3], jobIds[4]])
      yield* advance(0.35)
      const retried = (yield* claimOf(w.id, n("settle"), 5)).jobs
      assert.deepStrictEqual(retried.map((j) => [j.id, j.attempt, j.claim]), [[jobIds[1], 2, 2]])
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("settle: a Retry with delaySecs waits that delay instead of timeoutSecs (grouped or not); without, timeoutSecs", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("retry-delay"), { numAttempts: 3, timeoutSecs: 3600 })], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const group = `${prefix}-retry-delay`
      const [plain, grouped, fallback] = yield* store.enqueue(
        n("retry-delay"),
        [newJob({ i: 1 }), newJob({ i: 2 }, { jobGroup: group }), newJob({ i: 3 })],
        noCommit
      )
      const claimed = (yield* claimOf(w.id, n("retry-delay"), 3)).jobs
      assert.strictEqual(claimed.length, 3)
      const byId = new Map(claimed.map((j) => [j.id, j]))
      // the ungrouped batch (one plain statement on PostgreSQL), then the grouped one (settle_v3)
      yield* store.settle(w.id, [
        { id: plain!, claim: byId.get(plain!)!.claim, outcome: "Retry", error: { message: "a" }, delaySecs: 0.3, grouped: false },
        { id: fallback!, claim: byId.get(fallback!)!.claim, outcome: "Retry", error: { message: "c" }, grouped: false }
      ])
      yield* store.settle(w.id, [
        { id: grouped!, claim: byId.get(grouped!)!.claim, outcome: "Retry", error: { message: "b" }, delaySecs: 0.3 }
      ])
      assert.strictEqual((yield* store.getGroup(group)).running, 0, "the retry freed its group slot")
      for (const id of [plain!, grouped!, fallback!]) assert.deepInclude(yield* state(store, id), { state: "waiting", attempts: 1 })
      const runAt = (id: string) => Effect.map(state(store, id), (j) => j.runAt!.getTime())
      const now = yield* Clock.currentTimeMillis
      assert.isBelow((yield* runAt(plain!)) - now, 5_000, "due after its delay")
      assert.isAbove((yield* runAt(fallback!)) - now, 3_000_000, "no delay given: the definition's timeoutSecs")
      assert.deepStrictEqual((yield* claimOf(w.id, n("retry-delay"), 3)).jobs, [], "not before its delay")
      yield* advance(0.4)
      const again = (yield* claimOf(w.id, n("retry-delay"), 3)).jobs
      assert.sameMembers(ids(again), [plain!, grouped!])
      assert.deepStrictEqual(again.map((j) => j.attempt), [2, 2])
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("settle: Snooze comes back after its delay with no attempt spent (a recorded start refunded), counts snoozes, frees the group slot", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("snooze"), { numAttempts: 1, timeoutSecs: 3600 })], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const group = `${prefix}-snooze`
      const [a, b] = yield* store.enqueue(n("snooze"), [newJob({ i: 1 }), newJob({ i: 2 }, { jobGroup: group })], noCommit)
      const first = (yield* claimOf(w.id, n("snooze"), 2)).jobs
      assert.deepStrictEqual(first.map((j) => [j.snoozes, j.attempt]), [[0, 1], [0, 1]])
      const ja = first.find((j) => j.id === a)!
      const jb = first.find((j) => j.id === b)!
      yield* store.settle(w.id, [{ id: a!, claim: ja.claim, outcome: "Started" }])
      assert.deepInclude(yield* state(store, a!), { attempts: 1 })
      yield* store.settle(w.id, [
        { id: a!, claim: ja.claim, outcome: "Snooze", delaySecs: 0.3, grouped: false },
        { id: b!, claim: jb.claim, outcome: "Snooze", delaySecs: 0.3, grouped: true }
      ])
      for (const id of [a!, b!]) {
        assert.deepInclude(yield* state(store, id), { state: "waiting", attempts: 0, snoozes: 1, lastError: undefined })
      }
      assert.strictEqual((yield* store.getGroup(group)).running, 0, "the snooze freed its group slot")
      assert.deepStrictEqual((yield* claimOf(w.id, n("snooze"), 2)).jobs, [], "not before its delay")
      yield* advance(0.4)
      const second = (yield* claimOf(w.id, n("snooze"), 2)).jobs
      assert.sameMembers(ids(second), [a!, b!])
      assert.deepStrictEqual(second.map((j) => [j.snoozes, j.attempt]), [[1, 1], [1, 1]], "the attempt is still the first")
      // a snooze with no delay is due at once; the count keeps growing, and is kept when the job is finalized
      const sa = second.find((j) => j.id === a)!
      yield* store.settle(w.id, [{ id: a!, claim: sa.claim, outcome: "Snooze", grouped: false }])
      const [third] = (yield* claimOf(w.id, n("snooze"), 1)).jobs
      assert.deepStrictEqual([third!.id, third!.snoozes, third!.attempt], [a!, 2, 1])
      yield* store.settle(w.id, [
        { id: a!, claim: third!.claim, outcome: "Succeeded", grouped: false },
        { id: b!, claim: second.find((j) => j.id === b)!.claim, outcome: "Expired", error: { message: "x" } }
      ])
      assert.deepInclude(yield* state(store, a!), { state: "succeeded", attempts: 1, snoozes: 2 })
      assert.deepInclude(yield* state(store, b!), { state: "failed", attempts: 1, snoozes: 1 })
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("the time limit given at enqueue is stored with the job and comes back in every claim (single, bulk, grouped, fast path)", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("time-limit"))], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const [one] = yield* store.enqueue(n("time-limit"), [newJob({ i: 1 }, { timeLimitSecs: 2.5 })], noCommit)
      const [none] = yield* store.enqueue(n("time-limit"), [newJob({ i: 2 })], noCommit)
      const [g] = yield* store.enqueue(n("time-limit"), [newJob({ i: 3 }, { timeLimitSecs: 7, jobGroup: `${prefix}-time-limit` })], noCommit)
      const bulk = yield* store.enqueue(n("time-limit"), [newJob({ i: 4 }, { timeLimitSecs: 0.5 }), newJob({ i: 5 })], noCommit)
      const expected = new Map<string, number | undefined>([[one!, 2.5], [none!, undefined], [g!, 7], [bulk[0]!, 0.5], [bulk[1]!, undefined]])
      // one at a time: on PostgreSQL, a full claim, then plain ones
      const seen = new Map<string, number | undefined>()
      for (let i = 0; i < 5; i++) {
        const { jobs } = yield* claimOf(w.id, n("time-limit"), 1)
        for (const j of jobs) seen.set(j.id, j.timeLimitSecs)
      }
      assert.deepStrictEqual(seen, expected)
      let delivered: Store.ClaimedJob | undefined
      const local: Store.LocalClaim = {
        reserve: () => ({
          workerId: w.id,
          channels: [n("time-limit")],
          deliver: (job) => void (delivered = job),
          cancel: () => {}
        })
      }
      yield* store.enqueue(n("time-limit"), [newJob({ i: 6 }, { timeLimitSecs: 3 })], noCommit, local)
      assert.deepInclude(delivered, { timeLimitSecs: 3, snoozes: 0 })
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("settle is fenced by the claim token: another worker, or an older claim of the same worker, changes nothing", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("fence"))], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const [id] = yield* store.enqueue(n("fence"), [newJob({}, { jobGroup: `${prefix}-fence` })], noCommit)
      const [first] = (yield* claimOf(w.id, n("fence"))).jobs
      yield* store.settle(randomUUID(), [{ id: id!, claim: first!.claim, outcome: "Succeeded" }])
      assert.deepInclude(yield* state(store, id!), { state: "running", workerId: w.id })
      // released and claimed again by the same worker: the old token never applies again (no ABA)
      yield* store.settle(w.id, [{ id: id!, claim: first!.claim, outcome: "Released" }])
      const [second] = (yield* claimOf(w.id, n("fence"))).jobs
      assert.strictEqual(second!.claim, first!.claim + 1)
      yield* store.settle(w.id, [{ id: id!, claim: first!.claim, outcome: "Succeeded" }])
      yield* store.settle(w.id, [{ id: id!, claim: first!.claim, outcome: "Started" }])
      assert.deepInclude(yield* state(store, id!), { state: "running", attempts: 0 })
      yield* store.settle(w.id, [{ id: id!, claim: second!.claim, outcome: "Started" }])
      yield* store.settle(w.id, [{ id: id!, claim: second!.claim, outcome: "Started" }]) // once only
      assert.deepInclude(yield* state(store, id!), { state: "running", attempts: 1 })
      yield* store.deregisterWorker(w.id)
      assert.deepInclude(yield* state(store, id!), { state: "waiting", attempts: 1 }, "deregistration keeps a recorded start spent")
    }))

  it.effect("rescue: a dead worker's unstarted jobs come back at once and are never failed; started ones spent their attempt", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const channel = n("rescue")
      yield* store.deploy([
        def(n("again"), { numAttempts: 2, timeoutSecs: 0.5, channel }),
        def(n("once"), { numAttempts: 1, channel })
      ], Definition.firstDue)
      const dead = worker(0.2)
      const live = worker(60)
      yield* store.registerWorker(dead)
      yield* store.registerWorker(live)
      const [again] = yield* store.enqueue(n("again"), [newJob({}, { jobGroup: `${prefix}-dead` })], noCommit)
      const [once] = yield* store.enqueue(n("once"), [newJob({})], noCommit)
      const [unstarted] = yield* store.enqueue(n("once"), [newJob({})], noCommit)
      const [kept] = yield* store.enqueue(n("once"), [newJob({})], noCommit)
      const [blocked] = yield* store.enqueue(n("once"), [newJob({}, { jobGroup: `${prefix}-dead` })], noCommit)
      const taken = (yield* claimOf(dead.id, channel, 3)).jobs
      assert.deepStrictEqual(ids(taken), [again, once, unstarted])
      yield* store.settle(dead.id, taken.slice(0, 2).map((j) => ({ id: j.id, claim: j.claim, outcome: "Started" as const })))
      yield* claimOf(live.id, channel, 1)
      assert.strictEqual((yield* state(store, kept!)).workerId, live.id)
      yield* advance(0.3) // the dead worker's lease expires (the live one's does not)
      const { groups, jobs } = yield* store.rescue(rescueNow())
      assert.deepStrictEqual(
        jobs.map((j) => [j.jobId, j.finalized, j.workerId]).sort(),
        [[again, false, dead.id], [once, true, dead.id], [unstarted, false, dead.id]].sort()
      )
      assert.deepStrictEqual(groups.map((g) => [g.jobGroup, g.jobId, g.reason]), [[`${prefix}-dead`, again, "worker-dead"]])
      assert.deepInclude(yield* state(store, once!), { state: "failed", attempts: 1, crashes: 1 })
      assert.deepInclude(yield* state(store, unstarted!), { state: "waiting", attempts: 0, crashes: 1 })
      assert.deepInclude(yield* state(store, kept!), { state: "running", workerId: live.id })
      // the unstarted job and the group's next job are claimable at once; the started one after its lease
      const now = (yield* claimOf(live.id, channel, 5)).jobs
      assert.deepStrictEqual(ids(now).sort(), [blocked, unstarted].sort())
      assert.strictEqual(now.find((j) => j.id === unstarted)!.crashes, 1)
      yield* store.settle(live.id, settled(now))
      yield* advance(0.3)
      const later = (yield* claimOf(live.id, channel, 5)).jobs
      assert.deepStrictEqual(later.map((j) => [j.id, j.attempt, j.crashes]), [[again, 2, 1]])
      assert.deepStrictEqual((yield* store.rescue(rescueNow())).jobs, [])
      yield* store.deregisterWorker(live.id)
    }))

  it.effect("rescue: a job whose workers keep dying before its start is recorded is given up at its maxAttempts + 4th crash", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("crashy"), { numAttempts: 1 })], Definition.firstDue)
      const [id] = yield* store.enqueue(n("crashy"), [newJob({})], noCommit)
      for (let crash = 1; crash <= 5; crash++) {
        const dead = worker(0.1)
        yield* store.registerWorker(dead)
        const [job] = (yield* claimOf(dead.id, n("crashy"))).jobs
        assert.strictEqual(job!.crashes, crash - 1)
        yield* advance(0.15)
        const { jobs } = yield* store.rescue(rescueNow())
        assert.deepStrictEqual(jobs.filter((j) => j.jobId === id).map((j) => j.finalized), [crash === 5])
      }
      const final = yield* state(store, id!)
      assert.deepInclude(final, { state: "failed", attempts: 0, crashes: 5 })
      assert.include((final.lastError as { message: string }).message, "crashed its workers 5 times")
    }))

  it.effect("rescue takes at most `limit` jobs per call; the next calls take the rest", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("limit"))], Definition.firstDue)
      const dead = worker(0.1)
      yield* store.registerWorker(dead)
      yield* store.enqueue(n("limit"), [1, 2, 3, 4, 5].map((i) => newJob({ i })), noCommit)
      assert.strictEqual((yield* claimOf(dead.id, n("limit"))).jobs.length, 5)
      yield* advance(0.2)
      const counts = []
      for (let i = 0; i < 4; i++) {
        counts.push((yield* store.rescue(rescueNow({ limit: 2 }))).jobs.filter((j) => j.workerId === dead.id).length)
      }
      assert.deepStrictEqual(counts, [2, 2, 1, 0])
    }))

  it.effect("rescue: a worker whose liveness session is gone is dead once the grace has passed, before its lease expires", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("session"))], Definition.firstDue)
      // a session key that no live session holds: its process is gone
      const gone = worker(3600, 1_000_000 + Math.floor(Math.random() * 1_000_000))
      yield* store.registerWorker(gone)
      const [id] = yield* store.enqueue(n("session"), [newJob({}, { jobGroup: `${prefix}-s` })], noCommit)
      yield* claimOf(gone.id, n("session"))
      const first = yield* store.rescue(rescueNow({ sessionGraceSecs: 0.2 }))
      assert.deepStrictEqual(first.jobs.filter((j) => j.jobId === id), [], "suspected, not dead yet")
      yield* advance(0.3)
      const second = yield* store.rescue(rescueNow({ sessionGraceSecs: 0.2 }))
      assert.deepStrictEqual(second.jobs.filter((j) => j.jobId === id).map((j) => j.workerId), [gone.id])
      assert.deepStrictEqual(second.groups.filter((g) => g.jobId === id).map((g) => g.reason), ["worker-dead"])
      assert.isFalse(yield* store.heartbeat(gone.id, 60), "its row is gone")
      // a live session's worker is never touched
      const session = yield* store.session
      if (session !== undefined) {
        const alive = worker(3600, session.key)
        yield* store.registerWorker(alive)
        yield* advance(0.3)
        yield* store.rescue(rescueNow({ sessionGraceSecs: 0.2 }))
        yield* advance(0.3)
        yield* store.rescue(rescueNow({ sessionGraceSecs: 0.2 }))
        assert.isTrue(yield* store.heartbeat(alive.id, 60))
        yield* store.deregisterWorker(alive.id)
      }
    }))

  it.effect("the group ceiling frees a live worker's slot only past jobGroupUnlockSecs, once, and the job stays with its worker", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("ceiling"))], Definition.firstDue)
      const w = worker(60)
      yield* store.registerWorker(w)
      const group = `${prefix}-ceil`
      const [id, next] = yield* store.enqueue(n("ceiling"), [newJob({}), newJob({})].map((j) => ({ ...j, jobGroup: group })), noCommit)
      const [job] = (yield* claimOf(w.id, n("ceiling"))).jobs
      assert.deepStrictEqual((yield* store.rescue(rescueNow())).groups.filter((g) => g.jobId === id), [])
      yield* advance(0.3)
      // the ceiling and a write of the job's worker race: the slot is freed exactly once, by this rescue or
      // (if the worker's write held the row) by the next
      const [raced] = yield* Effect.all([
        store.rescue(rescueNow({ jobGroupUnlockSecs: 0.2 })),
        store.settle(w.id, [{ id: id!, claim: job!.claim, outcome: "Started" }])
      ], { concurrency: "unbounded" })
      const freedBy = (r: typeof raced) => r.groups.filter((g) => g.jobId === id).map((g) => g.reason)
      const events = [...freedBy(raced)]
      for (let i = 0; i < 3; i++) events.push(...freedBy(yield* store.rescue(rescueNow({ jobGroupUnlockSecs: 0.2 }))))
      assert.deepStrictEqual(events, ["ceiling"])
      assert.deepInclude(yield* state(store, id!), { state: "running", workerId: w.id, attempts: 1 })
      // the next job of the group runs; settling the first (its slot already freed) frees nothing more
      const other = worker(60)
      yield* store.registerWorker(other)
      const [second] = (yield* claimOf(other.id, n("ceiling"))).jobs
      assert.strictEqual(second!.id, next)
      yield* store.settle(w.id, settled([job!]))
      yield* store.enqueue(n("ceiling"), [newJob({}, { jobGroup: group })], noCommit)
      assert.deepStrictEqual((yield* claimOf(w.id, n("ceiling"))).jobs, [], "the group is still full (the second job)")
      yield* store.deregisterWorker(w.id)
      yield* store.deregisterWorker(other.id)
    }))

  it.effect("deregistration gives back everything the worker held and frees its group slots", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("dereg"))], Definition.firstDue)
      const w = worker()
      const other = worker()
      yield* store.registerWorker(w)
      yield* store.registerWorker(other)
      const group = `${prefix}-dereg`
      const jobIds = yield* store.enqueue(n("dereg"), [newJob({}), newJob({})].map((j) => ({ ...j, jobGroup: group })), noCommit)
      const [held] = (yield* claimOf(w.id, n("dereg"))).jobs
      assert.strictEqual(held!.id, jobIds[0])
      assert.deepStrictEqual((yield* claimOf(other.id, n("dereg"))).jobs, [])
      yield* store.deregisterWorker(w.id)
      assert.deepInclude(yield* state(store, jobIds[0]!), { state: "waiting", workerId: undefined })
      const after = (yield* claimOf(other.id, n("dereg"))).jobs
      assert.deepStrictEqual(ids(after), [jobIds[0]], "the given-back job first: it keeps its place")
      assert.isTrue((yield* state(store, jobIds[1]!)).held, "the group is full again: its next job is held")
      yield* store.deregisterWorker(other.id)
    }))

  it.effect("releaseUnowned gives back what a worker holds but does not know about", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("unowned"))], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const jobIds = yield* store.enqueue(n("unowned"), [newJob({}), newJob({})], noCommit)
      const claimed = yield* claimOf(w.id, n("unowned"), 2)
      const first = claimed.jobs.find((j) => j.id === jobIds[0])!
      assert.strictEqual(yield* store.releaseUnowned(w.id, [{ id: first.id, claim: first.claim }]), 1)
      assert.deepInclude(yield* state(store, jobIds[0]!), { state: "running" })
      assert.deepInclude(yield* state(store, jobIds[1]!), { state: "waiting", attempts: 0 })
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("releaseUnowned keeps a job only under the claim owned: one owned under an earlier claim and claimed again is released", () =>
    Effect.gen(function*() {
      // the worker settled the job (its answer lost, so it still counts it as owned under that claim), and a
      // claim whose answer was lost took it again: the worker does not know the new claim
      const store = yield* JobStore
      yield* store.deploy([def(n("reclaimed"))], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const [id] = yield* store.enqueue(n("reclaimed"), [newJob({})], noCommit)
      const [before] = (yield* claimOf(w.id, n("reclaimed"), 1)).jobs
      yield* store.settle(w.id, [{ id: id!, claim: before!.claim, outcome: "Released" }])
      const [again] = (yield* claimOf(w.id, n("reclaimed"), 1)).jobs
      assert.strictEqual(again!.id, id)
      assert.isAbove(again!.claim, before!.claim)
      assert.strictEqual(yield* store.releaseUnowned(w.id, [{ id: id!, claim: before!.claim }]), 1)
      assert.deepInclude(yield* state(store, id!), { state: "waiting", attempts: 0 })
      // under the claim it owns, it is kept
      const [third] = (yield* claimOf(w.id, n("reclaimed"), 1)).jobs
      assert.strictEqual(yield* store.releaseUnowned(w.id, [{ id: id!, claim: third!.claim }]), 0)
      assert.deepInclude(yield* state(store, id!), { state: "running" })
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("a job that goes back keeps its place, also for a worker whose claims came back full: released, given back, rescued (one let out of its group goes behind the waiting)", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const channel = n("place")
      const group = `${prefix}-place`
      yield* store.deploy([def(channel), def(n("place-g"), { channel })], Definition.firstDue)
      const a = worker()
      const b = worker()
      const dead = worker(1)
      for (const w of [a, b]) yield* store.registerWorker(w)
      // one job per statement, a little apart: each has a place of its own in the queue
      const one = (name: string, extra: Partial<Store.NewJob> = {}) =>
        Effect.andThen(advance(0.005), Effect.map(store.enqueue(name, [newJob({}, extra)], noCommit), ([id]) => id!))
      const g1 = yield* one(n("place-g"), { jobGroup: group })
      const g2 = yield* one(n("place-g"), { jobGroup: group })
      const p: Array<string> = []
      for (let i = 0; i < 16; i++) p.push(yield* one(channel))
      const take = (w: Store.WorkerRegistration, limit: number) => Effect.map(claimOf(w.id, channel, limit), (r) => r.jobs)

      const first = yield* claimOf(a.id, channel, 1)
      assert.deepStrictEqual(ids(first.jobs), [g1]) // g2 waits for its group
      yield* store.registerWorker(dead)
      assert.deepStrictEqual(ids(yield* take(dead, 2)), [p[0], p[1]])
      // b's claims by job id (the latest claim of each)
      const claimsOfB = new Map<string, number>()
      const takeB = (limit: number) =>
        Effect.map(take(b, limit), (jobs) => {
          for (const j of jobs) claimsOfB.set(j.id, j.claim)
          return jobs
        })
      const b1 = yield* takeB(3)
      assert.deepStrictEqual(ids(b1), [p[2], p[3], p[4]])
      assert.deepStrictEqual(ids(yield* takeB(3)), [p[5], p[6], p[7]])
      // released: ahead of everything b has not claimed yet
      yield* store.settle(b.id, [{ id: b1[0]!.id, claim: b1[0]!.claim, outcome: "Released" }])
      assert.deepStrictEqual(ids(yield* takeB(3)), [p[2], p[8], p[9]])
      assert.deepStrictEqual(ids(yield* takeB(3)), [p[10], p[11], p[12]])
      // given back (held by b, which does not know it)
      const owned = [p[2], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12]].map((id) => ({ id: id!, claim: claimsOfB.get(id!)! }))
      assert.strictEqual(yield* store.releaseUnowned(b.id, owned), 1)
      assert.deepStrictEqual(ids(yield* take(b, 1)), [p[3]])
      // rescued: the dead worker's unstarted jobs
      yield* advance(1.1)
      assert.deepStrictEqual((yield* store.rescue(rescueNow())).jobs.map((j) => j.jobId).sort(), [p[0], p[1]].sort())
      assert.deepStrictEqual(ids(yield* take(b, 2)), [p[0], p[1]])
      // let out of its group (its head succeeded): behind the jobs already waiting, as groups take turns
      yield* store.settle(a.id, settled(first.jobs))
      assert.deepStrictEqual(ids(yield* take(b, 5)), [p[13], p[14], p[15], g2])
      for (const w of [a, b]) yield* store.deregisterWorker(w.id)
    }))

  it.effect("the fast path claims a job in its insert only for a worker whose lease is live", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("fast"))], Definition.firstDue)
      const w = worker(0.2)
      yield* store.registerWorker(w)
      const outcomes: Array<string> = []
      const local = (workerId: string): Store.LocalClaim => ({
        reserve: () => ({
          workerId,
          channels: [n("fast")],
          deliver: (job) => void outcomes.push(`deliver:${job.id}:${job.claim}`),
          cancel: (maybe) => void outcomes.push(`cancel:${maybe}`)
        })
      })
      const [a] = yield* store.enqueue(n("fast"), [newJob({})], noCommit, local(w.id))
      assert.deepStrictEqual(outcomes, [`deliver:${a}:1`])
      assert.deepInclude(yield* state(store, a!), { state: "running", workerId: w.id, claims: 1, attempts: 0 })
      yield* advance(0.3) // the lease lapses: the fast path must not claim for it
      const [b] = yield* store.enqueue(n("fast"), [newJob({})], noCommit, local(w.id))
      assert.deepStrictEqual(outcomes, [`deliver:${a}:1`, "cancel:false"])
      assert.deepInclude(yield* state(store, b!), { state: "waiting", claims: 0 })
      // a delayed or grouped job never takes the fast path
      const live = worker()
      yield* store.registerWorker(live)
      yield* store.enqueue(n("fast"), [newJob({}, { delaySecs: 0.01 })], noCommit, local(live.id))
      yield* store.enqueue(n("fast"), [newJob({}, { jobGroup: `${prefix}-fast` })], noCommit, local(live.id))
      assert.strictEqual(outcomes.length, 2)
      yield* store.deregisterWorker(live.id)
    }))

  it.effect("concurrent: a release racing fast-path deliveries: a job released before it was delivered cannot be settled by that delivery", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("deliver"))], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const delivered: Array<Store.ClaimedJob> = []
      const local: Store.LocalClaim = {
        reserve: () => ({
          workerId: w.id,
          channels: [n("deliver")],
          deliver: (job) => void delivered.push(job),
          cancel: () => {}
        })
      }
      // inserts claimed for w race releases of everything w holds but does not know (it knows nothing)
      let released = 0
      yield* Effect.all([
        Effect.forEach(Array.from({ length: 30 }), () => store.enqueue(n("deliver"), [newJob({})], noCommit, local), {
          concurrency: 5,
          discard: true
        }),
        Effect.forEach(Array.from({ length: 30 }), () =>
          Effect.andThen(Effect.yieldNow, Effect.map(store.releaseUnowned(w.id, []), (k) => void (released += k))), {
          concurrency: 2,
          discard: true
        })
      ], { concurrency: "unbounded" })
      assert.strictEqual(delivered.length, 30)
      // a second worker takes whatever was released
      const other = worker()
      yield* store.registerWorker(other)
      const taken = (yield* claimOf(other.id, n("deliver"), 100)).jobs
      assert.strictEqual(taken.length, released)
      // w settles every delivery: only the ones it still holds apply
      yield* store.settle(w.id, settled(delivered))
      for (const job of taken) {
        assert.deepInclude(yield* state(store, job.id), { state: "running", workerId: other.id, claims: 2 })
      }
      const finalizedByW = delivered.filter((j) => !taken.some((t) => t.id === j.id))
      for (const job of finalizedByW) assert.deepInclude(yield* state(store, job.id), { state: "succeeded" })
      yield* store.deregisterWorker(w.id)
      yield* store.deregisterWorker(other.id)
    }))

  it.effect("concurrent: many claimers on one group never hold more than its one slot, and every job runs once", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("race"))], Definition.firstDue)
      const group = `${prefix}-race`
      const total = 20
      for (let i = 0; i < total; i++) yield* store.enqueue(n("race"), [newJob({ i }, { jobGroup: group })], noCommit)
      const workers = Array.from({ length: 6 }, () => worker())
      for (const w of workers) yield* store.registerWorker(w)
      let holding = 0
      let maxHolding = 0
      const done: Array<string> = []
      yield* Effect.forEach(workers, (w) =>
        Effect.gen(function*() {
          for (let round = 0; done.length < total && round < 5000; round++) {
            const { jobs } = yield* claimOf(w.id, n("race"), 3)
            if (jobs.length === 0) {
              yield* Effect.yieldNow
              continue
            }
            holding += jobs.length
            maxHolding = Math.max(maxHolding, holding)
            yield* Effect.yieldNow
            holding -= jobs.length
            done.push(...ids(jobs))
            yield* store.settle(w.id, settled(jobs))
          }
        }), { concurrency: "unbounded", discard: true })
      assert.strictEqual(maxHolding, 1, "one slot")
      assert.strictEqual(done.length, total)
      assert.strictEqual(new Set(done).size, total)
      for (const w of workers) yield* store.deregisterWorker(w.id)
    }))

  it.effect("concurrent: a release racing claims and stale settlements: each claim's token is unique and only the current one applies", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("churn"), { numAttempts: 1000 })], Definition.firstDue)
      const [id] = yield* store.enqueue(n("churn"), [newJob({})], noCommit)
      const workers = Array.from({ length: 4 }, () => worker())
      for (const w of workers) yield* store.registerWorker(w)
      const tokens: Array<number> = []
      const stale: Array<Store.Settlement & { workerId: string }> = []
      yield* Effect.forEach(workers, (w) =>
        Effect.gen(function*() {
          for (let round = 0; round < 40; round++) {
            const { jobs } = yield* claimOf(w.id, n("churn"))
            for (const job of jobs) {
              tokens.push(job.claim)
              yield* Effect.yieldNow
              yield* store.settle(w.id, [{ id: job.id, claim: job.claim, outcome: "Released" }])
              stale.push({ workerId: w.id, id: job.id, claim: job.claim, outcome: "Succeeded" })
            }
            yield* Effect.yieldNow
          }
        }), { concurrency: "unbounded", discard: true })
      assert.strictEqual(new Set(tokens).size, tokens.length, "no claim token repeats")
      assert.isAtLeast(tokens.length, 8)
      // every stale settlement is refused: the job is still waiting, claimed exactly that many times
      for (const s of stale) yield* store.settle(s.workerId, [s])
      assert.deepInclude(yield* state(store, id!), { state: "waiting", claims: tokens.length, attempts: 0 })
      for (const w of workers) yield* store.deregisterWorker(w.id)
    }))

  it.effect("scheduleDue: a due repeating job is enqueued once per due time; unknown ones are reported", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([
        def(n("every"), { repeat: { _tag: "Every", secs: 0.5 } }),
        def(n("unknown"), { repeat: { _tag: "Every", secs: 0.5 } })
      ], Definition.firstDue)
      const known = new Set([n("every")])
      const first = yield* store.scheduleDue(known, Definition.advance, 100)
      assert.deepStrictEqual(first.scheduled.filter((s) => s.definitionName === n("every")).length, 1)
      assert.include(first.orphans.map((o) => o.definitionName), n("unknown"))
      const again = yield* store.scheduleDue(known, Definition.advance, 100)
      assert.deepStrictEqual(again.scheduled.filter((s) => s.definitionName === n("every")), [])
      assert.isAbove(again.nextDueInSecs!, 0)
      assert.isAtMost(again.nextDueInSecs!, 0.5)
      yield* advance(0.55)
      const third = yield* store.scheduleDue(known, Definition.advance, 100)
      const mine = third.scheduled.filter((s) => s.definitionName === n("every"))
      assert.strictEqual(mine.length, 1)
      assert.strictEqual(
        mine[0]!.scheduledFor.getTime() - first.scheduled.find((s) => s.definitionName === n("every"))!.scheduledFor.getTime(),
        500
      )
      const job = yield* state(store, mine[0]!.jobId)
      assert.deepInclude(job, { name: n("every"), state: "waiting" })
      assert.deepStrictEqual(job.payload, {})
    }))

  it.effect("deploy: a changed interval keeps the earlier due time, so two versions deploying in turn add no runs", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const known = new Set([n("versions")])
      const v1 = def(n("versions"), { repeat: { _tag: "Every", secs: 10 } })
      const v2 = def(n("versions"), { repeat: { _tag: "Every", secs: 20 } })
      yield* store.deploy([v1], Definition.firstDue)
      assert.strictEqual((yield* store.scheduleDue(known, Definition.advance, 100)).scheduled.length, 1)
      for (let i = 0; i < 3; i++) {
        yield* store.deploy([v2], Definition.firstDue)
        yield* store.deploy([v1], Definition.firstDue)
      }
      assert.deepStrictEqual((yield* store.scheduleDue(known, Definition.advance, 100)).scheduled, [])
      const { nextDueInSecs } = yield* store.scheduleDue(known, Definition.advance, 100)
      assert.isAbove(nextDueInSecs!, 9)
    }))

  it.effect("retention: deleteFinalized takes only jobs finalized longer ago than asked, in batches", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("ret"))], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const old = yield* store.enqueue(n("ret"), [newJob({}), newJob({}), newJob({})], noCommit)
      yield* store.settle(w.id, settled((yield* claimOf(w.id, n("ret"), 3)).jobs))
      yield* advance(0.4)
      const young = yield* store.enqueue(n("ret"), [newJob({})], noCommit)
      yield* store.settle(w.id, settled((yield* claimOf(w.id, n("ret"), 1)).jobs))
      const mine = (rows: ReadonlyArray<{ id: string }>) => rows.map((r) => r.id).filter((id) => [...old, ...young].includes(id))
      const batch1 = yield* store.deleteFinalized(0.3, 2)
      const batch2 = yield* store.deleteFinalized(0.3, 100)
      assert.strictEqual(batch1.length, 2)
      assert.deepStrictEqual([...mine(batch1), ...mine(batch2)].sort(), [...old].sort())
      assert.deepInclude(yield* state(store, young[0]!), { state: "succeeded" })
      // groups: a group row exists once a job of it was claimed; unreferenced ones with no slot taken go
      yield* store.enqueue(n("ret"), [newJob({}, { jobGroup: `${prefix}-done` })], noCommit)
      yield* store.enqueue(n("ret"), [newJob({}, { jobGroup: `${prefix}-kept` }), newJob({}, { jobGroup: `${prefix}-kept` })], noCommit)
      yield* store.enqueue(n("ret"), [newJob({}, { jobGroup: `${prefix}-locked` })], noCommit)
      const c3 = (yield* claimOf(w.id, n("ret"))).jobs // done, kept (first), locked
      yield* store.settle(w.id, settled(c3.filter((j) => j.jobGroup !== `${prefix}-locked`)))
      const mineGroups = new Set([`${prefix}-done`, `${prefix}-kept`, `${prefix}-locked`])
      const deleted = (yield* store.deleteUnreferencedGroups(1000)).filter((g) => mineGroups.has(g))
      assert.deepStrictEqual(deleted, [`${prefix}-done`])
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("undeploy fail: refused while the definition has waiting or running jobs, and nothing changes", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("undeploy-fail"))], Definition.firstDue)
      const [id] = yield* store.enqueue(n("undeploy-fail"), [newJob({})], noCommit)
      const error = yield* Effect.flip(store.undeploy(n("undeploy-fail"), "fail"))
      assert.strictEqual(error._tag, "JobDefinitionInUse")
      assert.deepInclude(error, { definitionName: n("undeploy-fail"), waiting: 1, running: 0 })
      assert.match(error.message, /1 waiting and 0 running/)
      assert.deepInclude(yield* state(store, id!), { state: "waiting" })
      // still deployed: enqueue works; a running job also blocks
      yield* store.enqueue(n("undeploy-fail"), [newJob({})], noCommit)
      const w = worker()
      yield* store.registerWorker(w)
      const claimed = (yield* claimOf(w.id, n("undeploy-fail"), 10)).jobs
      assert.strictEqual(claimed.length, 2)
      assert.deepInclude(yield* Effect.flip(store.undeploy(n("undeploy-fail"), "fail")), { waiting: 0, running: 2 })
      yield* store.settle(w.id, settled(claimed))
      // with no live job left it goes
      assert.deepStrictEqual(yield* store.undeploy(n("undeploy-fail"), "fail"), { undeployed: true, deleted: 0, kept: 0, running: 0 })
      assert.strictEqual(
        (yield* Effect.flip(store.enqueue(n("undeploy-fail"), [newJob({})], noCommit)))._tag,
        "JobDefinitionNotDeployed"
      )
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("undeploy delete: waiting jobs (held ones too) are deleted, running ones finish and settle; idempotent", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const x = n("undeploy-del")
      const y = n("undeploy-del-other")
      const group = `${prefix}-undeploy-g`
      yield* store.deploy([def(x, { numAttempts: 3 }), def(y)], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const [running] = yield* store.enqueue(x, [newJob({ r: 1 }, { jobGroup: group })], noCommit)
      const [claimed] = (yield* claimOf(w.id, x, 1)).jobs
      assert.strictEqual(claimed!.id, running)
      // waiting: a plain one, and two of one call in a group (the second held behind the first)
      const waiting = [
        ...yield* store.enqueue(x, [newJob({ w: 1 })], noCommit),
        ...yield* store.enqueue(x, [newJob({ w: 2 }, { jobGroup: `${group}-2` }), newJob({ w: 3 }, { jobGroup: `${group}-2` })], noCommit)
      ]
      assert.isTrue((yield* state(store, waiting[2]!)).held)
      // another definition's job of the same group, held behind the running job's slot
      const [other] = yield* store.enqueue(y, [newJob({})], noCommit).pipe(
        Effect.andThen(store.enqueue(y, [newJob({ o: 1 }, { jobGroup: group })], noCommit))
      )
      const before = (yield* claimOf(w.id, y, 10)).jobs
      assert.notInclude(ids(before), other)
      assert.isTrue((yield* state(store, other!)).held)
      yield* store.settle(w.id, settled(before))

      assert.deepStrictEqual(yield* store.undeploy(x, "delete"), { undeployed: true, deleted: 3, kept: 0, running: 1 })
      for (const id of waiting) assert.isTrue(Option.isNone(yield* store.getJob(id)), `job ${id} was deleted`)
      assert.deepInclude(yield* state(store, running!), { state: "running" })
      assert.deepInclude(yield* state(store, other!), { state: "waiting" })
      // the running job settles as usual and frees its group's slot for the other definition's job
      yield* store.settle(w.id, settled([claimed!]))
      assert.deepInclude(yield* state(store, running!), { state: "succeeded" })
      assert.deepStrictEqual(ids((yield* claimOf(w.id, y, 10)).jobs), [other])
      assert.strictEqual((yield* Effect.flip(store.enqueue(x, [newJob({})], noCommit)))._tag, "JobDefinitionNotDeployed")
      assert.deepStrictEqual(yield* store.undeploy(x, "delete"), { undeployed: false, deleted: 0, kept: 0, running: 0 })
      // deploying it again starts afresh
      yield* store.deploy([def(x)], Definition.firstDue)
      assert.strictEqual((yield* store.enqueue(x, [newJob({})], noCommit)).length, 1)
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("undeploy keep: waiting jobs stay claimable for workers that still run the definition", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const x = n("undeploy-keep")
      yield* store.deploy([def(x)], Definition.firstDue)
      const jobs = yield* store.enqueue(x, [newJob({ a: 1 }), newJob({ a: 2 })], noCommit)
      assert.deepStrictEqual(yield* store.undeploy(x, "keep"), { undeployed: true, deleted: 0, kept: 2, running: 0 })
      assert.strictEqual((yield* Effect.flip(store.enqueue(x, [newJob({})], noCommit)))._tag, "JobDefinitionNotDeployed")
      const w = worker()
      yield* store.registerWorker(w)
      const claimed = (yield* claimOf(w.id, x, 10)).jobs
      assert.deepStrictEqual(ids(claimed).sort(), [...jobs].sort())
      yield* store.settle(w.id, settled(claimed))
      for (const id of jobs) assert.deepInclude(yield* state(store, id), { state: "succeeded" })
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("undeploy: a repeating definition stops being scheduled and is no longer reported as an orphan", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const every = n("undeploy-every")
      const gone = n("undeploy-orphan")
      yield* store.deploy([
        def(every, { repeat: { _tag: "Every", secs: 0.3 } }),
        def(gone, { repeat: { _tag: "Every", secs: 0.3 } })
      ], Definition.firstDue)
      const known = new Set([every])
      const first = yield* store.scheduleDue(known, Definition.advance, 100)
      const scheduled = first.scheduled.filter((s) => s.definitionName === every)
      assert.strictEqual(scheduled.length, 1)
      assert.include(first.orphans.map((o) => o.definitionName), gone)
      const result = yield* store.undeploy(every, "delete")
      assert.deepStrictEqual(result, { undeployed: true, deleted: 1, kept: 0, running: 0 })
      assert.isTrue(Option.isNone(yield* store.getJob(scheduled[0]!.jobId)))
      yield* store.undeploy(gone, "fail")
      yield* advance(0.4)
      const later = yield* store.scheduleDue(known, Definition.advance, 100)
      assert.deepStrictEqual(later.scheduled.filter((s) => s.definitionName === every), [])
      assert.notInclude(later.orphans.map((o) => o.definitionName), gone)
      assert.notInclude(later.orphans.map((o) => o.definitionName), every)
    }))

  flowControlCases(it, advance, prefix)
  uniqueCases(it, advance, prefix)
}

/** Counts jobs per window of time: the most any `span` seconds saw, the bound fixed windows allow. */
const windowBound = (limit: number, spanSecs: number, periodSecs: number) =>
  // fixed windows of `periodSecs`: an interval of `spanSecs` meets at most ceil(span / period) + 1 of them
  limit * (Math.ceil(spanSecs / periodSecs - 1e-9) + 1)

/**
 * Flow control (issue 12): priorities and aging, group concurrency and rate limits, fairness across groups,
 * channel pause and rate limits. Exact window arithmetic only on the memory store (`exactClock`: TestClock,
 * nothing moves unless the test moves it); on PostgreSQL time is real, so those cases count orders and bounds.
 */
const flowControlCases = (
  it: { readonly effect: Tester },
  advance: (secs: number) => Effect.Effect<void>,
  prefix: string
) => {
  const n = (name: string) => `${prefix}-${name}`
  const exactClock = prefix === "mem" // test/conformance-memory.test.ts: TestClock
  const claimOf = (workerId: string, channel: string, limit = 10, extra: Partial<Store.ClaimRequest> = {}) =>
    Effect.flatMap(JobStore, (store) => store.claim({ workerId, channels: [channel], excludeNames: [], limit, priorityAgingSecs: 60, ...extra }))
  const now = Clock.currentTimeMillis
  const heldOf = (store: JobStore["Service"], jobIds: ReadonlyArray<string>) =>
    Effect.forEach(jobIds, (id) => Effect.map(state(store, id), (j) => j.held))

  it.effect("priorities: higher is claimed first, ties by id; claimed jobs and job info carry the priority", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("prio"))], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const priorities = [0, 5, -3, 10, 5, -1000, 1000, 0]
      const jobIds = yield* store.enqueue(n("prio"), priorities.map((priority, i) => newJob({ i }, { priority })), noCommit)
      const expected = priorities.map((p, i) => [p, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).map(([, i]) => jobIds[i])
      const { jobs } = yield* claimOf(w.id, n("prio"), 20)
      assert.deepStrictEqual(ids(jobs), expected)
      assert.deepStrictEqual(jobs.map((j) => j.priority), [...priorities].sort((a, b) => b - a))
      assert.strictEqual((yield* state(store, jobIds[3]!)).priority, 10)
      yield* store.settle(w.id, settled(jobs))
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("aging: a job of priority p is claimed as if it had waited p aging periods longer (the claim's aging)", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      // the same jobs, at the same times, on two channels: one claimed with a short aging, one with a long one
      yield* store.deploy([def(n("age-short")), def(n("age-long"))], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const enqueue = (priority: number) =>
        Effect.all([n("age-short"), n("age-long")].map((d) => Effect.map(store.enqueue(d, [newJob({ priority }, { priority })], noCommit), ([id]) => id!)))
      const low = yield* enqueue(0)
      yield* advance(0.35)
      const high = yield* enqueue(2) // 2 x 0.1 s ahead: still behind the low job that waited 0.35 s longer
      const top = yield* enqueue(10) // 10 x 0.1 s ahead: before it
      const short = yield* claimOf(w.id, n("age-short"), 10, { priorityAgingSecs: 0.1 })
      assert.deepStrictEqual(ids(short.jobs), [top[0], low[0], high[0]])
      const long = yield* claimOf(w.id, n("age-long"), 10, { priorityAgingSecs: 60 })
      assert.deepStrictEqual(ids(long.jobs), [top[1], high[1], low[1]])
      yield* store.settle(w.id, settled([...short.jobs, ...long.jobs]))
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("priorities never make a job due early: a delayed job of the highest priority waits for its run time", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("due"))], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const [delayed] = yield* store.enqueue(n("due"), [newJob({}, { priority: 1000, delaySecs: 0.3 })], noCommit)
      const [plain] = yield* store.enqueue(n("due"), [newJob({}, { priority: -1000 })], noCommit)
      const first = yield* claimOf(w.id, n("due"), 10, { priorityAgingSecs: 3600 })
      assert.deepStrictEqual(ids(first.jobs), [plain])
      assert.deepStrictEqual((yield* claimOf(w.id, n("due"), 10, { priorityAgingSecs: 3600 })).jobs, [])
      yield* advance(0.35)
      const second = yield* claimOf(w.id, n("due"), 10, { priorityAgingSecs: 3600 })
      assert.deepStrictEqual(ids(second.jobs), [delayed])
      assert.isAtLeast(second.jobs[0]!.sortAt.getTime(), second.jobs[0]!.runAt.getTime(), "sortAt is never before runAt")
      yield* store.settle(w.id, settled([...first.jobs, ...second.jobs]))
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("group concurrency from the definition: N slots; held at enqueue beyond N (by run time) and while N are active", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("conc"), { groupConcurrency: 2 })], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const group = `${prefix}-conc`
      // ranked by run time, then input order: j1 and j2 are the first two; the delayed j0 is ranked last
      const [j0, j1, j2, j3, j4] = yield* store.enqueue(n("conc"), [
        newJob({ i: 0 }, { jobGroup: group, delaySecs: 0.3 }),
        ...[1, 2, 3, 4].map((i) => newJob({ i }, { jobGroup: group }))
      ], noCommit)
      assert.deepStrictEqual(yield* heldOf(store, [j0!, j1!, j2!, j3!, j4!]), [true, false, false, true, true])
      // two due jobs waiting already: a job enqueued on its own is held
      const [j5] = yield* store.enqueue(n("conc"), [newJob({ i: 5 }, { jobGroup: group })], noCommit)
      assert.isTrue((yield* state(store, j5!)).held)
      const a = yield* claimOf(w.id, n("conc"))
      assert.deepStrictEqual(ids(a.jobs), [j1, j2])
      assert.strictEqual(a.held, 0)
      assert.strictEqual((yield* store.getGroup(group)).running, 2)
      assert.deepStrictEqual((yield* claimOf(w.id, n("conc"))).jobs, [])
      // a freed slot promotes the held job with the earliest run time
      yield* store.settle(w.id, settled([a.jobs[0]!]))
      assert.strictEqual((yield* store.getGroup(group)).running, 1)
      const b = yield* claimOf(w.id, n("conc"))
      assert.deepStrictEqual(ids(b.jobs), [j3])
      yield* store.settle(w.id, settled([a.jobs[1]!]))
      yield* store.settle(w.id, settled(b.jobs))
      const c = yield* claimOf(w.id, n("conc"))
      assert.deepStrictEqual(ids(c.jobs).sort(), [j4, j5].sort(), "two slots freed: the next two by run time")
      assert.isTrue((yield* state(store, j0!)).held)
      yield* store.settle(w.id, settled(c.jobs))
      yield* advance(0.35)
      // j0 was promoted by the settlements (a free slot, nothing else due): claimable once due
      const d = yield* claimOf(w.id, n("conc"))
      assert.deepStrictEqual(ids(d.jobs), [j0])
      yield* store.settle(w.id, settled(d.jobs))
      assert.strictEqual((yield* store.getGroup(group)).running, 0)
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("group concurrency: an explicit setting wins over the definition's, null removes it; raising it promotes held jobs", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("explicit"), { groupConcurrency: 3 })], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const group = `${prefix}-explicit`
      assert.deepStrictEqual(yield* store.setGroupLimits(group, { concurrency: 1 }), {
        jobGroup: group,
        concurrency: 1,
        rateLimit: undefined,
        running: 0
      })
      const jobIds = yield* store.enqueue(n("explicit"), [0, 1, 2, 3].map((i) => newJob({ i }, { jobGroup: group })), noCommit)
      assert.deepStrictEqual(yield* heldOf(store, jobIds), [false, true, true, true], "the explicit 1, not the definition's 3")
      const a = yield* claimOf(w.id, n("explicit"))
      assert.deepStrictEqual(ids(a.jobs), [jobIds[0]])
      // raising it makes as many held jobs claimable as the new limit allows
      const raised = yield* store.setGroupLimits(group, { concurrency: 3 })
      assert.deepInclude(raised, { concurrency: 3, running: 1 })
      assert.deepStrictEqual(yield* heldOf(store, jobIds), [false, false, false, true])
      const b = yield* claimOf(w.id, n("explicit"))
      assert.deepStrictEqual(ids(b.jobs), jobIds.slice(1, 3))
      // undefined keeps a field, null removes it
      assert.deepInclude(yield* store.setGroupLimits(group, { rateLimit: { limit: 100, periodSecs: 60 } }), {
        concurrency: 3,
        rateLimit: { limit: 100, periodSecs: 60 },
        running: 3
      })
      assert.deepInclude(yield* store.setGroupLimits(group, { rateLimit: null }), { concurrency: 3, rateLimit: undefined })
      assert.deepInclude(yield* store.setGroupLimits(group, { concurrency: null }), { concurrency: undefined, running: 3 })
      // the definition's 3 applies again: full
      const [late] = yield* store.enqueue(n("explicit"), [newJob({ i: 4 }, { jobGroup: group })], noCommit)
      assert.isTrue((yield* state(store, late!)).held)
      yield* store.settle(w.id, settled([a.jobs[0]!]))
      const c = yield* claimOf(w.id, n("explicit"))
      assert.deepStrictEqual(ids(c.jobs), [jobIds[3]], "one slot freed, the oldest held job")
      assert.isTrue((yield* state(store, late!)).held)
      assert.deepStrictEqual(yield* store.getGroup(group), { jobGroup: group, concurrency: undefined, rateLimit: undefined, running: 3 })
      yield* store.settle(w.id, settled([...b.jobs, ...c.jobs]))
      yield* store.settle(w.id, settled((yield* claimOf(w.id, n("explicit"))).jobs))
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("group concurrency: candidates of several definitions in one group get the smallest default", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const channel = n("mixed")
      yield* store.deploy([
        def(n("mixed-one"), { channel, groupConcurrency: 1 }),
        def(n("mixed-three"), { channel, groupConcurrency: 3 })
      ], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const group = `${prefix}-mixed`
      const [one] = yield* store.enqueue(n("mixed-one"), [newJob({}, { jobGroup: group })], noCommit)
      // held at enqueue by the enqueued definition's concurrency: 1 active + rank 1, 2 <= 3
      const three = yield* store.enqueue(n("mixed-three"), [newJob({}, { jobGroup: group }), newJob({}, { jobGroup: group })], noCommit)
      assert.deepStrictEqual(yield* heldOf(store, [one!, ...three]), [false, false, false])
      const a = yield* claimOf(w.id, channel)
      assert.deepStrictEqual(ids(a.jobs), [one], "the smallest of the candidates' defaults: 1")
      assert.strictEqual(a.held, 2)
      yield* store.settle(w.id, settled(a.jobs))
      yield* store.settle(w.id, settled((yield* claimOf(w.id, channel)).jobs))
      yield* store.settle(w.id, settled((yield* claimOf(w.id, channel)).jobs))
      assert.strictEqual((yield* store.getGroup(group)).running, 0)
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("concurrent: 20 claimers never hold more slots of a group than its concurrency (definition's 3, explicit 2); every job runs once", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("conc-race"), { groupConcurrency: 3 })], Definition.firstDue)
      const groups = [`${prefix}-cr-a`, `${prefix}-cr-b`, `${prefix}-cr-c`]
      const limits: Record<string, number> = { [groups[0]!]: 3, [groups[1]!]: 3, [groups[2]!]: 2 }
      yield* store.setGroupLimits(groups[2]!, { concurrency: 2 })
      let total = 0
      for (const group of groups) {
        // a bulk backlog, then some one by one
        total += (yield* store.enqueue(n("conc-race"), Array.from({ length: 12 }, (_, i) => newJob({ i }, { jobGroup: group })), noCommit)).length
        for (let i = 0; i < 4; i++) total += (yield* store.enqueue(n("conc-race"), [newJob({ i }, { jobGroup: group })], noCommit)).length
      }
      const workers = Array.from({ length: 20 }, () => worker())
      for (const w of workers) yield* store.registerWorker(w)
      const holding = new Map<string, number>()
      const maxHolding = new Map<string, number>()
      const done: Array<string> = []
      yield* Effect.forEach(workers, (w, k) =>
        Effect.gen(function*() {
          for (let round = 0; done.length < total && round < 3000; round++) {
            const { jobs } = yield* claimOf(w.id, n("conc-race"), 1 + (k % 3))
            if (jobs.length === 0) {
              yield* Effect.yieldNow
              continue
            }
            for (const j of jobs) {
              const h = (holding.get(j.jobGroup!) ?? 0) + 1
              holding.set(j.jobGroup!, h)
              maxHolding.set(j.jobGroup!, Math.max(maxHolding.get(j.jobGroup!) ?? 0, h))
            }
            yield* Effect.yieldNow
            for (const j of jobs) holding.set(j.jobGroup!, holding.get(j.jobGroup!)! - 1)
            done.push(...ids(jobs))
            yield* store.settle(w.id, settled(jobs))
          }
        }), { concurrency: "unbounded", discard: true })
      for (const group of groups) {
        assert.isAtMost(maxHolding.get(group) ?? 0, limits[group]!, `group ${group}`)
        assert.isAtLeast(maxHolding.get(group) ?? 0, 1)
      }
      assert.strictEqual(done.length, total)
      assert.strictEqual(new Set(done).size, total)
      for (const group of groups) assert.strictEqual((yield* store.getGroup(group)).running, 0)
      for (const w of workers) yield* store.deregisterWorker(w.id)
    }))

  it.effect("fairness: another group's job is claimed within two claims of a big backlog, and groups take turns", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("fair"))], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const [A, B, C] = ["a", "b", "c"].map((g) => `${prefix}-fair-${g}`)
      yield* store.enqueue(n("fair"), Array.from({ length: 500 }, (_, i) => newJob({ i }, { jobGroup: A })), noCommit)
      for (let i = 0; i < 20; i++) yield* store.enqueue(n("fair"), [newJob({ i }, { jobGroup: A })], noCommit)
      yield* advance(0.002)
      yield* store.enqueue(n("fair"), Array.from({ length: 5 }, (_, i) => newJob({ i }, { jobGroup: B })), noCommit)
      yield* advance(0.002)
      const [single] = yield* store.enqueue(n("fair"), [newJob({ single: true }, { jobGroup: C })], noCommit)
      const order: Array<string> = []
      const claimedIds: Array<string> = []
      for (let round = 0; round < 9; round++) {
        yield* advance(0.002)
        const { jobs } = yield* claimOf(w.id, n("fair"), 1)
        assert.strictEqual(jobs.length, 1)
        order.push(jobs[0]!.jobGroup!)
        claimedIds.push(jobs[0]!.id)
        yield* store.settle(w.id, settled(jobs))
      }
      assert.isAtMost(claimedIds.indexOf(single!), 2, "C's single job within the first claims")
      // a promoted job goes behind the jobs already waiting: round-robin across the ready groups
      assert.deepStrictEqual(order, [A, B, C, A, B, A, B, A, B])
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("channel pause: no job to any claim while paused (other channels of the claim still served); resume gives them again", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const channel = n("pause")
      yield* store.deploy([def(channel), def(n("pause-other"))], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      assert.deepStrictEqual(yield* store.getChannel(channel), { channel, paused: false, rateLimit: undefined })
      assert.deepStrictEqual(yield* store.setChannel(channel, { paused: true }), { channel, paused: true, rateLimit: undefined })
      const jobIds = yield* store.enqueue(channel, [newJob({}), newJob({})], noCommit)
      const [other] = yield* store.enqueue(n("pause-other"), [newJob({})], noCommit)
      assert.deepStrictEqual((yield* claimOf(w.id, channel)).jobs, [])
      const both = yield* store.claim({
        workerId: w.id,
        channels: [channel, n("pause-other")],
        excludeNames: [],
        limit: 10,
        priorityAgingSecs: 60
      })
      assert.deepStrictEqual(ids(both.jobs), [other])
      assert.isTrue((yield* store.getChannel(channel)).paused)
      // a rate limit set while paused keeps the pause (undefined = keep), and the other way round
      assert.deepStrictEqual(yield* store.setChannel(channel, { rateLimit: { limit: 10, periodSecs: 60 } }), {
        channel,
        paused: true,
        rateLimit: { limit: 10, periodSecs: 60 }
      })
      assert.deepStrictEqual((yield* claimOf(w.id, channel)).jobs, [])
      assert.deepStrictEqual(yield* store.setChannel(channel, { paused: false }), {
        channel,
        paused: false,
        rateLimit: { limit: 10, periodSecs: 60 }
      })
      const resumed = yield* claimOf(w.id, channel)
      assert.deepStrictEqual(ids(resumed.jobs), jobIds)
      assert.deepStrictEqual(yield* store.setChannel(channel, { rateLimit: null }), { channel, paused: false, rateLimit: undefined })
      yield* store.settle(w.id, settled([...both.jobs, ...resumed.jobs]))
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("a run of full claims of plain work changes nothing for the next claim: a pause, a rate limit and a group since are honoured", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const channel = n("plain-run")
      yield* store.deploy([def(channel)], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const taken: Array<Store.ClaimedJob> = []
      const take = (limit: number) => Effect.tap(claimOf(w.id, channel, limit), (r) => Effect.sync(() => taken.push(...r.jobs)))
      const plain = yield* store.enqueue(channel, Array.from({ length: 8 }, (_, i) => newJob({ i })), noCommit)
      // full claims of ungrouped jobs (a backend may take a cheaper path for the next ones)
      assert.deepStrictEqual(ids((yield* take(2)).jobs), plain.slice(0, 2))
      assert.deepStrictEqual(ids((yield* take(2)).jobs), plain.slice(2, 4))
      // paused since: nothing, and nothing taken
      yield* store.setChannel(channel, { paused: true })
      assert.deepStrictEqual((yield* take(2)).jobs, [])
      yield* store.setChannel(channel, { paused: false })
      assert.deepStrictEqual(ids((yield* take(2)).jobs), plain.slice(4, 6))
      // a group's jobs at the head of the queue since: its first is claimed in claim order, the others held
      const grouped = yield* store.enqueue(channel, [1, 2, 3].map((i) => newJob({ g: i }, { jobGroup: `${channel}-g`, priority: 5 })), noCommit)
      assert.deepStrictEqual(ids((yield* take(2)).jobs), [grouped[0]!, plain[6]!])
      assert.strictEqual((yield* store.getGroup(`${channel}-g`)).running, 1, "its slot taken")
      assert.deepStrictEqual(ids((yield* take(2)).jobs), [plain[7]!])
      // a rate limit since: at most its budget (the group's first job still runs: its others stay held)
      const more = yield* store.enqueue(channel, Array.from({ length: 6 }, (_, i) => newJob({ j: i })), noCommit)
      assert.deepStrictEqual(ids((yield* take(2)).jobs), more.slice(0, 2))
      assert.deepStrictEqual(ids((yield* take(2)).jobs), more.slice(2, 4))
      yield* store.setChannel(channel, { rateLimit: { limit: 1, periodSecs: 60 } })
      const limited = yield* take(2)
      assert.deepStrictEqual(ids(limited.jobs), more.slice(4, 5), "the window's budget")
      assert.strictEqual(limited.rateLimited, true)
      const spent = yield* take(2)
      assert.deepStrictEqual([spent.jobs.length, spent.rateLimited, spent.refillAt !== undefined], [0, true, true])
      yield* store.setChannel(channel, { rateLimit: null })
      assert.deepStrictEqual(ids((yield* take(10)).jobs), more.slice(5))
      yield* store.settle(w.id, settled(taken))
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("reportRefill: false claims the same jobs and still says whether a channel is rate limited when it takes some", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const plain = n("rr-plain")
      const limited = n("rr-limited")
      yield* store.deploy([def(plain), def(limited)], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      yield* store.setChannel(limited, { rateLimit: { limit: 2, periodSecs: 60 } })
      yield* store.enqueue(plain, [newJob({}), newJob({})], noCommit)
      yield* store.enqueue(limited, [newJob({}), newJob({}), newJob({})], noCommit)
      const claimPlain = yield* store.claim({ workerId: w.id, channels: [plain], excludeNames: [], limit: 10, priorityAgingSecs: 60, reportRefill: false })
      assert.strictEqual(claimPlain.jobs.length, 2)
      assert.strictEqual(claimPlain.rateLimited, false)
      assert.isUndefined(claimPlain.refillAt)
      const claimLimited = yield* store.claim({ workerId: w.id, channels: [limited], excludeNames: [], limit: 10, priorityAgingSecs: 60, reportRefill: false })
      assert.strictEqual(claimLimited.jobs.length, 2, "the budget, as with the marker")
      assert.strictEqual(claimLimited.rateLimited, true)
      assert.isDefined(claimLimited.refillAt, "spent: rows carry the window's end")
      // nothing left to take: with the marker, the claim still tells
      const spent = yield* store.claim({ workerId: w.id, channels: [limited], excludeNames: [], limit: 10, priorityAgingSecs: 60 })
      assert.deepStrictEqual([spent.jobs.length, spent.rateLimited, spent.refillAt !== undefined], [0, true, true])
      yield* store.setChannel(limited, { rateLimit: null })
      yield* store.settle(w.id, settled([...claimPlain.jobs, ...claimLimited.jobs]))
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("channel rate limit: at most `limit` claims per window, only claimed jobs spend it, refillAt is the window's end", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const channel = n("rate")
      const period = 0.5
      yield* store.deploy([def(channel)], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      yield* store.setChannel(channel, { rateLimit: { limit: 3, periodSecs: period } })
      yield* store.enqueue(channel, [newJob({}), newJob({})], noCommit)
      const windowStart = yield* now
      const a = yield* claimOf(w.id, channel)
      assert.strictEqual(a.jobs.length, 2)
      assert.isUndefined(a.refillAt, "one claim of the budget left: nothing refused")
      yield* store.enqueue(channel, [1, 2, 3, 4, 5].map((i) => newJob({ i })), noCommit)
      const b = yield* claimOf(w.id, channel)
      assert.strictEqual(b.jobs.length, 1, "the window's third and last claim")
      assert.isDefined(b.refillAt)
      // the window started at (or after) the first claim, after the jobs' run time
      assert.isAtLeast(b.refillAt!.getTime(), a.jobs[0]!.runAt.getTime() + period * 1000)
      if (exactClock) assert.strictEqual(b.refillAt!.getTime(), windowStart + period * 1000)
      const c = yield* claimOf(w.id, channel)
      assert.deepStrictEqual(c.jobs, [])
      // PostgreSQL reports the time left in the window, made a local Date on arrival: equal up to that
      // conversion (a later window would end a whole period later)
      const slack = exactClock ? 0 : period * 100
      assert.approximately(c.refillAt!.getTime(), b.refillAt!.getTime(), slack, "the same window")
      yield* advance(period + 0.05)
      const d = yield* claimOf(w.id, channel)
      assert.strictEqual(d.jobs.length, 3, "a new window, a full budget")
      assert.isAtLeast(d.refillAt!.getTime(), b.refillAt!.getTime() + period * 1000 - slack)
      assert.deepStrictEqual((yield* claimOf(w.id, channel)).jobs, [])
      // removing the limit: the rest at once
      yield* store.setChannel(channel, { rateLimit: null })
      const e = yield* claimOf(w.id, channel)
      assert.strictEqual(e.jobs.length, 1)
      assert.isUndefined(e.refillAt)
      yield* store.settle(w.id, settled([...a.jobs, ...b.jobs, ...d.jobs, ...e.jobs]))
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("channel rate limit: jobs held by their group in a claim spend no budget", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const channel = n("rate-held")
      yield* store.deploy([def(channel, { groupConcurrency: 3 })], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const group = `${prefix}-rate-held`
      const grouped = yield* store.enqueue(channel, [0, 1, 2].map((i) => newJob({ i }, { jobGroup: group })), noCommit)
      yield* advance(0.002)
      const free = yield* store.enqueue(channel, [0, 1, 2].map((i) => newJob({ i })), noCommit)
      yield* store.setGroupLimits(group, { concurrency: 1 }) // lowered after they were claimable: the claim holds
      yield* store.setChannel(channel, { rateLimit: { limit: 3, periodSecs: 3600 } })
      const a = yield* claimOf(w.id, channel)
      assert.deepStrictEqual(ids(a.jobs), [grouped[0]], "the 3 candidates are the group's; 1 slot")
      assert.strictEqual(a.held, 2)
      assert.isUndefined(a.refillAt, "the budget is not spent: 2 left")
      const b = yield* claimOf(w.id, channel)
      assert.deepStrictEqual(ids(b.jobs), free.slice(0, 2), "the 2 claims left of the window")
      assert.isDefined(b.refillAt)
      assert.deepStrictEqual((yield* claimOf(w.id, channel)).jobs, [])
      yield* store.setChannel(channel, { rateLimit: null })
      yield* store.settle(w.id, settled([...a.jobs, ...b.jobs]))
      yield* store.settle(w.id, settled((yield* claimOf(w.id, channel, 10)).jobs))
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("group rate limit: candidates beyond the budget are held and the group blocked; promoteGroups after the window frees them", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const channel = n("grate")
      const period = 0.5
      yield* store.deploy([def(channel, { groupConcurrency: 10, groupRateLimit: { limit: 2, periodSecs: period } })], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const group = `${prefix}-grate`
      const explicit = `${prefix}-grate-explicit`
      yield* store.setGroupLimits(explicit, { rateLimit: { limit: 1, periodSecs: 3600 } })
      const jobIds = yield* store.enqueue(channel, [0, 1, 2, 3, 4].map((i) => newJob({ i }, { jobGroup: group })), noCommit)
      assert.deepStrictEqual(yield* heldOf(store, jobIds), [false, false, false, false, false], "concurrency 10: none held at enqueue")
      const start = yield* now
      const a = yield* claimOf(w.id, channel)
      assert.deepStrictEqual(ids(a.jobs), jobIds.slice(0, 2))
      assert.strictEqual(a.held, 3)
      assert.isDefined(a.refillAt, "blocked until the window ends")
      if (exactClock) assert.strictEqual(a.refillAt!.getTime(), start + period * 1000)
      assert.deepStrictEqual(yield* heldOf(store, jobIds.slice(2)), [true, true, true])
      assert.deepStrictEqual((yield* claimOf(w.id, channel)).jobs, [])
      // freed slots do not lift a rate limit
      yield* store.settle(w.id, settled(a.jobs))
      yield* store.promoteGroups(1000)
      assert.deepStrictEqual(yield* heldOf(store, jobIds.slice(2)), [true, true, true])
      assert.deepStrictEqual((yield* claimOf(w.id, channel)).jobs, [])
      yield* advance(period + 0.05)
      assert.isAtLeast(yield* store.promoteGroups(1000), 1)
      assert.deepStrictEqual(yield* heldOf(store, jobIds.slice(2)), [false, false, true], "a new window's budget: 2")
      const b = yield* claimOf(w.id, channel)
      assert.deepStrictEqual(ids(b.jobs), jobIds.slice(2, 4))
      yield* store.settle(w.id, settled(b.jobs))
      // an explicit group rate limit wins over the definition's
      const ex = yield* store.enqueue(channel, [0, 1, 2].map((i) => newJob({ i }, { jobGroup: explicit })), noCommit)
      const c = yield* claimOf(w.id, channel)
      assert.deepStrictEqual(ids(c.jobs), [ex[0]], "the explicit 1 per hour, not the definition's 2")
      yield* store.settle(w.id, settled(c.jobs))
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("explicit group settings survive deleteUnreferencedGroups; unknown channels and groups read as unlimited", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      yield* store.deploy([def(n("keep-group"))], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const kept = `${prefix}-kept-limits`
      const used = `${prefix}-used-limits`
      yield* store.setGroupLimits(kept, { concurrency: 2 })
      yield* store.setGroupLimits(used, { rateLimit: { limit: 5, periodSecs: 10 } })
      yield* store.enqueue(n("keep-group"), [newJob({}, { jobGroup: used })], noCommit)
      yield* store.settle(w.id, settled((yield* claimOf(w.id, n("keep-group"))).jobs))
      const deleted = yield* store.deleteUnreferencedGroups(100_000)
      assert.notInclude(deleted, kept)
      assert.notInclude(deleted, used)
      assert.deepStrictEqual(yield* store.getGroup(kept), { jobGroup: kept, concurrency: 2, rateLimit: undefined, running: 0 })
      assert.deepStrictEqual(yield* store.getGroup(used), {
        jobGroup: used,
        concurrency: undefined,
        rateLimit: { limit: 5, periodSecs: 10 },
        running: 0
      })
      const unknown = `${prefix}-never-${randomUUID()}`
      assert.deepStrictEqual(yield* store.getGroup(unknown), { jobGroup: unknown, concurrency: undefined, rateLimit: undefined, running: 0 })
      assert.deepStrictEqual(yield* store.getChannel(unknown), { channel: unknown, paused: false, rateLimit: undefined })
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("concurrent: 20 claimers on a rate-limited channel and a rate-limited group never exceed a window's budget", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const channel = n("rate-race")
      const groupChannel = n("grate-race")
      const period = 0.4
      const limit = 5
      yield* store.deploy([
        def(channel),
        def(groupChannel, { groupConcurrency: 1000, groupRateLimit: { limit: 4, periodSecs: period } })
      ], Definition.firstDue)
      yield* store.setChannel(channel, { rateLimit: { limit, periodSecs: period } })
      yield* store.enqueue(channel, Array.from({ length: 200 }, (_, i) => newJob({ i })), noCommit)
      const group = `${prefix}-grate-race`
      yield* store.enqueue(groupChannel, Array.from({ length: 200 }, (_, i) => newJob({ i }, { jobGroup: group })), noCommit)
      const workers = Array.from({ length: 20 }, () => worker())
      for (const w of workers) yield* store.registerWorker(w)
      const rounds: Array<{ channel: number; group: number; secs: number }> = []
      const first = yield* now
      for (let round = 0; round < 6; round++) {
        if (round > 0) yield* advance(period / 2)
        yield* store.promoteGroups(1000)
        const start = yield* now
        let onChannel = 0
        let onGroup = 0
        yield* Effect.forEach(workers, (w, k) =>
          Effect.gen(function*() {
            const c = yield* claimOf(w.id, k % 2 === 0 ? channel : groupChannel, 3)
            if (k % 2 === 0) onChannel += c.jobs.length
            else onGroup += c.jobs.length
            yield* store.settle(w.id, settled(c.jobs))
          }), { concurrency: "unbounded", discard: true })
        rounds.push({ channel: onChannel, group: onGroup, secs: ((yield* now) - start) / 1000 })
      }
      const span = ((yield* now) - first) / 1000
      for (const r of rounds) {
        assert.isAtMost(r.channel, windowBound(limit, r.secs, period), JSON.stringify(rounds))
        assert.isAtMost(r.group, windowBound(4, r.secs, period), JSON.stringify(rounds))
      }
      const totalChannel = rounds.reduce((s, r) => s + r.channel, 0)
      const totalGroup = rounds.reduce((s, r) => s + r.group, 0)
      assert.isAtMost(totalChannel, windowBound(limit, span, period))
      assert.isAtMost(totalGroup, windowBound(4, span, period))
      assert.isAtLeast(totalChannel, limit)
      assert.isAtLeast(totalGroup, 4)
      if (exactClock) {
        // windows start at rounds 0, 2 and 4 (each lasts two rounds), and every window's budget is used
        assert.deepStrictEqual(rounds.map((r) => r.channel), [limit, 0, limit, 0, limit, 0])
        assert.deepStrictEqual(rounds.map((r) => r.group), [4, 0, 4, 0, 4, 0])
      }
      for (const w of workers) yield* store.deregisterWorker(w.id)
    }))

  /** The first notice matching `f`, in a fiber started now (subscribed before it returns). */
  const firstNotice = (store: JobStore["Service"], f: (n: Store.Notice) => boolean) =>
    Effect.gen(function*() {
      const notices = yield* store.notices
      return yield* Effect.forkScoped(
        Stream.runHead(Stream.filter(notices, f)).pipe(Effect.timeoutOption(Duration.seconds(10)), Effect.map(Option.flatten))
      )
    })

  it.effect("results: a succeeded job keeps its result; an awaited job's finalization is noticed", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const name = n("results")
      yield* store.deploy([def(name)], Definition.firstDue)
      const [a, b] = yield* store.enqueue(name, [newJob({}), newJob({})], noCommit)
      const w = worker()
      yield* store.registerWorker(w)
      const noticed = yield* firstNotice(store, (x) => x._tag === "Finalized" && x.id === a)
      yield* store.markAwaited(a!)
      const { jobs } = yield* claimOf(w.id, name)
      assert.deepStrictEqual(ids(jobs), [a, b])
      yield* store.settle(w.id, [
        { id: a!, claim: jobs[0]!.claim, outcome: "Succeeded", result: { total: 42, items: ["x"] }, grouped: false },
        { id: b!, claim: jobs[1]!.claim, outcome: "Succeeded", grouped: false }
      ])
      assert.deepStrictEqual(Option.getOrUndefined(yield* Fiber.join(noticed)), { _tag: "Finalized", id: a })
      assert.deepInclude(yield* state(store, a!), { state: "succeeded", attempts: 1 })
      assert.deepStrictEqual((yield* state(store, a!)).result, { total: 42, items: ["x"] })
      assert.isUndefined((yield* state(store, b!)).result)
      yield* store.markAwaited("999999999") // not live: nothing
      yield* store.markAwaited("not-an-id")
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("cancel: a waiting job is finalized as cancelled and never claimed; a held one too; finalized ones are untouched", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const name = n("cancel-waiting")
      const group = `${prefix}-cw-group`
      yield* store.deploy([def(name)], Definition.firstDue)
      const [a, b, c, d] = yield* store.enqueue(name, [
        newJob({}),
        newJob({}, { jobGroup: group }),
        newJob({}, { jobGroup: group }),
        newJob({}, { jobGroup: group })
      ], noCommit)
      assert.isTrue((yield* state(store, c!)).held)
      const noticed = yield* firstNotice(store, (x) => x._tag === "Finalized" && x.id === a)
      yield* store.markAwaited(a!)
      const one = yield* store.cancel({ ids: [a!, "999999999", "nope"] })
      assert.deepStrictEqual(one, { cancelled: [{ id: a!, name }], cancelling: [] })
      assert.isTrue(Option.isSome(yield* Fiber.join(noticed)))
      assert.deepInclude(yield* state(store, a!), { state: "cancelled", attempts: 0 })
      assert.deepStrictEqual((yield* state(store, a!)).lastError, { message: "the job was cancelled", tag: "JobCancelled" })
      // the group's claimable head is cancelled: a held job of the group becomes claimable
      assert.deepStrictEqual((yield* store.cancel({ ids: [b!] })).cancelled.map((j) => j.id), [b])
      const w = worker()
      yield* store.registerWorker(w)
      const { jobs } = yield* claimOf(w.id, name)
      assert.deepStrictEqual(ids(jobs), [c])
      // by filter: the held one of the group is cancelled, the claimed one is asked to stop
      const byGroup = yield* store.cancel({ definition: name, jobGroup: group })
      assert.deepStrictEqual(byGroup.cancelled.map((j) => j.id), [d])
      assert.deepStrictEqual(byGroup.cancelling, [{ id: c!, name, workerId: w.id }])
      // already finalized: nothing
      assert.deepStrictEqual(yield* store.cancel({ ids: [a!] }), { cancelled: [], cancelling: [] })
      yield* store.settle(w.id, settled(jobs))
      assert.deepInclude(yield* state(store, c!), { state: "succeeded" }) // it ended before its worker stopped it
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("cancel: a claimed job is marked, noticed and polled; it never goes back to the queue; its group slot frees", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const name = n("cancel-running")
      const group = `${prefix}-cr-group`
      yield* store.deploy([def(name, { numAttempts: 3 })], Definition.firstDue)
      const [a, b, c, d] = yield* store.enqueue(name, [
        newJob({}, { jobGroup: group }),
        newJob({}),
        newJob({}),
        newJob({})
      ], noCommit)
      const w = worker()
      yield* store.registerWorker(w)
      const { jobs } = yield* claimOf(w.id, name)
      assert.deepStrictEqual(ids(jobs), [a, b, c, d])
      const noticed = yield* firstNotice(store, (x) => x._tag === "CancelRequested" && x.id === a)
      const result = yield* store.cancel({ ids: [a!, b!, c!, d!] })
      assert.deepStrictEqual(result.cancelled, [])
      assert.deepStrictEqual(result.cancelling.map((j) => j.id), [a, b, c, d])
      assert.isTrue(Option.isSome(yield* Fiber.join(noticed)))
      assert.deepStrictEqual([...(yield* store.cancelRequests(w.id))].sort(), [a, b, c, d].sort())
      assert.deepInclude(yield* state(store, a!), { state: "running", cancelRequested: true })
      assert.strictEqual((yield* store.getGroup(group)).running, 1)
      const [ja, jb, jc, jd] = jobs
      yield* store.settle(w.id, [
        { id: a!, claim: ja!.claim, outcome: "Cancelled" }, // interrupted: its attempt counts
        { id: b!, claim: jb!.claim, outcome: "Cancelled", ran: false, grouped: false }, // never started
        { id: c!, claim: jc!.claim, outcome: "Retry", error: { message: "x" }, grouped: false }, // failed meanwhile
        { id: d!, claim: jd!.claim, outcome: "Released", grouped: false } // its worker stopping
      ])
      assert.deepInclude(yield* state(store, a!), { state: "cancelled", attempts: 1 })
      assert.deepInclude(yield* state(store, b!), { state: "cancelled", attempts: 0 })
      assert.deepInclude(yield* state(store, c!), { state: "cancelled", attempts: 1 })
      assert.deepInclude(yield* state(store, d!), { state: "cancelled", attempts: 0 })
      assert.strictEqual((yield* store.getGroup(group)).running, 0)
      assert.deepStrictEqual(yield* store.cancelRequests(w.id), [])
      assert.deepStrictEqual((yield* claimOf(w.id, name)).jobs, [])
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("cancel: a dead worker's job whose cancellation was requested is finalized as cancelled, not retried", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const name = n("cancel-rescue")
      yield* store.deploy([def(name, { numAttempts: 3 })], Definition.firstDue)
      const [a] = yield* store.enqueue(name, [newJob({})], noCommit)
      const dead = worker(1)
      yield* store.registerWorker(dead)
      const { jobs } = yield* claimOf(dead.id, name)
      yield* store.settle(dead.id, [{ id: a!, claim: jobs[0]!.claim, outcome: "Started" }])
      assert.deepStrictEqual((yield* store.cancel({ ids: [a!] })).cancelling.map((j) => j.id), [a])
      yield* advance(1.2)
      const rescued = yield* store.rescue(rescueNow())
      assert.deepStrictEqual(rescued.jobs.filter((j) => j.jobId === a).length, 1)
      assert.deepInclude(yield* state(store, a!), { state: "cancelled" })
    }))
}
