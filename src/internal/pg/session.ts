/**
 * The process's own database session on PostgreSQL: one dedicated connection (outside the app's pool) that
 * LISTENs for wake-ups and holds the process's liveness lock, plus the sender of wake-ups.
 *
 * Liveness: the session takes a session-level advisory lock `(namespace, key)` with a random key. Workers
 * register with that key. When the process dies, its connections close and the lock is free; a rescue then
 * declares its workers dead `sessionGraceSecs` later (rescue.ts), instead of waiting for their leases.
 * When the connection fails while the process lives (a killed backend, a server restart, a network blip),
 * the session reconnects and takes the same key back; if it cannot within `reacquireMs` of the last moment
 * the lock was known held (the last ping sent that was answered: not the moment the failure was noticed,
 * which a blocked event loop can delay without bound), or the key is taken (the rescuer holds it, so the
 * workers are being declared dead), the session is lost: `lost` completes, the workers stop their jobs and
 * register again under the next session's key. `reacquireMs` is well under the rescuer's grace, so a live
 * worker stops its jobs before anyone can take them (if its event loop runs: see the README's Guarantees).
 *
 * Wake-ups: notifications arrive on the same connection; every (re)connection also publishes `Any`, because
 * notifications sent while nobody listened are lost, so workers poll once. Enqueue never puts a NOTIFY in
 * the caller's transaction (a NOTIFY serialises commits cluster-wide): after commit the channel joins a
 * pending set, and one fiber sends the whole set as one `pg_notify` statement (with `synchronous_commit`
 * off); requests arriving meanwhile coalesce into the next. Workers of this process are woken directly and
 * ignore the echo of their own notifications. Pending wake-ups are sent before the store closes, so a
 * short-lived enqueue-only program does not leave other processes to find its jobs at their next poll.
 */
import { randomUUID } from "node:crypto"
import { Clock, Deferred, Duration, Effect, Exit, PubSub, Queue, Scope, Stream } from "effect"
import { PgClient, PgConnection } from "@effect/sql-pg"
import type * as JobStore from "../../JobStore.js"
import { noticeChannel, notifyChannel } from "./sql.js"

/**
 * How long after the last moment its lock was known held a lost session may take to get its key back
 * before its workers must stop their jobs. The rescuer declares a session dead no sooner than its grace
 * (2.5 s by default) after it found the lock free, which is after that moment: this leaves a second of margin.
 */
export const reacquireMs = 1_500

/**
 * Ping the session connection this often, and treat it as lost when a ping takes longer than the timeout.
 * A backend that died (its lock free at once) is noticed at the next ping at the latest, even if the
 * connection's reset was lost on the way; each answered ping moves "the lock was known held" to its send
 * time, from which `reacquireMs` counts. A ping that merely hangs means the server is unreachable, and then
 * it cannot have freed the lock either: the lease covers that case.
 */
const pingEveryMs = 250
const pingTimeoutMs = 5_000

/** A random non-zero int32 key. */
const newKey = (): number => {
  const k = (Math.random() * 0xffffffff) | 0
  return k === 0 ? 1 : k
}

/** The wake-up for a channel name (`*`: any channel). */
const wakeupOf = (channel: string): JobStore.Wakeup => channel === "*" ? { _tag: "Any" } : { _tag: "Channel", channel }

export interface Options {
  readonly schema: string
  readonly lockNamespace: number
  /** Hold a liveness lock (false: wake-ups only; workers rely on their lease). */
  readonly liveness: boolean
  /**
   * The session connection's settings, or `undefined` for poll-only (behind a transaction-mode pooler with
   * no direct connection): no session connection at all, so no LISTEN and no liveness lock. Workers and
   * waiters in this process are still woken directly; other processes' wake-ups and notices are missed, so
   * workers find jobs at their poll, `awaitResult` at its poll, a cancellation at the worker's heartbeat.
   */
  readonly connection: PgConnection.Config | undefined
}

