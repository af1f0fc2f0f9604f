/**
 * Enqueue on PostgreSQL.
 *
 * - Every insert is `INSERT ... SELECT ... FROM job_definition`: the definition row supplies channel,
 *   attempts and timeout, and a missing row (never deployed) inserts nothing. Times are the statement's
 *   (`statement_timestamp()`), not the transaction's start, so a job enqueued late in a long transaction is
 *   still delayed by its full `delaySecs` and ordered by when it was written.
 * - No trigger and no NOTIFY in the insert: the wake-up is sent after commit, coalesced (notify.ts).
 * - Inside the caller's transaction (`sql.withTransaction`), a job is one statement on the transaction's
 *   connection and its `onCommit` runs after the commit (never on rollback).
 * - Outside a transaction, the insert runs in a fiber of the store, not of the caller: once the row is
 *   committed, its `onCommit` (event, metric) and wake-up happen even if the caller was interrupted
 *   meanwhile (the caller only stops waiting).
 * - Concurrent single enqueues outside a transaction are written together: while up to `maxInsertsInFlight`
 *   inserts run, later calls wait and go as one multi-row INSERT per definition (at most `maxBatchJobs` jobs
 *   or `maxBatchChars` of JSON), so 20 concurrent callers cost a few commits instead of 20. A batch the
 *   database refuses for its data (SQLSTATE class 22 or 23) is split in halves until the offending rows are
 *   alone; any other failure (a lost connection, where the batch may have committed) fails the whole batch
 *   and is never retried, so no job is written twice.
 * - In-process fast path: a single job enqueued outside a transaction, with no delay and no group, while a
 *   worker of this process has a free slot for its channel, is claimed for that worker in its own INSERT
 *   (checked against the worker's lease in the same statement) and handed to it: one round trip from enqueue
 *   to handler instead of two. The reservation is given back if the insert did not claim it, and the worker
 *   reconciles what it holds if the outcome is unknown.
 * - Only a group's head is claimable: a grouped job is inserted held when its group's slots taken, its due
 *   ready jobs and the job's rank in the statement (by run time) exceed the group's concurrency. Whoever
 *   frees a slot later promotes held jobs; a settlement running concurrently with the insert cannot see
 *   them, so after the commit the store promotes in the groups that got held jobs (`promote`). That keeps a
 *   group's backlog out of every claim's way and makes claims round-robin across groups.
 */
import { Cause, Deferred, Effect, Option, type Scope } from "effect"
import type { SqlError } from "effect/sql"
import type { PgClient } from "@effect/sql-pg"
import { JobDefinitionNotDeployed, StorageError } from "../../CuckmqError.js"
import type * as JobStore from "../../JobStore.js"
import { claimedColumns, toClaimedJob } from "./claim.js"
import { readyCountSql } from "./groups.js"
import { type Names, type Row, storageError, toStorageError } from "./sql.js"
import * as Uniqueness from "../uniqueness.js"
import * as Unique from "./unique.js"

/**
 * The load of group `grp` (an SQL expression; the definition is `d`), as lateral columns `a.conc` (its
 * concurrency: explicit, else the definition's) and `a.active` (slots taken plus due ready jobs, counted up
 * to the concurrency on job_group_idx). A job of the group is held when `active + rank > conc`.
 */
const groupLoadSql = (n: Names, grp: string) => `LEFT JOIN LATERAL (
  SELECT c.conc, (COALESCE(c.running, 0) + ${readyCountSql(n, grp, "c.conc")})::int AS active
  FROM (
    SELECT COALESCE(g.concurrency, d.group_concurrency) AS conc, g.running
    FROM (SELECT 1) one LEFT JOIN ${n.group} g ON g.name = ${grp}
  ) c
) a ON ${grp} IS NOT NULL`

/**
 * One job, waiting: $1 definition, $2 group, $3 payload, $4 delay, $5 trace id, $6 span id, $7 priority, $8 the
 * attempt time limit (NULL: the definition's). Two
 * shapes: a job without a group skips the group's load (a lateral subquery the planner runs even when the
 * group is NULL).
 */
