/** Every system under test, in table order (cuckmq first: the ratios are to it). */
import { system as bareLoop } from "./bare-loop.js"
import { system as bullmq } from "./bullmq.js"
import { system as bullmqPg } from "./bullmq-pg.js"
import { baseline as cuckmqBaseline, noArchive as cuckmqNoArchive, system as cuckmq } from "./cuckmq.js"
import { system as effectPersistedQueue } from "./effect-persisted-queue.js"
import { system as graphileWorker } from "./graphile-worker.js"
import { system as graphileWorkerBatched } from "./graphile-worker-batched.js"
import { system as pgBoss } from "./pg-boss.js"
import type { SystemDefinition } from "./types.js"

export const systems: ReadonlyArray<SystemDefinition> = [
  cuckmq,
  cuckmqBaseline,
  cuckmqNoArchive,
  bareLoop,
  graphileWorker,
  graphileWorkerBatched,
  pgBoss,
  bullmq,
  bullmqPg,
  effectPersistedQueue
]

export const byName = (name: string): SystemDefinition => {
  const found = systems.find((s) => s.name === name)
  if (!found) throw new Error(`unknown system ${JSON.stringify(name)}; known: ${systems.map((s) => s.name).join(", ")}`)
  return found
}
