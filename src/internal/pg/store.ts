/**
 * The PostgreSQL implementation of the JobStore contract, assembled from its parts: enqueue (enqueue.ts),
 * claim (claim.ts), settle and start confirmation (settle.ts), worker rows (workers.ts), rescue
 * (rescue.ts), groups (groups.ts), schedules and retention (schedule.ts), reads (jobs.ts), the outcome
 * counters' writes (outcomes.ts), and the process's own session for wake-ups and liveness (session.ts).
 */
import { Effect, Layer, Redacted, type Scope } from "effect"
import * as Reactivity from "effect/reactivity/Reactivity"
import { PgClient, type PgConnection } from "@effect/sql-pg"
import * as JobStore from "../../JobStore.js"
import * as Cancel from "./cancel.js"
import { claim } from "./claim.js"
import * as Enqueue from "./enqueue.js"
import * as Flow from "./flow.js"
import { deleteUnreferencedGroups } from "./groups.js"
import { getJob } from "./jobs.js"
import { recordOutcomes } from "./outcomes.js"
import { rescue } from "./rescue.js"
import * as Schedule from "./schedule.js"
import * as Session from "./session.js"
import { settle } from "./settle.js"
import { lockNamespace, names, noticeChannel } from "./sql.js"
import * as Workers from "./workers.js"

/** Options of the PostgreSQL store. */
export interface PgStoreOptions {
  readonly schema: string
  /** Keep finalized jobs in `job_finalized` (false when `jobPostFinalizeDeleteSecs` is 0). */
  readonly keepFinalized: boolean
  /**
   * Hold a liveness lock on the session connection, so that a killed process's workers are declared dead
   * within seconds (false: leases only, e.g. where session locks cannot be trusted). Defaults to true.
   */
  readonly liveness?: boolean | undefined
  /** Connections of the store's own pool. Defaults to the app client's `maxConnections` (or 10). */
  readonly maxConnections?: number | undefined
  /**
   * The app client connects through a transaction-mode pooler (PgBouncer `pool_mode = transaction`): the
   * store's pool prepares no named statements and sends no startup parameters, and the session connection
   * (LISTEN, liveness) is `directUrl`'s, or there is none (poll-only). Defaults to false.
   */
  readonly transactionPooler?: boolean | undefined
  /** A URL that reaches PostgreSQL directly, for the session connection (the app client's other settings apply). */
  readonly directUrl?: Redacted.Redacted | undefined
}

/**
 * What is wrong with the pooler options, if anything (the message of an `InvalidOptions`): `transactionPooler`
 * must be a boolean, and `directUrl` (unwrapped: the Effect API takes it `Redacted`, the Promise API as a
 * string) a postgres:// or postgresql:// URL.
 */
export const poolerProblem = (options: { readonly transactionPooler?: unknown; readonly directUrl?: unknown }): string | undefined => {
  if (options.transactionPooler !== undefined && typeof options.transactionPooler !== "boolean") {
    return `transactionPooler must be a boolean, got ${String(options.transactionPooler)}`
  }
  if (options.directUrl === undefined) return undefined
  let url: URL | undefined
  try {
    url = typeof options.directUrl === "string" ? new URL(options.directUrl) : undefined
  } catch {
    url = undefined
  }
  return url === undefined || (url.protocol !== "postgres:" && url.protocol !== "postgresql:")
    ? "directUrl must be a postgres:// or postgresql:// URL"
    : undefined
}

/**
 * The session connection's settings: the app client's, with `directUrl` (when given) in place of where the
 * app client connects; undefined (poll-only) behind a transaction-mode pooler without `directUrl`.
 */
export const sessionConnection = (
  appConfig: PgClient.PgPoolConfig,
  options: Pick<PgStoreOptions, "transactionPooler" | "directUrl">
): PgConnection.Config | undefined => {
  if (options.directUrl === undefined) return options.transactionPooler === true ? undefined : appConfig
  // the URL says where to connect: the app's host, port, database and user would override it
  const { database: _d, host: _h, path: _p, port: _o, url: _u, username: _n, ...rest } = appConfig
  const hasPassword = new URL(Redacted.value(options.directUrl)).password !== ""
  return {
    ...(hasPassword ? { ...rest, password: undefined } : rest),
    url: options.directUrl
  }
}

/** Settlement outcomes that finalize the job (what a `Finalized` notice reports). */
const finalOutcomes: ReadonlySet<JobStore.Settlement["outcome"]> = new Set(["Succeeded", "Expired", "Cancelled"])

