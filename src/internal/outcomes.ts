/**
 * This process's outcome counters, for `CuckmqAdmin`'s statistics (succeeded and failed jobs, errored
 * attempts, run time, per definition and minute): counted by the engine itself, synchronously, where it
 * updates its metrics (the worker's and the test backend's settlement of each run, and the rescue's
 * finalizations), and flushed by the context layer through the store (`JobStore.recordOutcomes`) into rows
 * of this process's own, `flushIntervalMs` after the first count since the last flush, and when it closes.
 * No event subscription: counting a job is a map lookup and a few additions (one object per definition and
 * minute, none per job).
 */
import { randomUUID } from "node:crypto"
import { Cause, Clock, Duration, Effect, Latch, type Scope, Semaphore } from "effect"
import type { StorageError } from "../CuckmqError.js"
import type * as JobStore from "../JobStore.js"

const minuteMs = 60_000

/** Fixed: every process flushes this often (a crashed process loses at most this much of its counts). */
export const flushIntervalMs = 5_000

/** Counter rows are kept this long (the reader looks at the last hour); older ones are deleted by any flush. */
export const retainSecs = 3 * 60 * 60

/** One definition's outcomes in one minute (mutable while it is the definition's current bucket). */
interface Bucket {
  readonly definition: string
  readonly channel: string
  readonly minute: number
  succeeded: number
  failed: number
  errored: number
  runMs: number
  attempts: number
}

/** The counters of one context. */
export interface Outcomes {
  /** An attempt succeeded (`at`: its end, a `Clock` time in ms). */
  readonly succeeded: (definition: string, durationMs: number, at: number) => void
  /** An attempt failed; `final`: it was the job's last (the job is finalized as failed). */
  readonly errored: (definition: string, durationMs: number, final: boolean, at: number) => void
  /** A job was finalized as failed without an attempt of this process (the rescue of a dead worker's job). */
  readonly failed: (definition: string, at: number) => void
  /**
   * Sends what was counted since the last flush (one flush at a time); a flush that fails keeps its counts
   * for the next one, except minutes older than the rows' retention.
   */
  readonly flush: Effect.Effect<void, StorageError>
  /** Waits until something was counted since the last flush (or given back by a failed one). */
  readonly pending: Effect.Effect<void>
}

