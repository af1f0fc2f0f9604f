/**
 * Internals of job definitions shared by JobDefinition.ts and Cuckmq.ts (kept apart to avoid an import cycle).
 */
import { Cron, Effect, type Exit, Result, type Schema } from "effect"
import { InvalidJobDefinition } from "../CuckmqError.js"
import type * as JobStore from "../JobStore.js"

export const TypeId = "~@cuckmq/effect/JobDefinition" as const
export const InternalsId = "~@cuckmq/effect/JobDefinition/internals" as const

/** Defaults of a definition's settings. */
export const defaults = {
  channel: "_default",
  numAttempts: 1,
  timeoutSecs: 60
} as const

/** What a definition carries besides its public fields. */
export interface Internals {
  readonly [InternalsId]: {
    /** Synchronous: the payload Schemas need no services, and decoding is pure. */
    readonly decode: (json: unknown) => Exit.Exit<unknown, Schema.SchemaError>
    readonly repeatSecsAndCronBoth: boolean
  }
}

/** The public fields validate reads (structural, to avoid importing JobDefinition). */
export interface DefinitionLike {
  readonly name: string
  readonly channel: string
  readonly numAttempts: number
  readonly timeoutSecs: number
  readonly repeat: JobStore.Repeat | undefined
}

export const internals = (definition: DefinitionLike): Internals[typeof InternalsId] =>
  (definition as unknown as Internals)[InternalsId]

const maxNameLength = 200

/** Checks a definition's settings and turns them into the stored record. */
export const validate = (
  definition: DefinitionLike,
  nowMillis: number
): Effect.Effect<JobStore.DefinitionRecord, InvalidJobDefinition> => {
  const name = definition.name
  const fail = (message: string) =>
    Effect.fail(new InvalidJobDefinition({ definitionName: String(name), message: `Job definition ${JSON.stringify(name)}: ${message}` }))
  if (typeof name !== "string" || name.length === 0 || name.length > maxNameLength) {
    return fail(`the name must be a non-empty string of at most ${maxNameLength} characters`)
  }
  if (typeof definition.channel !== "string" || definition.channel.length === 0 || definition.channel.length > maxNameLength) {
    return fail(`the channel must be a non-empty string of at most ${maxNameLength} characters`)
  }
  if (!Number.isInteger(definition.numAttempts) || definition.numAttempts < 1) {
    return fail(`numAttempts must be an integer >= 1, got ${String(definition.numAttempts)}`)
  }
  if (typeof definition.timeoutSecs !== "number" || !Number.isFinite(definition.timeoutSecs) || definition.timeoutSecs < 0) {
    return fail(`timeoutSecs must be a finite number >= 0, got ${String(definition.timeoutSecs)}`)
  }
  if (internals(definition).repeatSecsAndCronBoth) {
    return fail("give repeatSecs or cron, not both")
  }
  const repeat = definition.repeat
  let firstDue: Date | undefined
  if (repeat?._tag === "Every") {
    if (typeof repeat.secs !== "number" || !Number.isFinite(repeat.secs) || repeat.secs <= 0) {
      return fail(`repeatSecs must be a finite number > 0, got ${String(repeat.secs)}`)
    }
  } else if (repeat?._tag === "Cron") {
    const parsed = Cron.parse(repeat.expression, repeat.tz ?? "UTC")
    if (Result.isFailure(parsed)) {
      return fail(`invalid cron ${JSON.stringify(repeat.expression)} (time zone ${repeat.tz ?? "UTC"}): ${parsed.failure.message}`)
    }
    firstDue = Cron.next(parsed.success, new Date(nowMillis))
  }
  return Effect.succeed({
    name,
    channel: definition.channel,
    numAttempts: definition.numAttempts,
    timeoutSecs: definition.timeoutSecs,
    repeat,
    firstDue
  })
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
 * (a `bigint`, a cycle, `undefined`), or a NUL character, which PostgreSQL's `jsonb` cannot store.
 */
export const payloadJson = (payload: unknown): Result.Result<string, string> => {
  let json: string | undefined
  try {
    json = JSON.stringify(payload)
  } catch (error) {
    return Result.fail(`it cannot be written as JSON (${error instanceof Error ? error.message : String(error)})`)
  }
  if (json === undefined) return Result.fail("it encodes to no JSON value (undefined or a function)")
  // JSON escapes NUL as \u0000: only then is the payload walked, to name the place (and to tell a real NUL
  // from a string that merely spells a backslash and "u0000")
  const nul = json.includes("\\u0000") ? findNul(payload) : undefined
  return nul === undefined
    ? Result.succeed(json)
    : Result.fail(`${nul} contains a NUL character (\\u0000), which PostgreSQL cannot store in jsonb`)
}

/** The place of the first string (value or key) in `value` that holds a NUL character, if any. */
const findNul = (value: unknown, path = "", depth = 0): string | undefined => {
  if (typeof value === "string") {
    return value.includes("\u0000") ? (path === "" ? "the payload" : `the value at ${path}`) : undefined
  }
  if (typeof value !== "object" || value === null || depth > 64) return undefined
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findNul(value[i], `${path}[${i}]`, depth + 1)
      if (found !== undefined) return found
    }
    return undefined
  }
  for (const key in value) {
    const at = path === "" ? key : `${path}.${key}`
    if (key.includes("\u0000")) return `the key ${JSON.stringify(at)}`
    const found = findNul((value as Record<string, unknown>)[key], at, depth + 1)
    if (found !== undefined) return found
  }
  return undefined
}
