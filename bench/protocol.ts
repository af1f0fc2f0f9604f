/** What bench/run.ts and bench/child.ts say to each other (IPC messages), and the workload results. */
import type { SoakOutcome, SoakSizes } from "./soak.js"
import type { SystemContext } from "./systems/types.js"

// ---------------------------------------------------------------- network hosts (bench/netns.ts)

/** The added round-trip times of the network workloads, in ms (0: the same path without added delay). */
export const netRtts = [0, 1, 5] as const
/** A network workload: drain from 2 hosts, latency or enqueue from 1 host, at an added round-trip time. */
export type NetWorkloadName = `net-${"drain" | "latency" | "enqueue"}-${typeof netRtts[number]}ms`
function netWorkloadNames(): Array<NetWorkloadName> {
  return (["drain", "latency", "enqueue"] as const).flatMap((kind) => netRtts.map((rtt) => `net-${kind}-${rtt}ms` as const))
}
/** The kind and added RTT of a network workload; undefined for the others. */
export const netWorkload = (name: string): { readonly kind: "drain" | "latency" | "enqueue"; readonly rttMs: number } | undefined => {
  const m = /^net-(drain|latency|enqueue)-(\d+)ms$/.exec(name)
  return m ? { kind: m[1] as "drain" | "latency" | "enqueue", rttMs: Number(m[2]) } : undefined
}
/** Where a network workload's worker process runs: a namespace, and the context that reaches the servers from it. */
export interface NetHost {
  readonly netns: string
  readonly ctx: SystemContext
}

export const workloadNames = [
  "enqueue-single",
  "enqueue-bulk",
  "drain-c1",
  "drain-c10",
  "drain-c50",
  "drain-backlog",
  "drain-1proc",
  "drain-2proc",
  "drain-4proc",
  "latency",
  "latency-xproc",
  "drain-c10-events",
  "drain-c10-idle-sub",
  "groups-limit2",
  "group-backlog",
  "rate-limited",
  // backlog workloads (bench/backlog.ts)
  "backlog-0",
  "backlog-100k",
  "backlog-1m",
  "finalized-1m",
  // soak workloads (bench/soak.ts)
  "soak",
  "soak-xmin",
  ...netWorkloadNames()
] as const
export type WorkloadName = typeof workloadNames[number]

/** The sizes and limits of one benchmark invocation (full or `--quick`). */
export interface Sizes {
  /** Jobs per throughput workload. */
  readonly jobs: number
  /** Jobs of the c=1 drain (may be capped below `jobs`). */
  readonly c1Jobs: number
  /** Jobs of the big-backlog drain (c=10). */
  readonly backlogJobs: number
  /** Concurrent callers of enqueue-single (and of the pre-enqueue of a system without a bulk API). */
  readonly callers: number
  /** Jobs per bulk call. */
  readonly bulkBatch: number
  /** Jobs of the latency workload, and the rate they are enqueued at. */
  readonly latencyJobs: number
  readonly latencyRate: number
  /** Worker concurrency of the latency workload. */
  readonly latencyConcurrency: number
  /** Enqueues the producer of latency-xproc makes before it is timed (its code and connections warm). */
  readonly producerWarmJobs: number
  /** Worker processes of the multi-process drain, and the concurrency of each. */
  readonly processes: number
  readonly processConcurrency: number
  /**
   * Jobs each worker process runs before the timed part of a multi-process drain (its code warmed up, as a
   * long-running worker's is; the single-process drains run in a process that has run other workloads).
   */
  readonly processWarmJobs: number
  /** A drain (or the latency workload) that has not finished after this long fails as timed out. */
  readonly timeoutSecs: number
  /** After a drain reaches its count, workers keep running this long so that late duplicates are seen. */
  readonly settleMs: number
  /** Groups of the groups-limit2 drain (its `jobs` jobs are spread evenly over them). */
  readonly groups: number
  /** The per-group concurrency limit of the groups-limit2 drain. */
  readonly groupLimit: number
  /** Worker concurrency of the groups-limit2 drain and of the rate-limited workload. */
  readonly flowConcurrency: number
  /** How long the handler of the flow-control workloads takes (a sleep), so that overlapping jobs are seen. */
  readonly flowHoldMs: number
  /** Jobs waiting in the one group of the group-backlog workload, and the jobs per bulk call that insert them. */
  readonly groupBacklogJobs: number
  readonly groupBacklogBatch: number
  /** The rate-limited workload: at most `rateLimit` job starts per second, observed for `rateSecs` seconds. */
  readonly rateLimit: number
  readonly rateSecs: number
  /** The backlog workloads' standing sizes are multiplied by this (1; `--quick`: 0.01). */
  readonly backlogScale: number
  /** The soak workloads (bench/soak.ts). */
  readonly soak?: SoakSizes | undefined
}

/** The command line of a child process (one JSON argument). */
export type ChildConfig =
  | {
    readonly role: "system"
    readonly system: string
    readonly ctx: SystemContext
    readonly sizes: Sizes
    readonly workloads: ReadonlyArray<WorkloadName>
    /** Network workloads only: the hosts (this child runs in the first one's namespace). */
    readonly hosts?: ReadonlyArray<NetHost> | undefined
  }
  | {
    readonly role: "worker"
    readonly system: string
    readonly ctx: SystemContext
    readonly concurrency: number
    readonly jobs: number
  }
  | {
    /** The producer of latency-xproc: enqueues `jobs` jobs one at a time at `rate`/s on "go". */
    readonly role: "producer"
    readonly system: string
    readonly ctx: SystemContext
    readonly jobs: number
    readonly rate: number
    /** Enqueues before "warmed" (the parent purges them): the producer's code and connections warm. */
    readonly warmJobs: number
  }

