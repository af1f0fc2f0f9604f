/**
 * Internals of job definitions shared by JobDefinition.ts and Cuckmq.ts (kept apart to avoid an import cycle).
 */
import { Cron, Effect, type Exit, Result, type Schema } from "effect"
import { InvalidJobDefinition } from "../CuckmqError.js"
import type * as JobStore from "../JobStore.js"
import * as TimeOption from "./duration.js"

export const TypeId = "~@cuckmq/effect/JobDefinition" as const
export const InternalsId = "~@cuckmq/effect/JobDefinition/internals" as const

/** Defaults of a definition's settings. */
export const defaults = {
  channel: "_default",
  numAttempts: 1,
  timeoutSecs: 60,
  priority: 0,
  groupConcurrency: 1
} as const

/** What a definition carries besides its public fields. */
export interface Internals {
  readonly [InternalsId]: {
    /** Synchronous: the payload Schemas need no services, and decoding is pure. */
    readonly decode: (json: unknown) => Exit.Exit<unknown, Schema.SchemaError>
    /** The `success` Schema's JSON encoding of a handler's value (undefined: no `success` Schema). */
    readonly encodeResult: ((value: unknown) => Exit.Exit<unknown, Schema.SchemaError>) | undefined
    /** The `success` Schema's decoding of a stored result. */
    readonly decodeResult: ((json: unknown) => Exit.Exit<unknown, Schema.SchemaError>) | undefined
    readonly repeatSecsAndCronBoth: boolean
    /** Why the time options (`timeout`/`timeoutSecs`, `repeatEvery`/`repeatSecs`) cannot be used, if they cannot. */
    readonly timeProblem: string | undefined
    /** `groupRateLimit` as the store takes it, resolved when the definition was made (or why it cannot be). */
    readonly groupRateLimit: Result.Result<JobStore.RateLimit, string> | undefined
    /** `timeLimit` in seconds (undefined: none), resolved when the definition was made. */
    readonly timeLimitSecs: number | undefined
    /** Why the attempt options (`timeLimit`, `maxSnoozes`, `retry`) cannot be used, if they cannot. */
    readonly attemptProblem: string | undefined
  }
}

/** The public fields validate reads (structural, to avoid importing JobDefinition). */
export interface DefinitionLike {
  readonly name: string
  readonly channel: string
  readonly numAttempts: number
  readonly timeoutSecs: number
  readonly repeat: JobStore.Repeat | undefined
  readonly priority: number
  readonly groupConcurrency: number
}

export const internals = (definition: DefinitionLike): Internals[typeof InternalsId] =>
  (definition as unknown as Internals)[InternalsId]

/** The longest definition or channel name. */
export const maxNameLength = 200

/** The longest job group name (a primary key: PostgreSQL's index entries are limited to about 2,700 bytes). */
export const maxGroupLength = 500

/** A lone UTF-16 surrogate: not a character, so not storable as text (PostgreSQL's UTF-8 has no encoding). */
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * Why `text` cannot be stored as PostgreSQL text (a NUL character, or a lone surrogate, which the driver
 * would silently turn into U+FFFD), or undefined when it can.
 */
export const unstorableText = (text: string): string | undefined =>
  text.includes("\u0000")
    ? "contains a NUL character (\\u0000), which PostgreSQL cannot store"
    : loneSurrogate.test(text)
    ? "contains a lone UTF-16 surrogate (half of a character), which PostgreSQL cannot store"
    : undefined

/** Checks a name-like setting: a non-empty string of at most `max` characters that PostgreSQL can store. */
export const checkName = (what: string, value: unknown, max: number): string | undefined => {
  if (typeof value !== "string" || value.length === 0 || value.length > max) {
    return `${what} must be a non-empty string of at most ${max} characters`
  }
  const why = unstorableText(value)
  return why === undefined ? undefined : `${what} ${why}`
}

/** The bounds of the flow-control settings (checked on both backends before the store is called). */
export const bounds = {
  /** Priorities are integers in [-1000, 1000]: higher is claimed first. */
  minPriority: -1000,
  maxPriority: 1000,
  /** A group's concurrency: an integer in [1, 1,000,000]. */
  maxConcurrency: 1_000_000,
  /** A rate limit's `limit`: an integer in [1, 1,000,000,000]. */
  maxRateLimit: 1_000_000_000,
  /** A rate limit's period: at least 1 ms, at most 1 day (a window longer than that is a pause). */
  minRatePeriodSecs: 0.001,
  maxRatePeriodSecs: 24 * 60 * 60
} as const

