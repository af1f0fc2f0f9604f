/**
 * A randomized interleaving test of the real engine (Worker.layer, Orchestrator.layer, enqueue) on both
 * backends, PostgreSQL and the in-memory store: two backends, one semantics, one test.
 *
 * Each run (one seed) builds a context on a fault-injecting store (test/support/faults.ts) and, for about 3 s,
 * lets fibers interleave with random delays:
 * - enqueuers: single jobs and `enqueueMany` batches, with and without job groups (five groups, so that they
 *   collide) and small delays; some single enqueues are cut short by `Effect.timeout` after a few ms (the
 *   in-process fast path's interrupted caller); on PostgreSQL also jobs in `sql.withTransaction`, a third
 *   rolled back on purpose;
 * - 2-4 workers (concurrency 1-3, prefetch 0 or the default, heartbeat 0.2 s, lease 1.5 s) that a chaos fiber
 *   stops (grace periods of 0-0.3 s: running jobs are interrupted) and starts again, and an orchestrator
 *   (rescue every 0.2 s, cleanup every 0.3 s, deleting group rows while claims create them) that it restarts;
 * - faults: calls that commit and then fail (`lost`), calls that fail without running (`refused`), random
 *   delays; heartbeat storms (every heartbeat fails for longer than the lease margin: workers fence, register
 *   again, and their old registrations expire and are rescued); outages (every write fails); partitions of one
 *   worker (every call of its registrations fails: it fences, its jobs are rescued: half the long runs
 *   partition their own worker once their start is recorded, so rescues spend attempts and finalize jobs);
 *   liveness sessions killed; on PostgreSQL the pool's connections terminated mid-statement. A short group
 *   ceiling (`jobGroupUnlockSecs` 3) makes workers stop the longest grouped runs.
 * Handlers record every start and end in a ledger; each run sleeps a random time (mostly under 20 ms, a few
 * 1.2-3.2 s) and then succeeds, fails (a typed error) or dies. Then the faults stop, everything drains (a hang
 * guard fails a run that does not), everything stops, and the invariants are checked against the ledger and
 * the store's final state (see `check`).
 *
 * A failing run prints its seed: `INTERLEAVING_SEED=<seed> INTERLEAVING_BACKEND=<backend>` replays it (the
 * same decisions in every fiber and the same behaviour of every run; the timing differs, so a race may need
 * a few tries). `INTERLEAVING_SEEDS=<n>` runs n seeds per backend (default 12), `INTERLEAVING_PARALLEL=<n>`
 * that many at once (default 3), `INTERLEAVING_LOGS=1` shows the engine's warnings, `INTERLEAVING_DRAIN_MS=<ms>`
 * sets the hang guard (default 40,000; a run that hits it prints every live job's row and every worker's state).
 */
import { assert, describe, layer } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Fiber, Layer, Option, Redacted, References, Schema, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Cuckmq, JobDefinition, Orchestrator, Worker } from "../src/index.js"
import { StorageError } from "../src/CuckmqError.js"
import type { JobInfo, JobStore } from "../src/JobStore.js"
import type { MemoryStore } from "../src/internal/memory/store.js"
import { lockNamespace } from "../src/internal/pg/sql.js"
import { type Backend, contextOn, type Faults, faulty, type Injected, random } from "./support/faults.js"
import { databaseUrl, PgTest, uniqueSchema } from "./support/pg.js"
import * as Engine from "../src/internal/engine.js"
import * as WorkerInternal from "../src/internal/worker/index.js"

// ---- configuration ------------------------------------------------------------------------------------

const env = process.env
const fixedSeed = env.INTERLEAVING_SEED === undefined ? undefined : Number(env.INTERLEAVING_SEED)
const seedsPerBackend = Number(env.INTERLEAVING_SEEDS ?? 12)
/** Runs of one backend at once (each on its own schema or memory store). */
const parallel = Number(env.INTERLEAVING_PARALLEL ?? 3)
const onlyBackend = env.INTERLEAVING_BACKEND as Backend | undefined
const showLogs = env.INTERLEAVING_LOGS === "1"

/** How long the chaos phase of one run lasts (ms), drawn per run in this range. */
const chaosMs = [2500, 3500] as const
/** At most this many jobs per run (drawn per run in this range): enqueuers stop at the budget. */
const jobsPerRun = [100, 180] as const
/** A run that does not drain within this long after the faults stop is a failure (a hang guard). */
const drainTimeoutMs = Number(env.INTERLEAVING_DRAIN_MS ?? 40_000)

/** `jobGroupUnlockSecs`: a job of a group is stopped 2.5 s after its claim (0.5 s margin), its slot freed at 3 s. */
const ceilingSecs = 3
/** Heartbeat and lease of every worker: the worker fences itself 0.375 s before the store may declare it dead. */
const lease = { heartbeatSecs: 0.2, leaseSecs: 1.5 } as const

const faults: Faults = {
  claim: { lost: 0.05, delayMs: 8 },
  settle: { lost: 0.05, refused: 0.05, delayMs: 8 },
  heartbeat: { refused: 0.1, lost: 0.03, delayMs: 20 },
  registerWorker: { refused: 0.05, lost: 0.03 },
  deregisterWorker: { refused: 0.05, lost: 0.05 },
  releaseUnowned: { refused: 0.2, lost: 0.05, delayMs: 40 },
  enqueue: { lost: 0.02, refused: 0.02, delayMs: 3 },
  rescue: { lost: 0.05, refused: 0.05 }
}

/**
 * The store methods an outage makes fail (everything that writes; reads and the session stay). Methods the
 * store does not have are skipped (`confirmStarts` exists in some versions of the contract only).
 */
const outageMethods: ReadonlyArray<string> = [
  "claim", "settle", "heartbeat", "confirmStarts", "registerWorker", "deregisterWorker", "releaseUnowned", "enqueue",
  "rescue", "deleteFinalized", "deleteUnreferencedGroups"
]

/** The store's methods among `methods`, as plain functions. */
const methodsOf = (store: JobStore["Service"], methods: ReadonlyArray<string>) =>
  methods.flatMap((method) => {
    const f = (store as unknown as Record<string, unknown>)[method]
    return typeof f === "function" ? [[method, f as (...args: Array<unknown>) => Effect.Effect<unknown, unknown>] as const] : []
  })

const groups = ["g0", "g1", "g2", "g3", "g4"] as const

// ---- small helpers --------------------------------------------------------------------------------------

/** FNV-1a over the parts: per-fiber and per-run PRNG seeds derived from the run's seed. */
const mix = (...parts: ReadonlyArray<number | string>): number => {
  let h = 0x811c9dc5
  for (const part of parts) {
    for (const ch of `${part}|`) {
      h ^= ch.charCodeAt(0)
      h = Math.imul(h, 0x01000193)
    }
  }
  return h >>> 0
}