export const oneSql = (n: Names, grouped = true) => `
INSERT INTO ${n.job} (name, channel, job_group, payload, run_at, sort_at, created_at, max_attempts, timeout_secs,
  trace_id, span_id, priority, held, time_limit_secs)
SELECT d.name, d.channel, $2, $3::jsonb, t.run_at, t.run_at, t.now, d.num_attempts, d.timeout_secs, $5, $6, $7::int,
  ${grouped ? "COALESCE(a.active + 1 > a.conc, false)" : "false"}, $8::float8
FROM ${n.definition} d
CROSS JOIN (SELECT statement_timestamp() AS now, statement_timestamp() + make_interval(secs => $4::float8) AS run_at) t
${grouped ? groupLoadSql(n, "$2::text") : ""}
WHERE d.name = $1
RETURNING id, channel, CASE WHEN held THEN job_group END AS held_group`

/**
 * One job, claimed in its insert by the local worker $3 when the deployed channel is one of its channels ($6)
 * and its lease is live and the channel is neither paused nor rate limited; otherwise inserted waiting. Only
 * outside a transaction (the claim commits with the job). $1 definition, $2 payload, $4 trace id, $5 span id,
 * $7 priority, $8 the attempt time limit (NULL: the definition's).
 */
export const claimedSql = (n: Names) => `
INSERT INTO ${n.job} AS j (name, channel, payload, run_at, sort_at, created_at, max_attempts, timeout_secs,
  trace_id, span_id, priority, time_limit_secs, worker_id, claims, claimed_at)
SELECT d.name, d.channel, $2::jsonb, t.now, t.now, t.now, d.num_attempts, d.timeout_secs, $4, $5, $7::int, $8::float8,
  CASE WHEN o.ok THEN $3::uuid END,
  CASE WHEN o.ok THEN 1 ELSE 0 END,
  CASE WHEN o.ok THEN t.now END
FROM ${n.definition} d
CROSS JOIN (SELECT statement_timestamp() AS now) t
CROSS JOIN LATERAL (
  SELECT d.channel = ANY($6::text[])
    AND EXISTS (SELECT 1 FROM ${n.worker} w WHERE w.id = $3::uuid AND w.expires_at > now())
    -- a paused or rate-limited channel takes its jobs through the claim only
    AND NOT EXISTS (SELECT 1 FROM ${n.channel} c WHERE c.name = d.channel AND (c.paused OR c.rate_limit IS NOT NULL)) AS ok
) o
WHERE d.name = $1
RETURNING ${claimedColumns("j")}, j.worker_id`

/**
 * Many jobs with options: the payloads as one JSON array ($2), delays, groups, trace ids, priorities and
 * attempt time limits ('' for none) as parallel arrays ($3-$8). A grouped job is held when its group's slots taken, due ready jobs and its rank
 * in the call (by run time, then input order) exceed the group's concurrency. One row back: the ids in
 * order, the channel, and the groups that got held jobs. `withIds`: the jobs' ids are given ($9, allocated
 * from the job id sequence: unique jobs).
 */