/** Builds the store. Requires a `PgClient`; the schema must already be migrated. */
export const make = (options: PgStoreOptions): Effect.Effect<JobStore.JobStore["Service"], never, PgClient.PgClient | Scope.Scope> =>
  Effect.gen(function*() {
    const pg = yield* PgClient.PgClient
    // Our statements read snake_case columns: never apply the app's name transforms to them.
    const app = pg.withoutTransforms()
    // The store's own pool, from the app client's settings, for everything outside the app's transactions
    // (claims, settlements, enqueues outside a transaction, maintenance). Its sessions use generic plans for
    // our prepared statements: PostgreSQL would otherwise plan a claim anew on every execution (its custom
    // plans look cheaper to it), which costs more than running a small claim. The app's own statements and
    // connections are untouched, and a busy app pool never holds up a settlement. JIT is off: our statements
    // touch a few rows each, but a generic plan's estimates over a large table (a million held jobs) pass
    // `jit_above_cost`, and compiling took a second of a promotion that runs in under a millisecond.
    //
    // Behind a transaction-mode pooler (`transactionPooler`), consecutive transactions of one client land on
    // different server connections: named prepared statements (PgBouncer before 1.21) and session settings
    // do not survive, and PgBouncer refuses startup parameters it does not know. There the pool uses unnamed
    // statements only (each planned for its parameters: no generic plan to force) and sends no startup
    // parameters of ours; `jit = off` is the operator's `ALTER ROLE ... SET jit = off` (see the README).
    const appConfig = pg.config as PgClient.PgPoolConfig
    const pooled = options.transactionPooler === true
    const own = yield* PgClient.make({
      ...appConfig,
      maxConnections: options.maxConnections ?? appConfig.maxConnections ?? 10,
      ...(pooled
        ? { prepare: false }
        : { startupParameters: { ...appConfig.startupParameters, plan_cache_mode: "force_generic_plan", jit: "off" } })
    }).pipe(Effect.provide(Reactivity.layer), Effect.orDie)
    const sql = own.withoutTransforms()
    const n = names(options.schema)
    const scope = yield* Effect.scope
    const namespace = lockNamespace(options.schema)

    const session = yield* Session.make(sql, {
      schema: options.schema,
      lockNamespace: namespace,
      liveness: options.liveness ?? true,
      connection: sessionConnection(own.config as PgClient.PgPoolConfig, options)
    })
    /** Wakes every worker (a group slot freed, a job went back): `*` = any channel. */
    const wakeAll = session.wake("*")
    const flow = Flow.make(sql, n, wakeAll)
    const { enqueue, enqueueUnique } = yield* Enqueue.make({
      sql,
      app,
      names: n,
      schema: options.schema,
      scope,
      wake: session.wake,
      promote: flow.promoteAfterEnqueue
    })
    const workers = Workers.make(sql, n)
    const schedules = Schedule.make(sql, n, session.wake)
    const claimJobs = claim(sql, n)
    // a wake-up of all channels (a job went back, was rescued, a group slot freed: here or in another process)
    // may have made jobs ready below the claims' floors: the next claims scan from the start
    session.onAnyWakeup(claimJobs.resetFloors)
    const settleJobs = settle(sql, n, options.keepFinalized, noticeChannel(options.schema))
    const cancels = Cancel.make(sql, n, options.schema, options.keepFinalized)
    /**
     * After jobs went back to the queue from a dead or stopping worker: any whose cancellation was requested
     * is finalized as cancelled (a failure is logged; the claiming worker's poll cancels such a job anyway).
     */
    const cancelStrays = cancels.cancelStrays.pipe(
      Effect.flatMap((r) => r.promoted > 0 ? wakeAll : Effect.void),
      Effect.catchCause((cause) => Effect.logWarning("cuckmq: cancelling jobs sent back after a cancellation failed", cause))
    )
    const rescueJobs = rescue(sql, n, namespace, options.keepFinalized)

    return JobStore.JobStore.of({
      deploy: schedules.deploy,
      undeploy: schedules.undeploy,
      enqueue,
      enqueueUnique,
      wakeups: session.wakeups,
      session: session.session,
      registerWorker: workers.registerWorker,
      heartbeat: workers.heartbeat,
      deregisterWorker: (workerId) =>
        Effect.flatMap(workers.deregisterWorker(workerId), (released) => {
          claimJobs.forget(workerId)
          return released > 0 ? Effect.andThen(cancelStrays, wakeAll) : Effect.void
        }),
      claim: claimJobs.run,
      releaseUnowned: (workerId, owned) =>
        Effect.tap(workers.releaseUnowned(workerId, owned), (released) => released > 0 ? Effect.andThen(cancelStrays, wakeAll) : Effect.void),
      // a freed group slot may make a held job claimable; a retried or released job may be due now
      settle: (workerId, settlements) =>
        settlements.length === 0 ? Effect.void : Effect.flatMap(settleJobs(workerId, settlements), (freed) => {
          if (session.pollOnly) {
            for (const s of settlements) if (finalOutcomes.has(s.outcome)) session.noticeLocal({ _tag: "Finalized", id: s.id })
          }
          return freed > 0 || settlements.some((s) => s.outcome === "Retry" || s.outcome === "Released") ? wakeAll : Effect.void
        }),
      scheduleDue: schedules.scheduleDue,
      deleteFinalized: schedules.deleteFinalized,
      deleteStaleUniqueKeys: schedules.deleteStaleUniqueKeys,
      deleteUnreferencedGroups: deleteUnreferencedGroups(sql, n),
      rescue: (o) =>
        Effect.tap(rescueJobs(o), (r) =>
          r.jobs.length > 0 ? Effect.andThen(cancelStrays, wakeAll) : r.groups.length > 0 ? wakeAll : Effect.void),
      getJob: getJob(sql, n),
      setChannel: flow.setChannel,
      getChannel: flow.getChannel,
      setGroupLimits: flow.setGroupLimits,
      getGroup: flow.getGroup,
      promoteGroups: flow.promoteGroups,
      recordOutcomes: recordOutcomes(sql, n),
      notices: session.notices,
      markAwaited: cancels.markAwaited,
      // a cancelled head of a group may have let its held jobs be claimed
      cancel: (filter) =>
        cancels.cancel(filter).pipe(
          Effect.tap((r) => {
            if (session.pollOnly) {
              for (const { id } of r.cancelled) session.noticeLocal({ _tag: "Finalized", id })
              for (const { id } of r.cancelling) session.noticeLocal({ _tag: "CancelRequested", id })
            }
            return r.promoted > 0 ? wakeAll : Effect.void
          }),
          Effect.map((r) => ({ cancelled: r.cancelled, cancelling: r.cancelling }))
        ),
      cancelRequests: cancels.cancelRequests
    })
  })

/** The store as a layer. */
export const layer = (options: PgStoreOptions): Layer.Layer<JobStore.JobStore, never, PgClient.PgClient> =>
  Layer.effect(JobStore.JobStore, make(options))
