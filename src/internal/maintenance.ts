/**
 * Maintenance shared by workers (on every heartbeat) and orchestrators (on every cycle): rescue the jobs
 * and group locks of dead workers. Safe to run from any number of processes at once (every row it touches
 * is taken with SKIP LOCKED).
 */
import { Effect } from "effect"
import type { Cuckmq } from "../Cuckmq.js"
import type { StorageError } from "../CuckmqError.js"

export const rescue = (cuckmq: Cuckmq["Service"]): Effect.Effect<number, StorageError> =>
  Effect.map(cuckmq.store.rescue(cuckmq.settings.jobGroupUnlockSecs), ({ groups, jobs }) => {
    const timestamp = new Date()
    for (const job of jobs) {
      cuckmq.publish(() => ({
        _tag: "JOB_RESCUE",
        timestamp,
        jobId: job.jobId,
        definitionName: job.definitionName,
        workerId: job.workerId,
        finalized: job.finalized
      }))
    }
    for (const group of groups) {
      cuckmq.publish(() => ({
        _tag: "JOB_GROUP_UNLOCK",
        timestamp,
        jobGroup: group.jobGroup,
        jobId: group.jobId,
        reason: group.reason
      }))
    }
    return jobs.length + groups.length
  })