/** Counters of one context over `store`; `channelOf` names a definition's channel ("" for an unknown one). */
export const make = (
  store: JobStore.JobStore["Service"],
  channelOf: (definition: string) => string
): Effect.Effect<Outcomes> =>
  Effect.gen(function*() {
    const processId = randomUUID()
    /** Per definition, the bucket of the minute it last counted in. */
    let current = new Map<string, Bucket>()
    /** Buckets of earlier minutes (a definition moved on to a later one), and counts a failed flush gave back. */
    let closed: Array<Bucket> = []
    /** Open while there are counts to flush: the flusher sleeps only then (an idle process never wakes). */
    const dirty = Latch.makeUnsafe(false)
    let armed = false
    const arm = () => {
      if (!armed) {
        armed = true
        dirty.openUnsafe()
      }
    }

    const bucket = (definition: string, at: number): Bucket => {
      const minute = at - (at % minuteMs)
      const found = current.get(definition)
      if (found !== undefined && found.minute === minute) return found
      if (found !== undefined) closed.push(found)
      arm()
      const fresh: Bucket = { definition, channel: channelOf(definition), minute, succeeded: 0, failed: 0, errored: 0, runMs: 0, attempts: 0 }
      current.set(definition, fresh)
      return fresh
    }

    /** Everything counted so far, one delta per definition and minute, and the counters reset. */
    const take = (): Array<Bucket> => {
      if (current.size === 0 && closed.length === 0) return []
      const merged = new Map<string, Bucket>()
      const add = (b: Bucket) => {
        const key = `${b.minute}\u0000${b.definition}`
        const m = merged.get(key)
        if (m === undefined) merged.set(key, b)
        else {
          m.succeeded += b.succeeded
          m.failed += b.failed
          m.errored += b.errored
          m.runMs += b.runMs
          m.attempts += b.attempts
        }
      }
      for (const b of closed) add(b)
      for (const b of current.values()) add(b)
      current = new Map()
      closed = []
      armed = false
      dirty.closeUnsafe()
      return Array.from(merged.values())
    }

    // one flush at a time: the periodic one, `CuckmqAdmin.flushCounters` and the last one never send the same counts twice
    const lock = yield* Semaphore.make(1)
    const flush: Effect.Effect<void, StorageError> = lock.withPermits(1)(Effect.suspend(() => {
      const taken = take()
      if (taken.length === 0) return Effect.void
      const deltas = taken.map((b): JobStore.OutcomeCounts => ({
        definition: b.definition,
        channel: b.channel,
        minute: new Date(b.minute),
        succeeded: b.succeeded,
        failed: b.failed,
        errored: b.errored,
        runMs: b.runMs,
        attempts: b.attempts
      }))
      return store.recordOutcomes(processId, deltas, retainSecs).pipe(
        Effect.tapError(() =>
          Effect.map(Clock.currentTimeMillis, (nowMs) => {
            // kept for the next flush, but not forever: a minute older than the rows' retention would be deleted by
            // the next flush that succeeds anyway (and a store that stays down must not grow this without bound)
            const oldest = nowMs - retainSecs * 1000
            for (const b of taken) if (b.minute >= oldest) closed.push(b)
            if (closed.length > 0) arm()
          })
        )
      )
    }))

    return {
      succeeded: (definition, durationMs, at) => {
        const b = bucket(definition, at)
        b.succeeded++
        b.attempts++
        b.runMs += durationMs
      },
      errored: (definition, durationMs, final, at) => {
        const b = bucket(definition, at)
        b.errored++
        b.attempts++
        b.runMs += durationMs
        if (final) b.failed++
      },
      failed: (definition, at) => {
        bucket(definition, at).failed++
      },
      flush,
      pending: dirty.await
    }
  })

/** SQLSTATEs of a flush that cannot succeed until an operator acts: no `stats_minute` table, no privilege on it. */
const permanent: ReadonlySet<string> = new Set(["42P01", "42501"])

/**
 * The flusher of a context: `outcomes.flush` `flushIntervalMs` after the first count since the last flush (so
 * at most every `flushIntervalMs` while jobs run, never while the process is idle) for the life of the scope,
 * and once more when the scope closes (after the workers built on the context have stopped and counted their
 * last jobs: their layers are released first).
 * A failed flush is logged and its counts kept. A flush that fails because the counters' table is missing
 * (a schema older than migration 4) or not writable is logged once as a warning (then at debug level): its
 * counts are kept, bounded by the retention, and sent once the table is there.
 */
export const flusher = (outcomes: Outcomes): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    let warnedPermanent = false
    const report = (cause: Cause.Cause<StorageError>) => {
      const error = Cause.squash(cause) as Partial<StorageError>
      if (typeof error.sqlState === "string" && permanent.has(error.sqlState)) {
        if (warnedPermanent) return Effect.logDebug("cuckmq: flushing the outcome counters failed again", cause)
        warnedPermanent = true
        return Effect.logWarning(
          "cuckmq: the outcome counters cannot be written (is the schema at migration 4, with the runtime privileges?): " +
            "they are kept (up to 3 hours) and retried quietly; the admin statistics miss this process's outcomes meanwhile",
          cause
        )
      }
      return Effect.logWarning("cuckmq: flushing the outcome counters failed (kept for the next flush)", cause)
    }
    const once = Effect.catchCause(outcomes.flush, (cause) => Cause.hasInterruptsOnly(cause) ? Effect.interrupt : report(cause))
    const wait = Effect.andThen(outcomes.pending, Effect.sleep(Duration.millis(flushIntervalMs)))
    yield* Effect.forkScoped(
      Effect.forever(Effect.andThen(wait, once)).pipe(
        Effect.annotateLogs({ cuckmq: "outcomes" })
      )
    )
    yield* Effect.addFinalizer(() => Effect.ignore(once))
  })
