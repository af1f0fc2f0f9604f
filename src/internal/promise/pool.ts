/**
 * How a `pg` `Pool` becomes the `@effect/sql-pg` client the core runs on.
 *
 * `@effect/sql-pg` 4 is its own wire-protocol driver: it has no constructor that wraps a `pg` pool (no
 * `fromPool`), and the core needs what only its client has (`LISTEN`, a pool of its own with generic plans,
 * a session connection for liveness). So the Promise API reads the pool's *connection settings* and opens
 * its own connections with them. The settings are resolved the way `pg` resolves them, by constructing (not
 * connecting) the pool's own `Client` class, so `connectionString`, the `PG*` environment variables and
 * `pg`'s defaults all apply as they do for the pool. The pool itself is never queried.
 */
import type { ConnectionOptions } from "node:tls"
import type { Duplex } from "node:stream"
import { Duration, Effect, Redacted } from "effect"
import type { PgClient } from "@effect/sql-pg"

/** The part of a `pg` `PoolConfig` / `ClientConfig` that is read (structural, so `pg` is not a dependency). */
export interface PoolOptions {
  readonly connectionString?: string | undefined
  readonly host?: string | undefined
  readonly port?: number | string | undefined
  readonly user?: string | undefined
  readonly database?: string | undefined
  readonly password?: string | (() => string | Promise<string>) | undefined
  readonly ssl?: boolean | ConnectionOptions | undefined
  readonly application_name?: string | undefined
  readonly options?: string | undefined
  readonly max?: number | undefined
  readonly idleTimeoutMillis?: number | null | undefined
  readonly connectionTimeoutMillis?: number | undefined
  readonly stream?: (() => Duplex) | unknown
}

/**
 * A `pg` `Pool`, structurally: what the Promise API reads from it. Any `pg.Pool` (8.x) is one.
 *
 * @since 0.1.0
 */
export interface PoolLike {
  readonly options: PoolOptions
}

interface ResolvedClient {
  readonly user?: string | null | undefined
  readonly database?: string | null | undefined
  readonly port?: number | string | null | undefined
  readonly host?: string | null | undefined
  readonly password?: string | (() => string | Promise<string>) | null | undefined
  readonly connectionParameters?: {
    readonly ssl?: boolean | ConnectionOptions | undefined
    readonly application_name?: string | undefined
    readonly options?: string | undefined
  }
}

/** The pool's settings as `pg` itself resolves them (connection string, `PG*` variables, defaults). */
const resolve = (pool: PoolLike): ResolvedClient => {
  const Client = (pool as { readonly Client?: new(options: PoolOptions) => ResolvedClient }).Client
  if (typeof Client === "function") {
    try {
      return new Client(pool.options) // constructing a pg Client does not connect
    } catch {
      // fall back to the raw options
    }
  }
  const o = pool.options
  return { ...o, connectionParameters: { ssl: o.ssl, application_name: o.application_name, options: o.options } }
}

/**
 * The `@effect/sql-pg` settings equivalent to `pool`'s; behind a transaction-mode pooler
 * (`transactionPooler`), unnamed statements only (named ones do not outlive a transaction there).
 */
export const config = (pool: PoolLike, options: { readonly transactionPooler?: boolean | undefined } = {}): PgClient.PgPoolConfig => {
  const o = pool.options ?? {}
  const c = resolve(pool)
  const params = c.connectionParameters ?? {}
  const password = c.password
  const port = c.port === undefined || c.port === null ? undefined : Number(c.port)
  const ssl = params.ssl
  return {
    ...(typeof c.host === "string" ? { host: c.host } : {}),
    ...(port !== undefined && Number.isFinite(port) ? { port } : {}),
    ...(typeof c.user === "string" ? { username: c.user } : {}),
    ...(typeof c.database === "string" ? { database: c.database } : {}),
    ...(typeof password === "string"
      ? { password: Redacted.make(password) }
      : typeof password === "function"
      ? { password: Effect.promise(async () => Redacted.make(await password())) }
      : {}),
    ...(ssl !== undefined && ssl !== false ? { ssl } : {}),
    ...(typeof params.application_name === "string" ? { applicationName: params.application_name } : {}),
    ...(typeof params.options === "string" ? { startupOptions: params.options } : {}),
    ...(typeof o.stream === "function" ? { stream: o.stream as () => Duplex } : {}),
    maxConnections: typeof o.max === "number" && o.max > 0 ? o.max : 10,
    ...(typeof o.idleTimeoutMillis === "number" && o.idleTimeoutMillis > 0 ? { idleTimeout: Duration.millis(o.idleTimeoutMillis) } : {}),
    ...(typeof o.connectionTimeoutMillis === "number" && o.connectionTimeoutMillis > 0
      ? { connectTimeout: Duration.millis(o.connectionTimeoutMillis) }
      : {}),
    ...(options.transactionPooler === true ? { prepare: false } : {})
  }
}