type Rand = () => number
const pick = <A>(r: Rand, items: ReadonlyArray<A>): A => items[Math.floor(r() * items.length)]!
const between = (r: Rand, lo: number, hi: number) => lo + r() * (hi - lo)
const millis = (ms: number) => Effect.sleep(Math.max(0, Math.round(ms)))

const injectedMessage = (method: string, kind: string) => `${method} failed: injected fault (${kind})`

// ---- the ledger: every handler run ----------------------------------------------------------------------

type Outcome = "success" | "fail" | "die" | "interrupted"

interface Run {
  readonly jobId: string
  readonly key: string
  readonly definition: string
  readonly group: string | undefined
  readonly attempt: number
  readonly maxAttempts: number
  readonly workerId: string
  /** `key#n`: the n-th run of the job; its failures carry it in their message. */
  readonly token: string
  readonly start: number
  end: number | undefined
  outcome: Outcome | undefined
}

const makeLedger = () => {
  const runs: Array<Run> = []
  const byJob = new Map<string, Array<Run>>()
  const activeJob = new Map<string, Run>()
  const activeGroup = new Map<string, Run>()
  const violations: Array<string> = []
  const describe = (r: Run) => `${r.token} (job ${r.jobId}, attempt ${r.attempt}, worker ${r.workerId.slice(0, 8)})`
  return {
    runs,
    byJob,
    violations,
    active: () => activeJob.size,
    activeRuns: () => Array.from(activeJob.values()),
    start: (key: string, meta: JobDefinition.JobMetadata): Run => {
      const list = byJob.get(meta.jobId) ?? []
      byJob.set(meta.jobId, list)
      const run: Run = {
        jobId: meta.jobId,
        key,
        definition: meta.definitionName,
        group: meta.jobGroup,
        attempt: meta.attempt,
        maxAttempts: meta.maxAttempts,
        workerId: meta.workerId,
        token: `${key}#${list.length}`,
        start: Date.now(),
        end: undefined,
        outcome: undefined
      }
      const other = activeJob.get(meta.jobId)
      if (other !== undefined) violations.push(`job overlap: ${describe(run)} started while ${describe(other)} runs`)
      if (meta.jobGroup !== undefined) {
        const holder = activeGroup.get(meta.jobGroup)
        if (holder !== undefined) {
          violations.push(`group overlap in ${meta.jobGroup}: ${describe(run)} started while ${describe(holder)} runs`)
        }
        activeGroup.set(meta.jobGroup, run)
      }
      activeJob.set(meta.jobId, run)
      list.push(run)
      runs.push(run)
      return run
    },
    end: (run: Run, outcome: Outcome) => {
      run.end = Date.now()
      run.outcome = outcome
      if (activeJob.get(run.jobId) === run) activeJob.delete(run.jobId)
      if (run.group !== undefined && activeGroup.get(run.group) === run) activeGroup.delete(run.group)
    }
  }
}
type Ledger = ReturnType<typeof makeLedger>

// ---- what the enqueuers asked for ------------------------------------------------------------------------

/**
 * One enqueue call (or one transaction), and what its caller learnt:
 * - `ok`: it returned ids: those jobs exist, once each;
 * - `refused`: an injected failure before the call ran: no job;
 * - `lost`: an injected failure after the call ran to its end: the jobs exist;
 * - `unknown`: cut short by the timeout, or a real failure (a terminated connection, a commit that failed):
 *   each job exists at most once, and a batch or a transaction is all-or-nothing;
 * - `rolledBack`: the transaction's body failed (on purpose, or because an enqueue in it failed): no job.
 */
type Known = "ok" | "refused" | "lost" | "unknown" | "rolledBack"

interface Intent {
  readonly label: string
  readonly items: ReadonlyArray<{ readonly key: string; readonly definition: string; readonly group: string | undefined }>
  known: Known
  ids: ReadonlyArray<string> | undefined
  detail: string | undefined
}

/** What a failed enqueue's caller can conclude. */
const classify = (cause: Cause.Cause<unknown>): { known: Known; detail: string } => {
  const error = Cause.findErrorOption(cause)
  if (Option.isNone(error)) return { known: "unknown", detail: Cause.pretty(cause).slice(0, 300) }
  const e = error.value as { _tag?: string; message?: string }
  const message = e.message ?? String(e)
  if (e._tag === "TimeoutError") return { known: "unknown", detail: "timeout" }
  if (/injected fault \((refused|outage|partition)\)/.test(message)) return { known: "refused", detail: message }
  if (message.includes("injected fault (response lost)")) return { known: "lost", detail: message }
  return { known: "unknown", detail: `${e._tag}: ${message}` }
}

// ---- store wrappers ---------------------------------------------------------------------------------------

type Storm = { readonly mode: "heartbeats" | "outage"; readonly until: number } | undefined

/** The worker a store call is about (its registration id), by method; `registerWorker` names the worker. */
const workerOf: Partial<Record<string, (args: ReadonlyArray<unknown>) => string>> = {
  claim: (args) => (args[0] as { workerId: string }).workerId,
  settle: (args) => args[0] as string,
  heartbeat: (args) => args[0] as string,
  confirmStarts: (args) => args[0] as string,
  releaseUnowned: (args) => args[0] as string,
  deregisterWorker: (args) => args[0] as string
}

/**
 * Fails calls while a storm lasts (every heartbeat, or in an outage every write), and every call of a worker
 * while it is partitioned (`partitioned(name)`: its registrations are found by the name they registered with).
 */
const chaotic = (
  store: JobStore["Service"],
  storm: () => Storm,
  partitioned: (workerName: string) => boolean,
  nameOf: Map<string, string>
): JobStore["Service"] => {
  const wrapped: Record<string, unknown> = { ...store }
  for (const [method, original] of methodsOf(store, outageMethods)) {
    wrapped[method] = (...args: Array<unknown>) =>
      Effect.suspend(() => {
        const s = storm()
        const fail = (kind: string) =>
          Effect.fail(new StorageError({ operation: method, message: injectedMessage(method, kind), cause: undefined }))
        if (s !== undefined && Date.now() < s.until && (s.mode === "outage" || method === "heartbeat")) return fail("outage")
        let name: string | undefined
        if (method === "registerWorker") {
          const w = args[0] as { id: string; name: string }
          nameOf.set(w.id, w.name)
          name = w.name
        } else {
          const id = workerOf[method]?.(args)
          name = id === undefined ? undefined : nameOf.get(id)
        }
        if (name !== undefined && partitioned(name)) return fail("partition")
        return original(...args)
      })
  }
  return wrapped as unknown as JobStore["Service"]
}

