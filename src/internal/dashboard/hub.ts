/**
 * The shared refresh: one fiber per dashboard asks the admin API for the statistics every interval while at
 * least one tab listens (or a request asked for fresh figures), and publishes the result to every tab. The
 * database cost is one refresh per interval per process, whatever the number of tabs, and none while nobody
 * looks.
 */
import { Cause, Duration, Effect, Option, PubSub, Queue, Ref, type Scope } from "effect"
import type { Backend, Snapshot, Stats, WaitTime } from "./model.js"

/** Wait-time samples are kept for an hour, at most one per this many milliseconds (so at most 360). */
const sampleEveryMs = 10_000
const historyMs = 3_600_000
const refreshTimeout = Duration.seconds(30)

/**
 * A snapshot and its Server-Sent Events frame, encoded once when the refresh publishes it: every tab's stream
 * writes the same bytes, so a hundred tabs cost one `JSON.stringify`, not a hundred.
 */
export interface Published {
  readonly snapshot: Snapshot
  readonly frame: Uint8Array
}

const encoder = new TextEncoder()

/** The `snapshot` event of a Server-Sent Events stream. */
const encode = (snapshot: Snapshot): Uint8Array => encoder.encode(`event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`)

/** The hub a server reads from. */
export interface Hub {
  /** The latest snapshot (with its frame), if any refresh has run. */
  readonly latest: Effect.Effect<Option.Option<Published>>
  /** A snapshot no older than the interval: the latest if fresh, else the next one (asking for it). */
  readonly fresh: Effect.Effect<Snapshot>
  /** Subscribes a tab (for the scope's lifetime): it counts as a listener, so refreshes run. */
  readonly subscribe: Effect.Effect<PubSub.Subscription<Published>, never, Scope.Scope>
  /** Asks for a refresh now (after an action, so every tab sees its effect at once). */
  readonly poke: Effect.Effect<void>
  /** Ends every tab's stream (before the server closes, so that open streams do not hold it up). */
  readonly close: Effect.Effect<void>
}

/** Starts the hub's fiber in the current scope. */
export const make = (backend: Backend, interval: Duration.Duration): Effect.Effect<Hub, never, Scope.Scope> =>
  Effect.gen(function*() {
    const latest = yield* Ref.make(Option.none<Published>())
    // a sliding PubSub: a slow tab loses stale snapshots, never blocks the refresh
    const pubsub = yield* PubSub.sliding<Published>(4)
    yield* Effect.addFinalizer(() => PubSub.shutdown(pubsub))
    const listeners = yield* Ref.make(0)
    const demanded = yield* Ref.make(false)
    const wake = yield* Queue.sliding<void>(1)
    const seq = yield* Ref.make(0)
    // wait-time history: per sample, each channel's oldest waiting age
    const samples: Array<{ t: number; ages: Map<string, number | null> }> = []
    let lastStats: Stats | null = null
    // actions taken so far (each pokes): a snapshot read before the latest action is not fresh, whatever its age
    let pokes = 0
    const covered = new WeakMap<Snapshot, number>()

    const waitTime = (): WaitTime => {
      const channels = new Set<string>()
      for (const s of samples) for (const c of s.ages.keys()) channels.add(c)
      return {
        t: samples.map((s) => Math.floor(s.t / 1000)),
        series: [...channels].sort().map((channel) => ({
          channel,
          secs: samples.map((s) => s.ages.get(channel) ?? null)
        }))
      }
    }

    const record = (stats: Stats, now: number) => {
      const last = samples[samples.length - 1]
      const ages = new Map(stats.channels.map((c) => [c.channel, c.oldestWaitingSecs] as const))
      if (last !== undefined && now - last.t < sampleEveryMs) {
        last.ages = ages // the newest figure of this sample's window
      } else {
        samples.push({ t: now, ages })
      }
      while (samples.length > 0 && now - samples[0]!.t > historyMs) samples.shift()
    }

    const refresh = Effect.gen(function*() {
      const covers = pokes
      // a database that hangs must not freeze every tab: the refresh reports it and the next one tries again
      const result = yield* Effect.result(backend.stats.pipe(
        Effect.timeoutOrElse({
          duration: refreshTimeout,
          orElse: () => Effect.fail({ status: 504, message: "the statistics took longer than 30 seconds" })
        })
      ))
      const now = Date.now()
      const n = yield* Ref.updateAndGet(seq, (x) => x + 1)
      let error: string | null = null
      if (result._tag === "Success") {
        lastStats = result.success
        record(result.success, now)
      } else {
        error = result.failure.message
      }
      const snapshot: Snapshot = { at: now, seq: n, stats: lastStats, waitTime: waitTime(), error }
      covered.set(snapshot, covers)
      const published: Published = { snapshot, frame: encode(snapshot) }
      yield* Ref.set(latest, Option.some(published))
      yield* PubSub.publish(pubsub, published)
    })

    const loop = Effect.gen(function*() {
      while (true) {
        const n = yield* Ref.get(listeners)
        const asked = yield* Ref.getAndSet(demanded, false)
        if (n > 0 || asked) {
          yield* refresh.pipe(
            Effect.catchCause((cause) => Effect.logWarning("dashboard refresh failed", Cause.pretty(cause)))
          )
        }
        // an idle loop costs a timer, not a query
        yield* Effect.raceFirst(Effect.sleep(interval), Queue.take(wake))
      }
    })
    yield* Effect.forkScoped(loop.pipe(Effect.annotateLogs("cuckmq", "dashboard")))

    const wakeUp = Effect.andThen(Ref.set(demanded, true), Queue.offer(wake, undefined)).pipe(Effect.asVoid)
    const poke = Effect.suspend(() => {
      pokes++
      return wakeUp
    })
    const isFresh = (s: Snapshot) => Date.now() - s.at < Duration.toMillis(interval) && (covered.get(s) ?? -1) >= pokes

    const hub: Hub = {
      latest: Ref.get(latest),
      fresh: Effect.gen(function*() {
        const current = yield* Ref.get(latest)
        if (Option.isSome(current) && isFresh(current.value.snapshot)) return current.value.snapshot
        // subscribe before asking, so the answer cannot be missed
        return yield* Effect.scoped(Effect.gen(function*() {
          const sub = yield* PubSub.subscribe(pubsub)
          const wanted = pokes
          yield* wakeUp
          // a refresh already under way may have started before the last action: wait for one that did not
          while (true) {
            const next = (yield* PubSub.take(sub)).snapshot
            if ((covered.get(next) ?? -1) >= wanted) return next
            yield* Ref.set(demanded, true)
          }
        }))
      }),
      subscribe: Effect.gen(function*() {
        const sub = yield* PubSub.subscribe(pubsub)
        yield* Effect.acquireRelease(Ref.update(listeners, (n) => n + 1), () => Ref.update(listeners, (n) => n - 1))
        const current = yield* Ref.get(latest)
        if (Option.isNone(current) || !isFresh(current.value.snapshot)) yield* wakeUp
        return sub
      }),
      poke,
      close: PubSub.shutdown(pubsub)
    }
    return hub
  })
