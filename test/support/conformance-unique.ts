/**
 * Unique jobs (issue 13, item 1) in the storage contract's conformance suite: `enqueueUnique` on both
 * backends, sequential cases for each rule and concurrent ones (many fibers enqueueing one key).
 */
import { assert, type Vitest } from "@effect/vitest"
import { Effect, type Scope } from "effect"
import * as Definition from "../../src/internal/definition.js"
import { JobStore } from "../../src/JobStore.js"
import type * as Store from "../../src/JobStore.js"
import { def, newJob, noCommit, settled, state, worker } from "./conformance.js"

type Tester = Vitest.Test<JobStore | Scope.Scope>

const rule = (extra: Partial<Store.UniqueRule> = {}): Store.UniqueRule => ({
  states: ["waiting", "running"],
  periodSecs: undefined,
  onConflict: "keep",
  ...extra
})

export const uniqueCases = (
  it: { readonly effect: Tester },
  advance: (secs: number) => Effect.Effect<void>,
  prefix: string
) => {
  const n = (name: string) => `${prefix}-u-${name}`
  const claimAll = (workerId: string, channel: string, limit = 100) =>
    Effect.flatMap(JobStore, (store) =>
      Effect.map(
        store.claim({ workerId, channels: [channel], excludeNames: [], limit, priorityAgingSecs: 60 }),
        (r) => r.jobs
      ))

  it.effect("unique keep: a duplicate of a waiting or running job returns it and writes nothing; a finalized one frees the key", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const name = n("keep")
      yield* store.deploy([def(name, { numAttempts: 3 })], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const announced: Array<string> = []
      const onCommit = (ids: ReadonlyArray<string>) => Effect.sync(() => void announced.push(...ids))
      const [a] = yield* store.enqueueUnique(name, rule(), [newJob({ v: 1 })], ["k1"], onCommit)
      assert.strictEqual(a!.outcome, "inserted")
      const [dup] = yield* store.enqueueUnique(name, rule(), [newJob({ v: 2 })], ["k1"], onCommit)
      assert.deepStrictEqual(dup, { id: a!.id, outcome: "kept" })
      const [other] = yield* store.enqueueUnique(name, rule(), [newJob({ v: 3 }, { jobGroup: "ug" })], ["k2"], onCommit)
      assert.strictEqual(other!.outcome, "inserted")
      assert.notStrictEqual(other!.id, a!.id)
      assert.deepStrictEqual(announced, [a!.id, other!.id], "onCommit for inserted jobs only")
      assert.deepStrictEqual((yield* state(store, a!.id)).payload, { v: 1 }, "kept unchanged")
      assert.strictEqual((yield* state(store, other!.id)).jobGroup, "ug")
      // running: still held (the default states)
      const claimed = yield* claimAll(w.id, name)
      assert.sameMembers(claimed.map((j) => j.id), [a!.id, other!.id])
      const [whileRunning] = yield* store.enqueueUnique(name, rule(), [newJob({ v: 4 })], ["k1"], onCommit)
      assert.deepStrictEqual(whileRunning, { id: a!.id, outcome: "kept" })
      // retried: back to waiting, still the key's job
      const ja = claimed.find((j) => j.id === a!.id)!
      yield* store.settle(w.id, [{ id: ja.id, claim: ja.claim, outcome: "Started" }])
      yield* store.settle(w.id, [{ id: ja.id, claim: ja.claim, outcome: "Retry", error: { m: "x" }, delaySecs: 0 }])
      const [whileRetrying] = yield* store.enqueueUnique(name, rule(), [newJob({ v: 5 })], ["k1"], onCommit)
      assert.deepStrictEqual(whileRetrying, { id: a!.id, outcome: "kept" })
      // finalized: the key is free (succeeded is not among the states)
      const again = yield* claimAll(w.id, name)
      yield* store.settle(w.id, settled([...again, ...claimed.filter((j) => j.id !== a!.id)]))
      assert.strictEqual((yield* state(store, a!.id)).state, "succeeded")
      const [fresh] = yield* store.enqueueUnique(name, rule(), [newJob({ v: 6 })], ["k1"], onCommit)
      assert.strictEqual(fresh!.outcome, "inserted")
      assert.notStrictEqual(fresh!.id, a!.id)
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("unique waiting only: a running job gives its key away, and does not take it back when it is retried", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const name = n("waiting")
      yield* store.deploy([def(name, { numAttempts: 3 })], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const waitingOnly = rule({ states: ["waiting"] })
      const [a] = yield* store.enqueueUnique(name, waitingOnly, [newJob({ v: "a" })], ["k"], noCommit)
      assert.deepStrictEqual((yield* store.enqueueUnique(name, waitingOnly, [newJob({})], ["k"], noCommit))[0], {
        id: a!.id,
        outcome: "kept"
      })
      const [ja] = yield* claimAll(w.id, name)
      assert.strictEqual(ja!.id, a!.id)
      const [b] = yield* store.enqueueUnique(name, waitingOnly, [newJob({ v: "b" })], ["k"], noCommit)
      assert.strictEqual(b!.outcome, "inserted", "a running job does not hold a waiting-only key")
      yield* store.settle(w.id, [{ id: ja!.id, claim: ja!.claim, outcome: "Started" }])
      yield* store.settle(w.id, [{ id: ja!.id, claim: ja!.claim, outcome: "Retry", error: { m: "x" }, delaySecs: 0 }])
      assert.strictEqual((yield* state(store, a!.id)).state, "waiting", "the first job is retried")
      const [c] = yield* store.enqueueUnique(name, waitingOnly, [newJob({ v: "c" })], ["k"], noCommit)
      assert.deepStrictEqual(c, { id: b!.id, outcome: "kept" }, "the key stays with the job that took it")
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("unique replace: a waiting job takes the new payload, run time and priority; a running one is kept", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const name = n("replace")
      yield* store.deploy([def(name)], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const replace = rule({ onConflict: "replace" })
      const [a] = yield* store.enqueueUnique(name, replace, [newJob({ v: 1 }, { delaySecs: 3600 })], ["k"], noCommit)
      assert.deepStrictEqual(yield* claimAll(w.id, name), [], "not due yet")
      const [r] = yield* store.enqueueUnique(name, replace, [newJob({ v: 2 }, { priority: 7 })], ["k"], noCommit)
      assert.deepStrictEqual(r, { id: a!.id, outcome: "replaced" })
      const info = yield* state(store, a!.id)
      assert.deepStrictEqual(info.payload, { v: 2 })
      assert.strictEqual(info.priority, 7)
      const [ja] = yield* claimAll(w.id, name)
      assert.strictEqual(ja!.id, a!.id, "due now: the new run time")
      assert.deepStrictEqual(ja!.payload, { v: 2 })
      const [k] = yield* store.enqueueUnique(name, replace, [newJob({ v: 3 })], ["k"], noCommit)
      assert.deepStrictEqual(k, { id: a!.id, outcome: "kept" }, "a running job is never changed")
      assert.deepStrictEqual((yield* state(store, a!.id)).payload, { v: 2 })
      yield* store.settle(w.id, settled([ja!]))
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("unique debounce: a waiting job's run time moves to the new one's, its payload stays", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const name = n("debounce")
      yield* store.deploy([def(name)], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const debounce = rule({ onConflict: "debounce" })
      const [a] = yield* store.enqueueUnique(name, debounce, [newJob({ v: 1 })], ["k"], noCommit)
      const before = (yield* state(store, a!.id)).runAt!.getTime()
      const [d] = yield* store.enqueueUnique(name, debounce, [newJob({ v: 2 }, { delaySecs: 3600 })], ["k"], noCommit)
      assert.deepStrictEqual(d, { id: a!.id, outcome: "debounced" })
      const info = yield* state(store, a!.id)
      assert.deepStrictEqual(info.payload, { v: 1 })
      assert.isAbove(info.runAt!.getTime() - before, 3_000_000, "pushed back by the new delay")
      assert.deepStrictEqual(yield* claimAll(w.id, name), [], "not due any more")
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("unique bulk: jobs of one call with one key are applied in order (keep: the first; replace: the last)", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const name = n("bulk")
      yield* store.deploy([def(name)], Definition.firstDue)
      const announced: Array<string> = []
      const out = yield* store.enqueueUnique(
        name,
        rule(),
        [newJob({ v: 1 }), newJob({ v: 2 }), newJob({ v: 3 }), newJob({ v: 4 })],
        ["a", "b", "a", "c"],
        (ids) => Effect.sync(() => void announced.push(...ids))
      )
      assert.deepStrictEqual(out.map((o) => o.outcome), ["inserted", "inserted", "kept", "inserted"])
      assert.strictEqual(out[2]!.id, out[0]!.id)
      assert.strictEqual(new Set(out.map((o) => o.id)).size, 3)
      assert.sameMembers(announced, [out[0]!.id, out[1]!.id, out[3]!.id])
      assert.deepStrictEqual((yield* state(store, out[0]!.id)).payload, { v: 1 })
      const again = yield* store.enqueueUnique(name, rule(), [newJob({ v: 5 }), newJob({ v: 6 })], ["b", "d"], noCommit)
      assert.deepStrictEqual(again.map((o) => o.outcome), ["kept", "inserted"])
      assert.strictEqual(again[0]!.id, out[1]!.id)
      const replaced = yield* store.enqueueUnique(
        name,
        rule({ onConflict: "replace" }),
        [newJob({ v: 7 }), newJob({ v: 8 })],
        ["e", "e"],
        noCommit
      )
      assert.deepStrictEqual(replaced.map((o) => o.outcome), ["inserted", "replaced"])
      assert.strictEqual(replaced[1]!.id, replaced[0]!.id)
      assert.deepStrictEqual((yield* state(store, replaced[0]!.id)).payload, { v: 8 })
    }))

  it.effect("unique period: a finalized job holds its key for the period (succeeded among the states), not after", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const name = n("period")
      yield* store.deploy([def(name)], Definition.firstDue)
      const w = worker()
      yield* store.registerWorker(w)
      const hourly = rule({ states: ["waiting", "running", "succeeded"], periodSecs: 1.5 })
      const [a] = yield* store.enqueueUnique(name, hourly, [newJob({})], ["k"], noCommit)
      yield* store.settle(w.id, settled(yield* claimAll(w.id, name)))
      assert.strictEqual((yield* state(store, a!.id)).state, "succeeded")
      assert.deepStrictEqual((yield* store.enqueueUnique(name, hourly, [newJob({})], ["k"], noCommit))[0], {
        id: a!.id,
        outcome: "kept"
      })
      // failed is not among the states: a failed job frees its key at once, period or not
      const [f] = yield* store.enqueueUnique(name, hourly, [newJob({})], ["f"], noCommit)
      const [jf] = yield* claimAll(w.id, name)
      yield* store.settle(w.id, [{ id: jf!.id, claim: jf!.claim, outcome: "Expired", error: { m: "x" } }])
      assert.strictEqual((yield* state(store, f!.id)).state, "failed")
      assert.strictEqual((yield* store.enqueueUnique(name, hourly, [newJob({})], ["f"], noCommit))[0]!.outcome, "inserted")
      yield* advance(1.6)
      const [b] = yield* store.enqueueUnique(name, hourly, [newJob({})], ["k"], noCommit)
      assert.strictEqual(b!.outcome, "inserted", "the period ended")
      yield* store.deregisterWorker(w.id)
    }))

  it.effect("unique: an undeployed definition is refused and takes no key", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const name = n("undeployed")
      const error = yield* Effect.flip(store.enqueueUnique(name, rule(), [newJob({})], ["k"], noCommit))
      assert.strictEqual(error._tag, "JobDefinitionNotDeployed")
      yield* store.deploy([def(name)], Definition.firstDue)
      assert.strictEqual((yield* store.enqueueUnique(name, rule(), [newJob({})], ["k"], noCommit))[0]!.outcome, "inserted")
      assert.deepStrictEqual(yield* store.enqueueUnique(name, rule(), [], [], noCommit), [])
    }))

  it.effect("concurrent: 50 fibers enqueueing one key (and 5 keys) make exactly one job per key, under every rule", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      for (const onConflict of ["keep", "replace", "debounce"] as const) {
        const name = n(`race-${onConflict}`)
        yield* store.deploy([def(name)], Definition.firstDue)
        const w = worker()
        yield* store.registerWorker(w)
        const r = rule({ onConflict })
        const out = yield* Effect.forEach(Array.from({ length: 50 }, (_, i) => i), (i) =>
          Effect.flatMap(Effect.yieldNow, () =>
            store.enqueueUnique(name, r, [newJob({ i }), newJob({ i, second: true })], ["one", `k${i % 5}`], noCommit)), {
          concurrency: "unbounded"
        })
        const ones = out.map((o) => o[0]!)
        assert.strictEqual(ones.filter((o) => o.outcome === "inserted").length, 1, JSON.stringify(ones.map((o) => o.outcome)))
        assert.strictEqual(new Set(ones.map((o) => o.id)).size, 1)
        const perKey = new Map<string, Set<string>>()
        out.forEach((o, i) => {
          const set = perKey.get(`k${i % 5}`) ?? new Set()
          set.add(o[1]!.id)
          perKey.set(`k${i % 5}`, set)
        })
        for (const set of perKey.values()) assert.strictEqual(set.size, 1)
        const claimed = yield* claimAll(w.id, name)
        assert.strictEqual(claimed.length, 6, "one job per key")
        yield* store.settle(w.id, settled(claimed))
        yield* store.deregisterWorker(w.id)
      }
    }))
  it.effect("concurrent: bulk enqueues of overlapping keys in opposite orders never deadlock; one job per key", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const name = n("order")
      yield* store.deploy([def(name)], Definition.firstDue)
      const keys = Array.from({ length: 26 }, (_, i) => String.fromCharCode(97 + i))
      const out = yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => i), (i) => {
        const mine = i % 2 === 0 ? keys : [...keys].reverse()
        return Effect.flatMap(Effect.yieldNow, () => store.enqueueUnique(name, rule(), mine.map((k) => newJob({ k })), mine, noCommit))
      }, { concurrency: "unbounded" })
      const idsByKey = new Map<string, Set<string>>()
      out.forEach((o, i) => {
        const mine = i % 2 === 0 ? keys : [...keys].reverse()
        o.forEach((x, k) => idsByKey.set(mine[k]!, (idsByKey.get(mine[k]!) ?? new Set()).add(x.id)))
      })
      assert.strictEqual(idsByKey.size, 26)
      for (const set of idsByKey.values()) assert.strictEqual(set.size, 1)
      assert.strictEqual(out.flat().filter((o) => o.outcome === "inserted").length, 26)
      // ids follow the call's order: the first call's jobs are claimed in its order
      const first = out.find((o) => o.every((x) => x.outcome === "inserted"))
      if (first !== undefined) {
        const numeric = first.map((x) => Number(x.id))
        assert.deepStrictEqual(numeric, [...numeric].sort((a, b) => a - b), "ids in call order")
      }
    }))

  it.effect("unique: a cancelled job holds no key, whatever the states", () =>
    Effect.gen(function*() {
      const store = yield* JobStore
      const name = n("cancelled")
      yield* store.deploy([def(name)], Definition.firstDue)
      const all = rule({ states: ["waiting", "running", "succeeded", "failed"] })
      const [a] = yield* store.enqueueUnique(name, all, [newJob({})], ["k"], noCommit)
      const result = yield* store.cancel({ ids: [a!.id] })
      assert.deepStrictEqual(result.cancelled.map((c) => c.id), [a!.id])
      const [b] = yield* store.enqueueUnique(name, all, [newJob({})], ["k"], noCommit)
      assert.strictEqual(b!.outcome, "inserted")
    }))
}
