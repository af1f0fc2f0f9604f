/**
 * Fault injection for tests: a JobStore wrapper that makes chosen calls fail the way a database connection
 * fails, seeded so a failing run can be replayed.
 *
 * - `lost`: the call runs (and commits), then fails with a StorageError: its response was lost with the
 *   connection. The worker cannot tell this from `refused`, which is the point.
 * - `refused`: the call fails without running.
 * - `delayMs`: the call waits this long (random up to it) before running.
 *
 * Also: contexts on either backend built on such a store (`faultyContext`), for tests that run the real
 * Worker and Orchestrator over it.
 */
import { Context, Effect, Layer, type Scope } from "effect"
import { SqlClient } from "effect/sql"
import type { PgClient } from "@effect/sql-pg"
import { StorageError } from "../../src/CuckmqError.js"
import * as MemoryStore from "../../src/internal/memory/store.js"
import * as PgStore from "../../src/internal/pg/store.js"
import { Cuckmq, type JobDefinition, Migrations } from "../../src/index.js"
import { JobStore } from "../../src/JobStore.js"

/** A small seeded PRNG (mulberry32): the same seed, the same faults. */
export const random = (seed: number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** What to do to one method's calls: probabilities in [0, 1]. */
export interface Fault {
  readonly lost?: number
  readonly refused?: number
  readonly delayMs?: number
}

export type Faults = Partial<Record<keyof JobStore["Service"], Fault>>

/** Counts of injected faults, per method, for the test's report. */
export type Injected = Record<string, { lost: number; refused: number }>

const failure = (method: string, kind: string) =>
  new StorageError({ operation: method, message: `${method} failed: injected fault (${kind})`, cause: undefined })

/** Wraps `store` so that its calls fail as `faults` says, drawing from `rand`. `enabled()` turns faults on and off. */
export const faulty = (
  store: JobStore["Service"],
  faults: Faults,
  rand: () => number,
  enabled: () => boolean = () => true
): { readonly store: JobStore["Service"]; readonly injected: Injected } => {
  const injected: Injected = {}
  const wrapped: Record<string, unknown> = { ...store }
  for (const [method, fault] of Object.entries(faults) as Array<[string, Fault]>) {
    const original = (store as unknown as Record<string, (...args: Array<unknown>) => Effect.Effect<unknown, unknown>>)[method]!
    injected[method] = { lost: 0, refused: 0 }
    wrapped[method] = (...args: Array<unknown>) =>
      Effect.suspend(() => {
        const on = enabled()
        const delay = on && fault.delayMs !== undefined ? Math.floor(rand() * fault.delayMs) : 0
        const roll = on ? rand() : 1
        const run = delay > 0 ? Effect.andThen(Effect.sleep(delay), original(...args)) : original(...args)
        if (roll < (fault.refused ?? 0)) {
          injected[method]!.refused++
          return Effect.fail(failure(method, "refused"))
        }
        if (roll < (fault.refused ?? 0) + (fault.lost ?? 0)) {
          return Effect.flatMap(run, () => {
            injected[method]!.lost++
            return Effect.fail(failure(method, "response lost"))
          })
        }
        return run
      })
  }
  return { store: wrapped as unknown as JobStore["Service"], injected }
}

/** Which backend a context runs on. */
export type Backend = "postgres" | "memory"

/**
 * A context on `backend` whose store is wrapped by `wrap` (PostgreSQL: `schema`, migrated; the caller drops
 * it). Returns the Cuckmq service.
 */
export const contextOn = (
  backend: Backend,
  options: Omit<Cuckmq.Options<ReadonlyArray<JobDefinition.JobDefinition<any, any, never>>>, "migrate" | "schema"> & {
    readonly schema: string
  },
  wrap: (store: JobStore["Service"]) => JobStore["Service"] = (store) => store
): Effect.Effect<Cuckmq.Cuckmq["Service"], Cuckmq.LayerError, Scope.Scope | PgClient.PgClient | SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const keepFinalized = (options.jobPostFinalizeDeleteSecs ?? 1) > 0
    let store: JobStore["Service"]
    if (backend === "postgres") {
      yield* Migrations.migrate(options.schema)
      store = yield* PgStore.make({ schema: options.schema, keepFinalized })
    } else {
      store = yield* MemoryStore.make({ keepFinalized })
    }
    const context = yield* Layer.build(
      Cuckmq.layerStore(options).pipe(Layer.provide(Layer.succeed(JobStore, wrap(store))))
    )
    return Context.get(context, Cuckmq.Cuckmq)
  })
