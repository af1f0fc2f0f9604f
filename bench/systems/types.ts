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
  /**
   * Set for the soak workloads (bench/soak.ts): the retention of finalized jobs, in seconds, for the systems
   * that keep them (cuckmq also runs its orchestrator, whose cleanup deletes them; pg-boss deletes them in
   * its maintenance). Unset: each system's defaults.
   */
  readonly retentionSecs?: number | undefined
}

/** Called once per handler call, with the job's payload index. */
export type OnJob = (i: number) => void

/**
 * The handler of the flow-control workloads: it is called as the job starts and resolves when the job's
 * work is done. It takes a little time (a short sleep), so that jobs of one group that run at once overlap
 * and are counted.
 */
export type FlowHandler = (i: number) => Promise<void>

/** A job of the flow-control workloads: the payload `{ i }`, in a group or in none. */
export interface FlowJob {
  readonly i: number
  /** The job's group (cuckmq `jobGroup`, pg-boss `group.id`, graphile-worker `queueName`); undefined: none. */
  readonly group: string | undefined
}

/** A flow-control feature the system does not have: the workload reports n/a with this reason. */
export interface Unsupported {
  readonly unsupported: string
}

/** Job groups with a concurrency limit per group, enforced by the system across all its workers. */
export interface Groups {
  /**
   * The per-group limit the system enforces when `requested` is asked for: `requested` itself, or the one
   * limit the system has (graphile-worker's named queues: 1). Throws for a limit the adapter cannot set.
   */
  readonly effectiveLimit: (requested: number) => number
  /** Enqueues the jobs with one call of the bulk API; `limit` is an effective limit. */
  readonly enqueueBulk: (jobs: ReadonlyArray<FlowJob>, limit: number) => Promise<void>
  /** Enqueues one job with one call of the single-job API. */
  readonly enqueue: (job: FlowJob, limit: number) => Promise<void>
  /** Starts workers in this process, `concurrency` jobs at a time, at most `limit` at once per group. */
  readonly startWorkers: (concurrency: number, limit: number, handler: FlowHandler) => Promise<Workers>
}

/** A queue (cuckmq channel) whose job starts the system limits to `max` per `periodMs`, across all workers. */
export interface RateLimited {
  /** Enqueues ungrouped jobs into the rate-limited queue, with one call of the bulk API. */
  readonly enqueueBulk: (is: ReadonlyArray<number>) => Promise<void>
  /** Sets the limit and starts workers on that queue; `stop` also removes the limit where it is stored. */
  readonly startWorkers: (
    concurrency: number,
    limit: { readonly max: number; readonly periodMs: number },
    handler: FlowHandler
  ) => Promise<Workers>
}

// ---------------------------------------------------------------- backlog workloads (bench/backlog.ts)

/**
 * What the backlog workloads (backlog-0/100k/1m, finalized-1m) need beyond the plain API: a standing backlog
 * of jobs that are waiting but not part of the measurement (scheduled far ahead, in the measured queue), and
 * a table of finished jobs at retention.
 */
export interface Backlog {
  /** Enqueues jobs `{ i }` into the plain workloads' queue, due at `runAt`, with one call of the bulk API. */
  readonly enqueueScheduled: (is: ReadonlyArray<number>, runAt: Date) => Promise<void>
  /**
   * Puts `n` finished (succeeded) jobs of the plain queue into the system's table of finished jobs, spread
   * over its retention so that none is due for removal yet (direct SQL: running a million jobs takes too
   * long); resolves to a description of what was written. Unsupported: the system keeps no finished jobs.
   */
  readonly fillFinished: ((n: number) => Promise<string>) | Unsupported
}

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
  /** Job groups with a per-group concurrency limit (workloads groups-limit2 and group-backlog). */
  readonly groups: Groups | Unsupported
  /** A rate-limited queue (workload rate-limited). */
  readonly rateLimited: RateLimited | Unsupported
  /**
   * An event subscriber in this process (drain-c10-events, drain-c10-idle-sub): `reads` true, one that reads
   * every event as it comes; false, one that subscribes and never reads. `stop` ends it and resolves to the
   * events it read. Absent: those workloads report n/a for this system.
   */
  readonly subscribe?: ((reads: boolean) => Promise<{ readonly stop: () => Promise<number> }>) | Unsupported
  /** The backlog workloads' extras; absent: those workloads report n/a for this system. */
  readonly backlog?: Backlog | Unsupported
  /**
   * Removes every job (waiting, running or finished), of the flow-control queues too, so the next workload
   * starts from an empty queue.
   */
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
