/**
 * The PostgreSQL implementation of the JobStore contract.
 *
 * Wake-ups: one LISTEN connection per store (started when the first worker subscribes), re-listened after a
 * dropped connection with a `Reconnected` wake-up so that workers run a catch-up claim. Enqueue never puts a
 * NOTIFY in the caller's transaction (a NOTIFY serialises commits cluster-wide): after the transaction
 * commits, the channel is added to a pending set and one notifier fiber sends the whole set in one
 * `pg_notify` statement with `synchronous_commit` off; while one is in flight, later requests coalesce into
 * the next. Workers in the same process are woken directly, and ignore the echo of their own NOTIFY.
 */
import { randomUUID } from "node:crypto"
import { Cause, Deferred, Effect, Layer, Option, PubSub, Schedule, Scope, Stream } from "effect"
import type { SqlError } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import { JobDefinitionNotDeployed, StorageError } from "../CuckmqError.js"
import * as JobStore from "../JobStore.js"
import { notifyChannel, statements } from "./pgSql.js"

/** Options of the PostgreSQL store. */
export interface PgStoreOptions {
  readonly schema: string
  /** Keep finalized jobs in `job_finalized` (false when `jobPostFinalizeDeleteSecs` is 0). */
  readonly keepFinalized: boolean
}

const storageError = (operation: string) => (cause: SqlError.SqlError) =>
  Effect.fail(new StorageError({ operation, message: `${operation} failed: ${cause.message}`, cause }))

const optionalString = (value: unknown): string | undefined =>
  value === null || value === undefined ? undefined : String(value)

const optionalDate = (value: unknown): Date | undefined => value instanceof Date ? value : undefined

type Row = Record<string, unknown>

const toClaimedJob = (row: Row): JobStore.ClaimedJob => ({
  id: String(row.id),
  name: row.name as string,
  channel: row.channel as string,
  jobGroup: optionalString(row.job_group),
  payload: row.payload,
  attempt: Number(row.attempts),
  maxAttempts: Number(row.max_attempts),
  timeoutSecs: Number(row.timeout_secs),
  runAt: row.run_at as Date,
  createdAt: row.created_at as Date,
  scheduledFor: optionalDate(row.scheduled_for),
  traceId: optionalString(row.trace_id),
  spanId: optionalString(row.span_id)
})

