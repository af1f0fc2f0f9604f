/**
 * Events as the engine builds them: plain field objects (`{ _tag, timestamp, ... }`), turned into the
 * public event classes in one place, where they are published, and only when someone subscribes.
 */
import * as CuckmqEvent from "../CuckmqEvent.js"

/** The plain fields of one event, `_tag` included (what `publish` call sites build). */
type FieldsOf<E> = { readonly [K in keyof E]: E[K] }

/** The plain fields of any event: the argument of `publish`. */
export type EventFields = { readonly [T in CuckmqEvent.Tag]: FieldsOf<Extract<CuckmqEvent.CuckmqEvent, { readonly _tag: T }>> }[
  CuckmqEvent.Tag
]

const prototypes = Object.fromEntries(
  Object.entries(CuckmqEvent.CuckmqEvent.cases).map(([tag, cls]) => [tag, (cls as { readonly prototype: object }).prototype])
) as Readonly<Record<CuckmqEvent.Tag, object>>

/**
 * The event class instance for `fields`, which come from the engine and are typed. A `Schema.Class`
 * instance is its class's prototype with the fields as own properties (what its constructor builds after
 * parsing them): that is built here directly, because the constructor's parse costs about 3 µs an event
 * (some 13 µs of a job's 45 µs at full speed, with a subscriber), against 0.1 µs for this.
 * test/events.test.ts checks that both give the same value, for every event class.
 */
export const fromFields = (fields: EventFields): CuckmqEvent.CuckmqEvent =>
  Object.assign(Object.create(prototypes[fields._tag]), fields)
