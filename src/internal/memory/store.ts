/**
 * An in-memory implementation of the JobStore contract, for tests of users' job code: the same semantics
 * as PostgreSQL (claim order, claim tokens, recorded starts, group slots and held backlogs, leases, liveness
 * sessions, rescue, repeating jobs, retention), with every time taken from Effect's `Clock`, so `TestClock`
 * drives delays, retries and repeats. The conformance suite (test/support/conformance.ts) runs the same
 * checks, concurrent ones included, against both backends.
 *
 * Every operation is one synchronous step, so operations from concurrent fibers interleave like
 * serializable statements. It is not transactional: `onCommit` runs right after the insert.
 */
import { Clock, Deferred, Effect, Exit, Option, PubSub, Stream } from "effect"
import { JobDefinitionInUse, JobDefinitionNotDeployed } from "../../CuckmqError.js"
import type * as JobStore from "../../JobStore.js"

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
  sortAt: number
  attempts: number
  readonly maxAttempts: number
  readonly timeoutSecs: number
  workerId: string | undefined
  claims: number
  started: boolean
  crashes: number
  held: boolean
  groupSlot: boolean
  claimedAt: number | undefined
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
  running: number
  readonly concurrency: number
}

interface Worker {
  expiresAt: number
  readonly sessionKey: number | undefined
  suspectedAt: number | undefined
}

/** A snapshot of the store's contents, for assertions in tests. */
export interface MemorySnapshot {
  readonly waiting: ReadonlyArray<JobStore.JobInfo>
  readonly running: ReadonlyArray<JobStore.JobInfo>
  readonly finalized: ReadonlyArray<JobStore.JobInfo>
}

/** The memory store plus test-only inspection and fault injection. */
type StoreService = JobStore.JobStore["Service"]
export interface MemoryStore extends StoreService {
  readonly snapshot: Effect.Effect<MemorySnapshot>
  /** The group rows, for assertions: slots taken and concurrency. */
  readonly groups: Effect.Effect<ReadonlyMap<string, { readonly running: number; readonly concurrency: number }>>
  /** Simulates the process's liveness session dying (its connection closed for good). */
  readonly killSession: Effect.Effect<void>
}

const json = (value: unknown): unknown => value === undefined ? undefined : JSON.parse(JSON.stringify(value))

const byClaimOrder = (a: Job, b: Job) => a.sortAt - b.sortAt || a.id - b.id
const byRunAt = (a: Job, b: Job) => a.runAt - b.runAt || a.id - b.id

const died = { message: "the worker running this job died" }

