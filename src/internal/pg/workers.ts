/**
 * Worker rows on PostgreSQL: registration (with the process's liveness session key), the heartbeat lease,
 * and giving back what a worker holds (`release_v2`): on deregistration, and for claims whose result never
 * reached the worker (`releaseUnowned`).
 */
import { Effect } from "effect"
import type { PgClient } from "@effect/sql-pg"
import type * as JobStore from "../../JobStore.js"
import { type Names, type Row, storageError } from "./sql.js"

/**
 * `release_v2(worker, keep, delete_worker)`: gives back every job `worker` holds except the ids in `keep`
 * (waiting again in their place; a recorded start stays spent), frees their group slots, and deletes the
 * worker's row when asked. Returns how many jobs went back.
 * Part of migration 2: a change is a new migration and a new function name.
 */
export const releaseFunction = (n: Names) => `
CREATE OR REPLACE FUNCTION ${n.fn("release_v2")}(p_worker uuid, p_keep bigint[], p_delete_worker boolean)
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
  v_released integer;
  v_groups text[];
  v_counts integer[];
BEGIN
  WITH old AS (
    SELECT j.id, j.group_slot, j.job_group FROM ${n.job} j
    WHERE j.worker_id = p_worker AND j.id <> ALL(p_keep)
    FOR UPDATE
  ),
  back AS (
    UPDATE ${n.job} j SET worker_id = NULL, claimed_at = NULL, group_slot = false, started = false
    FROM old WHERE j.id = old.id
    RETURNING old.group_slot, old.job_group
  ),
  freed AS (
    SELECT job_group, count(*)::int AS n FROM back WHERE group_slot GROUP BY job_group
  )
  SELECT (SELECT count(*)::int FROM back), (SELECT array_agg(job_group ORDER BY job_group) FROM freed),
    (SELECT array_agg(n ORDER BY job_group) FROM freed)
  INTO v_released, v_groups, v_counts;
  IF v_groups IS NOT NULL THEN
    PERFORM ${n.fn("free_slots_v2")}(v_groups, v_counts);
  END IF;
  IF p_delete_worker THEN
    DELETE FROM ${n.worker} WHERE id = p_worker;
  END IF;
  RETURN v_released;
END
$fn$`

/** A worker's heartbeat: $1 worker id, $2 lease (seconds); no row when its lease had already expired. */
export const heartbeatSqlOf = (n: Names) => `
UPDATE ${n.worker} SET heartbeat_at = now(), expires_at = now() + make_interval(secs => $2::float8)
WHERE id = $1::uuid AND expires_at > now()
RETURNING id`

export const make = (sql: PgClient.PgClient, n: Names) => {
  const registerSql = `
INSERT INTO ${n.worker} (id, name, hostname, pid, channels, session_key, expires_at, concurrency)
VALUES ($1::uuid, $2, $3, $4, $5::text[], $6::int, now() + make_interval(secs => $7::float8), $8::int)`
  const heartbeatSql = heartbeatSqlOf(n)
  const releaseSql = `SELECT ${n.fn("release_v2")}($1::uuid, $2::bigint[], $3::boolean) AS released`
  // keeps a job only under the claim the worker owns ($2 ids, $3 claim tokens): a job it owned under an
  // earlier claim (a settlement not yet confirmed) that a lost claim took again is not its to keep. The
  // tokens are compared in the argument, so release_v2 (migration 2) stays as it is: a job whose claim
  // changes between the two is one that left this worker (a settlement or a rescue), and release_v2 only
  // touches the rows it still holds.
  const releaseUnownedSql = `SELECT ${n.fn("release_v2")}($1::uuid, ARRAY(
  SELECT j.id FROM ${n.job} j JOIN unnest($2::bigint[], $3::int[]) AS o(id, claim) ON j.id = o.id AND j.claims = o.claim
  WHERE j.worker_id = $1::uuid), false) AS released`

  const registerWorker = (w: JobStore.WorkerRegistration) =>
    sql.unsafe(registerSql, [
      w.id,
      w.name,
      w.hostname,
      w.pid,
      [...w.channels],
      w.sessionKey ?? null,
      w.leaseSecs,
      w.concurrency ?? null
    ]).pipe(
      Effect.asVoid,
      Effect.catchTag("SqlError", storageError("register worker"))
    )

  const heartbeat = (workerId: string, leaseSecs: number) =>
    sql.unsafe(heartbeatSql, [workerId, leaseSecs]).pipe(
      Effect.map((rows) => rows.length > 0),
      Effect.catchTag("SqlError", storageError("heartbeat"))
    )

  /** Runs a statement of release_v2 and resolves to how many jobs went back. */
  const release = (operation: string, statement: string, params: ReadonlyArray<unknown>) =>
    sql.unsafe<Row>(statement, params).pipe(
      Effect.map((rows) => Number(rows[0]?.released ?? 0)),
      Effect.catchTag("SqlError", storageError(operation))
    )

  return {
    registerWorker,
    heartbeat,
    /** Resolves to how many jobs went back (the caller wakes workers when > 0). */
    deregisterWorker: (workerId: string) => release("deregister worker", releaseSql, [workerId, [], true]),
    releaseUnowned: (workerId: string, owned: ReadonlyArray<JobStore.OwnedClaim>) =>
      release("release unowned jobs", releaseUnownedSql, [workerId, owned.map((o) => BigInt(o.id)), owned.map((o) => o.claim)])
  }
}
