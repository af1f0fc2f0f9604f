/**
 * The common interface of the benchmark's system adapters: each system under test (cuckmq and its peers)
 * is wrapped in an `Adapter` that enqueues jobs whose payload is `{ i }` and runs workers that report every
 * handler call to `onJob(i)`. The workloads (bench/workloads.ts) only ever talk to this interface.
 */

/** Where a system keeps its queue. */
export type Backend = "postgres" | "redis"

/** What a system needs to connect: one fresh PostgreSQL database, or a unique Redis key prefix. */
export interface SystemContext {
  /** The fresh database of this system and run (PostgreSQL systems only). */
  readonly databaseUrl: string
  /** Redis connection and the unique key prefix of this run (Redis systems only). */
  readonly redis: { readonly host: string; readonly port: number; readonly prefix: string }
  /** The PostgreSQL connection pool size every PostgreSQL system gets (20). */
  readonly poolSize: number
}

/** Called once per handler call, with the job's payload index. */
export type OnJob = (i: number) => void

/** Running workers: `stop` stops them gracefully. */
export interface Workers {
  readonly stop: () => Promise<void>
}

export interface Adapter {
  /** Enqueues one job `{ i }` with one call of the system's single-job API. */
  readonly enqueue: (i: number) => Promise<void>
  /** Enqueues the jobs with one call of the system's bulk API; `undefined` when the system has none. */
  readonly enqueueBulk: ((is: ReadonlyArray<number>) => Promise<void>) | undefined
  /** Starts workers in this process, `concurrency` jobs at a time, calling `onJob(i)` as each handler starts. */
  readonly startWorkers: (concurrency: number, onJob: OnJob) => Promise<Workers>
  /** Removes every job (waiting, running or finished) so the next workload starts from an empty queue. */
  readonly purge: () => Promise<void>
  /** Releases connections. */
  readonly close: () => Promise<void>
}

export interface SystemDefinition {
  /** The name used on the command line (`--only=`) and in file names. */
  readonly name: string
  /** The column heading. */
  readonly label: string
  readonly backend: Backend
  /** The exact settings used, as markdown bullet text (one string per line). */
  readonly settings: (ctx: { readonly poolSize: number }) => ReadonlyArray<string>
  /** The package and its installed version, e.g. `graphile-worker 0.18.0`. */
  readonly packageVersion: () => string
  /** Connects (and migrates); called once per process. */
  readonly make: (ctx: SystemContext) => Promise<Adapter>
}