/** Builds the session manager (started lazily) and the notifier. Runs in the store's scope. */
export const make = (sql: PgClient.PgClient, options: Options) =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const clock = yield* Clock.Clock
    const senderId = randomUUID()
    // what operators see in pg_stat_activity
    const applicationName = `cuckmq session ${options.schema}`.slice(0, 63)
    const channelName = notifyChannel(options.schema)
    const noticeChannelName = noticeChannel(options.schema)
    const connection = options.connection
    const pollOnly = connection === undefined
    const liveness = options.liveness && !pollOnly

    // ---- wake-ups in ----
    const hub = yield* PubSub.sliding<JobStore.Wakeup>(1024)
    // told of every wake-up of all channels (sent here, or by another process), before the workers see it
    let anyListener: (() => void) | undefined
    yield* Effect.addFinalizer(() => PubSub.shutdown(hub))
    // notices in (a job someone awaits finalized, a cancellation requested), on a channel of their own
    const noticeHub = yield* PubSub.unbounded<JobStore.Notice>()
    yield* Effect.addFinalizer(() => PubSub.shutdown(noticeHub))
    /** Completed once the connection LISTENs (the first time). */
    const listening = Deferred.makeUnsafe<void>()

    // ---- the session ----
    let current: JobStore.Session | undefined
    let connected = Deferred.makeUnsafe<JobStore.Session>()
    let started = false

    // the state of the session loop
    let key = newKey()
    let lost = Deferred.makeUnsafe<void>()
    let lostAt: number | undefined // while we retry: the last moment the current session's lock was known held
    let aliveAt = 0 // the last moment this connection's lock was known held (a ping's send time)

    /** One connection's life: connect, lock `key`, LISTEN, then forward notifications until it fails. */
    const hold = Effect.gen(function*() {
      const raw = yield* PgConnection.make({ ...connection!, applicationName })
      const conn = yield* raw.pin
      if (liveness) {
        const [locked] = (yield* conn.query("SELECT pg_try_advisory_lock($1::int, $2::int) AS ok", [
          options.lockNamespace,
          key
        ])).rows
        if (locked?.ok !== true) return "taken" as const
        // too late to take the key back (the rescuer may be declaring its workers dead): give up instead
        if (lostAt !== undefined && current?.key === key && clock.currentTimeMillisUnsafe() - lostAt > reacquireMs) {
          return "late" as const
        }
      }
      aliveAt = clock.currentTimeMillisUnsafe()
      const queue = yield* conn.listen(channelName)
      const noticeQueue = yield* conn.listen(noticeChannelName)
      Deferred.doneUnsafe(listening, Exit.void)
      if (current === undefined || current.key !== key) {
        current = { key, lost: Deferred.await(lost) }
        Deferred.doneUnsafe(connected, Exit.succeed(current))
      } else if (lostAt !== undefined) {
        yield* Effect.logInfo("cuckmq: the session connection is back, with its key")
      }
      lostAt = undefined
      // (re)listening: notifications sent while nobody listened are lost, so every worker polls once
      anyListener?.()
      PubSub.publishUnsafe(hub, { _tag: "Any" })
      PubSub.publishUnsafe(noticeHub, { _tag: "Reset" })
      const forwardNotices = Effect.forever(Effect.flatMap(Queue.take(noticeQueue), (n) => {
        const id = n.payload.slice(2)
        return n.payload.startsWith("f:")
          ? PubSub.publish(noticeHub, { _tag: "Finalized", id })
          : n.payload.startsWith("c:")
          ? PubSub.publish(noticeHub, { _tag: "CancelRequested", id })
          : Effect.void
      }))
      const forward = Effect.forever(Effect.flatMap(Queue.take(queue), (n) => {
        const at = n.payload.indexOf(":")
        if (at < 0 || n.payload.slice(0, at) === senderId) return Effect.void
        const wakeup = wakeupOf(n.payload.slice(at + 1))
        if (wakeup._tag === "Any") anyListener?.()
        return PubSub.publish(hub, wakeup)
      }))
      const ping = Effect.forever(Effect.andThen(
        Effect.sleep(Duration.millis(pingEveryMs)),
        Effect.suspend(() => {
          const sentAt = clock.currentTimeMillisUnsafe()
          return conn.query("SELECT 1").pipe(
            Effect.timeoutOrElse({
              duration: Duration.millis(pingTimeoutMs),
              orElse: () => Effect.fail(new Error("the session connection did not answer a ping in time"))
            }),
            Effect.tap(() => Effect.sync(() => void (aliveAt = sentAt)))
          )
        })
      ))
      return yield* Effect.raceAllFirst([forward, forwardNotices, ping])
    }).pipe(
      Effect.scoped,
      Effect.catchCause((cause) => Effect.as(Effect.logDebug("cuckmq: session connection failed", cause), "failed" as const))
    )

    /** The session is gone for good: its workers stop their jobs; the next session gets a new key. */
    const giveUp = Effect.gen(function*() {
      yield* Effect.logWarning("cuckmq: the session was lost; workers stop their jobs and register again")
      current = undefined
      connected = Deferred.makeUnsafe()
      Deferred.doneUnsafe(lost, Exit.void)
      lost = Deferred.makeUnsafe()
      lostAt = undefined
      key = newKey()
    })

    const run = Effect.gen(function*() {
      let failures = 0
      while (true) {
        const outcome = yield* hold
        const ours = current !== undefined && current.key === key
        if (ours && lostAt === undefined) {
          lostAt = aliveAt
          failures = 0
          yield* Effect.logWarning("cuckmq: the session connection was lost; reconnecting")
        }
        if (ours && (outcome !== "failed" || clock.currentTimeMillisUnsafe() - lostAt! > reacquireMs)) {
          // the key cannot be ours again in time (or the rescuer holds it): stop the workers' jobs now
          yield* giveUp
        } else if (!ours && outcome === "taken") {
          key = newKey() // another session has it: a collision before we used the key
          continue
        }
        failures++
        // quickly while the key can still be taken back, then with backoff
        yield* Effect.sleep(Duration.millis(lostAt !== undefined ? 50 : Math.min(5_000, 50 * 2 ** Math.min(failures, 7))))
      }
    }).pipe(Effect.annotateLogs({ cuckmq: "session", schema: options.schema }))

    const start = Effect.suspend(() => {
      if (started || pollOnly) return Effect.void
      started = true
      return Effect.asVoid(Effect.forkIn(run, scope))
    })

    /** The current session, waiting for one (starts the session). */
    const session: Effect.Effect<JobStore.Session | undefined> = liveness
      ? Effect.andThen(start, Effect.suspend(() => current !== undefined ? Effect.succeed(current) : Deferred.await(connected)))
      : Effect.succeed(undefined)

    const wakeups = Effect.gen(function*() {
      const subscription = yield* PubSub.subscribe(hub)
      yield* start
      return Stream.fromSubscription(subscription)
    })

    /**
     * Notices from the moment this returns: the connection LISTENs by then (waited for up to 5 s; past that
     * the subscriber relies on its poll, and gets a `Reset` once the connection is up).
     */
    const notices = Effect.gen(function*() {
      const subscription = yield* PubSub.subscribe(noticeHub)
      yield* start
      if (!pollOnly) yield* Effect.timeoutOption(Deferred.await(listening), Duration.seconds(5))
      return Stream.fromSubscription(subscription)
    })

    // ---- wake-ups out ----
    // The sender runs in a scope of its own, created before the flush below is registered: finalizers run in
    // reverse order, so the flush runs first, while the sender may still finish.
    const notifyScope = yield* Scope.fork(scope, "sequential")
    const pending = new Set<string>()
    let notifying: Deferred.Deferred<void> | undefined
    const notifyLoop: Effect.Effect<void> = Effect.suspend(() => {
      if (pending.size === 0) {
        const done = notifying
        notifying = undefined
        if (done !== undefined) Deferred.doneUnsafe(done, Exit.void)
        return Effect.void
      }
      const payloads = Array.from(pending, (channel) => `${senderId}:${channel}`)
      pending.clear()
      return sql.unsafe(
        `SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, p) FROM unnest($2::text[]) AS p`,
        [channelName, payloads]
      ).pipe(
        Effect.catchCause((cause) => Effect.logDebug("cuckmq: NOTIFY failed (workers will poll)", cause)),
        Effect.andThen(notifyLoop)
      )
    })

    /** Wakes local workers now and, coalesced, every other process (`*` = any channel). */
    const wake = (channel: string | "*"): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (channel === "*") anyListener?.()
        PubSub.publishUnsafe(hub, wakeupOf(channel))
        pending.add(channel)
        if (notifying !== undefined) return Effect.void
        const done = notifying = Deferred.makeUnsafe()
        return Effect.asVoid(Effect.forkIn(Effect.ensuring(notifyLoop, Deferred.done(done, Exit.void)), notifyScope))
      })

    // Before the store closes (its scope's finalizers run in reverse order, so this runs before the pool
    // is gone): send what is pending, within a bound.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => notifying === undefined ? Effect.void : Deferred.await(notifying)).pipe(
        Effect.timeoutOption(Duration.seconds(2)),
        Effect.asVoid
      )
    )

    /**
     * Poll-only: publishes a notice of this process's own doing to its own subscribers (with a session
     * connection, every notice comes back through LISTEN instead).
     */
    const noticeLocal = (notice: JobStore.Notice): void => {
      PubSub.publishUnsafe(noticeHub, notice)
    }

    /** `f` is told of every wake-up of all channels, before the workers see it (one listener). */
    const onAnyWakeup = (f: () => void): void => {
      anyListener = f
    }

    return { session, wakeups, wake, notices, noticeLocal, pollOnly, onAnyWakeup }
  }) satisfies Effect.Effect<unknown, never, Scope.Scope>

/** The `PgClient` type, re-exported for the store. */
export type Client = PgClient.PgClient
