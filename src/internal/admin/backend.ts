/**
 * The admin contract between `CuckmqAdmin` (validation, events, shaping) and a storage backend
 * (src/internal/pg/admin.ts, src/internal/memory/admin.ts). Backend-neutral: plain values in, plain rows
 * out, every limit already checked by the caller. Each action is one statement (or one synchronous step in
 * memory) over at most `limit` jobs, and reports what it changed and what it refused.
 */
import type { Effect } from "effect"
import type { JobDefinitionNotDeployed, StorageError } from "../../CuckmqError.js"
import type * as JobStore from "../../JobStore.js"

/** A job's state as the admin sees it (a waiting job split into due, delayed and held). */
export type State = "waiting" | "delayed" | "held" | "running" | "succeeded" | "failed"

/** How a count was obtained: counted exactly, counted up to the cap (at least), or a planner estimate. */
export type Accuracy = "exact" | "atLeast" | "estimate"

/** A count and how it was obtained. */
export interface CountRow {
  readonly value: number
  readonly accuracy: Accuracy
}

/** A channel's live counts. */
export interface ChannelCountsRow {
  readonly channel: string
  readonly waiting: CountRow
  readonly delayed: CountRow
  readonly held: CountRow
  readonly running: CountRow
  /** The time the oldest due, claimable job became claimable (undefined: none). */
  readonly oldestWaitingSince: Date | undefined
}

/** A definition's live counts. */
export interface DefinitionCountsRow {
  readonly definition: string
  readonly channel: string
  readonly waiting: CountRow
  readonly delayed: CountRow
  readonly held: CountRow
  readonly running: CountRow
}

/**
 * One minute of one definition's outcomes, summed over every process that flushed counters: the fields of
 * the counts each process records (`runMs / attempts` is the mean run time of the attempts that ended in it).
 */
export type MinuteRow = JobStore.OutcomeCounts

/** A deployed definition. */
export interface DefinitionRow {
  readonly name: string
  readonly channel: string
}

/** A channel's settings row (only channels that have one). */
export interface ChannelRow {
  readonly channel: string
  readonly paused: boolean
  readonly rateLimit: { readonly limit: number; readonly periodSecs: number } | undefined
}

/** Everything a refresh reads, in one call. */
export interface Snapshot {
  /** The store's clock at the read. */
  readonly now: Date
  readonly definitions: ReadonlyArray<DefinitionRow>
  readonly channelSettings: ReadonlyArray<ChannelRow>
  readonly channels: ReadonlyArray<ChannelCountsRow>
  readonly definitionCounts: ReadonlyArray<DefinitionCountsRow>
  /** The minutes since `since`, every definition. */
  readonly minutes: ReadonlyArray<MinuteRow>
}

/** Filters of a listing or an action by filter. */
export interface Filter {
  readonly states: ReadonlyArray<State>
  readonly definition: string | undefined
  readonly channel: string | undefined
  readonly jobGroup: string | undefined
}

/** The key a listing sorts on. */
export type SortKey = "id" | "runAt" | "finalizedAt"

/** A keyset position: the sort key's value of the last row returned and its id. */
export interface Position {
  /**
   * `id`: unused; `runAt` / `finalizedAt`: the backend's own exact form of the time (`JobRow.sortKey`):
   * PostgreSQL's microseconds since the epoch, the memory store's milliseconds, as a decimal string.
   */
  readonly key: string
  readonly id: string
}

/** A listing request (validated). */
export interface ListRequest {
  readonly filter: Filter
  readonly sort: SortKey
  readonly descending: boolean
  readonly after: Position | undefined
  readonly limit: number
}

/** A job as a listing or a detail read returns it. */
export interface JobRow {
  readonly id: string
  readonly name: string
  readonly channel: string
  readonly jobGroup: string | undefined
  readonly state: State
  readonly payload: unknown
  readonly attempts: number
  readonly maxAttempts: number
  readonly claims: number
  readonly crashes: number
  readonly priority: number | undefined
  readonly runAt: Date | undefined
  readonly lastError: unknown
  readonly workerId: string | undefined
  readonly createdAt: Date
  readonly finalizedAt: Date | undefined
  readonly scheduledFor: Date | undefined
  /** Listings sorted by `runAt` / `finalizedAt`: the sort key, exactly (a `Date` would lose microseconds). */
  readonly sortKey?: string | undefined
}

/** The actions on jobs. */
export type Action = "retry" | "cancel" | "delete" | "runNow"

/** What an action did. */
export interface ActionRow {
  /** The jobs changed. */
  readonly ids: ReadonlyArray<string>
  /** By filter: more jobs matched than `limit`. */
  readonly more: boolean
}

/** A worker row with its in-flight count. */
export interface WorkerRow {
  readonly id: string
  readonly name: string
  readonly hostname: string
  readonly pid: number
  readonly channels: ReadonlyArray<string>
  readonly concurrency: number | undefined
  readonly inFlight: number
  readonly startedAt: Date
  readonly heartbeatAt: Date
  readonly expiresAt: Date
  readonly suspectedAt: Date | undefined
  /** The store's clock at the read, to judge the lease by. */
  readonly now: Date
}

/** The admin backend. */
export interface AdminBackend {
  /** Live counts (exact up to `cap`), channel settings, definitions and the counters' minutes since `sinceSecs` ago. */
  readonly snapshot: (cap: number, sinceSecs: number) => Effect.Effect<Snapshot, StorageError>
  readonly list: (request: ListRequest) => Effect.Effect<ReadonlyArray<JobRow>, StorageError>
  readonly get: (id: string) => Effect.Effect<JobRow | undefined, StorageError>
  /**
   * Applies `action` to the jobs `ids` (by id) or to at most `limit` jobs matching `filter` (by filter),
   * only where it applies: retry a failed job (back to waiting, due now, attempts reset, at its
   * definition's priority; by id refused where its definition is no longer deployed, by filter such jobs are
   * not picked, so that they neither fill the batch nor make `more` true), cancel a waiting job (finalized as
   * failed with `error`), delete a waiting or finalized job, run a delayed job now. Jobs it does not apply
   * to are left as they are, and each change re-checks the requested state on the job as it is then (a job
   * claimed, promoted or made due meanwhile is left alone).
   */
  readonly act: (
    action: Action,
    target:
      | { readonly _tag: "Ids"; readonly ids: ReadonlyArray<string> }
      | { readonly _tag: "Filter"; readonly filter: Filter; readonly limit: number },
    error: unknown
  ) => Effect.Effect<ActionRow, JobDefinitionNotDeployed | StorageError>
  /** Deletes at most `limit` finalized jobs of `states` finalized more than `olderThanSecs` ago. */
  readonly purge: (
    olderThanSecs: number,
    states: ReadonlyArray<"succeeded" | "failed">,
    limit: number
  ) => Effect.Effect<ActionRow & { readonly before: Date }, StorageError>
  readonly workers: Effect.Effect<ReadonlyArray<WorkerRow>, StorageError>
  /** The known channels (used by a deployed definition, or with settings), by name, with their definitions. */
  readonly channels: Effect.Effect<ReadonlyArray<ChannelRow & { readonly definitions: ReadonlyArray<string> }>, StorageError>
  /** Whether a channel is known: a deployed definition uses it, or it has a settings row. */
  readonly channelKnown: (channel: string) => Effect.Effect<boolean, StorageError>
}