/** Records the real (not injected) failures of the store's calls. */
const recording = (store: JobStore["Service"], errors: Array<{ method: string; message: string; sqlState?: string }>) => {
  const wrapped: Record<string, unknown> = { ...store }
  for (const [method, original] of methodsOf(store, outageMethods)) {
    wrapped[method] = (...args: Array<unknown>) =>
      Effect.tapError(original(...args), (e) =>
        Effect.sync(() => {
          const error = e as { message?: string; sqlState?: string }
          errors.push({ method, message: String(error.message), ...(error.sqlState ? { sqlState: error.sqlState } : {}) })
        }))
  }
  return wrapped as unknown as JobStore["Service"]
}

// ---- one run ----------------------------------------------------------------------------------------------

interface RunReport {
  readonly backend: Backend
  readonly seed: number
  readonly violations: ReadonlyArray<string>
  readonly stats: Record<string, number | string>
}

const Payload = Schema.Struct({ key: Schema.String })

const runOnce = (backend: Backend, seed: number): Effect.Effect<RunReport, never, PgClient.PgClient | SqlClient.SqlClient> => {
  const ledger = makeLedger()
  const violations = ledger.violations
  const intents: Array<Intent> = []
  const stats: Record<string, number> = {}
  const bump = (name: string, by = 1) => void (stats[name] = (stats[name] ?? 0) + by)
  const realErrors: Array<{ method: string; message: string; sqlState?: string }> = []
  let nextKey = 0
  /** Set by the run once its parts exist. */
  const hooks = { partitionLater: (_workerId: string, _ms: number): void => {} }
  const newKey = () => `k${nextKey++}`

  // Handlers: record the start (checking overlaps), sleep, then succeed, fail or die, as drawn from the
  // run's token (so a replay of the seed makes the same run behave the same).
  const handler = (payload: { readonly key: string }, meta: JobDefinition.JobMetadata) =>
    Effect.suspend(() => {
      const run = ledger.start(payload.key, meta)
      const r = random(mix(seed, run.token))
      const d = r()
      // a few long runs: recorded by a Started mark after 1 s, and past the group deadline (2.5 s) beyond 2.5 s
      const ms = d < 0.72 ? r() * 20 : d < 0.95 ? 20 + r() * 100 : 1200 + r() * 2000
      // Half the long runs partition their own worker 1.35 s in, once their start is recorded by a Started
      // mark: its lease runs out, so the rescue spends that attempt (and finalizes the job if it was its last).
      if (ms > 1350 && r() < 0.5) hooks.partitionLater(meta.workerId, 1350)
      const o = r()
      const planned: Outcome = o < 0.6 ? "success" : o < 0.85 ? "fail" : "die"
      const end = planned === "success"
        ? Effect.void
        : planned === "fail"
        ? Effect.fail({ _tag: "Boom", message: `boom ${run.token}` } as const)
        : Effect.die(new Error(`die ${run.token}`))
      return millis(ms).pipe(
        Effect.andThen(end),
        Effect.onExit((exit) =>
          Effect.sync(() =>
            ledger.end(run, Exit.isFailure(exit) && Cause.hasInterrupts(exit.cause) ? "interrupted" : planned)
          )
        )
      )
    })
  const One = JobDefinition.make({ name: "il-one", channel: "a", numAttempts: 1, timeoutSecs: 0.1, payload: Payload, handler })
  const Two = JobDefinition.make({ name: "il-two", channel: "b", numAttempts: 2, timeoutSecs: 0.15, payload: Payload, handler })
  const Three = JobDefinition.make({ name: "il-three", channel: "a", numAttempts: 3, timeoutSecs: 0.2, payload: Payload, handler })
  const definitions = [One, Two, Three] as const

  const body = Effect.gen(function*() {
    const outer = yield* SqlClient.SqlClient
    const schema = uniqueSchema(`il_${backend}`)
    const app = `cuckmq-il-${schema.slice(-8)}`
    // PostgreSQL: a client of this run's own (its connections can be terminated without touching anyone else's)
    const pgContext = backend === "postgres"
      ? yield* Layer.build(PgClient.layer({ url: Redacted.make(databaseUrl()), applicationName: app, maxConnections: 12 }))
      : undefined
    if (backend === "postgres") {
      yield* Effect.addFinalizer(() => Effect.ignore(outer`DROP SCHEMA IF EXISTS ${outer(schema)} CASCADE`))
    }

    let faultsOn = true
    let storm: Storm = undefined
    /** Partitioned workers (by name), until when. */
    const partitions = new Map<string, number>()
    /** Worker names by registration id (as they registered). */
    const nameOf = new Map<string, string>()
    const faultRand = random(mix(seed, "faults"))
    let raw: JobStore["Service"] | undefined
    let injected: Injected = {}
    // a short group ceiling: a long run that waited in a buffer is stopped by its worker at the group deadline
    const options = { schema, definitions, jobGroupUnlockSecs: ceilingSecs }
    const wrap = (store: JobStore["Service"]) => {
      raw = store
      const f = faulty(
        chaotic(recording(store, realErrors), () => (faultsOn ? storm : undefined), (name) =>
          faultsOn && Date.now() < (partitions.get(name) ?? 0), nameOf),
        faults,
        faultRand,
        () => faultsOn
      )
      injected = f.injected
      return f.store
    }
    const cuckmq = pgContext !== undefined
      ? yield* contextOn(backend, options, wrap).pipe(Effect.provideContext(pgContext))
      : yield* contextOn(backend, options, wrap)
    const store = raw!
    const withCuckmq = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provideService(effect, Cuckmq.Cuckmq, cuckmq)
    // enqueuers see the same context, its fast path counted (workers register with the original)
    const engine = Engine.get(cuckmq)
    const producer: Cuckmq.Cuckmq["Service"] = {
      ...cuckmq,
      [Engine.EngineId]: {
        ...engine,
        localClaim: {
          reserve: (name) => {
            const reservation = engine.localClaim.reserve(name)
            return reservation === undefined ? undefined : {
              ...reservation,
              deliver: (job) => {
                bump("fast path delivered")
                reservation.deliver(job)
              },
              cancel: (maybeClaimed) => {
                bump(maybeClaimed ? "fast path unknown" : "fast path declined")
                reservation.cancel(maybeClaimed)
              }
            }
          }
        }
      }
    }
    const asProducer = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provideService(effect, Cuckmq.Cuckmq, producer)

    yield* cuckmq.addEventHandler((event) =>
      Effect.sync(() => {
        if (event._tag === "WORKER_JOB_INTERRUPT") bump(`interrupted (${event.reason})`)
        else if (event._tag === "JOB_RESCUE") bump(event.finalized ? "rescued, finalized" : "rescued")
        else if (event._tag === "JOB_GROUP_UNLOCK") bump(`group unlocked (${event.reason})`)
        else if (event._tag === "ORCHESTRATOR_JOB_GROUP_DELETE") bump("groups deleted")
        else if (event._tag === "WORKER_JOB_RUN_ERROR" && (event.error as { _tag?: string })?._tag === "GroupCeilingError") {
          bump("stopped at the group ceiling")
        }
      })
    )

    const runScope = yield* Effect.scope
    const pending: Array<Fiber.Fiber<unknown, unknown>> = []
    const background = <A, E>(effect: Effect.Effect<A, E>) =>
      Effect.tap(Effect.forkIn(effect, runScope), (fiber) => Effect.sync(() => void pending.push(fiber)))

    // ---- workers and the orchestrator --------------------------------------------------------------------
    const chaosRand = random(mix(seed, "chaos"))
    const workers: Array<{ readonly name: string; readonly scope: Scope.Closeable }> = []
    let workerCount = 0
    const startWorker = (r: Rand, drain = false) =>
      Effect.gen(function*() {
        const name = `w${workerCount++}`
        const config: Worker.Options = {
          name,
          ...lease,
          concurrency: drain ? 4 : 1 + Math.floor(r() * 3),
          ...(drain || r() < 0.5 ? {} : { prefetch: 0 }),
          pollIntervalSecs: between(r, 0.05, 0.25),
          gracePeriodSecs: drain ? 5 : pick(r, [0, 0.01, 0.05, 0.3]),
          ...(drain ? {} : { channels: pick(r, [["a"], ["b"], ["a", "b"], ["a", "b"]]) })
        }
        const scope = yield* Scope.make()
        yield* withCuckmq(Layer.buildWithScope(Worker.layer(config), scope)).pipe(Effect.orDie)
        workers.push({ name, scope })
        bump("workers started")
      })
    const stopWorker = (index: number) =>
      Effect.gen(function*() {
        const [w] = workers.splice(index, 1)
        bump("workers stopped")
        yield* background(Scope.close(w!.scope, Exit.void))
      })
    let orchestrator: Scope.Closeable | undefined
    const startOrchestrator = Effect.gen(function*() {
      const scope = yield* Scope.make()
      yield* withCuckmq(Layer.buildWithScope(Orchestrator.layer({ rescueIntervalSecs: 0.2, cleanupIntervalSecs: 0.3 }), scope))
        .pipe(Effect.orDie)
      orchestrator = scope
    })
    const stopOrchestrator = Effect.suspend(() => {
      const scope = orchestrator
      orchestrator = undefined
      return scope === undefined ? Effect.void : Scope.close(scope, Exit.void)
    })

    const initialWorkers = 2 + Math.floor(chaosRand() * 3)
    for (let i = 0; i < initialWorkers; i++) yield* startWorker(chaosRand)
    yield* startOrchestrator

    const deadline = Date.now() + between(chaosRand, chaosMs[0], chaosMs[1])
    const jobBudget = Math.floor(between(chaosRand, jobsPerRun[0], jobsPerRun[1]))
    const enqueuing = () => Date.now() < deadline && nextKey < jobBudget

    // ---- enqueuers ----------------------------------------------------------------------------------------
    const defByName = new Map(definitions.map((d) => [d.name, d]))
    const record = (intent: Intent, exit: Exit.Exit<ReadonlyArray<string>, unknown>) => {
      if (Exit.isSuccess(exit)) {
        intent.known = "ok"
        intent.ids = exit.value
      } else {
        if (Cause.hasDies(exit.cause)) violations.push(`${intent.label} died: ${Cause.pretty(exit.cause).slice(0, 500)}`)
        const c = classify(exit.cause)
        intent.known = c.known
        intent.detail = c.detail
      }
      bump(`enqueue ${intent.known}`)
    }
    const newIntent = (label: string, items: Intent["items"]): Intent => {
      const intent: Intent = { label, items, known: "unknown", ids: undefined, detail: undefined }
      intents.push(intent)
      return intent
    }
    const drawItem = (r: Rand, plain: boolean) => ({
      key: newKey(),
      definition: pick(r, definitions).name,
      group: !plain && r() < 0.3 ? pick(r, groups) : undefined,
      delaySecs: !plain && r() < 0.1 ? Math.round(r() * 300) / 1000 : 0
    })
    const enqueueItem = (item: ReturnType<typeof drawItem>) =>
      Effect.map(
        defByName.get(item.definition)!.enqueue(
          { key: item.key },
          { ...(item.group === undefined ? {} : { jobGroup: item.group }), delaySecs: item.delaySecs }
        ),
        (id) => [id] as ReadonlyArray<string>
      )
    const enqueueBatch = (items: ReadonlyArray<ReturnType<typeof drawItem>>) =>
      defByName.get(items[0]!.definition)!.enqueueMany(items.map((item) => ({
        payload: { key: item.key },
        delaySecs: item.delaySecs,
        ...(item.group === undefined ? {} : { jobGroup: item.group })
      })))

    const enqueuer = (index: number) =>
      Effect.gen(function*() {
        const r = random(mix(seed, "enqueuer", index))
        while (enqueuing()) {
          yield* millis(between(r, 5, 60))
          const kind = r()
          if (kind < 0.2) {
            // a batch of one definition, groups mixed (several of one group: held at insert)
            const first = drawItem(r, false)
            const items = [first, ...Array.from({ length: 1 + Math.floor(r() * 5) }, () => ({ ...drawItem(r, false), definition: first.definition }))]
            const intent = newIntent(`enqueueMany ${items.map((i) => i.key).join(",")}`, items)
            record(intent, yield* Effect.exit(asProducer(enqueueBatch(items))))
          } else if (kind < 0.4) {
            // a single enqueue cut short after a few ms (plain mostly: the fast path's interrupted caller)
            const item = drawItem(r, r() < 0.7)
            const intent = newIntent(`enqueue ${item.key} (timeout)`, [item])
            const exit = yield* Effect.exit(asProducer(enqueueItem(item)).pipe(Effect.timeout(Math.floor(r() * 6))))
            record(intent, exit)
          } else {
            const item = drawItem(r, r() < 0.4)
            const intent = newIntent(`enqueue ${item.key}`, [item])
            record(intent, yield* Effect.exit(asProducer(enqueueItem(item))))
          }
        }
      })

    class RollbackOnPurpose extends Error {
      readonly _tag = "RollbackOnPurpose"
    }
    /** PostgreSQL: enqueues inside transactions, a third of them rolled back on purpose. */
    const transactor = (sql: SqlClient.SqlClient) =>
      Effect.gen(function*() {
        const r = random(mix(seed, "transactor"))
        while (enqueuing()) {
          yield* millis(between(r, 10, 80))
          const rollback = r() < 0.33
          const calls = Array.from({ length: 1 + Math.floor(r() * 3) }, () => {
            if (r() < 0.35) {
              const first = drawItem(r, false)
              return [first, ...Array.from({ length: 1 + Math.floor(r() * 3) }, () => ({ ...drawItem(r, false), definition: first.definition }))]
            }
            return [drawItem(r, r() < 0.3)]
          })
          const items = calls.flat()
          const intent = newIntent(`transaction ${items.map((i) => i.key).join(",")}${rollback ? " (rollback)" : ""}`, items)
          let bodyDone = false
          const exit = yield* Effect.exit(sql.withTransaction(Effect.gen(function*() {
            const ids: Array<string> = []
            for (const call of calls) {
              ids.push(...(yield* asProducer(call.length === 1 ? enqueueItem(call[0]!) : enqueueBatch(call))))
              yield* millis(r() * 10)
            }
            if (rollback) return yield* Effect.fail(new RollbackOnPurpose())
            bodyDone = true
            return ids as ReadonlyArray<string>
          })))
          // A connection terminated inside the transaction: the driver turns the body's failure (the enqueue's
          // StorageError, or ours) and the failed ROLLBACK (its SqlError) into defects. Anything else dying is a bug.
          const defects = Exit.isFailure(exit)
            ? exit.cause.reasons.filter(Cause.isDieReason).map((r) => r.defect as { _tag?: string } | undefined)
            : []
          if (defects.some((d) => !["SqlError", "StorageError", "RollbackOnPurpose"].includes(d?._tag ?? ""))) {
            violations.push(`${intent.label} died: ${Cause.pretty((exit as Exit.Failure<unknown, unknown>).cause).slice(0, 1500)}`)
          }
          if (Exit.isSuccess(exit)) {
            intent.known = "ok"
            intent.ids = exit.value
            bump("transactions committed")
          } else if (!bodyDone) {
            // the body failed before COMMIT: the transaction was rolled back
            intent.known = "rolledBack"
            intent.detail = defects.length > 0 ? "connection lost" : Option.match(Cause.findErrorOption(exit.cause), {
              onNone: () => "interrupted",
              onSome: (e) => (e as { message?: string }).message ?? String(e)
            })
            bump(rollback ? "transactions rolled back on purpose" : "transactions rolled back by a failure")
          } else {
            // COMMIT failed: committed or not, all or nothing
            intent.known = "unknown"
            intent.detail = `commit failed: ${Cause.pretty(exit.cause).slice(0, 200)}`
            bump("transactions unknown")
          }
        }
      })

    // ---- chaos ----------------------------------------------------------------------------------------------
    const killSession = backend === "memory"
      ? (store as MemoryStore).killSession
      : Effect.gen(function*() {
        // the session's connection holds the liveness lock (namespace, key): terminate that backend
        const ns = lockNamespace(schema) >>> 0
        yield* outer`SELECT pg_terminate_backend(pid) FROM pg_locks
          WHERE locktype = 'advisory' AND classid::bigint = ${ns} AND objsubid = 2 AND objid::bigint <> 0 AND granted`
      }).pipe(Effect.ignore)
    const killConnections = outer`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE application_name = ${app} AND pid <> pg_backend_pid()`.pipe(Effect.ignore)

    const partition = (name: string, ms = between(chaosRand, 1000, 3000)) => {
      partitions.set(name, Math.max(partitions.get(name) ?? 0, Date.now() + ms))
      bump("partitions")
    }
    hooks.partitionLater = (workerId, ms) => {
      const timer = setTimeout(() => {
        const name = nameOf.get(workerId)
        if (faultsOn && name !== undefined) {
          // long enough for the rescue to win over the refund the worker sends once it fences
          partition(name, between(chaosRand, 2000, 3000))
          bump("partitions of a long run's worker")
        }
      }, ms)
      timer.unref()
    }
    const chaos = Effect.gen(function*() {
      const r = chaosRand
      while (Date.now() < deadline) {
        yield* millis(between(r, 40, 250))
        const x = r()
        if (x < 0.18) {
          if (workers.length > 1) yield* stopWorker(Math.floor(r() * workers.length))
        } else if (x < 0.36) {
          if (workers.length < 4) yield* startWorker(r)
        } else if (x < 0.43) {
          if (storm === undefined || Date.now() >= storm.until) {
            storm = { mode: "heartbeats", until: Date.now() + between(r, 1000, 1800) }
            bump("heartbeat storms")
          }
        } else if (x < 0.47) {
          if (storm === undefined || Date.now() >= storm.until) {
            storm = { mode: "outage", until: Date.now() + between(r, 300, 2500) }
            bump("outages")
          }
        } else if (x < 0.55) {
          // a network partition of one worker, longer than its lease: it fences; its jobs are rescued
          if (workers.length > 0) partition(pick(r, workers).name)
        } else if (x < 0.59) {
          yield* killSession
          bump("sessions killed")
        } else if (x < 0.63) {
          if (backend === "postgres") {
            yield* killConnections
            bump("connections killed")
          }
        } else if (x < 0.67) {
          yield* stopOrchestrator
          yield* startOrchestrator
          bump("orchestrator restarts")
        }
      }
    })

    const fibers = [
      yield* Effect.forkChild(chaos),
      ...(yield* Effect.forEach([0, 1, 2], (i) => Effect.forkChild(enqueuer(i)))),
      ...(pgContext !== undefined ? [yield* Effect.forkChild(transactor(Context.get(pgContext, SqlClient.SqlClient)))] : [])
    ]
    yield* Fiber.joinAll(fibers)

    // ---- drain ------------------------------------------------------------------------------------------
    faultsOn = false
    storm = undefined
    const drainStart = Date.now()
    yield* startWorker(chaosRand, true)
    yield* startWorker(chaosRand, true)
    if (orchestrator === undefined) yield* startOrchestrator

    const liveJobs: Effect.Effect<ReadonlyArray<JobInfo>> = backend === "memory"
      ? Effect.map((store as MemoryStore).snapshot, (s) => [...s.waiting, ...s.running])
      : Effect.gen(function*() {
        const rows = yield* outer<{ id: string }>`SELECT id::text AS id FROM ${outer(`${schema}.job`)}`
        const infos = yield* Effect.forEach(rows, (row) => store.getJob(row.id))
        return infos.flatMap((o) => (Option.isSome(o) ? [o.value] : []))
      }).pipe(Effect.orDie)
    /**
     * What explains a queue that does not drain: each live job's row (who holds it, under which claim, its
     * start, its runs in the ledger), and the state of every worker still running (what it holds, and where).
     */
    const stuck = (left: ReadonlyArray<JobInfo>) =>
      Effect.gen(function*() {
        const now = Date.now()
        const registration = (id: string | undefined | null) => {
          if (id === undefined || id === null) return "none"
          const name = nameOf.get(id)
          const current = WorkerInternal.inspect(engine).find((w) => w.workerId === id)
          return `${id.slice(0, 8)} (${name ?? "unknown name"}${current !== undefined ? ", its current registration" : ""})`
        }
        const rows = backend === "postgres"
          ? yield* outer<Record<string, unknown>>`
              SELECT j.id::text AS id, j.worker_id::text AS worker_id, j.claims, j.started, j.held, j.attempts,
                j.crashes, j.group_slot, j.job_group,
                round(extract(epoch FROM j.run_at - now()) * 1000) AS run_in_ms,
                round(extract(epoch FROM now() - j.claimed_at) * 1000) AS claimed_ms_ago,
                w.id IS NOT NULL AS worker_row, round(extract(epoch FROM w.expires_at - now()) * 1000) AS expires_in_ms
              FROM ${outer(`${schema}.job`)} j LEFT JOIN ${outer(`${schema}.worker`)} w ON w.id = j.worker_id
              ORDER BY j.id`.pipe(Effect.orDie)
          : left.map((j) => ({ id: j.id, worker_id: j.workerId, claims: j.claims, held: j.held, attempts: j.attempts, crashes: j.crashes }))
        const jobs = rows.slice(0, 20).map((row) => {
          const runs = ledger.byJob.get(String(row.id)) ?? []
          const { id, worker_id, ...rest } = row
          return `    job ${id}: held by ${registration(worker_id as string | null)}, ` +
            Object.entries(rest).map(([k, v]) => `${k}=${v instanceof Date ? v.toISOString() : String(v)}`).join(" ") +
            `; runs [${runs.map((r) => `${r.attempt}:${r.outcome ?? "running"} by ${r.workerId.slice(0, 8)} ${now - r.start}ms ago`).join(", ")}]`
        })
        const states = WorkerInternal.inspect(engine).map((w) => `    ${JSON.stringify(w)}`)
        const groupRows = backend === "postgres"
          ? (yield* outer<Record<string, unknown>>`SELECT name, running, blocked_until FROM ${outer(`${schema}.job_group`)}`.pipe(Effect.orDie))
            .map((g) => `${g.name}: running ${g.running}`).join(", ")
          : ""
        const stopped = `workers in the test: ${workers.map((w) => w.name).join(" ")}`
        return `  live jobs:\n${jobs.join("\n")}\n  workers (${stopped}):\n${states.join("\n")}\n  groups: ${groupRows}`
      })
    let quiet = 0
    while (quiet < 3) {
      if (Date.now() - drainStart > drainTimeoutMs) {
        const left = yield* liveJobs
        violations.push(
          `the queue did not drain within ${drainTimeoutMs} ms: ${left.length} live job(s), ${ledger.active()} handler(s) running: ` +
            left.slice(0, 10).map((j) => `${j.id} ${j.name} ${j.state} group=${j.jobGroup} held=${j.held} attempts=${j.attempts}`).join("; ") +
            `\n${yield* stuck(left)}`
        )
        break
      }
      yield* millis(100)
      quiet = (yield* liveJobs).length === 0 && ledger.active() === 0 ? quiet + 1 : 0
    }
    const drainMs = Date.now() - drainStart

    // ---- stop everything ------------------------------------------------------------------------------
    while (workers.length > 0) yield* stopWorker(0)
    yield* stopOrchestrator
    yield* Fiber.joinAll(pending)
    if (ledger.active() > 0) violations.push(`${ledger.active()} handler(s) still running after every worker stopped`)

    // ---- the final state -----------------------------------------------------------------------------------
    const all: ReadonlyArray<JobInfo> = backend === "memory"
      ? yield* Effect.map((store as MemoryStore).snapshot, (s) => [...s.waiting, ...s.running, ...s.finalized])
      : yield* Effect.gen(function*() {
        const rows = yield* outer<{ id: string; live: boolean }>`
          SELECT id::text AS id, true AS live FROM ${outer(`${schema}.job`)}
          UNION ALL SELECT id::text, false FROM ${outer(`${schema}.job_finalized`)}`
        const seen = new Set<string>()
        for (const row of rows) {
          if (seen.has(row.id)) violations.push(`job ${row.id} is both live and finalized`)
          seen.add(row.id)
        }
        const infos = yield* Effect.forEach(Array.from(seen), (id) => store.getJob(id))
        return infos.flatMap((o) => (Option.isSome(o) ? [o.value] : []))
      }).pipe(Effect.orDie)
    const busyGroups = backend === "memory"
      ? Array.from((yield* (store as MemoryStore).groups).entries()).filter(([, g]) => g.running !== 0).map(([name, g]) => `${name}: ${g.running}`)
      : (yield* outer<{ name: string; running: number }>`
          SELECT name, running FROM ${outer(`${schema}.job_group`)} WHERE running <> 0`.pipe(Effect.orDie))
        .map((g) => `${g.name}: ${g.running}`)
    if (busyGroups.length > 0) violations.push(`group slots still taken after the drain (leaked): ${busyGroups.join(", ")}`)

    check(ledger, intents, all, violations)

    for (const e of realErrors) {
      // a constraint violation is a bug whatever the operation (e.g. a job archived twice)
      if (e.sqlState?.startsWith("23")) violations.push(`${e.method} hit a constraint: ${e.message}`)
    }
    stats["jobs"] = all.length
    stats["runs"] = ledger.runs.length
    stats["drain ms"] = drainMs
    stats["jobs through a crash"] = all.filter((j) => j.crashes > 0).length
    stats["real storage errors"] = realErrors.length
    for (const [method, n] of Object.entries(injected)) {
      if (n.lost + n.refused > 0) stats[`injected ${method}`] = n.lost + n.refused
    }
    return stats
  })

  return body.pipe(
    Effect.scoped,
    Effect.provideService(References.MinimumLogLevel, showLogs ? "Warn" : "None"),
    Effect.catchCause((cause) =>
      Effect.sync(() => {
        violations.push(`the run failed: ${Cause.pretty(cause).slice(0, 2000)}`)
        return stats
      })
    ),
    Effect.map((s): RunReport => ({ backend, seed, violations, stats: s }))
  )
}

