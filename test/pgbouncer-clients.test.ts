/**
 * The APIs around the core through a real PgBouncer in transaction mode (test/support/pgbouncer.ts): the
 * Promise API (`new Context({ pool, transactionPooler, directUrl })`: a producer and a worker in separate
 * contexts, in both modes). Skipped with a message when pgbouncer is missing.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Pool } from "pg"
import { Context, InvalidOptions, JobDefinition, Worker } from "../src/promise.js"
import { databaseUrl, uniqueSchema } from "./support/pg.js"
import { type PgBouncer, pgbouncerAvailable, startPgBouncer } from "./support/pgbouncer.js"

const sessionName = (schema: string) => `cuckmq session ${schema}`.slice(0, 63)

describe.skipIf(!pgbouncerAvailable())("through PgBouncer (pool_mode = transaction): the APIs around the core", () => {
  let bouncer: PgBouncer
  let direct: Pool
  beforeAll(async () => {
    bouncer = await startPgBouncer(databaseUrl())
    direct = new Pool({ connectionString: databaseUrl(), max: 2 })
  })
  afterAll(async () => {
    await direct?.end()
    await bouncer?.stop()
  })

  /** A fresh schema (dropped afterwards) and a `pg` pool whose settings point at the pooler. */
  const promiseSetup = async (prefix: string, run: (pool: Pool, schema: string) => Promise<void>) => {
    const schema = uniqueSchema(prefix)
    const pool = new Pool({ connectionString: bouncer.url, max: 4 })
    try {
      await run(pool, schema)
    } finally {
      await pool.end()
      await direct.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    }
  }

  for (const mode of ["direct-session", "poll-only"] as const) {
    it(`Promise API, ${mode}: context.migrate(), a producer's enqueue, another context's worker, awaitResult`, () =>
      promiseSetup(`pgb_promise_${mode}`, async (pool, schema) => {
        const options = {
          pool,
          schema,
          transactionPooler: true,
          ...(mode === "direct-session" ? { directUrl: databaseUrl() } : {})
        }
        const producer = new Context(options)
        const consumer = new Context(options)
        try {
          assert.isAbove((await producer.migrate()).length, 0) // the migrations, through the pooler
          const ran: Array<number> = []
          const make = (context: Context) =>
            new JobDefinition({ name: "pgb-double", context, workFunction: (p: { n: number }) => void ran.push(p.n * 2) })
          const produced = make(producer)
          make(consumer)
          await produced.deploy()
          const worker = new Worker({ context: consumer, pollIntervalSecs: 0.2 })
          await worker.ready
          const ids = await Promise.all([1, 2, 3].map((n) => produced.enqueue({ n })))
          for (const id of ids) await produced.awaitResult(id, { timeout: "30 seconds" })
          assert.sameMembers(ran, [2, 4, 6])
          // the session connection: direct with directUrl, none poll-only
          const sessions = await direct.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1",
            [sessionName(schema)]
          )
          if (mode === "poll-only") assert.strictEqual(sessions.rows[0]!.n, 0)
          else assert.isAbove(sessions.rows[0]!.n, 0)
          await worker.stop()
          const done = await direct.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".job_finalized WHERE succeeded`)
          assert.strictEqual(done.rows[0]!.n, 3)
        } finally {
          await producer.close()
          await consumer.close()
        }
      }))
  }

  it("Promise API: a bad directUrl or transactionPooler is refused with InvalidOptions; without transactionPooler the pooler refuses the store", () =>
    promiseSetup("pgb_promise_refused", async (pool, schema) => {
      assert.throws(() => new Context({ pool, schema, transactionPooler: true, directUrl: "not a url" }), InvalidOptions, "directUrl")
      assert.throws(() => new Context({ pool, schema, transactionPooler: true, directUrl: "http://db:5432/app" }), InvalidOptions, "directUrl")
      assert.throws(
        () => new Context({ pool, schema, transactionPooler: "yes" as unknown as boolean }),
        InvalidOptions,
        "transactionPooler must be a boolean"
      )
      // what transactionPooler is for: the store's startup parameters are refused by PgBouncer
      const plain = new Context({ pool, schema })
      try {
        await plain.migrate()
        const job = new JobDefinition({ name: "pgb-plain", context: plain, workFunction: () => undefined })
        const error = await job.deploy().then(() => undefined, (e: unknown) => e)
        assert.include(String(error), "unsupported startup parameter", "a plain context through PgBouncer cannot start its store")
      } finally {
        await plain.close()
      }
    }))
})
