/**
 * Time options in their two forms: the preferred `Duration.Input` form (`timeout: "30 seconds"`) and the
 * seed's seconds form (`timeoutSecs: 30`). Both resolve to seconds (what the stores and loops use) and are
 * checked against the same bounds, with a message that names the form the user gave.
 */
import { Config, Duration, Result } from "effect"
import { maxSecs } from "./definition.js"

/** One time option: its two names and its bounds, in seconds. */
export interface Spec {
  /** The Duration form's name, e.g. `"timeout"`. */
  readonly name: string
  /** The seconds form's name, e.g. `"timeoutSecs"`. */
  readonly secsName: string
  /** The least value allowed, in seconds. */
  readonly min: number
  /** Whether `min` itself is refused (`> min` rather than `>= min`). Defaults to false. */
  readonly minExclusive?: boolean | undefined
  /** The greatest value allowed, in seconds. Defaults to 100 years. */
  readonly max?: number | undefined
}

/** A time option resolved to seconds, with the name of the form it was given in (for later messages). */
export interface Resolved {
  readonly secs: number
  /** The name the user gave (the Duration form's name when neither was given). */
  readonly name: string
  /** The value as the user wrote it, for messages. */
  readonly shown: string
}

const showInput = (input: unknown): string =>
  Duration.isDuration(input)
    ? Duration.format(input)
    : typeof input === "string"
    ? JSON.stringify(input)
    : typeof input === "number"
    ? `${input} (milliseconds)`
    : (() => {
      try {
        return JSON.stringify(input) ?? String(input)
      } catch {
        return String(input)
      }
    })()

const showSecs = (secs: number) => Duration.format(Duration.seconds(secs))

/** Whether an option was given (an explicit `undefined` counts as not given). */
const given = (value: unknown) => value !== undefined

/**
 * Resolves one time option given in either form (or neither: `fallback` seconds), or explains why it cannot
 * be used: both forms at once, a value that is not a `Duration.Input` (a plain number in the Duration form is
 * milliseconds, as everywhere in Effect; `NaN` is refused), or a value out of bounds.
 */
export const resolve = (
  spec: Spec,
  duration: unknown,
  secs: unknown,
  fallback: number
): Result.Result<Resolved, string> => {
  const max = spec.max ?? maxSecs
  const range = `${spec.minExclusive ? ">" : ">="} ${spec.min}`
  if (given(duration) && given(secs)) {
    return Result.fail(`give ${spec.name} or ${spec.secsName}, not both (${spec.name}, a Duration, is preferred)`)
  }
  if (given(duration)) {
    const decoded = typeof duration === "number" && Number.isNaN(duration)
      ? undefined
      : Duration.fromInput(duration as Duration.Input)
    const value = decoded?._tag === "Some" ? Duration.toSeconds(decoded.value) : Number.NaN
    const shown = showInput(duration)
    if (Number.isNaN(value)) {
      return Result.fail(
        `${spec.name} must be a Duration.Input such as "30 seconds" or Duration.minutes(5), got ${shown}`
      )
    }
    if (!inRange(spec, value, max)) {
      return Result.fail(
        `${spec.name} must be a finite Duration ${range} seconds and at most ${
          max === maxSecs ? "100 years" : showSecs(max)
        }, got ${shown}`
      )
    }
    return Result.succeed({ secs: value, name: spec.name, shown })
  }
  if (given(secs)) {
    if (typeof secs !== "number" || !inRange(spec, secs, max)) {
      return Result.fail(
        `${spec.secsName} must be a finite number ${range} and at most ${max}${
          max === maxSecs ? " (100 years)" : ""
        }, got ${String(secs)}`
      )
    }
    return Result.succeed({ secs, name: spec.secsName, shown: String(secs) })
  }
  return Result.succeed({ secs: fallback, name: spec.name, shown: showSecs(fallback) })
}

const inRange = (spec: Spec, value: number, max: number) =>
  Number.isFinite(value) && (spec.minExclusive ? value > spec.min : value >= spec.min) && value <= max

/**
 * Resolves a record of time options at once: each key's resolution or its message. Used where all problems
 * are reported together.
 */
export const resolveAll = <K extends string>(
  specs: Record<K, Spec & { readonly duration: unknown; readonly secs: unknown; readonly fallback: number }>
): { readonly values: Record<K, Resolved>; readonly problems: ReadonlyArray<string> } => {
  const values = {} as Record<K, Resolved>
  const problems: Array<string> = []
  for (const key of Object.keys(specs) as Array<K>) {
    const spec = specs[key]
    const result = resolve(spec, spec.duration, spec.secs, spec.fallback)
    if (Result.isFailure(result)) problems.push(result.failure)
    else values[key] = result.success
  }
  return { values, problems }
}

/**
 * The `Config` of options given as a `Config.Wrap` (one Config, or a record of Configs whose keys with an
 * `undefined` value are dropped first, so that `Config.unwrap` sees only Configs): what every `layerConfig` reads.
 */
export const readConfig = <A>(options: Config.Wrap<A>): Config.Config<A> =>
  Config.unwrap<A>(
    Config.isConfig(options)
      ? options
      : Object.fromEntries(Object.entries(options as object).filter(([, value]) => value !== undefined)) as Config.Wrap<A>
  )

/** `jobPostFinalizeDelete` / `jobPostFinalizeDeleteSecs` (Cuckmq.layer, read by the test layer too). */
export const jobPostFinalizeDeleteSpec: Spec = { name: "jobPostFinalizeDelete", secsName: "jobPostFinalizeDeleteSecs", min: 0 }