// ---- the invariants ----------------------------------------------------------------------------------------

const died = "the worker running this job died"
const unstorable = "the job failed; its error could not be stored"
/** The start of GroupCeilingError's message: the worker stopped the run at its group deadline (the ledger: interrupted). */
const ceilingStop = "the job held a slot of its group"
/**
 * The start of the error of a job a rescue failed after `maxAttempts + 4` crashes with no start recorded (in
 * versions of the contract that have that rule).
 */
const crashLimit = "the job crashed its workers"

/**
 * The invariants of one run, from the ledger (every handler start and end) and the store's final state.
 *
 * Enqueue: a job (a payload key) is written at most once, as what was asked (definition, group); a call that
 * returned ids wrote exactly those jobs; a call that failed before it ran (injected `refused`, an outage) or a
 * rolled-back transaction wrote nothing, and nothing of it ran; a call whose response was lost wrote all of
 * it; a batch or a transaction whose outcome is unknown wrote all of it or nothing.
 *
 * Runs: no two runs of one job, nor of one group, overlap (checked as they start, in the ledger); every run
 * belongs to a job that exists, and ended before that job was finalized.
 *
 * Finalization: after the drain no job is waiting or running, and none is both live and archived, so every
 * job that exists was finalized exactly once; no group slot is still taken.
 *
 * Attempt counts. `attempts` counts recorded handler starts. A claim reads `attempt = attempts + 1`; its start
 * is recorded at most once (by a `Started` mark, at once for a job that went through a crash, or with its
 * final settlement; in versions of the contract with `confirmStarts`, by that, just before the handler of
 * such a job); a `Released` settlement of that same claim refunds it; and nothing else changes `attempts` (a
 * rescue or a release keeps a recorded start spent). Every write is fenced
 * by the claim token, runs of one job do not overlap, and each run has a claim of its own (a later claim makes
 * every earlier one stale). So, over a job's runs in start order:
 * - the first run is attempt 1: nothing is recorded before a job's first handler start (required: an
 *   attempt is a handler start);
 * - each run's attempt is the previous run's (its start was not recorded, or was refunded) or one more (it
 *   was recorded and stays spent);
 * - no run exceeds `maxAttempts`, and neither does `attempts`: a claim at the last attempt ends in `Expired`,
 *   `Succeeded`, a refund, or a rescue that finalizes it once its start is recorded;
 * - `attempts <= runs` (each recorded start is a run's) and `runs <= claims` (a claim runs at most once);
 * - a succeeded job was finalized by the `Succeeded` settlement of its last run, applied while that claim was
 *   current (no run can start after it, and an earlier one's claim would be stale), so that run succeeded and
 *   `attempts` equals its attempt exactly: the claim's `attempts + 1`, its start recorded once (by a mark, a
 *   confirmation, or the settlement itself). Its `lastError` is an earlier run's (a retry's) or a rescue's;
 * - a job failed by its handler (`Expired`) was finalized the same way by its last run, which failed or died
 *   (or was stopped at the group deadline) at attempt `maxAttempts`: `attempts == maxAttempts` exactly, and
 *   its `lastError` is that run's error (or the completer's stand-in for an error that could not be stored);
 * - a job failed by a rescue ("the worker running this job died") had its start recorded at its last attempt
 *   (the rescue finalizes a recorded start only with no attempt left): `attempts == maxAttempts` exactly, and
 *   that start was its last run's;
 * - a job failed by a rescue at its `maxAttempts + 4`th crash with no start recorded (where the contract has
 *   that rule) has crashed that often;
 * - no job is failed without a handler start in the ledger.
 */
