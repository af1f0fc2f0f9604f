/**
 * An in-memory implementation of the JobStore contract, for tests of users' job code: the same semantics
 * as PostgreSQL (claim order, group locks, attempts, retries, leases, rescue, repeating jobs, retention),
 * with every time taken from Effect's `Clock`, so `TestClock` drives delays, retries and repeats.
 * The conformance suite (test/conformance.ts) runs the same checks against both backends.
 *
 * It is not transactional: `onCommit` runs right after the insert.
 */
import { Clock, Effect, Option, PubSub, Stream } from "effect"
import { JobDefinitionNotDeployed } from "../CuckmqError.js"
import * as JobStore from "../JobStore.js"

interface Definition {
  record: JobStore.DefinitionRecord
  nextRunAt: number | undefined
}

interface Job {
  readonly id: number
  readonly name: string
  readonly channel: string
  readonly jobGroup: string | undefined
  readonly payload: unknown
  runAt: number
  attempts: number
  readonly maxAttempts: number
  readonly timeoutSecs: number
  workerId: string | undefined
  lockedUntil: number | undefined
  lastError: unknown
  readonly scheduledFor: number | undefined
  readonly traceId: string | undefined
  readonly spanId: string | undefined
  readonly createdAt: number
}

interface Finalized {
  readonly job: Job
  readonly succeeded: boolean
  readonly finalizedAt: number
  readonly lastError: unknown
}

interface Group {
  lockedByJob: number | undefined
  workerId: string | undefined
  lockedAt: number | undefined
}

interface Worker {
  readonly id: string
  expiresAt: number
}

/** A snapshot of the store's contents, for assertions in tests. */
export interface MemorySnapshot {
  readonly waiting: ReadonlyArray<JobStore.JobInfo>
  readonly running: ReadonlyArray<JobStore.JobInfo>
  readonly finalized: ReadonlyArray<JobStore.JobInfo>
}

/** The memory store plus test-only inspection. */
type StoreService = JobStore.JobStore["Service"]
export interface MemoryStore extends StoreService {
  readonly snapshot: Effect.Effect<MemorySnapshot>
}

const json = (value: unknown): unknown => value === undefined ? undefined : JSON.parse(JSON.stringify(value))

const byRunAt = (a: Job, b: Job) => a.runAt - b.runAt || a.id - b.id

