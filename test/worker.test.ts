/** The worker suite (test/support/worker-suite.ts) on the run's database, directly. */
import { describe } from "@effect/vitest"
import { direct } from "./support/pg.js"
import { workerSuite } from "./support/worker-suite.js"

describe("Worker", () => {
  workerSuite(direct)
})