const check = (ledger: Ledger, intents: ReadonlyArray<Intent>, all: ReadonlyArray<JobInfo>, violations: Array<string>) => {
  const tol = 25 // ms: the ledger reads Date.now(), the database its own clock on the same machine
  const byKey = new Map<string, Array<JobInfo>>()
  for (const job of all) {
    const key = (job.payload as { key?: string } | undefined)?.key ?? "?"
    const list = byKey.get(key) ?? []
    list.push(job)
    byKey.set(key, list)
  }

  // ---- enqueues: each job written at most once; what the caller learnt holds --------------------------
  for (const intent of intents) {
    const found = intent.items.map((item) => byKey.get(item.key) ?? [])
    found.forEach((jobs, i) => {
      const item = intent.items[i]!
      if (jobs.length > 1) violations.push(`${intent.label}: job ${item.key} was written ${jobs.length} times (ids ${jobs.map((j) => j.id)})`)
      for (const job of jobs) {
        if (job.name !== item.definition || job.jobGroup !== item.group) {
          violations.push(`${intent.label}: job ${job.id} is ${job.name}/${job.jobGroup}, enqueued as ${item.definition}/${item.group}`)
        }
      }
    })
    const present = found.filter((jobs) => jobs.length > 0).length
    const shouldExist = intent.known === "ok" || intent.known === "lost"
    const mustNot = intent.known === "refused" || intent.known === "rolledBack"
    if (shouldExist && present !== intent.items.length) {
      violations.push(`${intent.label} (${intent.known}${intent.detail ? `: ${intent.detail}` : ""}): only ${present} of ${intent.items.length} job(s) exist`)
    }
    if (mustNot) {
      if (present > 0) violations.push(`${intent.label} (${intent.known}: ${intent.detail}): ${present} job(s) exist`)
      for (const item of intent.items) {
        const runs = ledger.runs.filter((r) => r.key === item.key)
        if (runs.length > 0) violations.push(`${intent.label}: ${item.key}, never committed, ran ${runs.length} time(s)`)
      }
    }
    if (intent.known === "unknown" && present !== 0 && present !== intent.items.length) {
      violations.push(`${intent.label} (${intent.detail}): ${present} of ${intent.items.length} job(s) exist: not all-or-nothing`)
    }
    if (intent.known === "ok") {
      const ids = intent.items.map((item) => byKey.get(item.key)?.[0]?.id)
      if (JSON.stringify(ids) !== JSON.stringify(intent.ids)) {
        violations.push(`${intent.label}: returned ids ${intent.ids} but the jobs are ${ids}`)
      }
    }
  }

  // ---- runs belong to jobs that exist -------------------------------------------------------------------
  const byId = new Map(all.map((j) => [j.id, j]))
  for (const [id, runs] of ledger.byJob) {
    const job = byId.get(id)
    if (job === undefined) violations.push(`job ${id} ran ${runs.length} time(s) but does not exist`)
    else if (runs.some((r) => r.key !== (job.payload as { key: string }).key)) violations.push(`job ${id}: runs of another payload`)
  }

  // ---- every job finalized exactly once, with the right attempt count ----------------------------------------
  for (const job of all) {
    const runs = ledger.byJob.get(job.id) ?? []
    const last = runs[runs.length - 1]
    const what = `job ${job.id} (${(job.payload as { key: string }).key}, ${job.name}, group ${job.jobGroup}, ${job.state}, ` +
      `attempts ${job.attempts}/${job.maxAttempts}, claims ${job.claims}, crashes ${job.crashes}, runs ` +
      `[${runs.map((r) => `${r.attempt}:${r.outcome}`).join(" ")}])`
    if (job.state === "waiting" || job.state === "running") {
      violations.push(`${what}: not finalized after the drain`)
      continue
    }
    const finalizedAt = job.finalizedAt?.getTime() ?? Number.POSITIVE_INFINITY
    for (const r of runs) {
      if (r.start > finalizedAt + tol || (r.end ?? Number.POSITIVE_INFINITY) > finalizedAt + tol) {
        violations.push(`${what}: run ${r.token} (${r.start}-${r.end}) did not end before the job was finalized (${finalizedAt})`)
      }
      if (r.attempt > job.maxAttempts) violations.push(`${what}: run ${r.token} was attempt ${r.attempt} of ${job.maxAttempts}`)
      if (r.maxAttempts !== job.maxAttempts) violations.push(`${what}: run ${r.token} saw maxAttempts ${r.maxAttempts}`)
    }
    if (runs.length > 0 && runs[0]!.attempt !== 1) violations.push(`${what}: its first run was attempt ${runs[0]!.attempt}`)
    for (let i = 1; i < runs.length; i++) {
      const step = runs[i]!.attempt - runs[i - 1]!.attempt
      if (step !== 0 && step !== 1) violations.push(`${what}: run ${runs[i]!.token} followed attempt ${runs[i - 1]!.attempt} with ${runs[i]!.attempt}`)
    }
    if (job.attempts > runs.length) violations.push(`${what}: more attempts than handler starts`)
    if (runs.length > job.claims) violations.push(`${what}: more runs than claims`)
    if (job.attempts > job.maxAttempts) violations.push(`${what}: more attempts than allowed`)
    const error = (job.lastError as { message?: string } | undefined)?.message
    if (job.state === "succeeded") {
      if (last === undefined || last.outcome !== "success") violations.push(`${what}: succeeded, but its last run did not`)
      else if (job.attempts !== last.attempt) violations.push(`${what}: succeeded with attempts ${job.attempts}, its last run was attempt ${last.attempt}`)
      // a retry's error (or a rescue's) stays on the job: one of an earlier run
      if (error !== undefined && error !== died && error !== unstorable &&
        !runs.slice(0, -1).some((r) =>
          error === `boom ${r.token}` || error === `die ${r.token}` || (r.outcome === "interrupted" && error.startsWith(ceilingStop))
        )) {
        violations.push(`${what}: lastError ${JSON.stringify(error)} is no earlier run's`)
      }
    } else if (runs.length === 0) {
      violations.push(`${what}: failed (${error}) without a handler start`)
    } else if (error?.startsWith(crashLimit) === true) {
      // failed by a rescue at its maxAttempts + 4th crash, no start of it ever recorded
      if (job.crashes < job.maxAttempts + 4) violations.push(`${what}: failed at the crash limit after ${job.crashes} crashes`)
    } else if (error === died) {
      // rescued: its start was recorded at its last attempt, by the last run (a mark) or just before it (a
      // confirmation)
      if (job.attempts !== job.maxAttempts) violations.push(`${what}: rescued as spent with attempts ${job.attempts}`)
      if (last!.attempt !== job.maxAttempts) {
        violations.push(`${what}: rescued as spent, but its last run was attempt ${last!.attempt}: an attempt recorded without a handler start`)
      }
    } else {
      // Expired: its last run's failure (or its stop at the group deadline, which interrupts the handler)
      const ceiling = error?.startsWith(ceilingStop) === true
      if (ceiling ? last!.outcome !== "interrupted" : last!.outcome !== "fail" && last!.outcome !== "die") {
        violations.push(`${what}: failed (${error}), but its last run ended ${last!.outcome}`)
      }
      if (job.attempts !== job.maxAttempts || last!.attempt !== job.maxAttempts) {
        violations.push(`${what}: failed by its handler with attempts ${job.attempts}, last run attempt ${last!.attempt}`)
      }
      if (!ceiling && error !== unstorable && error !== `boom ${last!.token}` && error !== `die ${last!.token}`) {
        violations.push(`${what}: lastError ${JSON.stringify(error)} is not its last run's (${last!.token})`)
      }
    }
  }
}