export const make = (options: { readonly keepFinalized: boolean }): Effect.Effect<MemoryStore> =>
  Effect.gen(function*() {
    const definitions = new Map<string, Definition>()
    const jobs = new Map<number, Job>()
    const finalized = new Map<number, Finalized>()
    const groups = new Map<string, Group>()
    const workers = new Map<string, Worker>()
    let nextId = 1
    const hub = yield* PubSub.unbounded<JobStore.Wakeup>()
    const wake = (w: JobStore.Wakeup) => PubSub.publishUnsafe(hub, w)

    const info = (job: Job, fin?: Finalized): JobStore.JobInfo => ({
      id: String(job.id),
      name: job.name,
      channel: job.channel,
      jobGroup: job.jobGroup,
      payload: json(job.payload),
      state: fin ? (fin.succeeded ? "succeeded" : "failed") : job.workerId === undefined ? "waiting" : "running",
      attempts: job.attempts,
      maxAttempts: job.maxAttempts,
      runAt: fin ? undefined : new Date(job.runAt),
      lastError: fin ? fin.lastError : job.lastError,
      workerId: fin ? undefined : job.workerId,
      createdAt: new Date(job.createdAt),
      finalizedAt: fin ? new Date(fin.finalizedAt) : undefined,
      scheduledFor: job.scheduledFor === undefined ? undefined : new Date(job.scheduledFor)
    })

    const claimedOf = (job: Job): JobStore.ClaimedJob => ({
      id: String(job.id),
      name: job.name,
      channel: job.channel,
      jobGroup: job.jobGroup,
      payload: json(job.payload),
      attempt: job.attempts,
      maxAttempts: job.maxAttempts,
      timeoutSecs: job.timeoutSecs,
      runAt: new Date(job.runAt),
      createdAt: new Date(job.createdAt),
      scheduledFor: job.scheduledFor === undefined ? undefined : new Date(job.scheduledFor),
      traceId: job.traceId,
      spanId: job.spanId
    })

    const unlock = (job: Job, workerId: string | undefined) => {
      if (job.jobGroup === undefined) return false
      const group = groups.get(job.jobGroup)
      if (group && group.lockedByJob === job.id && (workerId === undefined || group.workerId === workerId)) {
        group.lockedByJob = undefined
        group.workerId = undefined
        group.lockedAt = undefined
        return true
      }
      return false
    }

    const finalize = (job: Job, succeeded: boolean, lastError: unknown, now: number) => {
      jobs.delete(job.id)
      if (options.keepFinalized) finalized.set(job.id, { job, succeeded, finalizedAt: now, lastError })
    }

    const isLive = (workerId: string | undefined, now: number) => {
      if (workerId === undefined) return false
      const w = workers.get(workerId)
      return w !== undefined && w.expiresAt > now
    }

    const store: MemoryStore = {
      deploy: (records) =>
        Effect.map(Clock.currentTimeMillis, (now) =>
          records.map((record) => {
            const existing = definitions.get(record.name)
            const sameRepeat = existing !== undefined && JSON.stringify(existing.record.repeat) === JSON.stringify(record.repeat)
            const changed = existing === undefined ||
              JSON.stringify({ ...existing.record, firstDue: undefined }) !== JSON.stringify({ ...record, firstDue: undefined })
            const nextRunAt = sameRepeat
              ? existing!.nextRunAt
              : record.repeat?._tag === "Every"
              ? now
              : record.firstDue?.getTime()
            definitions.set(record.name, { record, nextRunAt })
            return { name: record.name, changed }
          })),

      enqueue: (definitionName, newJobs, onCommit, local) =>
        Effect.gen(function*() {
          if (newJobs.length === 0) return []
          const definition = definitions.get(definitionName)
          if (definition === undefined) {
            return yield* new JobDefinitionNotDeployed({
              definitionName,
              message: `Job definition ${JSON.stringify(definitionName)} was never deployed: deploy it before enqueueing`
            })
          }
          const now = yield* Clock.currentTimeMillis
          // the in-process fast path, as with PostgreSQL (no transactions here)
          const single = newJobs.length === 1 && newJobs[0]!.delaySecs === 0 && newJobs[0]!.jobGroup === undefined
          const reservation = single && local !== undefined ? local.reserve(definitionName) : undefined
          const claimHere = reservation !== undefined && reservation.channels.includes(definition.record.channel) &&
            isLive(reservation.workerId, now)
          if (reservation !== undefined && !claimHere) reservation.cancel()
          const ids = newJobs.map((j) => {
            const id = nextId++
            jobs.set(id, {
              id,
              name: definitionName,
              channel: definition.record.channel,
              jobGroup: j.jobGroup,
              payload: JSON.parse(j.payloadJson),
              runAt: now + j.delaySecs * 1000,
              attempts: 0,
              maxAttempts: definition.record.numAttempts,
              timeoutSecs: definition.record.timeoutSecs,
              workerId: undefined,
              lockedUntil: undefined,
              lastError: undefined,
              scheduledFor: undefined,
              traceId: j.traceId,
              spanId: j.spanId,
              createdAt: now
            })
            return String(id)
          })
          if (claimHere) {
            const job = jobs.get(Number(ids[0]))!
            job.workerId = reservation!.workerId
            job.attempts = 1
            job.lockedUntil = now + job.timeoutSecs * 1000
            yield* onCommit(ids, definition.record.channel)
            reservation!.deliver(claimedOf(job))
            return ids
          }
          wake({ _tag: "Channel", channel: definition.record.channel })
          yield* onCommit(ids, definition.record.channel)
          return ids
        }),

      wakeups: Effect.map(PubSub.subscribe(hub), Stream.fromSubscription),

      registerWorker: (w) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          workers.set(w.id, { id: w.id, expiresAt: now + w.leaseSecs * 1000 })
        }),

      heartbeat: (workerId, leaseSecs) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const w = workers.get(workerId)
          if (w === undefined || w.expiresAt <= now) return false
          w.expiresAt = now + leaseSecs * 1000
          return true
        }),

      deregisterWorker: (workerId) =>
        Effect.sync(() => {
          for (const job of jobs.values()) {
            if (job.workerId === workerId) {
              unlock(job, workerId)
              job.workerId = undefined
              job.lockedUntil = undefined
              job.attempts--
            }
          }
          workers.delete(workerId)
        }),

      claim: (request) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          if (!isLive(request.workerId, now)) return []
          const channels = new Set(request.channels)
          const excluded = new Set(request.excludeNames)
          const candidates = Array.from(jobs.values())
            .filter((j) =>
              j.workerId === undefined && j.runAt <= now && channels.has(j.channel) && !excluded.has(j.name) &&
              (j.jobGroup === undefined || groups.get(j.jobGroup)?.lockedByJob === undefined)
            )
            .sort(byRunAt)
          const claimed: Array<JobStore.ClaimedJob> = []
          const taken = new Set<string>()
          for (const job of candidates) {
            if (claimed.length >= request.limit) break
            if (job.jobGroup !== undefined) {
              if (taken.has(job.jobGroup)) continue
              taken.add(job.jobGroup)
              groups.set(job.jobGroup, { lockedByJob: job.id, workerId: request.workerId, lockedAt: now })
            }
            job.workerId = request.workerId
            job.attempts++
            job.lockedUntil = now + job.timeoutSecs * 1000
            claimed.push(claimedOf(job))
          }
          return claimed
        }),

      releaseUnowned: (workerId, owned) =>
        Effect.sync(() => {
          const keep = new Set(owned)
          let released = 0
          for (const job of jobs.values()) {
            if (job.workerId === workerId && !keep.has(String(job.id))) {
              unlock(job, workerId)
              job.workerId = undefined
              job.lockedUntil = undefined
              job.attempts--
              released++
            }
          }
          if (released > 0) wake({ _tag: "Any" })
          return released
        }),

      settle: (workerId, settlements) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          let unlocked = false
          for (const s of settlements) {
            const job = jobs.get(Number(s.id))
            if (job === undefined || job.workerId !== workerId || job.attempts !== s.attempt) continue
            unlocked = unlock(job, workerId) || unlocked
            switch (s.outcome) {
              case "Succeeded":
                finalize(job, true, job.lastError, now)
                break
              case "Expired":
                finalize(job, false, json(s.error), now)
                break
              case "Retry":
                job.workerId = undefined
                job.lockedUntil = undefined
                job.runAt = now + job.timeoutSecs * 1000
                job.lastError = json(s.error)
                break
              case "Released":
                job.workerId = undefined
                job.lockedUntil = undefined
                job.attempts--
                break
            }
          }
          if (unlocked) wake({ _tag: "Any" })
        }),

      scheduleDue: (known, advance, limit) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const scheduled: Array<JobStore.ScheduledJob> = []
          const orphans: Array<string> = []
          const allDue = Array.from(definitions.values())
            .filter((d) => d.nextRunAt !== undefined && d.nextRunAt <= now)
            .sort((a, b) => a.nextRunAt! - b.nextRunAt!)
          for (const d of allDue) if (!known.has(d.record.name)) orphans.push(d.record.name)
          const due = allDue.filter((d) => known.has(d.record.name) && d.record.repeat !== undefined).slice(0, limit)
          for (const d of due) {
            const name = d.record.name
            const dueAt = d.nextRunAt!
            const id = nextId++
            jobs.set(id, {
              id,
              name,
              channel: d.record.channel,
              jobGroup: undefined,
              payload: {},
              runAt: now,
              attempts: 0,
              maxAttempts: d.record.numAttempts,
              timeoutSecs: d.record.timeoutSecs,
              workerId: undefined,
              lockedUntil: undefined,
              lastError: undefined,
              scheduledFor: dueAt,
              traceId: undefined,
              spanId: undefined,
              createdAt: now
            })
            d.nextRunAt = advance(d.record.repeat!, new Date(dueAt), new Date(now)).getTime()
            scheduled.push({ definitionName: name, jobId: String(id), scheduledFor: new Date(dueAt) })
            wake({ _tag: "Channel", channel: d.record.channel })
          }
          const soonest = Array.from(definitions.values())
            .filter((d) => known.has(d.record.name) && d.nextRunAt !== undefined)
            .reduce<number | undefined>((min, d) => (min === undefined || d.nextRunAt! < min ? d.nextRunAt : min), undefined)
          return { scheduled, orphans, nextDueInSecs: soonest === undefined ? undefined : (soonest - now) / 1000 }
        }),

      deleteFinalized: (olderThanSecs, limit) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const cutoff = now - olderThanSecs * 1000
          const deleted: Array<{ id: string; name: string }> = []
          for (const [id, f] of finalized) {
            if (deleted.length >= limit) break
            if (f.finalizedAt < cutoff) {
              finalized.delete(id)
              deleted.push({ id: String(id), name: f.job.name })
            }
          }
          return deleted
        }),

      deleteUnreferencedGroups: (limit) =>
        Effect.sync(() => {
          const referenced = new Set(Array.from(jobs.values(), (j) => j.jobGroup))
          const deleted: Array<string> = []
          for (const [name, group] of groups) {
            if (deleted.length >= limit) break
            if (group.lockedByJob === undefined && !referenced.has(name)) {
              groups.delete(name)
              deleted.push(name)
            }
          }
          return deleted
        }),

      rescue: (jobGroupUnlockSecs) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          for (const [id, w] of workers) if (w.expiresAt <= now) workers.delete(id)
          const rescued: Array<JobStore.RescuedJob> = []
          for (const job of Array.from(jobs.values())) {
            if (job.workerId === undefined || workers.has(job.workerId)) continue
            const workerId = job.workerId
            if (job.attempts >= job.maxAttempts) {
              finalize(job, false, { message: "the worker running this job died" }, now)
              rescued.push({ jobId: String(job.id), definitionName: job.name, workerId, finalized: true })
            } else {
              job.workerId = undefined
              job.runAt = Math.max(now, job.lockedUntil ?? now)
              job.lockedUntil = undefined
              job.lastError = { message: "the worker running this job died" }
              rescued.push({ jobId: String(job.id), definitionName: job.name, workerId, finalized: false })
            }
          }
          const released: Array<JobStore.UnlockedGroup> = []
          for (const [name, group] of groups) {
            if (group.lockedByJob === undefined) continue
            const pastCeiling = group.lockedAt !== undefined && group.lockedAt < now - jobGroupUnlockSecs * 1000
            if (pastCeiling || !isLive(group.workerId, now)) {
              released.push({ jobGroup: name, jobId: String(group.lockedByJob), reason: pastCeiling ? "ceiling" : "worker-dead" })
              group.lockedByJob = undefined
              group.workerId = undefined
              group.lockedAt = undefined
            }
          }
          if (rescued.length > 0 || released.length > 0) wake({ _tag: "Any" })
          return { jobs: rescued, groups: released }
        }),

      getJob: (id) =>
        Effect.sync(() => {
          const job = jobs.get(Number(id))
          if (job) return Option.some(info(job))
          const fin = finalized.get(Number(id))
          return fin ? Option.some(info(fin.job, fin)) : Option.none()
        }),

      snapshot: Effect.sync(() => {
        const live = Array.from(jobs.values()).sort((a, b) => a.id - b.id)
        return {
          waiting: live.filter((j) => j.workerId === undefined).map((j) => info(j)),
          running: live.filter((j) => j.workerId !== undefined).map((j) => info(j)),
          finalized: Array.from(finalized.values()).sort((a, b) => a.job.id - b.job.id).map((f) => info(f.job, f))
        }
      })
    }
    return store
  })
