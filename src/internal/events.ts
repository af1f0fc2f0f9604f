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

type AnyEventClass = new(fields: EventFields, options: { readonly disableChecks: boolean }) => CuckmqEvent.CuckmqEvent

const classes = CuckmqEvent.CuckmqEvent.cases as unknown as Readonly<Record<CuckmqEvent.Tag, AnyEventClass>>

/**
 * The event class instance for `fields`. The fields come from the engine, typed: their types are still
 * checked by the class constructor, its refinements (integer attempts) are not.
 */
export const fromFields = (fields: EventFields): CuckmqEvent.CuckmqEvent =>
  new classes[fields._tag](fields, { disableChecks: true })