export const make = (options: { readonly keepFinalized: boolean }): Effect.Effect<MemoryStore> =>
  Effect.gen(function*() {
    const definitions = new Map<string, Definition>()
    const jobs = new Map<number, Job>()
    const finalized = new Map<number, Finalized>()
    const groups = new Map<string, Group>()
    const workers = new Map<string, Worker>()
    const liveSessions = new Set<number>()
    let session: { key: number; lost: Deferred.Deferred<void> } | undefined
    let nextId = 1
    let nextSessionKey = 1
    let lastRescueAt = Number.NEGATIVE_INFINITY
    const hub = yield* PubSub.unbounded<JobStore.Wakeup>()
    const wake = (w: JobStore.Wakeup) => PubSub.publishUnsafe(hub, w)
    const wakeAll = () => wake({ _tag: "Any" })

    const info = (job: Job, fin?: Finalized): JobStore.JobInfo => ({
      id: String(job.id),
      name: job.name,
      channel: job.channel,
      jobGroup: job.jobGroup,
      payload: json(job.payload),
      state: fin ? (fin.succeeded ? "succeeded" : "failed") : job.workerId === undefined ? "waiting" : "running",
      attempts: job.attempts,
      maxAttempts: job.maxAttempts,
      claims: job.claims,
      crashes: job.crashes,
      held: fin ? false : job.held,
      runAt: fin ? undefined : new Date(job.runAt),
      lastError: fin ? fin.lastError : job.lastError,
      workerId: fin ? undefined : job.workerId,
      createdAt: new Date(job.createdAt),
      finalizedAt: fin ? new Date(fin.finalizedAt) : undefined,
      scheduledFor: job.scheduledFor === undefined ? undefined : new Date(job.scheduledFor)
    })

    const claimedOf = (job: Job): JobStore.ClaimedJob => ({
      id: String(job.id),
      claim: job.claims,
      name: job.name,
      channel: job.channel,
      jobGroup: job.jobGroup,
      payload: json(job.payload),
      attempt: job.attempts + 1,
      maxAttempts: job.maxAttempts,
      timeoutSecs: job.timeoutSecs,
      crashes: job.crashes,
      runAt: new Date(job.runAt),
      sortAt: new Date(job.sortAt),
      createdAt: new Date(job.createdAt),
      scheduledFor: job.scheduledFor === undefined ? undefined : new Date(job.scheduledFor),
      traceId: job.traceId,
      spanId: job.spanId
    })

    const isLive = (workerId: string | undefined, now: number) => {
      if (workerId === undefined) return false
      const w = workers.get(workerId)
      return w !== undefined && w.expiresAt > now
    }

    /** The job's claim by `workerId` under `claim` is current. */
    const holds = (job: Job | undefined, workerId: string, claim: number): job is Job =>
      job !== undefined && job.workerId === workerId && job.claims === claim

    const finalize = (job: Job, succeeded: boolean, lastError: unknown, now: number) => {
      jobs.delete(job.id)
      if (options.keepFinalized) finalized.set(job.id, { job, succeeded, finalizedAt: now, lastError })
    }

    /** Back to waiting (the caller sets run time, attempts, errors); returns whether it held a group slot. */
    const giveBack = (job: Job): boolean => {
      const slot = job.groupSlot
      job.workerId = undefined
      job.claimedAt = undefined
      job.lockedUntil = undefined
      job.groupSlot = false
      job.started = false
      return slot
    }

    /** free_slots_v2: frees slots, then makes the oldest held jobs claimable again, per channel. */
    const freeSlots = (freed: ReadonlyArray<string>, now: number, unhold: ReadonlyArray<string> = []) => {
      const counts = new Map<string, number>()
      for (const g of unhold) counts.set(g, 0)
      for (const g of freed) counts.set(g, (counts.get(g) ?? 0) + 1)
      for (const [name, n] of counts) {
        const group = groups.get(name)
        if (group === undefined) continue
        group.running = Math.max(group.running - n, 0)
        const k = group.concurrency - group.running
        if (k <= 0) continue
        const heldByChannel = new Map<string, Array<Job>>()
        for (const job of jobs.values()) {
          if (job.jobGroup !== name || !job.held) continue
          const list = heldByChannel.get(job.channel)
          if (list === undefined) heldByChannel.set(job.channel, [job])
          else list.push(job)
        }
        for (const list of heldByChannel.values()) {
          for (const job of list.sort(byRunAt).slice(0, k)) {
            job.held = false
            job.sortAt = Math.max(job.runAt, now)
          }
        }
      }
    }

    /** Gives back what `workerId` holds except `keep`; returns how many went back. */
    const release = (workerId: string, keep: ReadonlySet<string>, now: number) => {
      const freed: Array<string> = []
      let released = 0
      for (const job of jobs.values()) {
        if (job.workerId !== workerId || keep.has(String(job.id))) continue
        if (giveBack(job)) freed.push(job.jobGroup!)
        released++
      }
      freeSlots(freed, now)
      if (released > 0) wakeAll()
      return released
    }

    const newJob = (
      definition: Definition,
      j: JobStore.NewJob,
      now: number,
      held: boolean
    ): Job => {
      const runAt = now + j.delaySecs * 1000
      return {
        id: nextId++,
        name: definition.record.name,
        channel: definition.record.channel,
        jobGroup: j.jobGroup,
        payload: JSON.parse(j.payloadJson),
        runAt,
        sortAt: runAt,
        attempts: 0,
        maxAttempts: definition.record.numAttempts,
        timeoutSecs: definition.record.timeoutSecs,
        workerId: undefined,
        claims: 0,
        started: false,
        crashes: 0,
        held,
        groupSlot: false,
        claimedAt: undefined,
        lockedUntil: undefined,
        lastError: undefined,
        scheduledFor: undefined,
        traceId: j.traceId,
        spanId: j.spanId,
        createdAt: now
      }
    }

    const store: MemoryStore = {
      deploy: (records, firstDue) =>
        Effect.map(Clock.currentTimeMillis, (now) =>
          records.map((record) => {
            const existing = definitions.get(record.name)
            const due = record.repeat === undefined ? undefined : firstDue(record.repeat, new Date(now))
            if (existing === undefined) {
              definitions.set(record.name, { record, nextRunAt: due?.fresh.getTime() })
              return { name: record.name, changed: true }
            }
            if (JSON.stringify(existing.record) === JSON.stringify(record)) return { name: record.name, changed: false }
            const sameRepeat = JSON.stringify(existing.record.repeat) === JSON.stringify(record.repeat)
            const nextRunAt = sameRepeat
              ? existing.nextRunAt
              : due === undefined
              ? undefined
              : Math.min(existing.nextRunAt ?? due.changed.getTime(), due.changed.getTime())
            definitions.set(record.name, { record, nextRunAt })
            return { name: record.name, changed: true }
          })),

      undeploy: (definitionName, waiting) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const live = Array.from(jobs.values()).filter((j) => j.name === definitionName)
          const waitingJobs = live.filter((j) => j.workerId === undefined)
          const running = live.length - waitingJobs.length
          if (waiting === "fail" && live.length > 0) {
            return yield* new JobDefinitionInUse({
              definitionName,
              waiting: waitingJobs.length,
              running,
              message: `Job definition ${JSON.stringify(definitionName)} still has ${waitingJobs.length} waiting and ${running} ` +
                `running job(s): nothing was undeployed (undeploy with waiting: "delete" or "keep", or let them drain first)`
            })
          }
          const undeployed = definitions.delete(definitionName)
          if (waiting === "delete" && waitingJobs.length > 0) {
            for (const job of waitingJobs) jobs.delete(job.id)
            const touched = Array.from(new Set(waitingJobs.flatMap((j) => j.jobGroup === undefined ? [] : [j.jobGroup])))
            freeSlots([], now, touched)
            wakeAll()
          }
          return {
            undeployed,
            deleted: waiting === "delete" ? waitingJobs.length : 0,
            kept: waiting === "keep" ? waitingJobs.length : 0,
            running
          }
        }),

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
          if (reservation !== undefined && !claimHere) reservation.cancel(false)
          // of several jobs of one group, only the first `concurrency` (by run time, then order) are claimable
          const rank = new Map<number, number>()
          if (newJobs.length > 1) {
            const byGroup = new Map<string, Array<number>>()
            newJobs.forEach((j, i) => {
              if (j.jobGroup === undefined) return
              const list = byGroup.get(j.jobGroup)
              if (list === undefined) byGroup.set(j.jobGroup, [i])
              else list.push(i)
            })
            for (const list of byGroup.values()) {
              list.sort((a, b) => newJobs[a]!.delaySecs - newJobs[b]!.delaySecs || a - b)
              list.forEach((i, r) => rank.set(i, r + 1))
            }
          }
          const ids = newJobs.map((j, i) => {
            const concurrency = j.jobGroup === undefined ? 1 : (groups.get(j.jobGroup)?.concurrency ?? 1)
            const job = newJob(definition, j, now, (rank.get(i) ?? 1) > concurrency)
            jobs.set(job.id, job)
            return String(job.id)
          })
          if (claimHere) {
            const job = jobs.get(Number(ids[0]))!
            job.workerId = reservation!.workerId
            job.claims = 1
            job.claimedAt = now
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

      session: Effect.sync(() => {
        if (session === undefined) {
          session = { key: nextSessionKey++, lost: Deferred.makeUnsafe<void>() }
          liveSessions.add(session.key)
        }
        return { key: session.key, lost: Deferred.await(session.lost) }
      }),

      killSession: Effect.sync(() => {
        if (session === undefined) return
        liveSessions.delete(session.key)
        Deferred.doneUnsafe(session.lost, Exit.void)
        session = undefined
      }),

      registerWorker: (w) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          workers.set(w.id, { expiresAt: now + w.leaseSecs * 1000, sessionKey: w.sessionKey, suspectedAt: undefined })
        }),

      heartbeat: (workerId, leaseSecs) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const w = workers.get(workerId)
          if (w === undefined || w.expiresAt <= now) return false
          w.expiresAt = now + leaseSecs * 1000
          return true
        }),

      deregisterWorker: (workerId) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          release(workerId, new Set(), now)
          workers.delete(workerId)
        }),

      claim: (request) =>
        Effect.map(Clock.currentTimeMillis, (now): JobStore.ClaimResult => {
          if (!isLive(request.workerId, now)) return { jobs: [], held: 0 }
          const channels = new Set(request.channels)
          const excluded = new Set(request.excludeNames)
          const candidates = Array.from(jobs.values())
            .filter((j) =>
              j.workerId === undefined && !j.held && j.sortAt <= now && channels.has(j.channel) && !excluded.has(j.name)
            )
            .sort(byClaimOrder)
            .slice(0, request.limit)
          const rank = new Map<string, number>()
          const claimed: Array<JobStore.ClaimedJob> = []
          let held = 0
          for (const job of candidates) {
            if (job.jobGroup !== undefined) {
              const r = (rank.get(job.jobGroup) ?? 0) + 1
              rank.set(job.jobGroup, r)
              const group = groups.get(job.jobGroup)
              // free slots as the claim found them (a group with no row yet: all of its one slot)
              const free = group === undefined ? 1 : group.concurrency - (group.running - (r - 1))
              if (r > free || free <= 0) {
                job.held = true
                held++
                continue
              }
              if (group === undefined) groups.set(job.jobGroup, { running: 1, concurrency: 1 })
              else group.running++
              job.groupSlot = true
            }
            job.workerId = request.workerId
            job.claims++
            job.started = false
            job.claimedAt = now
            job.lockedUntil = now + job.timeoutSecs * 1000
            claimed.push(claimedOf(job))
          }
          return { jobs: claimed, held }
        }),

      releaseUnowned: (workerId, owned) => Effect.map(Clock.currentTimeMillis, (now) => release(workerId, new Set(owned), now)),

      settle: (workerId, settlements) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const freed: Array<string> = []
          let requeued = false
          for (const s of settlements) {
            const job = jobs.get(Number(s.id))
            if (!holds(job, workerId, s.claim)) continue
            switch (s.outcome) {
              case "Started":
                if (!job.started) {
                  job.started = true
                  job.attempts++
                }
                break
              case "Succeeded":
              case "Expired":
                job.attempts += job.started ? 0 : 1
                if (job.groupSlot) freed.push(job.jobGroup!)
                finalize(job, s.outcome === "Succeeded", s.outcome === "Expired" ? json(s.error) : job.lastError, now)
                break
              case "Retry": {
                job.attempts += job.started ? 0 : 1
                if (giveBack(job)) freed.push(job.jobGroup!)
                job.runAt = now + job.timeoutSecs * 1000
                job.sortAt = job.runAt
                job.lastError = json(s.error)
                requeued = true
                break
              }
              case "Released": {
                job.attempts -= job.started ? 1 : 0
                if (giveBack(job)) freed.push(job.jobGroup!)
                requeued = true
                break
              }
            }
          }
          freeSlots(freed, now)
          if (freed.length > 0 || requeued) wakeAll()
        }),

      scheduleDue: (known, advance, limit) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const scheduled: Array<JobStore.ScheduledJob> = []
          const orphans: Array<JobStore.OrphanSchedule> = []
          const allDue = Array.from(definitions.values())
            .filter((d) => d.nextRunAt !== undefined && d.nextRunAt <= now)
            .sort((a, b) => a.nextRunAt! - b.nextRunAt!)
          for (const d of allDue) {
            if (!known.has(d.record.name)) orphans.push({ definitionName: d.record.name, dueAt: new Date(d.nextRunAt!) })
          }
          const due = allDue.filter((d) => known.has(d.record.name) && d.record.repeat !== undefined).slice(0, limit)
          for (const d of due) {
            const dueAt = d.nextRunAt!
            const job: Job = { ...newJob(d, { payloadJson: "{}", delaySecs: 0, jobGroup: undefined, traceId: undefined, spanId: undefined }, now, false), scheduledFor: dueAt }
            jobs.set(job.id, job)
            d.nextRunAt = advance(d.record.repeat!, new Date(dueAt), new Date(now)).getTime()
            scheduled.push({ definitionName: d.record.name, jobId: String(job.id), scheduledFor: new Date(dueAt) })
            wake({ _tag: "Channel", channel: d.record.channel })
          }
          const soonest = Array.from(definitions.values())
            .filter((d) => known.has(d.record.name) && d.nextRunAt !== undefined)
            .reduce<number | undefined>((min, d) => (min === undefined || d.nextRunAt! < min ? d.nextRunAt : min), undefined)
          return { scheduled, orphans: orphans.slice(0, 100), nextDueInSecs: soonest === undefined ? undefined : (soonest - now) / 1000 }
        }),

      deleteFinalized: (olderThanSecs, limit) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const cutoff = now - olderThanSecs * 1000
          const deleted: Array<{ id: string; name: string }> = []
          const old = Array.from(finalized.values()).filter((f) => f.finalizedAt < cutoff)
            .sort((a, b) => a.finalizedAt - b.finalizedAt)
          for (const f of old.slice(0, limit)) {
            finalized.delete(f.job.id)
            deleted.push({ id: String(f.job.id), name: f.job.name })
          }
          return deleted
        }),

      deleteUnreferencedGroups: (limit) =>
        Effect.sync(() => {
          const referenced = new Set(Array.from(jobs.values(), (j) => j.jobGroup))
          const deleted: Array<string> = []
          for (const [name, group] of groups) {
            if (deleted.length >= limit) break
            if (group.running === 0 && !referenced.has(name)) {
              groups.delete(name)
              deleted.push(name)
            }
          }
          return deleted
        }),

      rescue: (o) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const none = { jobs: [], groups: [] }
          if (now - lastRescueAt < o.minIntervalSecs * 1000) return none
          lastRescueAt = now
          for (const w of workers.values()) {
            if (w.sessionKey === undefined) continue
            if (w.suspectedAt === undefined && !liveSessions.has(w.sessionKey)) w.suspectedAt = now
            else if (w.suspectedAt !== undefined && liveSessions.has(w.sessionKey)) w.suspectedAt = undefined
          }
          const dead = new Set<string>()
          for (const [id, w] of workers) {
            if (w.expiresAt <= now || (w.suspectedAt !== undefined && w.suspectedAt <= now - o.sessionGraceSecs * 1000)) {
              dead.add(id)
            }
          }
          for (const job of jobs.values()) {
            if (job.workerId !== undefined && !workers.has(job.workerId)) dead.add(job.workerId)
          }
          const rescued: Array<JobStore.RescuedJob> = []
          const released: Array<JobStore.UnlockedGroup> = []
          const freed: Array<string> = []
          for (const job of Array.from(jobs.values())) {
            if (rescued.length >= o.limit) break
            if (job.workerId === undefined || !dead.has(job.workerId)) continue
            const workerId = job.workerId
            // a recorded start with no attempt left, or the maxAttempts + 4th crash of a job never seen to start
            const spent = job.started ? job.attempts >= job.maxAttempts : job.crashes + 1 >= job.maxAttempts + 4
            if (job.groupSlot) {
              freed.push(job.jobGroup!)
              released.push({ jobGroup: job.jobGroup!, jobId: String(job.id), reason: "worker-dead" })
            }
            if (spent) {
              job.crashes++
              finalize(job, false, job.started ? died : {
                message: `the job crashed its workers ${job.crashes} times before its start could be recorded`,
                crashes: job.crashes
              }, now)
            } else {
              const started = job.started
              const lockedUntil = job.lockedUntil ?? now
              giveBack(job)
              job.crashes++
              if (started) {
                job.runAt = Math.max(now, lockedUntil)
                job.sortAt = job.runAt
                job.lastError = died
              }
            }
            rescued.push({ jobId: String(job.id), definitionName: job.name, workerId, finalized: spent })
          }
          const pastCeiling = Array.from(jobs.values())
            .filter((j) => j.groupSlot && j.claimedAt !== undefined && j.claimedAt < now - o.jobGroupUnlockSecs * 1000)
            .sort((a, b) => a.claimedAt! - b.claimedAt!)
            .slice(0, o.limit)
          for (const job of pastCeiling) {
            job.groupSlot = false
            freed.push(job.jobGroup!)
            released.push({ jobGroup: job.jobGroup!, jobId: String(job.id), reason: "ceiling" })
          }
          freeSlots(freed, now)
          const holding = new Set(Array.from(jobs.values(), (j) => j.workerId))
          for (const id of dead) if (!holding.has(id)) workers.delete(id)
          if (rescued.length > 0 || released.length > 0) wakeAll()
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
      }),

      groups: Effect.sync(() => new Map(Array.from(groups, ([name, g]) => [name, { running: g.running, concurrency: g.concurrency }])))
    }
    return store
  })
