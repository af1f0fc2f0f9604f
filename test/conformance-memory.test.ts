/** The storage contract on the in-memory backend, time driven by TestClock. */
import { describe, layer } from "@effect/vitest"
import { Duration, Layer } from "effect"
import { TestClock } from "effect/testing"
import * as MemoryStore from "../src/internal/memory/store.js"
import { JobStore } from "../src/JobStore.js"
import { conformance } from "./support/conformance.js"

const MemoryLive = Layer.effect(JobStore, MemoryStore.make({ keepFinalized: true }))

describe("JobStore conformance: memory", () => {
  layer(MemoryLive)((it) => {
    conformance(it, (secs) => TestClock.adjust(Duration.seconds(secs)), "mem")
  })
})
