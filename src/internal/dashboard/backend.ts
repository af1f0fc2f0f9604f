/**
 * The dashboard's view of `CuckmqAdmin`: its figures mapped to the plain JSON values the front end renders
 * (model.ts), and its typed errors mapped to HTTP statuses (404 unknown job or channel, 409 an action that
 * does not apply, 400 bad input, 503 the database).
 */
import { Effect } from "effect"
import type * as Admin from "../../CuckmqAdmin.js"
import type { Action, Backend, BackendError, Count, JobDetail, JobRow, JobsQuery, Stats } from "./model.js"

const count = (c: Admin.Count): Count => ({
  n: c.value,
  text: c.accuracy === "atLeast"
    ? `${c.value.toLocaleString("en-US")}+`
    : c.accuracy === "estimate"
    ? `~${c.value.toLocaleString("en-US")}`
    : c.value.toLocaleString("en-US")
})

const ms = (d: Date | undefined): number | null => d === undefined ? null : d.getTime()

/** JSON text of a stored value (payloads and errors are shown as text, never as markup). */
const jsonText = (u: unknown): string => {
  if (u === undefined) return ""
  if (typeof u === "string") return u
  try {
    return JSON.stringify(u)
  } catch {
    return String(u)
  }
}

/** Maps an admin error (a tagged error) to a status and its message. */
const toBackendError = (e: { readonly _tag: string; readonly message: string }): BackendError => {
  switch (e._tag) {
    case "JobNotFound":
    case "ChannelNotFound":
      return { status: 404, message: e.message }
    case "JobActionRefused":
    case "JobDefinitionNotDeployed":
      return { status: 409, message: e.message }
    case "InvalidOptions":
      return { status: 400, message: e.message }
    default:
      return { status: 503, message: e.message }
  }
}

const row = (j: Admin.JobSummary): JobRow => ({
  id: j.id,
  definition: j.definition,
  channel: j.channel,
  group: j.jobGroup ?? null,
  state: j.state,
  attempts: j.attempts,
  maxAttempts: j.maxAttempts,
  priority: j.priority ?? null,
  runAt: ms(j.runAt),
  createdAt: ms(j.createdAt),
  finishedAt: ms(j.finalizedAt),
  lastError: j.lastErrorMessage ?? null
})

const detail = (j: Admin.JobDetail): JobDetail => ({
  ...row(j),
  payload: jsonText(j.payload),
  lastErrorJson: j.lastError === undefined || j.lastError === null ? null : jsonText(j.lastError),
  result: null, // results are not stored yet (issue 13): the admin's JobDetail has none
  extra: [
    ["Claims", String(j.claims)],
    ["Taken back from dead workers", String(j.crashes)],
    ...(j.workerId === undefined ? [] : [["Worker", j.workerId] as const]),
    ...(j.scheduledFor === undefined ? [] : [["Scheduled for", j.scheduledFor.toISOString()] as const])
  ]
})

/** Failed jobs retried by one "retry all matching" (one bounded statement; the page says when more match). */
const retryBatch = 1000

const describe = (verb: string, r: Admin.ActionResult) =>
  `${verb} ${r.count.toLocaleString("en-US")} job${r.count === 1 ? "" : "s"}${r.jobIds.length === 1 ? ` (${r.jobIds[0]})` : ""}`

/** Builds the backend over an admin service. */
export const make = (admin: Admin.CuckmqAdmin["Service"]): Backend => ({
  stats: Effect.gen(function*() {
    const [s, workers] = yield* Effect.all([admin.statistics, admin.workers], { concurrency: 2 })
    const stats: Stats = {
      at: s.at.getTime(),
      channels: s.channels.map((c) => ({
        channel: c.channel,
        paused: c.paused,
        waiting: count(c.waiting),
        delayed: count(c.delayed),
        held: count(c.held),
        running: count(c.running),
        succeededLastHour: c.lastHour.succeeded,
        failedLastHour: c.lastHour.failed,
        throughputPerMinute: c.throughputPerMinute,
        oldestWaitingSecs: c.oldestWaitingSecs ?? null
      })),
      definitions: s.definitions.map((d) => ({
        name: d.definition,
        channel: d.channel,
        deployed: d.deployed,
        waiting: count(d.waiting),
        delayed: count(d.delayed),
        held: count(d.held),
        running: count(d.running),
        succeededLastHour: d.lastHour.succeeded,
        failedLastHour: d.lastHour.failed,
        throughputPerMinute: d.throughputPerMinute
      })),
      workers: workers.map((w) => ({
        id: w.id,
        name: w.name,
        hostname: w.hostname,
        pid: w.pid,
        channels: w.channels,
        concurrency: w.concurrency ?? null,
        inFlight: w.inFlight,
        alive: w.alive,
        startedAt: w.startedAt.getTime(),
        lastHeartbeat: w.lastHeartbeatAt.getTime()
      })),
      throughput: {
        t: s.total.minutes.map((m) => Math.floor(m.minute.getTime() / 1000)),
        succeeded: s.total.minutes.map((m) => m.succeeded),
        failed: s.total.minutes.map((m) => m.failed)
      },
      notes: [
        `Waiting, delayed and held are counted up to ${s.countCap.toLocaleString("en-US")} ("${
          s.countCap.toLocaleString("en-US")
        }+" beyond); "~" marks a planner estimate. Running is exact.`,
        "Succeeded and failed come from counters that each process flushes every few seconds: exact up to each process's last flush."
      ]
    }
    return stats
  }).pipe(Effect.mapError(toBackendError)),

  listJobs: (query: JobsQuery) =>
    admin.listJobs({
      state: query.state as Admin.JobState | undefined,
      definition: query.definition,
      channel: query.channel,
      jobGroup: query.group,
      cursor: query.cursor,
      limit: query.limit
    }).pipe(
      Effect.map((page) => ({ jobs: page.jobs.map(row), next: page.next ?? null })),
      Effect.mapError(toBackendError)
    ),

  getJob: (id: string) =>
    admin.getJob(id).pipe(
      Effect.map(detail),
      Effect.catchTag("JobNotFound", () => Effect.succeed(null)),
      Effect.mapError(toBackendError)
    ),

  act: (action: Action): Effect.Effect<string, BackendError> => {
    switch (action._tag) {
      case "retry":
        return admin.retryJob(action.id).pipe(Effect.map((r) => describe("retried", r)), Effect.mapError(toBackendError))
      case "cancel":
        return admin.cancelJob(action.id).pipe(Effect.map((r) => describe("cancelled", r)), Effect.mapError(toBackendError))
      case "delete":
        return admin.deleteJob(action.id).pipe(Effect.map((r) => describe("deleted", r)), Effect.mapError(toBackendError))
      case "runNow":
        return admin.runJobNow(action.id).pipe(Effect.map((r) => describe("made due now", r)), Effect.mapError(toBackendError))
      case "retryFailed":
        return admin.retryJobs({
          state: "failed",
          definition: action.definition,
          channel: action.channel,
          jobGroup: action.group,
          limit: retryBatch
        }).pipe(
          Effect.map((r) => `${describe("retried", r)}${r.more ? ` (more match: retry again for the next ${retryBatch})` : ""}`),
          Effect.mapError(toBackendError)
        )
      case "pause":
        return admin.pauseChannel(action.channel).pipe(
          Effect.map(() => `paused channel ${action.channel}`),
          Effect.mapError(toBackendError)
        )
      case "resume":
        return admin.resumeChannel(action.channel).pipe(
          Effect.map(() => `resumed channel ${action.channel}`),
          Effect.mapError(toBackendError)
        )
    }
  }
})