const isIntegerIn = (value: unknown, min: number, max: number): value is number =>
  typeof value === "number" && Number.isInteger(value) && value >= min && value <= max

/** Checks a priority (`what` names the option in the message), or undefined when it is valid. */
export const checkPriority = (what: string, value: unknown): string | undefined =>
  isIntegerIn(value, bounds.minPriority, bounds.maxPriority)
    ? undefined
    : `${what} must be an integer in [${bounds.minPriority}, ${bounds.maxPriority}] (higher is claimed first), got ${
      String(value)
    }`

/** Checks a group concurrency, or undefined when it is valid. */
export const checkConcurrency = (what: string, value: unknown): string | undefined =>
  isIntegerIn(value, 1, bounds.maxConcurrency)
    ? undefined
    : `${what} must be an integer in [1, ${bounds.maxConcurrency.toLocaleString("en-US")}], got ${String(value)}`

/**
 * Resolves a rate limit given as `{ limit, period }` (`period` a `Duration.Input`, read as the other time
 * options are: see internal/duration.ts) into the store's `{ limit, periodSecs }`, or explains why it cannot be
 * used. `what` names the option in the message (`"groupRateLimit"`, `"rateLimit"`).
 */
export const resolveRateLimit = (what: string, input: unknown): Result.Result<JobStore.RateLimit, string> => {
  if (typeof input !== "object" || input === null) {
    return Result.fail(`${what} must be { limit, period } (or null to remove it), got ${String(input)}`)
  }
  const { limit, period } = input as { readonly limit?: unknown; readonly period?: unknown }
  if (!isIntegerIn(limit, 1, bounds.maxRateLimit)) {
    return Result.fail(
      `${what}.limit must be an integer in [1, ${bounds.maxRateLimit.toLocaleString("en-US")}], got ${String(limit)}`
    )
  }
  if (period === undefined) {
    return Result.fail(`${what}.period is required: a Duration.Input such as "1 second" or Duration.minutes(1)`)
  }
  const resolved = TimeOption.resolve(
    { name: `${what}.period`, secsName: `${what}.periodSecs`, min: bounds.minRatePeriodSecs, max: bounds.maxRatePeriodSecs },
    period,
    undefined,
    0
  )
  return Result.isSuccess(resolved)
    ? Result.succeed({ limit, periodSecs: resolved.success.secs })
    : Result.fail(resolved.failure)
}

/** Checks a definition's settings and turns them into the stored record. */
export const validate = (
  definition: DefinitionLike
): Effect.Effect<JobStore.DefinitionRecord, InvalidJobDefinition> => {
  const name = definition.name
  const fail = (message: string) =>
    Effect.fail(new InvalidJobDefinition({ definitionName: String(name), message: `Job definition ${JSON.stringify(name)}: ${message}` }))
  const badName = checkName("the name", name, maxNameLength) ?? checkName("the channel", definition.channel, maxNameLength)
  if (badName !== undefined) return fail(badName)
  if (!Number.isInteger(definition.numAttempts) || definition.numAttempts < 1) {
    return fail(`numAttempts must be an integer >= 1, got ${String(definition.numAttempts)}`)
  }
  // the time options in both forms were resolved and checked when the definition was made (internal/duration.ts)
  const { timeProblem, repeatSecsAndCronBoth } = internals(definition)
  if (timeProblem !== undefined) return fail(timeProblem)
  if (repeatSecsAndCronBoth) {
    return fail("give repeatEvery (or repeatSecs) or cron, not both")
  }
  const flow = checkPriority("priority", definition.priority) ??
    checkConcurrency("groupConcurrency", definition.groupConcurrency)
  if (flow !== undefined) return fail(flow)
  const groupRateLimit = internals(definition).groupRateLimit
  if (groupRateLimit !== undefined && Result.isFailure(groupRateLimit)) return fail(groupRateLimit.failure)
  const attemptProblem = internals(definition).attemptProblem
  if (attemptProblem !== undefined) return fail(attemptProblem)
  const repeat = definition.repeat
  if (repeat?._tag === "Cron") {
    const parsed = Cron.parse(repeat.expression, repeat.tz ?? "UTC")
    if (Result.isFailure(parsed)) {
      return fail(`invalid cron ${JSON.stringify(repeat.expression)} (time zone ${repeat.tz ?? "UTC"}): ${parsed.failure.message}`)
    }
  }
  return Effect.succeed({
    name,
    channel: definition.channel,
    numAttempts: definition.numAttempts,
    timeoutSecs: definition.timeoutSecs,
    repeat,
    priority: definition.priority,
    groupConcurrency: definition.groupConcurrency,
    groupRateLimit: groupRateLimit === undefined ? undefined : groupRateLimit.success
  })
}

