/**
 * The completer: settlements queue here and two writer fibers write them in batches (one store call per
 * registration per batch), so that while one batch's commit waits for its fsync the next is on its way. A
 * failed write is retried with backoff (the settlements are fenced by their claim tokens, so writing one
 * twice changes nothing); after three failures the recorded errors are reduced to a plain message, so that
 * an error the database cannot store never blocks the settlements behind it.
 *
 * A job stays in `owned` until a final settlement for it is written; a `Started` mark that meets the job's
 * final settlement in one batch is dropped (the final one records the start too).
 */
import { Effect, Queue } from "effect"
import type { StorageError } from "../../CuckmqError.js"
import type * as JobStore from "../../JobStore.js"
import { backoffMs, type Claimed, type Env } from "./state.js"

interface Pending {
  readonly workerId: string
  readonly settlement: JobStore.Settlement
}

export const make = (env: Env) =>
  Effect.gen(function*() {
    const { state, store } = env
    const queue = yield* Queue.unbounded<Pending>()

    /** Queues a settlement of a claimed job (under the registration that claimed it). */
    const submit = (
      c: Claimed,
      outcome: JobStore.Settlement["outcome"],
      error?: unknown,
      delaySecs?: number,
      result?: unknown,
      ran?: boolean
    ) => {
      state.unsettled++
      // one object shape for every settlement (the store reads them in tight loops)
      const settlement: JobStore.Settlement = {
        id: c.job.id,
        claim: c.job.claim,
        outcome,
        error,
        delaySecs,
        result,
        ran,
        grouped: c.job.jobGroup !== undefined
      }
      Queue.offerUnsafe(queue, { workerId: c.claimedBy, settlement })
    }

    const write = (batch: ReadonlyArray<Pending>, withMarks: boolean): Effect.Effect<void, StorageError> => {
      // the common case: one registration, no Started marks to merge
      const workerId = batch[0]!.workerId
      if (!withMarks && batch.every((p) => p.workerId === workerId)) {
        return store.settle(workerId, batch.map((p) => p.settlement))
      }
      // per registration, one entry per job: a final outcome wins over a Started mark of the same claim
      const byWorker = new Map<string, Map<string, JobStore.Settlement>>()
      for (const p of batch) {
        let jobs = byWorker.get(p.workerId)
        if (jobs === undefined) byWorker.set(p.workerId, jobs = new Map())
        const earlier = jobs.get(p.settlement.id)
        if (earlier !== undefined && p.settlement.outcome === "Started" && earlier.claim === p.settlement.claim) continue
        jobs.set(p.settlement.id, p.settlement)
      }
      return Effect.forEach(byWorker, ([id, jobs]) => store.settle(id, Array.from(jobs.values())), { discard: true })
    }

    /** A writer: takes whatever settlements are queued and writes them, retrying until it succeeds. */
    const loop = Effect.gen(function*() {
      while (true) {
        let batch: ReadonlyArray<Pending> = yield* Queue.takeAll(queue)
        const withMarks = batch.some((p) => p.settlement.outcome === "Started")
        let failures = 0
        while (true) {
          const result = yield* Effect.result(write(batch, withMarks))
          if (result._tag === "Success") break
          failures++
          yield* Effect.logWarning("cuckmq: settling jobs failed; retrying", result.failure.message)
          if (failures === 3) {
            batch = batch.map((p) =>
              p.settlement.error === undefined ? p : {
                ...p,
                settlement: { ...p.settlement, error: { message: "the job failed; its error could not be stored" } }
              }
            )
          }
          yield* Effect.sleep(backoffMs(failures))
        }
        for (const p of batch) {
          const { claim, id, outcome } = p.settlement
          if (outcome !== "Started" && state.owned.get(id) === claim) state.owned.delete(id)
        }
        state.unsettled -= batch.length
      }
    })

    return { submit, loop }
  })

export type Completer = Effect.Success<ReturnType<typeof make>>
