/** graphile-worker with its batching preset: a local queue of 100 and batched completions/failures. */
import { makeGraphileSystem } from "./graphile-worker.js"

export const system = makeGraphileSystem({
  name: "graphile-worker-batched",
  label: "graphile-worker (batched)",
  presetWorker: { localQueue: { size: 100 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 },
  describePreset:
    "`preset: { worker: { localQueue: { size: 100 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } }` (localQueue ttl 5 min and no refetchDelay, both defaults)"
})