/** Handler calls checked against the jobs enqueued. */
export interface Check {
  /** Extra handler calls of jobs that had already run. */
  readonly duplicates: number
  /** Jobs whose handler never ran. */
  readonly missing: number
  /** Handler calls with an index that was never enqueued. */
  readonly unexpected: number
}

export interface Cost {
  /** CPU seconds (user + system) of the Node process running the workers, per 1,000 jobs. */
  readonly nodeCpuPer1k: number
  /** CPU seconds of the database server (PostgreSQL or redis-server), per 1,000 jobs; undefined if not local. */
  readonly serverCpuPer1k: number | undefined
}

export type Outcome =
  | {
    readonly kind: "throughput"
    readonly jobs: number
    readonly seconds: number
    readonly perSec: number
    readonly check?: Check | undefined
    readonly cost?: Cost | undefined
  }
  | {
    readonly kind: "latency"
    readonly jobs: number
    readonly p50: number
    readonly p95: number
    readonly p99: number
    readonly max: number
    readonly check: Check
    /** What else the workload saw (group-backlog: the backlog's insert time, its jobs run meanwhile). */
    readonly note?: string | undefined
  }
  | {
    /** A drain of grouped jobs under a per-group concurrency limit. */
    readonly kind: "groups"
    readonly jobs: number
    readonly seconds: number
    readonly perSec: number
    /** The limit asked for, and the limit the system ran with (graphile-worker: 1). */
    readonly requestedLimit: number
    readonly limit: number
    /** The most handlers of one group seen running at once. */
    readonly maxPerGroup: number
    readonly check: Check
  }
  | {
    /** Jobs of a rate-limited queue: starts observed for `seconds` from the first one. */
    readonly kind: "rate"
    /** The limit: at most `limit` starts per `periodSecs`. */
    readonly limit: number
    readonly periodSecs: number
    readonly seconds: number
    /** Handler starts in the observed span, and per second. */
    readonly started: number
    readonly perSec: number
    /** What the limit allows in the span with fixed windows: `limit` per period, plus one period's worth. */
    readonly bound: number
    /** The most starts in any span of one period (sliding), over the observed span. */
    readonly maxPerPeriod: number
    /** Duplicates only: the backlog is bigger than the span, so most jobs are left unrun on purpose. */
    readonly check: Check
  }
  | {
    /** A backlog workload (bench/backlog.ts): enqueue, drain and idle latency beside a standing backlog. */
    readonly kind: "backlog"
    /** Jobs waiting (scheduled far ahead) and finished jobs in the table, during the measurement. */
    readonly waiting: number
    readonly finished: number
    /** Seconds to insert the backlog (untimed for the figures), and what was filled. */
    readonly fillSecs: number
    readonly note: string
    /** enqueue-single: `jobs` jobs, one call each, from `callers` concurrent callers, no workers running. */
    readonly enqueuePerSec: number
    /** Those jobs drained at c=10: jobs/s, and CPU per 1,000 jobs. */
    readonly drainPerSec: number
    readonly cost: Cost
    /** Idle workers, jobs enqueued one at a time: enqueue-call start to handler start (ms). */
    readonly p50: number
    readonly p95: number
    readonly p99: number
    /** The drain's and the latency jobs' counts; a backlog job that ran counts as unexpected. */
    readonly check: Check
  }
  /** A soak workload (bench/soak.ts): its summary and time series. */
  | SoakOutcome
  | { readonly kind: "na"; readonly reason: string }
  | { readonly kind: "error"; readonly message: string; readonly check?: Check | undefined }

export type SystemResult = Readonly<Partial<Record<WorkloadName, Outcome>>>

/** Child (role system) to run.ts. */
export type SystemMessage =
  | { readonly type: "progress"; readonly workload: WorkloadName; readonly outcome: Outcome }
  | { readonly type: "result"; readonly result: SystemResult }
  | { readonly type: "fatal"; readonly message: string }

/** Worker child to its parent. */
export type WorkerMessage =
  | { readonly type: "ready" }
  | { readonly type: "count"; readonly total: number }
  /** The warm-up's handler calls so far (counted apart from the timed drain's). */
  | { readonly type: "warm-count"; readonly total: number }
  /** The warm-up's workers stopped. */
  | { readonly type: "paused" }
  | { readonly type: "final"; readonly total: number; readonly counts: string }
  | { readonly type: "fatal"; readonly message: string }

/** Parent to worker child. */
export type WorkerCommand =
  /** Start workers for the warm-up (not timed); then "pause" stops them, and "go" starts the timed drain. */
  | { readonly type: "warm" }
  | { readonly type: "pause" }
  | { readonly type: "go" }
  | { readonly type: "stop" }

/** Producer child (latency-xproc) to its parent. */
export type ProducerMessage =
  | { readonly type: "ready" }
  | { readonly type: "warmed" }
  /** The enqueue calls' start times (wall clock, ms: `performance.timeOrigin + performance.now()`), a Float64Array in base64. */
  | { readonly type: "produced"; readonly starts: string }
  | { readonly type: "fatal"; readonly message: string }

/** Parent to producer child. */
export type ProducerCommand = { readonly type: "warm" } | { readonly type: "go" }

export const errorMessage = (e: unknown): string =>
  e instanceof Error ? e.message : typeof e === "string" ? e : JSON.stringify(e)