// ---- the tests --------------------------------------------------------------------------------------------

const seedsFor = (backend: Backend): ReadonlyArray<number> => {
  if (onlyBackend !== undefined && onlyBackend !== backend) return []
  if (fixedSeed !== undefined) return [fixedSeed]
  const base = Math.floor(Math.random() * 2 ** 31)
  return Array.from({ length: seedsPerBackend }, (_, i) => (base + i * 7919) >>> 0)
}

/** vitest's limit for one backend's runs: about 10 s per seed (a run takes 3-8 s), spread over `parallel`. */
const testTimeoutMs = Math.max(120_000, Math.ceil((fixedSeed === undefined ? seedsPerBackend : 1) / parallel) * 12_000 + 60_000)

const statsLine = (stats: Record<string, number | string>) =>
  Object.entries(stats).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join(", ")

const totals = (reports: ReadonlyArray<RunReport>) => {
  const sum: Record<string, number> = {}
  for (const r of reports) {
    for (const [k, v] of Object.entries(r.stats)) if (typeof v === "number") sum[k] = (sum[k] ?? 0) + v
  }
  return statsLine(sum)
}

describe("interleaving", () => {
  layer(PgTest({ maxConnections: 6 }), { excludeTestServices: true })((it) => {
    for (const backend of ["postgres", "memory"] as const) {
      it.effect(`${backend}: random interleavings of enqueue, claim, settle, interrupt, shutdown and rescue keep every invariant`, () =>
        Effect.gen(function*() {
          const seeds = seedsFor(backend)
          if (seeds.length === 0) return
          const started = Date.now()
          const reports = yield* Effect.forEach(seeds, (seed) => runOnce(backend, seed), { concurrency: parallel })
          const failed = reports.filter((r) => r.violations.length > 0)
          // eslint-disable-next-line no-console
          console.log(
            `[interleaving] ${backend}: ${seeds.length} seed(s) in ${Date.now() - started} ms, ${failed.length} failed; ` +
              `seeds ${seeds.join(" ")}\n  all seeds: ${totals(reports)}`
          )
          if (failed.length > 0) {
            assert.fail(failed.map((r) =>
              `${backend}, seed ${r.seed} (replay: INTERLEAVING_SEED=${r.seed} INTERLEAVING_BACKEND=${backend}), ` +
              `${r.violations.length} violation(s):\n` + r.violations.slice(0, 30).map((v) => `  - ${v}`).join("\n") +
              `\n  (${statsLine(r.stats)})`
            ).join("\n"))
          }
        }), testTimeoutMs)
    }
  })
})