/**
 * The longest delay, timeout or repeat, in seconds: 100 years (PostgreSQL's timestamps end in 294276 AD, its
 * intervals at about 292,000 years; no job queue needs either).
 */
export const maxSecs = 100 * 365.25 * 24 * 60 * 60

/**
 * First due times at `now` (the store's clock): an interval is due at once when new, and one interval from
 * now when its interval changed; a cron schedule at its next match either way.
 */
export const firstDue: JobStore.FirstDue = (repeat, now) => {
  if (repeat._tag === "Every") return { fresh: now, changed: new Date(now.getTime() + repeat.secs * 1000) }
  const next = Cron.next(Cron.parseUnsafe(repeat.expression, repeat.tz ?? "UTC"), now)
  return { fresh: next, changed: next }
}

/**
 * The next due time of a repeat after scheduling `due`: the first one strictly after `now` (so due times
 * missed while no orchestrator ran are coalesced into one run). `Every` keeps its phase (`due + k * secs`);
 * cron takes the next match in its time zone.
 */
export const advance: JobStore.Advance = (repeat, due, now) => {
  if (repeat._tag === "Every") {
    const step = repeat.secs * 1000
    const k = Math.max(1, Math.floor((now.getTime() - due.getTime()) / step) + 1)
    return new Date(due.getTime() + k * step)
  }
  const cron = Cron.parseUnsafe(repeat.expression, repeat.tz ?? "UTC")
  return Cron.next(cron, now.getTime() >= due.getTime() ? now : due)
}

/**
 * An encoded payload as the JSON text the stores keep, or why it cannot be kept: a value that is not JSON
 * (a `bigint`, a cycle, `undefined`), or a string (value or key) that PostgreSQL's `jsonb` cannot store: one
 * with a NUL character or a lone surrogate.
 */
export const payloadJson = (payload: unknown): Result.Result<string, string> => {
  let json: string | undefined
  try {
    json = JSON.stringify(payload)
  } catch (error) {
    return Result.fail(`it cannot be written as JSON (${error instanceof Error ? error.message : String(error)})`)
  }
  if (json === undefined) return Result.fail("it encodes to no JSON value (undefined or a function)")
  // JSON escapes NUL as \u0000 and a lone surrogate as \udXXX (a well-formed pair is written as is): only
  // then is the payload walked, to name the place (and to tell them from strings that merely spell a
  // backslash and "u0000")
  const bad = json.includes("\\u0000") || json.includes("\\ud") ? findUnstorable(payload) : undefined
  return bad === undefined ? Result.succeed(json) : Result.fail(bad)
}

/** The place and reason of the first string (value or key) in `value` that PostgreSQL cannot store. */
const findUnstorable = (value: unknown, path = "", depth = 0): string | undefined => {
  if (typeof value === "string") {
    const why = unstorableText(value)
    return why === undefined ? undefined : `${path === "" ? "the payload" : `the value at ${path}`} ${why}`
  }
  if (typeof value !== "object" || value === null || depth > 64) return undefined
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findUnstorable(value[i], `${path}[${i}]`, depth + 1)
      if (found !== undefined) return found
    }
    return undefined
  }
  for (const key in value) {
    const at = path === "" ? key : `${path}.${key}`
    const why = unstorableText(key)
    if (why !== undefined) return `the key ${JSON.stringify(at)} ${why}`
    const found = findUnstorable((value as Record<string, unknown>)[key], at, depth + 1)
    if (found !== undefined) return found
  }
  return undefined
}
