/**
 * The admin backend on the memory store: the same reads and actions as PostgreSQL's
 * (src/internal/pg/admin.ts), each one synchronous step over the store's maps (so concurrent fibers see it
 * as one statement), with time from Effect's `Clock`. Every count here is exact (there is no planner), but
 * counts are capped like PostgreSQL's, so the two backends report the same figures. The counters' rows are
 * the store's (`recordOutcomes` writes them: src/internal/memory/store.ts).
 */
import { Clock, Effect } from "effect"
import { JobDefinitionNotDeployed } from "../../CuckmqError.js"
import type * as JobStore from "../../JobStore.js"
import type * as Backend from "../admin/backend.js"
import { AdminState, type AdminStateView, type Finalized, type Job } from "./store.js"

/** The admin's view of a memory store, or undefined for any other backend. */
export const stateOf = (store: JobStore.JobStore["Service"]): AdminStateView | undefined =>
  (store as { readonly [AdminState]?: AdminStateView })[AdminState]

const json = (value: unknown): unknown => value === undefined ? undefined : JSON.parse(JSON.stringify(value))

const liveState = (job: Job, now: number): Backend.State =>
  job.workerId !== undefined ? "running" : job.held ? "held" : job.sortAt <= now ? "waiting" : "delayed"

const row = (job: Job, now: number, fin?: Finalized): Backend.JobRow => ({
  id: String(job.id),
  name: job.name,
  channel: job.channel,
  jobGroup: job.jobGroup,
  state: fin ? (fin.succeeded ? "succeeded" : "failed") : liveState(job, now),
  payload: json(job.payload),
  attempts: job.attempts,
  maxAttempts: job.maxAttempts,
  claims: job.claims,
  crashes: job.crashes,
  priority: fin ? undefined : job.priority,
  runAt: fin ? undefined : new Date(job.runAt),
  lastError: json(fin ? fin.lastError : job.lastError),
  workerId: fin ? undefined : job.workerId,
  createdAt: new Date(job.createdAt),
  finalizedAt: fin ? new Date(fin.finalizedAt) : undefined,
  scheduledFor: job.scheduledFor === undefined ? undefined : new Date(job.scheduledFor)
})