/** Builds the store. Requires a `PgClient`; the schema must already be migrated. */
export const make = (options: PgStoreOptions): Effect.Effect<JobStore.JobStore["Service"], never, PgClient.PgClient | Scope.Scope> =>
  Effect.gen(function*() {
    const pg = yield* PgClient.PgClient
    // Our statements read snake_case columns: never apply the app's name transforms to them.
    const sql = pg.withoutTransforms()
    const s = statements(options.schema)
    const scope = yield* Effect.scope
    const senderId = randomUUID()
    const channelName = notifyChannel(options.schema)

    // ---- wake-ups ---------------------------------------------------------------------------------------
    const hub = yield* PubSub.sliding<JobStore.Wakeup>(1024)
    yield* Effect.addFinalizer(() => PubSub.shutdown(hub))

    const pending = new Set<string>()
    let notifying = false
    const notifyLoop: Effect.Effect<void> = Effect.suspend(() => {
      if (pending.size === 0) {
        notifying = false
        return Effect.void
      }
      const payloads = Array.from(pending, (channel) => `${senderId}:${channel}`)
      pending.clear()
      return sql.unsafe(
        `SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, p) FROM unnest($2::text[]) AS p`,
        [channelName, payloads]
      ).pipe(
        Effect.catchCause((cause) => Effect.logDebug("cuckmq: NOTIFY failed (workers will poll)", cause)),
        Effect.andThen(notifyLoop)
      )
    })
    /** Wakes local workers now and, coalesced, every other process (`*` = any channel). */
    const wake = (channel: string | "*"): Effect.Effect<void> =>
      Effect.suspend(() => {
        const wakeup: JobStore.Wakeup = channel === "*" ? { _tag: "Any" } : { _tag: "Channel", channel }
        PubSub.publishUnsafe(hub, wakeup)
        pending.add(channel)
        if (notifying) return Effect.void
        notifying = true
        return Effect.asVoid(Effect.forkIn(notifyLoop, scope))
      })

    const listener = Stream.unwrap(Effect.map(pg.listen(channelName), (queue) =>
      Stream.concat(
        // (re)listening: notifications sent while nobody listened are lost, so every worker polls once
        Stream.succeed<JobStore.Wakeup | undefined>({ _tag: "Any" }),
        Stream.map(Stream.fromQueue(queue), (n): JobStore.Wakeup | undefined => {
          const at = n.payload.indexOf(":")
          if (at < 0 || n.payload.slice(0, at) === senderId) return undefined
          const channel = n.payload.slice(at + 1)
          return channel === "*" ? { _tag: "Any" } : { _tag: "Channel", channel }
        })
      ))).pipe(
        Stream.tapError((e) => Effect.logWarning("cuckmq: LISTEN connection lost, reconnecting", e.message)),
        Stream.retry(Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")])),
        Stream.runForEach((w) => w === undefined ? Effect.void : PubSub.publish(hub, w)),
        Effect.catchCause((cause) => Effect.logError("cuckmq: listener stopped", cause)),
        Effect.annotateLogs({ cuckmq: "listener", schema: options.schema })
      )
    let listening = false
    const wakeups = Effect.gen(function*() {
      const subscription = yield* PubSub.subscribe(hub)
      if (!listening) {
        listening = true
        yield* Effect.forkIn(listener, scope)
      }
      return Stream.fromSubscription(subscription)
    })

    // ---- definitions and enqueue -----------------------------------------------------------------------
    const deploy = (definitions: ReadonlyArray<JobStore.DefinitionRecord>) =>
      // in name order, so that processes deploying the same definitions at once never deadlock
      sql.withTransaction(Effect.forEach([...definitions].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)), (d) =>
        Effect.map(
          sql.unsafe(s.deploy, [
            d.name,
            d.channel,
            d.numAttempts,
            d.timeoutSecs,
            d.repeat?._tag === "Every" ? d.repeat.secs : null,
            d.repeat?._tag === "Cron" ? d.repeat.expression : null,
            d.repeat?._tag === "Cron" ? (d.repeat.tz ?? null) : null,
            d.firstDue ?? null
          ]),
          (rows) => ({ name: d.name, changed: rows.length > 0 })
        ))).pipe(Effect.catchTag("SqlError", storageError("deploy")))

    /** What an insert wrote: the ids in order, and the definition's channel. */
    interface Inserted {
      readonly ids: ReadonlyArray<string>
      readonly channel: string
    }
    type Committed = (ids: ReadonlyArray<string>, channel: string) => Effect.Effect<ReadonlyArray<string>>
    type NotDeployed = () => JobDefinitionNotDeployed

    /** One job on the current connection (the caller's transaction, when there is one). */
    const enqueueSingle = (definitionName: string, job: JobStore.NewJob, notDeployed: NotDeployed, committed: Committed) =>
      insertOne(definitionName, job).pipe(
        Effect.catchTag("SqlError", storageError("enqueue")),
        Effect.flatMap((inserted) =>
          inserted === undefined ? Effect.fail(notDeployed()) : committed(inserted.ids, inserted.channel)
        )
      )

    /** The in-process fast path (see JobStore.LocalClaim); never inside a transaction. */
    const enqueueClaimed = (
      definitionName: string,
      job: JobStore.NewJob,
      onCommit: (ids: ReadonlyArray<string>, channel: string) => Effect.Effect<void>,
      local: JobStore.LocalClaim,
      notDeployed: NotDeployed,
      committed: Committed,
      /** How the job is enqueued when no local worker has a free slot. */
      otherwise: Effect.Effect<ReadonlyArray<string>, JobDefinitionNotDeployed | StorageError>
    ) =>
      Effect.suspend(() => {
        const reservation = local.reserve(definitionName)
        if (reservation === undefined) return otherwise
        return sql.unsafe<Row>(s.enqueueClaimed, [
          definitionName,
          job.payloadJson,
          reservation.workerId,
          job.traceId ?? null,
          job.spanId ?? null,
          [...reservation.channels]
        ]).pipe(
          Effect.catchTag("SqlError", storageError("enqueue")),
          Effect.onExit((exit) => exit._tag === "Failure" ? Effect.sync(reservation.cancel) : Effect.void),
          Effect.flatMap((rows) => {
            const row = rows[0]
            if (row === undefined) {
              reservation.cancel()
              return Effect.fail(notDeployed())
            }
            const id = String(row.id)
            const channel = row.channel as string
            if (row.worker_id === null) {
              // the deployed channel is not the local worker's: a normal waiting job
              reservation.cancel()
              return committed([id], channel)
            }
            // committed by its own statement: the local worker takes it now, nobody else needs waking
            const claimed = toClaimedJob(row)
            return Effect.as(Effect.andThen(onCommit([id], channel), Effect.sync(() => reservation.deliver(claimed))), [id])
          })
        )
      })

    /** Many jobs of one definition in one statement: their ids in order and the channel, or none if undeployed. */
    const insertMany = (definitionName: string, jobs: ReadonlyArray<JobStore.NewJob>) =>
      Effect.suspend(() => {
        const payloads = `[${jobs.map((j) => j.payloadJson).join(",")}]`
        const plain = jobs.every((j) =>
          j.delaySecs === 0 && j.jobGroup === undefined && j.traceId === undefined && j.spanId === undefined
        )
        const insert = plain
          ? sql.unsafe<Row>(s.enqueuePayloads, [definitionName, payloads])
          : sql.unsafe<Row>(s.enqueueMany, [
            definitionName,
            payloads,
            jobs.map((j) => String(j.delaySecs)),
            jobs.map((j) => j.jobGroup ?? ""),
            jobs.map((j) => j.traceId ?? ""),
            jobs.map((j) => j.spanId ?? "")
          ])
        return Effect.map(insert, (rows): Inserted | undefined => {
          // ids come from an identity column in insertion order, sorted (numerically) by the statement
          const ids = rows[0]?.ids as ReadonlyArray<string> | null | undefined
          return ids === null || ids === undefined || ids.length === 0
            ? undefined
            : { ids, channel: rows[0]!.channel as string }
        })
      })

    const insertOne = (definitionName: string, job: JobStore.NewJob) =>
      Effect.map(
        sql.unsafe<Row>(s.enqueueOne, [
          definitionName,
          job.jobGroup ?? null,
          job.payloadJson,
          job.delaySecs,
          job.traceId ?? null,
          job.spanId ?? null
        ]),
        (rows): Inserted | undefined =>
          rows.length === 0 ? undefined : { ids: [String(rows[0]!.id)], channel: rows[0]!.channel as string }
      )

    // ---- coalesced single enqueues ---------------------------------------------------------------------
    // Single enqueues outside a transaction from concurrent callers are written together: while up to
    // `maxInsertsInFlight` inserts run, later calls wait and go as one multi-row INSERT per definition (at
    // most `maxBatchJobs` jobs or `maxBatchChars` of JSON each), so 20 concurrent callers cost a handful of
    // commits instead of 20. A call returns once its row is committed, as before; a lone call goes at once.
    // The writer fibers belong to the store (its scope and context), run the wake-up and the caller's
    // `onCommit` themselves (so an interrupted caller's committed job is still announced), and answer every
    // caller whatever happens. A batch that the database refuses because of its data (SQLSTATE class 22 or
    // 23) is split in halves until the offending rows are alone, so only their callers fail; any other
    // failure (a lost connection, where the batch may or may not have committed) fails the whole batch and
    // is never retried, so no job is written twice.
    interface PendingInsert {
      readonly job: JobStore.NewJob
      readonly onCommit: (ids: ReadonlyArray<string>, channel: string) => Effect.Effect<void>
      readonly deferred: Deferred.Deferred<string, JobDefinitionNotDeployed | StorageError>
    }
    interface PendingBatch {
      readonly notDeployed: NotDeployed
      readonly items: Array<PendingInsert>
    }
    const maxInsertsInFlight = 2
    const maxBatchJobs = 1000
    const maxBatchChars = 4 * 1024 * 1024
    const waitingInserts = new Map<string, PendingBatch>()
    let insertsInFlight = 0
    let storeClosed = false
    const storeContext = yield* Effect.context<never>()

    const closedError = (written: "not" | "maybe") =>
      new StorageError({
        operation: "enqueue",
        message: written === "not"
          ? "enqueue failed: the cuckmq store is closed (its layer's scope was closed); the job was not written"
          : "enqueue failed: the cuckmq store closed while the job was being written; it may or may not have been enqueued",
        cause: undefined
      })

    /** Data the database refused (a bad value, a violated constraint): another split of the batch may pass. */
    const isDataError = (error: SqlError.SqlError): boolean => {
      const reason = error.reason as { readonly _tag: string; readonly cause?: unknown }
      if (reason._tag === "ConstraintError" || reason._tag === "UniqueViolation") return true
      const code = (reason.cause as { readonly code?: unknown } | undefined)?.code
      return typeof code === "string" && (code.startsWith("22") || code.startsWith("23"))
    }

    /** Writes `items` (one definition); answers each caller. Never fails. */
    const writeItems = (
      definitionName: string,
      items: ReadonlyArray<PendingInsert>,
      notDeployed: NotDeployed
    ): Effect.Effect<void> =>
      Effect.flatMap(
        Effect.exit(items.length === 1 ? insertOne(definitionName, items[0]!.job) : insertMany(definitionName, items.map((i) => i.job))),
        (exit): Effect.Effect<void> => {
          if (exit._tag === "Success") {
            if (exit.value === undefined) {
              for (const item of items) Deferred.doneUnsafe(item.deferred, Effect.fail(notDeployed()))
              return Effect.void
            }
            const { channel, ids } = exit.value
            return Effect.andThen(
              wake(channel),
              Effect.forEach(items, (item, i) =>
                Effect.andThen(
                  item.onCommit([ids[i]!], channel),
                  Effect.sync(() => Deferred.doneUnsafe(item.deferred, Effect.succeed(ids[i]!)))
                ), { discard: true })
            )
          }
          const error = Cause.findErrorOption(exit.cause)
          if (items.length > 1 && Option.isSome(error) && isDataError(error.value)) {
            const half = Math.ceil(items.length / 2)
            return Effect.andThen(
              writeItems(definitionName, items.slice(0, half), notDeployed),
              writeItems(definitionName, items.slice(half), notDeployed)
            )
          }
          const failure = Option.isSome(error)
            ? storageError("enqueue")(error.value)
            : Effect.failCause(exit.cause as Cause.Cause<never>)
          for (const item of items) Deferred.doneUnsafe(item.deferred, failure)
          return Effect.void
        }
      )

    /** Takes the next statement's worth of waiting jobs (one definition), or undefined when none wait. */
    const takeBatch = (): readonly [string, NotDeployed, Array<PendingInsert>] | undefined => {
      const next = waitingInserts.entries().next()
      if (next.done === true) return undefined
      const [definitionName, batch] = next.value
      let chars = 0
      let n = 0
      while (n < batch.items.length && n < maxBatchJobs && (n === 0 || chars < maxBatchChars)) {
        chars += batch.items[n]!.job.payloadJson.length
        n++
      }
      const items = batch.items.splice(0, n)
      if (batch.items.length === 0) waitingInserts.delete(definitionName)
      return [definitionName, batch.notDeployed, items]
    }

    /** Writes waiting batches until none is left; one of at most `maxInsertsInFlight` such fibers. */
    const insertWriter: Effect.Effect<void> = Effect.suspend(() => {
      let counted = true
      let current: ReadonlyArray<PendingInsert> = []
      const loop: Effect.Effect<void> = Effect.suspend(() => {
        const taken = takeBatch()
        if (taken === undefined) {
          counted = false
          insertsInFlight--
          return Effect.void
        }
        current = taken[2]
        return Effect.andThen(writeItems(taken[0], current, taken[1]), loop)
      })
      return Effect.ensuring(loop, Effect.sync(() => {
        // interrupted (the store is closing): the batch in flight may or may not have been written
        // (after a normal exit every caller of `current` is answered already, and this changes nothing)
        const failure = Effect.fail(closedError("maybe"))
        for (const item of current) Deferred.doneUnsafe(item.deferred, failure)
        if (counted) insertsInFlight--
      }))
    })

    // the store's scope closes after its writer fibers are interrupted: answer whoever still waits
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        storeClosed = true
        const failure = Effect.fail(closedError("not"))
        for (const batch of waitingInserts.values()) {
          for (const item of batch.items) Deferred.doneUnsafe(item.deferred, failure)
        }
        waitingInserts.clear()
      })
    )

    const enqueueCoalesced = (
      definitionName: string,
      job: JobStore.NewJob,
      onCommit: (ids: ReadonlyArray<string>, channel: string) => Effect.Effect<void>,
      notDeployed: NotDeployed
    ): Effect.Effect<ReadonlyArray<string>, JobDefinitionNotDeployed | StorageError> =>
      Effect.uninterruptible(Effect.suspend(() => {
        if (storeClosed) return Effect.fail(closedError("not"))
        const deferred = Deferred.makeUnsafe<string, JobDefinitionNotDeployed | StorageError>()
        const item: PendingInsert = { job, onCommit, deferred }
        const batch = waitingInserts.get(definitionName)
        if (batch === undefined) waitingInserts.set(definitionName, { notDeployed, items: [item] })
        else batch.items.push(item)
        if (insertsInFlight >= maxInsertsInFlight) return Effect.succeed(deferred)
        insertsInFlight++
        return Effect.as(Effect.forkIn(Effect.provideContext(insertWriter, storeContext), scope), deferred)
      })).pipe(
        Effect.flatMap(Deferred.await),
        Effect.map((id) => [id])
      )

    const enqueue = (
      definitionName: string,
      jobs: ReadonlyArray<JobStore.NewJob>,
      onCommit: (ids: ReadonlyArray<string>, channel: string) => Effect.Effect<void>,
      local?: JobStore.LocalClaim
    ): Effect.Effect<ReadonlyArray<string>, JobDefinitionNotDeployed | StorageError> => {
      if (jobs.length === 0) return Effect.succeed([])
      const notDeployed = () => new JobDefinitionNotDeployed({
        definitionName,
        message: `Job definition ${JSON.stringify(definitionName)} was never deployed to schema ` +
          `${JSON.stringify(options.schema)}: deploy it (JobDefinition.deploy, or Cuckmq.layer with it in ` +
          `\`definitions\`) before enqueueing`
      })
      const committed = (ids: ReadonlyArray<string>, channel: string) =>
        Effect.as(pg.afterCommit(Effect.andThen(wake(channel), onCommit(ids, channel))), ids)
      if (jobs.length === 1) {
        const job = jobs[0]!
        return Effect.flatMap(Effect.serviceOption(pg.transactionService), (tx) => {
          // in the caller's transaction: its own statement on the transaction's connection
          if (tx._tag === "Some") return enqueueSingle(definitionName, job, notDeployed, committed)
          const coalesced = enqueueCoalesced(definitionName, job, onCommit, notDeployed)
          return local !== undefined && job.delaySecs === 0 && job.jobGroup === undefined
            ? enqueueClaimed(definitionName, job, onCommit, local, notDeployed, committed, coalesced)
            : coalesced
        })
      }
      return insertMany(definitionName, jobs).pipe(
        Effect.catchTag("SqlError", storageError("enqueue")),
        Effect.flatMap((inserted) =>
          inserted === undefined ? Effect.fail(notDeployed()) : committed(inserted.ids, inserted.channel)
        )
      )
    }

    // ---- workers ---------------------------------------------------------------------------------------
    const registerWorker = (w: JobStore.WorkerRegistration) =>
      sql.unsafe(s.registerWorker, [w.id, w.name, w.hostname, w.pid, [...w.channels], w.leaseSecs]).pipe(
        Effect.asVoid,
        Effect.catchTag("SqlError", storageError("register worker"))
      )

    const heartbeat = (workerId: string, leaseSecs: number) =>
      sql.unsafe(s.heartbeat, [workerId, leaseSecs]).pipe(
        Effect.map((rows) => rows.length > 0),
        Effect.catchTag("SqlError", storageError("heartbeat"))
      )

    const deregisterWorker = (workerId: string) =>
      sql.unsafe(s.deregisterWorker, [workerId]).pipe(
        Effect.asVoid,
        Effect.catchTag("SqlError", storageError("deregister worker"))
      )

    const claimSql = [s.claim(false, false), s.claim(false, true), s.claim(true, false), s.claim(true, true)] as const
    const claim = (r: JobStore.ClaimRequest) => {
      const multi = r.channels.length > 1
      const exclude = r.excludeNames.length > 0
      const params: Array<unknown> = [r.workerId, multi ? [...r.channels] : r.channels[0], r.limit]
      if (exclude) params.push([...r.excludeNames])
      return sql.unsafe<Row>(claimSql[(multi ? 2 : 0) + (exclude ? 1 : 0)]!, params).pipe(
        Effect.map((rows) => rows.map(toClaimedJob).sort((a, b) => a.runAt.getTime() - b.runAt.getTime())),
        Effect.catchTag("SqlError", storageError("claim"))
      )
    }

    const releaseUnowned = (workerId: string, owned: ReadonlyArray<string>) =>
      sql.unsafe<Row>(s.releaseUnowned, [workerId, [...owned]]).pipe(
        Effect.tap((rows) => Number(rows[0]?.released ?? 0) > 0 ? wake("*") : Effect.void),
        Effect.map((rows) => Number(rows[0]?.released ?? 0)),
        Effect.catchTag("SqlError", storageError("release unowned jobs"))
      )

    const settleSql = options.keepFinalized ? s.settleKeep : s.settleDrop
    const settle = (workerId: string, settlements: ReadonlyArray<JobStore.Settlement>) =>
      settlements.length === 0 ? Effect.void : sql.unsafe<Row>(settleSql, [
        workerId,
        settlements.map((x) => BigInt(x.id)),
        settlements.map((x) => String(x.attempt)),
        settlements.map((x) => x.outcome),
        settlements.map((x) => x.error === undefined ? "" : JSON.stringify(x.error)),
        settlements.filter((x) => x.outcome === "Succeeded" || x.outcome === "Expired").map((x) => BigInt(x.id)),
        settlements.filter((x) => x.outcome === "Retry" || x.outcome === "Released").map((x) => BigInt(x.id))
      ]).pipe(
        // A released group lock may make a waiting job of that group claimable: wake every worker.
        Effect.flatMap((rows) => Number(rows[0]?.unlocked ?? 0) > 0 ? wake("*") : Effect.void),
        Effect.catchTag("SqlError", storageError("settle"))
      )

    // ---- orchestrator ----------------------------------------------------------------------------------
    const scheduleDue = (known: ReadonlySet<string>, advance: JobStore.Advance, limit: number) =>
      sql.withTransaction(Effect.gen(function*() {
        const knownNames = Array.from(known)
        const due = yield* sql.unsafe<Row>(s.dueDefinitions, [limit, knownNames])
        const scheduled: Array<JobStore.ScheduledJob> = []
        const orphans = (yield* sql.unsafe<Row>(s.dueOrphans, [knownNames])).map((r) => r.name as string)
        for (const row of due) {
          const name = row.name as string
          const dueAt = row.next_run_at as Date
          const now = row.db_now as Date
          const repeat: JobStore.Repeat = row.repeat_secs !== null
            ? { _tag: "Every", secs: Number(row.repeat_secs) }
            : { _tag: "Cron", expression: row.cron as string, tz: optionalString(row.cron_tz) }
          const next = advance(repeat, dueAt, now)
          const inserted = yield* sql.unsafe<Row>(s.scheduleJob, [name])
          yield* sql.unsafe(s.advanceDefinition, [name, next])
          scheduled.push({
            definitionName: name,
            jobId: String(inserted[0]!.id),
            scheduledFor: inserted[0]!.scheduled_for as Date
          })
          yield* pg.afterCommit(wake(inserted[0]!.channel as string))
        }
        const [soonest] = yield* sql.unsafe<Row>(s.nextDue, [knownNames])
        const secs = soonest?.secs
        return { scheduled, orphans, nextDueInSecs: secs === null || secs === undefined ? undefined : Number(secs) }
      })).pipe(Effect.catchTag("SqlError", storageError("schedule")))

    const deleteFinalized = (olderThanSecs: number, limit: number) =>
      sql.unsafe<Row>(s.deleteFinalized, [olderThanSecs, limit]).pipe(
        Effect.map((rows) => rows.map((r) => ({ id: String(r.id), name: r.name as string }))),
        Effect.catchTag("SqlError", storageError("delete finalized jobs"))
      )

    const deleteUnreferencedGroups = (limit: number) =>
      sql.unsafe<Row>(s.deleteGroups, [limit]).pipe(
        Effect.map((rows) => rows.map((r) => r.name as string)),
        Effect.catchTag("SqlError", storageError("delete job groups"))
      )

    const rescueSql = s.rescue(options.keepFinalized)
    const rescue = (jobGroupUnlockSecs: number) =>
      Effect.gen(function*() {
        const jobs = yield* sql.unsafe<Row>(rescueSql, [1000])
        const groups = yield* sql.unsafe<Row>(s.releaseGroups, [jobGroupUnlockSecs, 1000])
        if (jobs.length > 0 || groups.length > 0) yield* wake("*")
        return {
          jobs: jobs.map((r): JobStore.RescuedJob => ({
            jobId: String(r.id),
            definitionName: r.name as string,
            workerId: String(r.worker_id),
            finalized: r.finalized === true
          })),
          groups: groups.map((r): JobStore.UnlockedGroup => ({
            jobGroup: r.name as string,
            jobId: String(r.locked_by_job),
            reason: r.past_ceiling === true ? "ceiling" : "worker-dead"
          }))
        }
      }).pipe(Effect.catchTag("SqlError", storageError("rescue")))

    const getJob = (id: string) =>
      (/^\d{1,19}$/.test(id) ? sql.unsafe<Row>(s.getJob, [id]) : Effect.succeed([] as ReadonlyArray<Row>)).pipe(
        Effect.map((rows) =>
          Option.map(Option.fromNullishOr(rows[0]), (r): JobStore.JobInfo => ({
            id: String(r.id),
            name: r.name as string,
            channel: r.channel as string,
            jobGroup: optionalString(r.job_group),
            payload: r.payload,
            state: r.state as JobStore.JobInfo["state"],
            attempts: Number(r.attempts),
            maxAttempts: Number(r.max_attempts),
            runAt: optionalDate(r.run_at),
            lastError: r.last_error ?? undefined,
            workerId: optionalString(r.worker_id),
            createdAt: r.created_at as Date,
            finalizedAt: optionalDate(r.finalized_at),
            scheduledFor: optionalDate(r.scheduled_for)
          }))
        ),
        Effect.catchTag("SqlError", storageError("get job"))
      )

    return JobStore.JobStore.of({
      deploy,
      enqueue,
      wakeups,
      registerWorker,
      heartbeat,
      deregisterWorker,
      claim,
      releaseUnowned,
      settle,
      scheduleDue,
      deleteFinalized,
      deleteUnreferencedGroups,
      rescue,
      getJob
    })
  })

/** The store as a layer. */
export const layer = (options: PgStoreOptions): Layer.Layer<JobStore.JobStore, never, PgClient.PgClient> =>
  Layer.effect(JobStore.JobStore, make(options))