export const manySql = (n: Names, withIds = false) => `
WITH t AS (SELECT statement_timestamp() AS now),
src AS (
  SELECT i.payload, t.now + make_interval(secs => i.delay) AS run_at, NULLIF(i.job_group, '') AS job_group,
    NULLIF(i.trace_id, '') AS trace_id, NULLIF(i.span_id, '') AS span_id, i.priority,
    NULLIF(i.time_limit, '')::float8 AS time_limit_secs, i.ord${withIds ? ", i.id" : ""}
  FROM t, ROWS FROM (jsonb_array_elements($2::jsonb), unnest($3::text[]::float8[], $4::text[], $5::text[], $6::text[],
    $7::int[], $8::text[]${withIds ? ", $9::bigint[]" : ""})) WITH ORDINALITY AS i(payload, delay, job_group, trace_id, span_id, priority, time_limit, ${withIds ? "id, " : ""}ord)
),
gact AS (
  SELECT x.job_group, a.active, a.conc
  FROM (SELECT DISTINCT job_group FROM src WHERE job_group IS NOT NULL) x
  CROSS JOIN ${n.definition} d
  ${groupLoadSql(n, "x.job_group")}
  WHERE d.name = $1
),
ranked AS (
  SELECT src.*, src.job_group IS NOT NULL AND
    row_number() OVER (PARTITION BY src.job_group ORDER BY src.run_at, src.ord) + a.active > a.conc AS held
  FROM src LEFT JOIN gact a ON a.job_group = src.job_group
),
ins AS (
  INSERT INTO ${n.job} (name, channel, job_group, payload, run_at, sort_at, created_at, held, max_attempts,
    timeout_secs, trace_id, span_id, priority, time_limit_secs${withIds ? ", id" : ""})
  SELECT d.name, d.channel, r.job_group, r.payload, r.run_at, r.run_at, t.now, r.held, d.num_attempts,
    d.timeout_secs, r.trace_id, r.span_id, r.priority, r.time_limit_secs${withIds ? ", r.id" : ""}
  FROM ${n.definition} d, ranked r, t
  WHERE d.name = $1
  ORDER BY r.ord
  RETURNING id, channel, held, job_group
)
SELECT array_agg(id ORDER BY id)::text[] AS ids, min(channel) AS channel,
  array_agg(DISTINCT job_group) FILTER (WHERE held) AS held_groups
FROM ins`

/**
 * Many jobs that are payloads only (no delay, group or trace; one priority, $3), as one JSON array: the
 * common bulk case.
 */
export const payloadsSql = (n: Names) => `
WITH t AS (SELECT statement_timestamp() AS now),
ins AS (
  INSERT INTO ${n.job} (name, channel, payload, run_at, sort_at, created_at, max_attempts, timeout_secs, priority)
  SELECT d.name, d.channel, i.payload, t.now, t.now, t.now, d.num_attempts, d.timeout_secs, $3::int
  FROM ${n.definition} d, t, jsonb_array_elements($2::jsonb) WITH ORDINALITY AS i(payload, ord)
  WHERE d.name = $1
  ORDER BY i.ord
  RETURNING id, channel
)
SELECT array_agg(id ORDER BY id)::text[] AS ids, min(channel) AS channel FROM ins`

/** What an insert wrote: the ids in order, the definition's channel, and the groups that got held jobs. */
interface Inserted {
  readonly ids: ReadonlyArray<string>
  readonly channel: string
  readonly heldGroups: ReadonlyArray<string>
}

type OnCommit = (ids: ReadonlyArray<string>, channel: string) => Effect.Effect<void>
type UniqueOnCommit = (ids: ReadonlyArray<string>, channel: string, indices: ReadonlyArray<number>) => Effect.Effect<void>
type EnqueueError = JobDefinitionNotDeployed | StorageError

/** The parts of the store enqueue needs. */
export interface Context {
  /** The store's own client: statements outside the caller's transaction. */
  readonly sql: PgClient.PgClient
  /** The app's client: its transactions, which an enqueue inside one joins. */
  readonly app: PgClient.PgClient
  readonly names: Names
  readonly schema: string
  /** The store's scope: fibers that outlive their caller run in it. */
  readonly scope: Scope.Scope
  /** Wakes this process's workers now and, coalesced, every other process. */
  readonly wake: (channel: string) => Effect.Effect<void>
  /**
   * After the commit of jobs held in these groups: promotes what the groups can take now (a slot freed by a
   * settlement that ran concurrently with the insert could not see the held jobs). Never fails.
   */
  readonly promote: (groups: ReadonlyArray<string>) => Effect.Effect<void>
}

const maxInsertsInFlight = 2
const maxBatchJobs = 1000
const maxBatchChars = 4 * 1024 * 1024

/** Data the database refused (a bad value, a violated constraint): another split of the batch may pass. */
const isDataError = (error: SqlError.SqlError): boolean => {
  const reason = error.reason as { readonly _tag: string; readonly cause?: unknown }
  if (reason._tag === "ConstraintError" || reason._tag === "UniqueViolation") return true
  const code = (reason.cause as { readonly code?: unknown } | undefined)?.code
  return typeof code === "string" && (code.startsWith("22") || code.startsWith("23"))
}

