/**
 * What the dashboard's server sends its front end: plain JSON values, shaped for display, so that the front
 * end (assets.ts) knows one format whatever the admin API's types become. `backend.ts` maps the admin API
 * to these; nothing here is public.
 */
import type { Effect } from "effect"

/** A count and its text as people read it: "12", "10,000+" (counted up to the cap), "~52,000" (estimate). */
export interface Count {
  readonly n: number
  readonly text: string
}

/** One channel's line on the overview. */
export interface ChannelView {
  readonly channel: string
  readonly paused: boolean
  readonly waiting: Count
  readonly delayed: Count
  readonly held: Count
  readonly running: Count
  readonly succeededLastHour: number
  readonly failedLastHour: number
  /** Jobs finalized per minute over the last 5 minutes. */
  readonly throughputPerMinute: number
  /** Age of the oldest waiting job, in seconds; null when nothing waits. */
  readonly oldestWaitingSecs: number | null
}

/** One definition's line on the overview. */
export interface DefinitionView {
  readonly name: string
  readonly channel: string
  readonly deployed: boolean
  readonly waiting: Count
  readonly delayed: Count
  readonly held: Count
  readonly running: Count
  readonly succeededLastHour: number
  readonly failedLastHour: number
  readonly throughputPerMinute: number
}

/** One live worker. */
export interface WorkerView {
  readonly id: string
  readonly name: string
  readonly hostname: string
  readonly pid: number
  readonly channels: ReadonlyArray<string>
  readonly concurrency: number | null
  readonly inFlight: number
  readonly alive: boolean
  /** Epoch milliseconds. */
  readonly startedAt: number
  readonly lastHeartbeat: number
}

/** Per-minute series over the last hour: `t` in epoch seconds (start of the minute). */
export interface Throughput {
  readonly t: ReadonlyArray<number>
  readonly succeeded: ReadonlyArray<number>
  readonly failed: ReadonlyArray<number>
}

/** What one refresh of the admin API gives (before the hub adds its own wait-time samples). */
export interface Stats {
  readonly channels: ReadonlyArray<ChannelView>
  readonly definitions: ReadonlyArray<DefinitionView>
  readonly workers: ReadonlyArray<WorkerView>
  /** Every definition summed. */
  readonly throughput: Throughput
  /** The store's clock when the statistics were read (epoch milliseconds). */
  readonly at: number
  /** Which figures are exact and which are estimates, in the admin API's words. */
  readonly notes: ReadonlyArray<string>
}

/**
 * Samples of each channel's oldest waiting age taken by this process at each refresh (the admin API gives the
 * age now; the history is the dashboard's own, kept for an hour): `t` in epoch seconds, one series per channel
 * (null where nothing waited).
 */
export interface WaitTime {
  readonly t: ReadonlyArray<number>
  readonly series: ReadonlyArray<{ readonly channel: string; readonly secs: ReadonlyArray<number | null> }>
}

/** What every open tab receives at each shared refresh. */
export interface Snapshot {
  /** Epoch milliseconds of the refresh. */
  readonly at: number
  /** The refresh number in this process: one per interval, whatever the number of tabs. */
  readonly seq: number
  readonly stats: Stats | null
  readonly waitTime: WaitTime
  /** Set when the refresh failed (the database is unreachable, ...); `stats` is then the last good one. */
  readonly error: string | null
}

/** A job on the jobs page. */
export interface JobRow {
  readonly id: string
  readonly definition: string
  readonly channel: string
  readonly group: string | null
  readonly state: string
  readonly attempts: number
  readonly maxAttempts: number
  readonly priority: number | null
  /** Epoch milliseconds, or null. */
  readonly runAt: number | null
  readonly createdAt: number | null
  readonly finishedAt: number | null
  readonly lastError: string | null
}

/** A job with everything the detail page shows. */
export interface JobDetail extends JobRow {
  /** The payload as stored (JSON text), shown as text. */
  readonly payload: string
  /** The last failure as stored (JSON text), or null. */
  readonly lastErrorJson: string | null
  /** The job's result as JSON text once results exist (issue 13); null until then. */
  readonly result: string | null
  /** Other fields the admin API gives, as label / text pairs. */
  readonly extra: ReadonlyArray<readonly [string, string]>
}

/** A jobs query from the page's filters. */
export interface JobsQuery {
  readonly state?: string | undefined
  readonly definition?: string | undefined
  readonly channel?: string | undefined
  readonly group?: string | undefined
  readonly cursor?: string | undefined
  readonly limit: number
}

/** One page of jobs and the cursor of the next (null on the last page). */
export interface JobsPage {
  readonly jobs: ReadonlyArray<JobRow>
  readonly next: string | null
}

/** The actions the dashboard can take. */
export type Action =
  | { readonly _tag: "retry" | "cancel" | "delete" | "runNow"; readonly id: string }
  | { readonly _tag: "pause" | "resume"; readonly channel: string }
  | {
    readonly _tag: "retryFailed"
    readonly definition?: string | undefined
    readonly channel?: string | undefined
    readonly group?: string | undefined
  }

/** A failure of the admin API, with the HTTP status that tells it (404 unknown, 409 refused, 400 bad input). */
export interface BackendError {
  readonly status: number
  readonly message: string
}

/** What the server needs from the admin API. */
export interface Backend {
  readonly stats: Effect.Effect<Stats, BackendError>
  readonly listJobs: (query: JobsQuery) => Effect.Effect<JobsPage, BackendError>
  readonly getJob: (id: string) => Effect.Effect<JobDetail | null, BackendError>
  readonly act: (action: Action) => Effect.Effect<string, BackendError>
}
