/**
 * Unique jobs, the backend-independent part: a definition's `unique` options resolved to the rule the stores
 * apply (or why they cannot be used: reported by `validate` as an `InvalidJobDefinition`), and the key of
 * one enqueued job (or why it is not one: an `InvalidEnqueueOptions`).
 */
import { Result } from "effect"
import type * as JobStore from "../JobStore.js"
import * as TimeOption from "./duration.js"

/** The states a job can hold a key in. */
export const uniqueStates: ReadonlyArray<JobStore.UniqueState> = ["waiting", "running", "succeeded", "failed"]

const conflicts: ReadonlyArray<JobStore.UniqueConflict> = ["keep", "replace", "debounce"]

/** The longest key, in UTF-8 bytes (PostgreSQL's btree keeps index rows under 2,704 bytes). */
export const maxKeyBytes = 1000

const encoder = new TextEncoder()

const periodSpec: TimeOption.Spec = { name: "unique.period", secsName: "unique.periodSecs", min: 0, minExclusive: true }

/** The options as `JobDefinition.make` takes them (the key function aside). */
export interface Options {
  readonly key: unknown
  readonly period?: unknown
  readonly states?: ReadonlyArray<unknown> | undefined
  readonly onConflict?: unknown
}

/** A definition's rule and key function, as enqueue uses them. */
export interface UniqueOf<A> {
  readonly rule: JobStore.UniqueRule
  readonly key: (payload: A) => string
}

/** Resolves `unique` options to the stores' rule, or says why they cannot be used. */
export const resolve = (options: Options): Result.Result<JobStore.UniqueRule, string> => {
  if (typeof options !== "object" || options === null) return Result.fail("unique must be an object with a key function")
  if (typeof options.key !== "function") {
    return Result.fail(`unique.key must be a function from the payload to a string, got ${String(options.key)}`)
  }
  let periodSecs: number | undefined
  if (options.period !== undefined) {
    const period = TimeOption.resolve(periodSpec, options.period, undefined, 0)
    if (Result.isFailure(period)) return Result.fail(period.failure)
    periodSecs = period.success.secs
  }
  const states = options.states ?? (periodSecs === undefined
    ? ["waiting", "running"]
    : ["waiting", "running", "succeeded"])
  if (!Array.isArray(states) || states.length === 0) {
    return Result.fail(`unique.states must be a non-empty array of ${uniqueStates.map((s) => JSON.stringify(s)).join(", ")}`)
  }
  for (const state of states) {
    if (!uniqueStates.includes(state as JobStore.UniqueState)) {
      return Result.fail(
        `unique.states: ${JSON.stringify(state)} is not a state; expected ${uniqueStates.map((s) => JSON.stringify(s)).join(", ")}`
      )
    }
  }
  const onConflict = options.onConflict ?? "keep"
  if (!conflicts.includes(onConflict as JobStore.UniqueConflict)) {
    return Result.fail(
      `unique.onConflict must be one of ${conflicts.map((s) => JSON.stringify(s)).join(", ")}, got ${JSON.stringify(onConflict)}`
    )
  }
  return Result.succeed({
    states: Array.from(new Set(states as ReadonlyArray<JobStore.UniqueState>)),
    periodSecs,
    onConflict: onConflict as JobStore.UniqueConflict
  })
}

/** The key of one job, or why it cannot be one (the key function threw or returned no usable string). */
export const keyOf = <A>(unique: UniqueOf<A>, payload: A): Result.Result<string, string> => {
  let key: unknown
  try {
    key = unique.key(payload)
  } catch (error) {
    return Result.fail(`unique.key threw: ${error instanceof Error ? error.message : String(error)}`)
  }
  if (typeof key !== "string" || key.length === 0) {
    return Result.fail(`unique.key must return a non-empty string, got ${typeof key === "string" ? '""' : String(key)}`)
  }
  const bytes = encoder.encode(key).length
  if (bytes > maxKeyBytes) {
    return Result.fail(`unique.key returned ${bytes} bytes (UTF-8); at most ${maxKeyBytes} are allowed`)
  }
  // eslint-disable-next-line no-control-regex
  if (/\u0000/.test(key)) return Result.fail("unique.key must not contain NUL characters (PostgreSQL text cannot)")
  return Result.succeed(key)
}

/** The jobs of one call with one key, folded into the job its key gets, and their places in the call. */
export interface Candidate {
  readonly job: JobStore.NewJob
  readonly indices: ReadonlyArray<number>
}

/**
 * Folds the jobs of one call by key, in order, as consecutive enqueues would be applied: `keep` keeps the
 * first job, `replace` takes the last one's payload and options (the first's group), `debounce` the first
 * one with the last delay. Keys in first-seen order.
 */
export const fold = (
  rule: JobStore.UniqueRule,
  jobs: ReadonlyArray<JobStore.NewJob>,
  keys: ReadonlyArray<string>
): Map<string, Candidate> => {
  const candidates = new Map<string, { job: JobStore.NewJob; readonly indices: Array<number> }>()
  keys.forEach((key, i) => {
    const job = jobs[i]!
    const c = candidates.get(key)
    if (c === undefined) candidates.set(key, { job, indices: [i] })
    else {
      c.indices.push(i)
      if (rule.onConflict === "replace") c.job = { ...job, jobGroup: c.job.jobGroup }
      else if (rule.onConflict === "debounce") c.job = { ...c.job, delaySecs: job.delaySecs }
    }
  })
  return candidates
}

/**
 * Every job's outcome, in call order, from what its key's first job got: later jobs of a key met the first
 * as a duplicate (kept, or replaced/debounced it when it is changeable).
 */
export const outcomes = (
  rule: JobStore.UniqueRule,
  candidates: ReadonlyMap<string, Candidate>,
  settled: ReadonlyMap<string, JobStore.UniqueOutcome>,
  size: number
): ReadonlyArray<JobStore.UniqueOutcome> => {
  const out: Array<JobStore.UniqueOutcome> = new Array(size)
  const later = rule.onConflict === "replace" ? "replaced" : "debounced"
  for (const [key, c] of candidates) {
    const first = settled.get(key)!
    c.indices.forEach((index, k) => {
      out[index] = k === 0
        ? first
        : rule.onConflict === "keep" || first.outcome === "kept"
        ? { id: first.id, outcome: "kept" }
        : { id: first.id, outcome: later }
    })
  }
  return out
}