/** Builds `enqueue` and the store finalizer that answers callers still waiting when the store closes. */
export const make = (ctx: Context) =>
  Effect.gen(function*() {
    const { app, names: n, sql } = ctx
    const texts = {
      one: oneSql(n),
      oneUngrouped: oneSql(n, false),
      claimed: claimedSql(n),
      many: manySql(n),
      payloads: payloadsSql(n),
      uniqueTake: Unique.takeSql(n),
      uniqueResolve: Unique.resolveSql(n),
      uniqueChange: Unique.changeSql(n),
      uniqueInsert: manySql(n, true)
    }
    const storeContext = yield* Effect.context<never>()

    const notDeployed = (definitionName: string) =>
      new JobDefinitionNotDeployed({
        definitionName,
        message: `Job definition ${JSON.stringify(definitionName)} was never deployed to schema ` +
          `${JSON.stringify(ctx.schema)}: deploy it (JobDefinition.deploy, or Cuckmq.layer with it in ` +
          `\`definitions\`) before enqueueing`
      })

    const insertOne = (client: PgClient.PgClient, definitionName: string, job: JobStore.NewJob) =>
      Effect.map(
        client.unsafe<Row>(job.jobGroup === undefined ? texts.oneUngrouped : texts.one, [
          definitionName,
          job.jobGroup ?? null,
          job.payloadJson,
          job.delaySecs,
          job.traceId ?? null,
          job.spanId ?? null,
          job.priority,
          job.timeLimitSecs ?? null
        ]),
        (rows): Inserted | undefined =>
          rows.length === 0 ? undefined : {
            ids: [String(rows[0]!.id)],
            channel: rows[0]!.channel as string,
            heldGroups: rows[0]!.held_group === null ? [] : [rows[0]!.held_group as string]
          }
      )

    const insertMany = (client: PgClient.PgClient, definitionName: string, jobs: ReadonlyArray<JobStore.NewJob>) =>
      Effect.suspend(() => {
        const payloads = `[${jobs.map((j) => j.payloadJson).join(",")}]`
        const priority = jobs[0]!.priority
        const plain = jobs.every((j) =>
          j.delaySecs === 0 && j.jobGroup === undefined && j.traceId === undefined && j.spanId === undefined &&
          j.priority === priority && j.timeLimitSecs === undefined
        )
        const insert = plain
          ? client.unsafe<Row>(texts.payloads, [definitionName, payloads, priority])
          : client.unsafe<Row>(texts.many, [
            definitionName,
            payloads,
            jobs.map((j) => String(j.delaySecs)),
            jobs.map((j) => j.jobGroup ?? ""),
            jobs.map((j) => j.traceId ?? ""),
            jobs.map((j) => j.spanId ?? ""),
            jobs.map((j) => j.priority),
            jobs.map((j) => j.timeLimitSecs === undefined ? "" : String(j.timeLimitSecs))
          ])
        return Effect.map(insert, (rows): Inserted | undefined => {
          // ids come from an identity column in insertion order, sorted (numerically) by the statement
          const ids = rows[0]?.ids as ReadonlyArray<string> | null | undefined
          return ids === null || ids === undefined || ids.length === 0
            ? undefined
            : {
              ids,
              channel: rows[0]!.channel as string,
              heldGroups: (rows[0]!.held_groups as ReadonlyArray<string> | null | undefined) ?? []
            }
        })
      })

    const insert = (definitionName: string, jobs: ReadonlyArray<JobStore.NewJob>, client = sql) =>
      jobs.length === 1 ? insertOne(client, definitionName, jobs[0]!) : insertMany(client, definitionName, jobs)

    /** After a commit: wake workers, then the caller's `onCommit`, then promote in groups that got held jobs. */
    const announce = (inserted: Inserted, onCommit: OnCommit) =>
      Effect.andThen(ctx.wake(inserted.channel), onCommit(inserted.ids, inserted.channel)).pipe(
        Effect.andThen(inserted.heldGroups.length === 0 ? Effect.void : ctx.promote(inserted.heldGroups))
      )

    /**
     * Runs `effect` in a fiber of the store and waits for its result: interrupting the caller only stops the
     * wait. `effect` is interrupted only when the store closes (its caller then fails with a StorageError
     * saying the job may or may not have been written).
     */
    const detached = <A>(effect: Effect.Effect<A, EnqueueError>): Effect.Effect<A, EnqueueError> =>
      Effect.flatMap(
        Effect.uninterruptible(Effect.suspend(() => {
          if (storeClosed) return Effect.fail(closedError("not"))
          const deferred = Deferred.makeUnsafe<A, EnqueueError>()
          const run = Effect.exit(effect).pipe(
            Effect.flatMap((exit) => Deferred.done(deferred, exit)),
            Effect.onInterrupt(() => Effect.sync(() => Deferred.doneUnsafe(deferred, Effect.fail(closedError("maybe")))))
          )
          return Effect.as(Effect.forkIn(run, ctx.scope), deferred)
        })),
        Deferred.await
      )

    /**
     * `insert`, then `then` on what it wrote: the statement's round trip can be interrupted (the store is
     * closing), but once its result is in, `then` runs uninterruptibly, so a committed job is always announced.
     */
    const afterInsert = <A, B>(
      statement: Effect.Effect<A, EnqueueError>,
      then: (a: A) => Effect.Effect<B, EnqueueError>
    ): Effect.Effect<B, EnqueueError> => Effect.uninterruptibleMask((restore) => Effect.flatMap(restore(statement), then))

    // ---- coalesced single enqueues --------------------------------------------------------------------
    interface PendingInsert {
      readonly job: JobStore.NewJob
      readonly onCommit: OnCommit
      readonly deferred: Deferred.Deferred<string, EnqueueError>
    }
    const waitingInserts = new Map<string, Array<PendingInsert>>()
    let insertsInFlight = 0
    let storeClosed = false

    const closedError = (written: "not" | "maybe") =>
      new StorageError({
        operation: "enqueue",
        message: written === "not"
          ? "enqueue failed: the cuckmq store is closed (its layer's scope was closed); the job was not written"
          : "enqueue failed: the cuckmq store closed while the job was being written; it may or may not have been enqueued",
        cause: undefined
      })

    /** Writes `items` (one definition); answers each caller. Never fails. */
    const writeItems = (definitionName: string, items: ReadonlyArray<PendingInsert>): Effect.Effect<void> =>
      Effect.flatMap(Effect.exit(insert(definitionName, items.map((i) => i.job))), (exit): Effect.Effect<void> => {
        if (exit._tag === "Success") {
          const inserted = exit.value
          if (inserted === undefined) {
            for (const item of items) Deferred.doneUnsafe(item.deferred, Effect.fail(notDeployed(definitionName)))
            return Effect.void
          }
          return Effect.andThen(
            ctx.wake(inserted.channel),
            Effect.forEach(items, (item, i) =>
              Effect.andThen(
                item.onCommit([inserted.ids[i]!], inserted.channel),
                Effect.sync(() => Deferred.doneUnsafe(item.deferred, Effect.succeed(inserted.ids[i]!)))
              ), { discard: true })
          ).pipe(Effect.andThen(inserted.heldGroups.length === 0 ? Effect.void : ctx.promote(inserted.heldGroups)))
        }
        const error = Cause.findErrorOption(exit.cause)
        if (items.length > 1 && Option.isSome(error) && isDataError(error.value)) {
          const half = Math.ceil(items.length / 2)
          return Effect.andThen(
            writeItems(definitionName, items.slice(0, half)),
            writeItems(definitionName, items.slice(half))
          )
        }
        const failure = Option.isSome(error)
          ? Effect.fail(toStorageError("enqueue")(error.value))
          : Effect.failCause(exit.cause as Cause.Cause<never>)
        for (const item of items) Deferred.doneUnsafe(item.deferred, failure)
        return Effect.void
      })

    /** Takes the next statement's worth of waiting jobs (one definition), or undefined when none wait. */
    const takeBatch = (): readonly [string, Array<PendingInsert>] | undefined => {
      const next = waitingInserts.entries().next()
      if (next.done === true) return undefined
      const [definitionName, pending] = next.value
      let chars = 0
      let count = 0
      while (count < pending.length && count < maxBatchJobs && (count === 0 || chars < maxBatchChars)) {
        chars += pending[count]!.job.payloadJson.length
        count++
      }
      const items = pending.splice(0, count)
      if (pending.length === 0) waitingInserts.delete(definitionName)
      return [definitionName, items]
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
        current = taken[1]
        return Effect.andThen(writeItems(taken[0], current), loop)
      })
      return Effect.ensuring(loop, Effect.sync(() => {
        // interrupted (the store is closing): the batch in flight may or may not have been written. After a
        // normal exit every caller of `current` is answered already, and the error is not even built (a
        // StorageError costs a stack trace: a few percent of an enqueue's CPU when each job is a batch)
        const unanswered = current.filter((item) => !Deferred.isDoneUnsafe(item.deferred))
        if (unanswered.length > 0) {
          const failure = Effect.fail(closedError("maybe"))
          for (const item of unanswered) Deferred.doneUnsafe(item.deferred, failure)
        }
        if (counted) insertsInFlight--
      }))
    })

    // the store's scope closes after its writer fibers are interrupted: answer whoever still waits
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        storeClosed = true
        const failure = Effect.fail(closedError("not"))
        for (const pending of waitingInserts.values()) {
          for (const item of pending) Deferred.doneUnsafe(item.deferred, failure)
        }
        waitingInserts.clear()
      })
    )

    const enqueueCoalesced = (definitionName: string, job: JobStore.NewJob, onCommit: OnCommit) =>
      Effect.uninterruptible(Effect.suspend(() => {
        if (storeClosed) return Effect.fail(closedError("not"))
        const deferred = Deferred.makeUnsafe<string, EnqueueError>()
        const item: PendingInsert = { job, onCommit, deferred }
        const pending = waitingInserts.get(definitionName)
        if (pending === undefined) waitingInserts.set(definitionName, [item])
        else pending.push(item)
        if (insertsInFlight >= maxInsertsInFlight) return Effect.succeed(deferred)
        insertsInFlight++
        return Effect.as(Effect.forkIn(Effect.provideContext(insertWriter, storeContext), ctx.scope), deferred)
      })).pipe(
        Effect.flatMap(Deferred.await),
        Effect.map((id) => [id])
      )

    // ---- the in-process fast path -----------------------------------------------------------------------
    /** Inserts `job` claimed for the reserved worker; exactly one of deliver/cancel is called. */
    const insertClaimed = (
      definitionName: string,
      job: JobStore.NewJob,
      onCommit: OnCommit,
      reservation: JobStore.LocalReservation
    ): Effect.Effect<ReadonlyArray<string>, EnqueueError> =>
      afterInsert(
        sql.unsafe<Row>(texts.claimed, [
          definitionName,
          job.payloadJson,
          reservation.workerId,
          job.traceId ?? null,
          job.spanId ?? null,
          [...reservation.channels],
          job.priority,
          job.timeLimitSecs ?? null
        ]).pipe(
          // failed or interrupted mid-statement: it may have committed, claimed, so the worker reconciles
          Effect.onExit((exit) => exit._tag === "Failure" ? Effect.sync(() => reservation.cancel(true)) : Effect.void),
          Effect.catchTag("SqlError", storageError("enqueue"))
        ),
        (rows) => {
          const row = rows[0]
          if (row === undefined) {
            reservation.cancel(false)
            return Effect.fail(notDeployed(definitionName))
          }
          const inserted: Inserted = { ids: [String(row.id)], channel: row.channel as string, heldGroups: [] }
          if (row.worker_id === null) {
            // not the worker's channel, or its lease lapsed: a plain waiting job
            reservation.cancel(false)
            return Effect.as(announce(inserted, onCommit), inserted.ids)
          }
          // committed and claimed: the local worker takes it now, nobody else needs waking
          reservation.deliver(toClaimedJob(row))
          return Effect.as(onCommit(inserted.ids, inserted.channel), inserted.ids)
        }
      )

    // ---- unique jobs (unique.ts) --------------------------------------------------------------------------
    /** How many times a key met waiting is resolved again after a claim won its job first. */
    const maxUniqueRounds = 3

    /** The statements of an enqueue with unique keys, on `client` inside a transaction (see unique.ts). */
    const writeUnique = (
      client: PgClient.PgClient,
      definitionName: string,
      rule: JobStore.UniqueRule,
      jobs: ReadonlyArray<JobStore.NewJob>,
      keys: ReadonlyArray<string>
    ) =>
      Effect.gen(function*() {
        // jobs of one call with the same key, folded in order as consecutive enqueues would be
        const candidates = Uniqueness.fold(rule, jobs, keys)
        const distinct = Array.from(candidates.keys())
        const taken = yield* client.unsafe<Row>(texts.uniqueTake, [definitionName, distinct, rule.periodSecs ?? null])
        if (taken.length === 0) return yield* Effect.fail(notDeployed(definitionName))
        const newIds = new Map(taken.map((r) => [r.key as string, r.new_id as string]))
        const settled = new Map<string, JobStore.UniqueOutcome>()
        const insertKeys: Array<string> = []
        let met: Array<string> = []
        for (const r of taken) (r.taken === true ? insertKeys : met).push(r.key as string)
        let changedChannel: string | undefined
        for (let round = 1; met.length > 0; round++) {
          const rows = yield* client.unsafe<Row>(texts.uniqueResolve, [
            definitionName,
            met,
            met.map((k) => newIds.get(k)!),
            [...rule.states],
            rule.periodSecs ?? null
          ])
          const change: Array<readonly [string, string]> = []
          for (const r of rows) {
            const key = r.key as string
            if (r.held !== true) insertKeys.push(key)
            else if (rule.onConflict !== "keep" && r.state === "waiting" && round <= maxUniqueRounds) {
              change.push([key, r.job_id as string])
            } else settled.set(key, { id: r.job_id as string, outcome: "kept" })
          }
          met = []
          if (change.length === 0) continue
          const changing = change.map(([key]) => candidates.get(key)!.job)
          const updated = yield* client.unsafe<Row>(texts.uniqueChange, [
            change.map(([, id]) => id),
            `[${changing.map((j) => j.payloadJson).join(",")}]`,
            changing.map((j) => j.delaySecs),
            changing.map((j) => j.priority),
            changing.map((j) => j.timeLimitSecs === undefined ? "" : String(j.timeLimitSecs)),
            rule.onConflict === "replace"
          ])
          const done = new Set(updated.map((r) => r.id as string))
          if (updated.length > 0) changedChannel = updated[0]!.channel as string
          for (const [key, id] of change) {
            if (done.has(id)) settled.set(key, { id, outcome: rule.onConflict === "replace" ? "replaced" : "debounced" })
            else met.push(key) // claimed (or gone) since: resolved again
          }
        }
        let inserted: Inserted | undefined
        if (insertKeys.length > 0) {
          const ins = insertKeys.map((key) => candidates.get(key)!.job)
          const rows = yield* client.unsafe<Row>(texts.uniqueInsert, [
            definitionName,
            `[${ins.map((j) => j.payloadJson).join(",")}]`,
            ins.map((j) => String(j.delaySecs)),
            ins.map((j) => j.jobGroup ?? ""),
            ins.map((j) => j.traceId ?? ""),
            ins.map((j) => j.spanId ?? ""),
            ins.map((j) => j.priority),
            ins.map((j) => j.timeLimitSecs === undefined ? "" : String(j.timeLimitSecs)),
            insertKeys.map((key) => newIds.get(key)!)
          ])
          const ids = rows[0]?.ids as ReadonlyArray<string> | null | undefined
          // undeployed since the keys were taken: nothing inserted, and the transaction must not commit
          if (ids === null || ids === undefined || ids.length === 0) return yield* Effect.fail(notDeployed(definitionName))
          inserted = {
            ids: insertKeys.map((key) => newIds.get(key)!),
            channel: rows[0]!.channel as string,
            heldGroups: (rows[0]!.held_groups as ReadonlyArray<string> | null | undefined) ?? []
          }
          for (const key of insertKeys) settled.set(key, { id: newIds.get(key)!, outcome: "inserted" })
        }
        const outcomes = Uniqueness.outcomes(rule, candidates, settled, jobs.length)
        const indices = insertKeys.map((key) => candidates.get(key)!.indices[0]!)
        return { outcomes, inserted, changedChannel, indices }
      })

    /** After the commit of a unique enqueue: announce what it inserted, wake workers for what it changed. */
    const announceUnique = (
      written: {
        readonly inserted: Inserted | undefined
        readonly changedChannel: string | undefined
        readonly indices: ReadonlyArray<number>
      },
      onCommit: UniqueOnCommit
    ) =>
      Effect.andThen(
        written.inserted === undefined
          ? Effect.void
          : announce(written.inserted, (ids, channel) => onCommit(ids, channel, written.indices)),
        written.changedChannel === undefined ? Effect.void : ctx.wake(written.changedChannel)
      )

    const enqueueUnique = (
      definitionName: string,
      rule: JobStore.UniqueRule,
      jobs: ReadonlyArray<JobStore.NewJob>,
      keys: ReadonlyArray<string>,
      onCommit: UniqueOnCommit
    ): Effect.Effect<ReadonlyArray<JobStore.UniqueOutcome>, EnqueueError> => {
      if (jobs.length === 0) return Effect.succeed([])
      return Effect.flatMap(Effect.serviceOption(app.transactionService), (tx) => {
        if (tx._tag === "Some") {
          return writeUnique(app, definitionName, rule, jobs, keys).pipe(
            Effect.catchTag("SqlError", storageError("enqueue")),
            Effect.flatMap((written) => Effect.as(app.afterCommit(announceUnique(written, onCommit)), written.outcomes))
          )
        }
        return detached(afterInsert(
          Effect.catchTag(sql.withTransaction(writeUnique(sql, definitionName, rule, jobs, keys)), "SqlError", storageError("enqueue")),
          (written) => Effect.as(announceUnique(written, onCommit), written.outcomes)
        ))
      })
    }

    const enqueue = (
      definitionName: string,
      jobs: ReadonlyArray<JobStore.NewJob>,
      onCommit: OnCommit,
      local?: JobStore.LocalClaim
    ): Effect.Effect<ReadonlyArray<string>, EnqueueError> => {
      if (jobs.length === 0) return Effect.succeed([])
      return Effect.flatMap(Effect.serviceOption(app.transactionService), (tx) => {
        if (tx._tag === "Some") {
          // in the caller's transaction: on its connection, announced after its commit
          return insert(definitionName, jobs, app).pipe(
            Effect.catchTag("SqlError", storageError("enqueue")),
            Effect.flatMap((inserted) =>
              inserted === undefined
                ? Effect.fail(notDeployed(definitionName))
                : Effect.as(app.afterCommit(announce(inserted, onCommit)), inserted.ids)
            )
          )
        }
        if (jobs.length > 1) {
          return detached(afterInsert(
            Effect.catchTag(insert(definitionName, jobs), "SqlError", storageError("enqueue")),
            (inserted) =>
              inserted === undefined
                ? Effect.fail(notDeployed(definitionName))
                : Effect.as(announce(inserted, onCommit), inserted.ids)
          ))
        }
        const job = jobs[0]!
        if (local !== undefined && job.delaySecs === 0 && job.jobGroup === undefined) {
          return Effect.suspend(() => {
            const reservation = storeClosed ? undefined : local.reserve(definitionName)
            return reservation === undefined
              ? enqueueCoalesced(definitionName, job, onCommit)
              : detached(insertClaimed(definitionName, job, onCommit, reservation))
          })
        }
        return enqueueCoalesced(definitionName, job, onCommit)
      })
    }

    return { enqueue, enqueueUnique }
  })