export const make = (s: AdminStateView): Backend.AdminBackend => {
  /** Every job with its row, live then finalized. */
  const all = (now: number): Array<Backend.JobRow> => [
    ...Array.from(s.jobs.values(), (j) => row(j, now)),
    ...Array.from(s.finalized.values(), (f) => row(f.job, now, f))
  ]

  const matches = (r: Backend.JobRow, f: Backend.Filter) =>
    f.states.includes(r.state) && (f.definition === undefined || r.name === f.definition) &&
    (f.channel === undefined || r.channel === f.channel) && (f.jobGroup === undefined || r.jobGroup === f.jobGroup)

  /**
   * The matching jobs an action applies to, by id, at most `limit` (+1 to tell `more`); with `deployed`, by
   * filter only jobs of deployed definitions.
   */
  const targets = (
    target: Parameters<Backend.AdminBackend["act"]>[1],
    applies: ReadonlyArray<Backend.State>,
    now: number,
    deployed: boolean
  ): { readonly rows: Array<Backend.JobRow>; readonly more: boolean } => {
    if (target._tag === "Ids") {
      const wanted = new Set(target.ids)
      return { rows: all(now).filter((r) => wanted.has(r.id) && applies.includes(r.state)), more: false }
    }
    const f = { ...target.filter, states: target.filter.states.filter((st) => applies.includes(st)) }
    const rows = all(now).filter((r) => matches(r, f) && (!deployed || s.definitions.has(r.name)))
      .sort((a, b) => Number(a.id) - Number(b.id))
    return { rows: rows.slice(0, target.limit), more: rows.length > target.limit }
  }

  const channelRows = () =>
    Array.from(s.channels, ([channel, c]): Backend.ChannelRow => ({ channel, paused: c.paused, rateLimit: c.rateLimit }))

  return {
    snapshot: (cap, sinceSecs) =>
      Effect.map(Clock.currentTimeMillis, (now): Backend.Snapshot => {
        const definitions = Array.from(s.definitions.values(), (d) => ({ name: d.record.name, channel: d.record.channel }))
        // the same capped samples as PostgreSQL: per channel and state the first cap + 1 jobs, level by level
        // and in run order (sortAt, id) within a level, counted by definition; held jobs: cap + 1 of them (PostgreSQL takes
        // any; here, in the held index's order). A sample that reaches cap + 1 makes its figures lower bounds.
        type Tally = { total: number; complete: boolean; byName: Map<string, number> }
        const tallies = new Map<string, Tally>()
        const tally = (key: string) => {
          let t = tallies.get(key)
          if (t === undefined) tallies.set(key, t = { total: 0, complete: true, byName: new Map() })
          return t
        }
        const levels = new Map<string, Array<Job>>()
        const held: Array<Job> = []
        const running = new Map<string, number>()
        const oldest = new Map<string, number>()
        const channelsOf = new Map<string, string>()
        for (const d of definitions) channelsOf.set(d.name, d.channel)
        for (const job of s.jobs.values()) {
          const state = liveState(job, now)
          if (state === "running") {
            running.set(`${job.channel}\u0000${job.name}`, (running.get(`${job.channel}\u0000${job.name}`) ?? 0) + 1)
            if (!channelsOf.has(job.name)) channelsOf.set(job.name, job.channel)
          } else if (state === "held") {
            held.push(job)
          } else {
            const key = `${job.channel}\u0000${state}\u0000${job.priority}`
            const list = levels.get(key)
            if (list === undefined) levels.set(key, [job])
            else list.push(job)
            if (state === "waiting" && !(job.sortAt >= (oldest.get(job.channel) ?? Infinity))) oldest.set(job.channel, job.sortAt)
          }
        }
        // level by level (ascending priority, as PostgreSQL's skip scan), from one budget of cap + 1 per
        // channel and state
        const byLevel = Array.from(levels).sort(([a], [b]) => {
          const [ca, sa, pa] = a.split("\u0000")
          const [cb, sb, pb] = b.split("\u0000")
          return ca! < cb! ? -1 : ca! > cb! ? 1 : sa! < sb! ? -1 : sa! > sb! ? 1 : Number(pa) - Number(pb)
        })
        for (const [key, list] of byLevel) {
          const [channel, state] = key.split("\u0000")
          const t = tally(`${channel}\u0000${state}`)
          const sample = list.sort((a, b) => a.sortAt - b.sortAt || a.id - b.id).slice(0, Math.max(0, cap + 1 - t.total))
          t.total += sample.length
          if (t.total > cap) t.complete = false
          for (const job of sample) t.byName.set(job.name, (t.byName.get(job.name) ?? 0) + 1)
        }
        const heldSample = held
          .sort((a, b) =>
            (a.jobGroup! < b.jobGroup! ? -1 : a.jobGroup! > b.jobGroup! ? 1 : 0) ||
            (a.channel < b.channel ? -1 : a.channel > b.channel ? 1 : 0) || a.runAt - b.runAt || a.id - b.id
          )
          .slice(0, cap + 1)
        const heldComplete = heldSample.length <= cap
        for (const job of heldSample) if (!channelsOf.has(job.name)) channelsOf.set(job.name, job.channel)
        const figure = (value: number, complete: boolean): Backend.CountRow =>
          complete && value <= cap ? { value, accuracy: "exact" } : { value: Math.min(value, cap), accuracy: "atLeast" }
        const stateCount = (channel: string, state: string, name?: string): Backend.CountRow => {
          const t = tallies.get(`${channel}\u0000${state}`)
          if (t === undefined) return { value: 0, accuracy: "exact" }
          return figure(name === undefined ? t.total : t.byName.get(name) ?? 0, t.complete)
        }
        const heldCount = (pick: (job: Job) => boolean) => figure(heldSample.filter(pick).length, heldComplete)
        const runningCount = (pick: (key: string) => boolean): Backend.CountRow => ({
          value: Array.from(running).reduce((sum, [key, n]) => pick(key) ? sum + n : sum, 0),
          accuracy: "exact"
        })
        const perChannel = new Map<string, number>()
        for (const channel of channelsOf.values()) perChannel.set(channel, (perChannel.get(channel) ?? 0) + 1)
        const channelNames = new Set<string>([
          ...channelsOf.values(),
          ...s.channels.keys(),
          ...Array.from(levels.keys(), (k) => k.split("\u0000")[0]!)
        ])
        const since = Math.floor(now / 60_000) * 60_000 - sinceSecs * 1000 + 60_000
        const sums = new Map<string, Backend.MinuteRow>()
        for (const r of s.counters.values()) {
          if (r.minute.getTime() < since) continue
          const key = `${r.definition}\u0000${r.minute.getTime()}`
          const m = sums.get(key)
          sums.set(key, m === undefined ? { ...r } : {
            ...m,
            channel: m.channel === "" ? r.channel : m.channel,
            succeeded: m.succeeded + r.succeeded,
            failed: m.failed + r.failed,
            errored: m.errored + r.errored,
            runMs: m.runMs + r.runMs,
            attempts: m.attempts + r.attempts
          })
        }
        return {
          now: new Date(now),
          definitions,
          channelSettings: channelRows(),
          channels: Array.from(channelNames).sort().map((channel) => ({
            channel,
            waiting: stateCount(channel, "waiting"),
            delayed: stateCount(channel, "delayed"),
            held: heldCount((j) => j.channel === channel),
            running: runningCount((k) => k.startsWith(`${channel}\u0000`)),
            oldestWaitingSince: oldest.has(channel) ? new Date(oldest.get(channel)!) : undefined
          })),
          definitionCounts: Array.from(channelsOf, ([definition, channel]) => {
            const alone = (perChannel.get(channel) ?? 0) <= 1
            return {
              definition,
              channel,
              waiting: stateCount(channel, "waiting", alone ? undefined : definition),
              delayed: stateCount(channel, "delayed", alone ? undefined : definition),
              held: heldCount((j) => j.name === definition),
              running: runningCount((k) => k.slice(k.indexOf("\u0000") + 1) === definition)
            }
          }),
          minutes: Array.from(sums.values())
        }
      }),

    list: (request) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const keyOf = (r: Backend.JobRow) =>
          request.sort === "runAt" ? r.runAt!.getTime() : request.sort === "finalizedAt" ? r.finalizedAt!.getTime() : 0
        const dir = request.descending ? -1 : 1
        const compare = (a: Backend.JobRow, b: Backend.JobRow) =>
          dir * (keyOf(a) - keyOf(b) || Number(a.id) - Number(b.id))
        const after = request.after
        return all(now)
          .filter((r) => matches(r, request.filter))
          .filter((r) => {
            if (after === undefined) return true
            const d = keyOf(r) - Number(after.key) || Number(r.id) - Number(after.id)
            return request.descending ? d < 0 : d > 0
          })
          .sort(compare)
          .slice(0, request.limit)
          .map((r) => request.sort === "id" ? r : { ...r, sortKey: String(keyOf(r)) })
      }),

    get: (id) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const job = s.jobs.get(Number(id))
        if (job !== undefined) return row(job, now)
        const fin = s.finalized.get(Number(id))
        return fin === undefined ? undefined : row(fin.job, now, fin)
      }),

    act: (action, target, error) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const applies: Record<Backend.Action, ReadonlyArray<Backend.State>> = {
          retry: ["failed"],
          cancel: ["waiting", "delayed", "held"],
          delete: ["waiting", "delayed", "held", "succeeded", "failed"],
          runNow: ["delayed"]
        }
        // a retry by filter skips the jobs whose definition is gone: they would be picked again at every call
        const { more, rows } = targets(target, applies[action], now, action === "retry")
        if (action === "retry" && target._tag === "Ids") {
          const gone = rows.find((r) => !s.definitions.has(r.name))
          if (gone !== undefined) {
            return yield* new JobDefinitionNotDeployed({
              definitionName: gone.name,
              message: `Job ${gone.id} cannot be retried: its definition ${JSON.stringify(gone.name)} is not deployed`
            })
          }
        }
        const ids: Array<string> = []
        const touched = new Set<string>()
        for (const r of rows) {
          const id = Number(r.id)
          if (action === "retry") {
            const fin = s.finalized.get(id)
            const definition = s.definitions.get(r.name)
            if (fin === undefined || definition === undefined) continue
            s.finalized.delete(id)
            // back to waiting, due now, attempts reset; held first when grouped (the promotion below decides,
            // as a grouped enqueue would be held behind its group's live jobs)
            const job: Job = {
              ...fin.job,
              channel: definition.record.channel,
              maxAttempts: definition.record.numAttempts,
              timeoutSecs: definition.record.timeoutSecs,
              priority: definition.record.priority,
              runAt: now,
              sortAt: now,
              attempts: 0,
              crashes: 0,
              // the definition's settings, as on PostgreSQL (a finalized job keeps no time limit of its own)
              snoozes: 0,
              timeLimitSecs: undefined,
              workerId: undefined,
              started: false,
              held: fin.job.jobGroup !== undefined,
              groupSlot: false,
              claimedAt: undefined,
              lockedUntil: undefined,
              lastError: fin.lastError
            }
            s.jobs.set(id, job)
            if (job.jobGroup !== undefined) touched.add(job.jobGroup)
          } else if (action === "runNow") {
            const job = s.jobs.get(id)
            if (job === undefined || job.workerId !== undefined || job.held || job.sortAt <= now) continue
            job.runAt = now
            job.sortAt = now
          } else {
            const job = s.jobs.get(id)
            if (job !== undefined) {
              if (job.workerId !== undefined) continue
              s.jobs.delete(id)
              if (action === "cancel" && s.keepFinalized) {
                s.finalized.set(id, { job, succeeded: false, finalizedAt: now, lastError: json(error) })
              }
              if (job.jobGroup !== undefined) touched.add(job.jobGroup)
            } else if (action === "delete") {
              if (!s.finalized.delete(id)) continue
            } else continue
          }
          ids.push(r.id)
        }
        if (touched.size > 0) s.promote(touched, now)
        if (ids.length > 0 && (action === "retry" || action === "runNow" || touched.size > 0)) s.wakeAll()
        return { ids, more }
      }),

    purge: (olderThanSecs, states, limit) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const before = now - olderThanSecs * 1000
        const old = Array.from(s.finalized.values())
          .filter((f) => f.finalizedAt < before && states.includes(f.succeeded ? "succeeded" : "failed"))
          .sort((a, b) => a.finalizedAt - b.finalizedAt || a.job.id - b.job.id)
        const ids = old.slice(0, limit).map((f) => {
          s.finalized.delete(f.job.id)
          return String(f.job.id)
        })
        return { ids, more: old.length > limit, before: new Date(before) }
      }),

    workers: Effect.map(Clock.currentTimeMillis, (now) => {
      const inFlight = new Map<string, number>()
      for (const job of s.jobs.values()) {
        if (job.workerId !== undefined) inFlight.set(job.workerId, (inFlight.get(job.workerId) ?? 0) + 1)
      }
      return Array.from(s.workers, ([id, w]): Backend.WorkerRow => ({
        id,
        name: w.registration.name,
        hostname: w.registration.hostname,
        pid: w.registration.pid,
        channels: w.registration.channels,
        concurrency: w.registration.concurrency,
        inFlight: inFlight.get(id) ?? 0,
        startedAt: new Date(w.startedAt),
        heartbeatAt: new Date(w.heartbeatAt),
        expiresAt: new Date(w.expiresAt),
        suspectedAt: w.suspectedAt === undefined ? undefined : new Date(w.suspectedAt),
        now: new Date(now)
      })).sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
    }),

    channels: Effect.sync(() => {
      const names = new Set<string>([...Array.from(s.definitions.values(), (d) => d.record.channel), ...s.channels.keys()])
      return Array.from(names).sort().map((channel) => {
        const c = s.channels.get(channel)
        return {
          channel,
          paused: c?.paused ?? false,
          rateLimit: c?.rateLimit,
          definitions: Array.from(s.definitions.values()).filter((d) => d.record.channel === channel).map((d) => d.record.name).sort()
        }
      })
    }),

    channelKnown: (channel) =>
      Effect.sync(() => s.channels.has(channel) || Array.from(s.definitions.values()).some((d) => d.record.channel === channel))
  }
}
