/**
 * Cancellation and awaited jobs on PostgreSQL.
 *
 * A cancellation runs in one transaction of two statements: the first locks the selected live jobs (in id
 * order, as `settle_v4` locks a batch that sends jobs back), the second, whose snapshot is taken once those
 * locks are held (READ COMMITTED), sees each row's latest state and acts on it: a waiting job is moved to
 * `job_finalized` as cancelled (a claim skips locked rows, so it cannot take one meanwhile), a claimed one gets
 * `cancel_requested` and a NOTIFY `c:<id>` on the notice channel, delivered at commit to every process, whose
 * worker holding it interrupts its handler (workers also poll `cancelRequests`, beside each heartbeat). Then
 * the groups of cancelled unheld jobs get a promotion (`free_slots_v3` with a count of 0): a group's
 * claimable head was cancelled, so its held jobs may now be claimable.
 *
 * `awaited`: a waiter marks the live job, so that its settlement sends `f:<id>` (no other job's settlement
 * sends a NOTIFY, which would serialise commits). Marking takes the row lock: a settlement that finalizes the
 * job concurrently either sees the mark (and notifies) or finished first, and then the waiter's next read finds
 * the finalized row.
 */
import { Effect } from "effect"
import type { PgClient } from "@effect/sql-pg"
import type * as JobStore from "../../JobStore.js"
import { cancelledErrorSql, finalizedNotifySql, literal } from "./settle.js"
import { type Names, noticeChannel, type Row, storageError } from "./sql.js"

/** A decimal job id PostgreSQL's bigint takes. */
const isId = (id: string) => /^\d{1,19}$/.test(id) && BigInt(id) <= 9223372036854775807n

/** Finalizes as cancelled the waiting jobs of $1 and marks the claimed ones; $2 keep finalized jobs. */
const actSql = (n: Names, channel: string) => `
WITH picked AS (SELECT unnest($1::bigint[]) AS id),
fin AS (
  DELETE FROM ${n.job} j USING picked p
  WHERE j.id = p.id AND j.worker_id IS NULL
  RETURNING j.*
),
fin_ins AS (
  INSERT INTO ${n.finalized} (id, name, channel, job_group, payload, attempts, max_attempts, claims, crashes, succeeded,
    last_error, scheduled_for, created_at, snoozes, cancelled)
  SELECT id, name, channel, job_group, payload, attempts, max_attempts, claims, crashes, false, ${cancelledErrorSql},
    scheduled_for, created_at, snoozes, true
  FROM fin WHERE $2::boolean
  RETURNING 1
),
req AS (
  UPDATE ${n.job} j SET cancel_requested = true
  FROM picked p
  WHERE j.id = p.id AND j.worker_id IS NOT NULL
  RETURNING j.id, j.name, j.worker_id
),
noticed AS (SELECT pg_notify(${literal(channel)}, 'c:' || req.id::text) FROM req),
finished AS (SELECT ${finalizedNotifySql(channel, "fin.id")} FROM fin WHERE fin.awaited)
SELECT x.*, (SELECT count(*) FROM noticed) + (SELECT count(*) FROM finished) AS notices FROM (
  SELECT 'cancelled' AS kind, id, name, NULL::uuid AS worker_id, CASE WHEN NOT held THEN job_group END AS promote
  FROM fin
  UNION ALL
  SELECT 'cancelling', id, name, worker_id, NULL FROM req
) x ORDER BY x.id`

export const make = (sql: PgClient.PgClient, n: Names, schema: string, keepFinalized: boolean) => {
  const channel = noticeChannel(schema)
  const act = actSql(n, channel)
  const promote = `SELECT ${n.fn("free_slots_v3")}($1::text[], $2::int[]) AS promoted`
  const markSql = `UPDATE ${n.job} SET awaited = true WHERE id = $1::bigint AND NOT awaited`
  const requestsSql = `SELECT id FROM ${n.job} WHERE worker_id = $1::uuid AND cancel_requested`
  // jobs a stale settlement, a rescue or a release sent back to the queue after their cancellation was requested
  const strayLockSql =
    `SELECT id FROM ${n.job} WHERE cancel_requested AND worker_id IS NULL ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED`

  /** The locking statement of a filter: only the conditions given, so that each shape gets its own plan. */
  const lockOf = (filter: JobStore.CancelFilter): readonly [string, ReadonlyArray<unknown>] => {
    const where: Array<string> = []
    const params: Array<unknown> = []
    if (filter.ids !== undefined) {
      params.push(filter.ids.filter(isId))
      where.push(`id = ANY($${params.length}::bigint[])`)
    }
    if (filter.definition !== undefined) {
      params.push(filter.definition)
      where.push(`name = $${params.length}`)
    }
    if (filter.jobGroup !== undefined) {
      params.push(filter.jobGroup)
      where.push(`job_group = $${params.length}`)
    }
    return [`SELECT id FROM ${n.job} WHERE ${where.join(" AND ")} ORDER BY id FOR UPDATE`, params]
  }

  /** The second statement and the promotion, on the ids the first one locked (inside its transaction). */
  const actOn = (ids: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      if (ids.length === 0) return { cancelled: [], cancelling: [], promoted: 0 }
      const rows = yield* sql.unsafe<Row>(act, [ids, keepFinalized])
      const cancelled: Array<{ id: string; name: string }> = []
      const cancelling: Array<{ id: string; name: string; workerId: string }> = []
      const groups = new Set<string>()
      for (const r of rows) {
        if (r.kind === "cancelled") {
          cancelled.push({ id: String(r.id), name: r.name as string })
          if (typeof r.promote === "string") groups.add(r.promote)
        } else cancelling.push({ id: String(r.id), name: r.name as string, workerId: String(r.worker_id) })
      }
      let promoted = 0
      if (groups.size > 0) {
        const names = Array.from(groups).sort()
        const [row] = yield* sql.unsafe<Row>(promote, [names, names.map(() => 0)])
        promoted = Number(row?.promoted ?? 0)
      }
      return { cancelled, cancelling, promoted }
    })

  const cancel = (filter: JobStore.CancelFilter) =>
    Effect.gen(function*() {
      const [lock, params] = lockOf(filter)
      const locked = yield* sql.unsafe<Row>(lock, params)
      return yield* actOn(locked.map((r) => String(r.id)))
    }).pipe(sql.withTransaction, Effect.catchTag("SqlError", storageError("cancel jobs")))

  /** Finalizes as cancelled the waiting jobs whose cancellation was requested while they were claimed. */
  const cancelStrays = Effect.gen(function*() {
    const locked = yield* sql.unsafe<Row>(strayLockSql, [])
    return yield* actOn(locked.map((r) => String(r.id)))
  }).pipe(sql.withTransaction, Effect.catchTag("SqlError", storageError("cancel jobs")))

  const markAwaited = (id: string) =>
    (isId(id) ? Effect.asVoid(sql.unsafe(markSql, [id])) : Effect.void).pipe(
      Effect.catchTag("SqlError", storageError("await job"))
    )

  const cancelRequests = (workerId: string) =>
    sql.unsafe<Row>(requestsSql, [workerId]).pipe(
      Effect.map((rows) => rows.map((r) => String(r.id))),
      Effect.catchTag("SqlError", storageError("read cancellation requests"))
    )

  return { cancel, cancelStrays, markAwaited, cancelRequests }
}
