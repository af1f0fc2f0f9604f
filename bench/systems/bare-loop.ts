/**
 * The bare loop: a reference, not a product. The least a Node client on `pg` must do to run a PostgreSQL
 * queue: one table, named prepared statements, claims of 100 with `FOR UPDATE SKIP LOCKED` into a local
 * buffer (the next claim goes out when the buffer runs low), `concurrency` async runners taking from the
 * buffer, and one `DELETE ... WHERE id = ANY(...)` per batch of completed jobs (one in flight). Bulk insert is
 * one `jsonb_array_elements` statement. No retries, no leases, no crash recovery, no wake-ups (it polls every
 * 10 ms when the queue is empty): so every other system's ratio to it is what its semantics and its client
 * cost, on this machine.
 */
import pg from "pg"
import type { Adapter, SystemDefinition } from "./types.js"
import { indexOf, installedVersion } from "./util.js"

const CLAIM = 100
const POLL_MS = 10

const statements = {
  insert: { name: "bare-insert", text: "INSERT INTO bare_job (payload) VALUES ($1::jsonb)" },
  bulk: {
    name: "bare-bulk",
    text: "INSERT INTO bare_job (payload) SELECT value FROM jsonb_array_elements($1::jsonb)"
  },
  claim: {
    name: "bare-claim",
    text: `WITH c AS (
      SELECT id FROM bare_job WHERE NOT claimed ORDER BY id LIMIT ${CLAIM} FOR UPDATE SKIP LOCKED
    )
    UPDATE bare_job j SET claimed = true FROM c WHERE j.id = c.id RETURNING j.id, j.payload`
  },
  complete: { name: "bare-complete", text: "DELETE FROM bare_job WHERE id = ANY($1::bigint[])" }
} as const

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export const system: SystemDefinition = {
  name: "bare-loop",
  label: "bare loop (pg)",
  backend: "postgres",
  packageVersion: () => `pg ${installedVersion("pg")}`,
  settings: ({ poolSize }) => [
    `\`pg.Pool({ max: ${poolSize} })\`; table \`bare_job (id bigserial PRIMARY KEY, payload jsonb, claimed boolean)\` with a partial index \`(id) WHERE NOT claimed\``,
    `claims of ${CLAIM} (\`FOR UPDATE SKIP LOCKED\`, named prepared statement) into a local buffer, one claim in flight, the next one sent when the buffer holds fewer than ${CLAIM} jobs; polls every ${POLL_MS} ms when a claim comes back empty`,
    "`concurrency` async runners take jobs from the buffer; completed jobs are deleted in batches (`DELETE ... WHERE id = ANY($1)`, one in flight)",
    "single: one `INSERT` per call; bulk: one `INSERT ... SELECT FROM jsonb_array_elements($1)`; no retries, leases, crash recovery or wake-ups (a reference for the client's physical limit, not a queue to use)"
  ],
  make: async (ctx) => {
    const pool = new pg.Pool({ connectionString: ctx.databaseUrl, max: ctx.poolSize })
    await pool.query(`CREATE TABLE IF NOT EXISTS bare_job (
      id bigserial PRIMARY KEY, payload jsonb NOT NULL, claimed boolean NOT NULL DEFAULT false)`)
    await pool.query("CREATE INDEX IF NOT EXISTS bare_job_ready ON bare_job (id) WHERE NOT claimed")
    const adapter: Adapter = {
      enqueue: async (i) => {
        await pool.query({ ...statements.insert, values: [JSON.stringify({ i })] })
      },
      enqueueBulk: async (is) => {
        await pool.query({ ...statements.bulk, values: [JSON.stringify(is.map((i) => ({ i })))] })
      },
      startWorkers: async (concurrency, onJob) => {
        let stopping = false
        const buffer: Array<{ id: string; payload: unknown }> = []
        const waiting: Array<() => void> = [] // runners waiting for a job
        const done: Array<string> = []
        let claiming: Promise<void> | undefined
        let completing: Promise<void> | undefined

        const complete = (): void => {
          if (completing !== undefined || done.length === 0) return
          const ids = done.splice(0, done.length)
          completing = pool.query({ ...statements.complete, values: [ids] }).then(() => {
            completing = undefined
            complete()
          })
        }
        const claim = (): void => {
          if (claiming !== undefined || stopping || buffer.length >= CLAIM) return
          claiming = (async () => {
            const { rows } = await pool.query<{ id: string; payload: unknown }>(statements.claim)
            buffer.push(...rows)
            while (waiting.length > 0 && buffer.length > 0) waiting.shift()!()
            if (rows.length === 0) await sleep(POLL_MS)
          })().finally(() => {
            claiming = undefined
            claim()
          })
        }
        const next = async (): Promise<{ id: string; payload: unknown } | undefined> => {
          while (!stopping) {
            const job = buffer.shift()
            if (job !== undefined) {
              if (buffer.length < CLAIM) claim()
              return job
            }
            claim()
            await new Promise<void>((resolve) => waiting.push(resolve))
          }
          return undefined
        }
        const runner = async () => {
          for (let job = await next(); job !== undefined; job = await next()) {
            onJob(indexOf(job.payload))
            done.push(job.id)
            complete()
          }
        }
        const runners = Array.from({ length: concurrency }, runner)
        claim()
        return {
          stop: async () => {
            stopping = true
            for (const wake of waiting.splice(0)) wake()
            await Promise.all(runners)
            await claiming
            while (completing !== undefined) await completing
            complete()
            await completing
          }
        }
      },
      groups: { unsupported: "a reference loop: no job groups" },
      rateLimited: { unsupported: "a reference loop: no rate limit" },
      purge: async () => {
        await pool.query("TRUNCATE bare_job")
      },
      close: () => pool.end()
    }
    return adapter
  }
}
