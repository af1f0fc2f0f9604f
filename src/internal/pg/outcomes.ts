/**
 * The outcome counters' writes on PostgreSQL (`JobStore.recordOutcomes`): each process adds its deltas to
 * rows of its own in `stats_minute` (primary key process, definition, minute: no row is shared by two
 * processes, so flushes never wait for each other), and deletes the rows past the retention, anyone's. The
 * admin's refresh sums the last hour's rows (src/internal/pg/admin.ts).
 */
import { Effect } from "effect"
import type { PgClient } from "@effect/sql-pg"
import type { StorageError } from "../../CuckmqError.js"
import type * as JobStore from "../../JobStore.js"
import { type Names, storageError } from "./sql.js"

export const recordOutcomes = (sql: PgClient.PgClient, n: Names) => {
  const stats = n.fn("stats_minute")
  // one statement for every delta of a flush ($2..$9: one array per column, one entry per definition and
  // minute; the counters merge them first, so no two entries share a row: ON CONFLICT touches each once)
  const flushSql = `
INSERT INTO ${stats} AS s (process_id, definition, minute, channel, succeeded, failed, errored, run_ms, attempts)
SELECT $1::uuid, x.d, x.m, x.c, x.s, x.f, x.e, x.r, x.a
FROM unnest($2::text[], $3::timestamptz[], $4::text[], $5::int[], $6::int[], $7::int[], $8::float8[], $9::int[])
  AS x(d, m, c, s, f, e, r, a)
ON CONFLICT (process_id, definition, minute) DO UPDATE SET
  succeeded = s.succeeded + excluded.succeeded, failed = s.failed + excluded.failed,
  errored = s.errored + excluded.errored, run_ms = s.run_ms + excluded.run_ms, attempts = s.attempts + excluded.attempts`
  // the minute index: a range scan of the rows past the retention (none, most of the time)
  const retainSql = `DELETE FROM ${stats} WHERE minute < now() - make_interval(secs => $1::float8)`
  const run = (text: string, params: ReadonlyArray<unknown>) =>
    sql.unsafe(text, params as Array<unknown>).pipe(Effect.asVoid, Effect.catchTag("SqlError", storageError("record outcomes")))

  return (
    processId: string,
    counts: ReadonlyArray<JobStore.OutcomeCounts>,
    retainSecs: number
  ): Effect.Effect<void, StorageError> =>
    Effect.gen(function*() {
      if (counts.length > 0) {
        yield* run(flushSql, [
          processId,
          counts.map((d) => d.definition),
          counts.map((d) => d.minute.toISOString()),
          counts.map((d) => d.channel),
          counts.map((d) => d.succeeded),
          counts.map((d) => d.failed),
          counts.map((d) => d.errored),
          counts.map((d) => d.runMs),
          counts.map((d) => d.attempts)
        ])
      }
      yield* run(retainSql, [retainSecs])
    })
}
