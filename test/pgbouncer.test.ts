/**
 * The conformance suite and the worker suite through a real PgBouncer in transaction mode (Debian's
 * `pgbouncer`, started by the tests: test/support/pgbouncer.ts), in both supported configurations: the
 * session connection direct (`directUrl`), and poll-only. Skipped with a message when pgbouncer is missing.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Layer, Option, Scope, Stream } from "effect"
import { SqlClient } from "effect/sql"
import * as Definition from "../src/internal/definition.js"
import { PgJobStore } from "../src/index.js"
import { conformance, def, newJob, noCommit, worker } from "./support/conformance.js"
import { waitUntil } from "./support/harness.js"
import { type Connection, DropSchema, uniqueSchema } from "./support/pg.js"
import { pgbouncerAvailable, throughPgBouncer } from "./support/pgbouncer.js"
import { workerSuite } from "./support/worker-suite.js"

const storeOn = (connection: Connection) => {
  const schema = uniqueSchema("pgbouncer")
  return PgJobStore.layer({ ...connection.store, schema, keepFinalized: true }).pipe(
    Layer.orDie,
    Layer.provideMerge(Layer.provideMerge(DropSchema(schema), connection.layer()))
  )
}

/** Two stores ("processes") on one fresh schema, through `connection`; the second in a scope of its own. */
const twoStores = (connection: Connection) =>
  Effect.gen(function*() {
    const schema = uniqueSchema("pgb_two")
    const sql = yield* SqlClient.SqlClient
    yield* Effect.addFinalizer(() => Effect.ignore(sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`))
    yield* PgJobStore.migrate({ schema })
    const a = yield* PgJobStore.make({ ...connection.store, schema })
    const bScope = yield* Scope.make()
    const b = yield* Scope.provide(PgJobStore.make({ ...connection.store, schema }), bScope)
    return { schema, a, b, bScope }
  })

describe.skipIf(!pgbouncerAvailable())("through PgBouncer (pool_mode = transaction)", () => {
  describe("across processes", () => {
    const directSession = throughPgBouncer("direct-session")
    layer(directSession.layer(), { excludeTestServices: true })((it) => {
      it.effect("direct session: another process's enqueue wakes this one (NOTIFY through the pooler, LISTEN direct); its liveness lock goes with it", () =>
        Effect.gen(function*() {
          const { a, b, bScope } = yield* twoStores(directSession)
          yield* Scope.provide(b.notices, bScope) // returns once b LISTENs
          const wakeups = yield* Scope.provide(b.wakeups, bScope)
          const woken = yield* wakeups.pipe(
            Stream.filter((w) => w._tag === "Channel" && w.channel === "pgb-wake"),
            Stream.runHead,
            Effect.timeoutOption(Duration.seconds(20)),
            Effect.forkChild
          )
          yield* a.deploy([def("pgb-wake")], Definition.firstDue)
          yield* a.enqueue("pgb-wake", [newJob({})], noCommit)
          assert.isTrue(Option.isSome(Option.flatten(yield* Fiber.join(woken))), "b was woken by a's enqueue")
          // b's worker, under b's session: alive while b lives; b gone, a rescue declares it dead after the
          // grace (its lease is an hour)
          const session = yield* b.session
          assert.isDefined(session)
          const w = worker(3600, session!.key)
          yield* b.registerWorker(w)
          const rescueSoon = { jobGroupUnlockSecs: 3600, sessionGraceSecs: 0.2, limit: 1000, minIntervalSecs: 0 }
          yield* a.rescue(rescueSoon)
          yield* Effect.sleep(Duration.millis(300))
          yield* a.rescue(rescueSoon)
          assert.isTrue(yield* a.heartbeat(w.id, 3600), "a live session's worker is never declared dead")
          yield* Scope.close(bScope, Exit.void)
          yield* waitUntil("b's worker was declared dead", Effect.flatMap(a.rescue(rescueSoon), () =>
            Effect.map(a.heartbeat(w.id, 3600), (alive) => !alive)), "30 seconds")
        }).pipe(Effect.scoped))
    })
    const pollOnly = throughPgBouncer("poll-only")
    layer(pollOnly.layer(), { excludeTestServices: true })((it) => {
      it.effect("poll-only: no session connection (no LISTEN, no liveness lock); another process's cancellation is found by the worker's poll", () =>
        Effect.gen(function*() {
          const { a, b, bScope, schema } = yield* twoStores(pollOnly)
          const sql = yield* SqlClient.SqlClient
          assert.isUndefined(yield* b.session)
          yield* Scope.provide(b.wakeups, bScope)
          yield* Scope.provide(b.notices, bScope)
          const sessions = yield* sql<{ n: number }>`
            SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = ${`cuckmq session ${schema}`.slice(0, 63)}`
          assert.strictEqual(sessions[0]!.n, 0)
          yield* a.deploy([def("pgb-cancel")], Definition.firstDue)
          const w = worker(3600)
          yield* b.registerWorker({ ...w, channels: ["pgb-cancel"] })
          const [id] = yield* a.enqueue("pgb-cancel", [newJob({})], noCommit)
          const claimed = yield* b.claim({ workerId: w.id, channels: ["pgb-cancel"], excludeNames: [], limit: 1, priorityAgingSecs: 60 })
          assert.deepStrictEqual(claimed.jobs.map((j) => j.id), [id])
          assert.deepStrictEqual((yield* a.cancel({ ids: [id!] })).cancelling.map((c) => c.id), [id])
          assert.deepStrictEqual(yield* b.cancelRequests(w.id), [id])
          yield* Scope.close(bScope, Exit.void)
        }).pipe(Effect.scoped))
    })
  })
  for (const mode of ["direct-session", "poll-only"] as const) {
    const connection = throughPgBouncer(mode)
    describe(`${connection.name}: JobStore conformance`, () => {
      layer(storeOn(connection), { excludeTestServices: true })((it) => {
        conformance(it, (secs) => Effect.sleep(Duration.seconds(secs)), `pgb-${mode}`)
      })
    })
    describe(`${connection.name}: Worker`, () => {
      workerSuite(connection)
    })
  }
})
