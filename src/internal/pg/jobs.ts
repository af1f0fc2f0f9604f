/** Reading one job on PostgreSQL, live or finalized. */
import { Effect, Option } from "effect"
import type { PgClient } from "@effect/sql-pg"
import type * as JobStore from "../../JobStore.js"
import { type Names, optionalDate, optionalString, type Row, storageError } from "./sql.js"

export const getJobSql = (n: Names) => `
SELECT id, name, channel, job_group, payload,
  CASE WHEN worker_id IS NULL THEN 'waiting' ELSE 'running' END AS state,
  attempts, max_attempts, claims, crashes, held, run_at, last_error, worker_id, created_at,
  NULL::timestamptz AS finalized_at, scheduled_for, priority, snoozes, NULL::jsonb AS result, cancel_requested
FROM ${n.job} WHERE id = $1::bigint
UNION ALL
SELECT id, name, channel, job_group, payload,
  CASE WHEN succeeded THEN 'succeeded' WHEN cancelled THEN 'cancelled' ELSE 'failed' END,
  attempts, max_attempts, claims, crashes, false, NULL, last_error, NULL, created_at, finalized_at, scheduled_for, NULL,
  snoozes, result, NULL
FROM ${n.finalized} WHERE id = $1::bigint`

export const toJobInfo = (r: Row): JobStore.JobInfo => ({
  id: String(r.id),
  name: r.name as string,
  channel: r.channel as string,
  jobGroup: optionalString(r.job_group),
  payload: r.payload,
  state: r.state as JobStore.JobInfo["state"],
  attempts: Number(r.attempts),
  maxAttempts: Number(r.max_attempts),
  claims: Number(r.claims),
  crashes: Number(r.crashes),
  snoozes: Number(r.snoozes ?? 0),
  held: r.held === true,
  priority: r.priority === null || r.priority === undefined ? undefined : Number(r.priority),
  runAt: optionalDate(r.run_at),
  lastError: r.last_error ?? undefined,
  workerId: optionalString(r.worker_id),
  createdAt: r.created_at as Date,
  finalizedAt: optionalDate(r.finalized_at),
  scheduledFor: optionalDate(r.scheduled_for),
  result: r.result ?? undefined,
  cancelRequested: r.cancel_requested === null || r.cancel_requested === undefined ? undefined : r.cancel_requested === true
})

export const getJob = (sql: PgClient.PgClient, n: Names) => {
  const text = getJobSql(n)
  return (id: string) =>
    (/^\d{1,19}$/.test(id) ? sql.unsafe<Row>(text, [id]) : Effect.succeed([] as ReadonlyArray<Row>)).pipe(
      Effect.map((rows) => Option.map(Option.fromNullishOr(rows[0]), toJobInfo)),
      Effect.catchTag("SqlError", storageError("get job"))
    )
}
