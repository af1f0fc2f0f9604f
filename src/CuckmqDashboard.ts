/**
 * A small web dashboard over {@link CuckmqAdmin}: an overview per channel and definition (counts, throughput
 * and wait-time charts over the last hour), jobs (filters, pagination), job detail (payload, attempts, errors;
 * retry, cancel, delete), workers, and pause / resume per channel. It is an HTTP server (`effect/http` on
 * `@effect/platform-node`) that lives in the layer's scope.
 *
 * Secure by default: it binds to 127.0.0.1 unless told otherwise and answers only requests whose `Host` is a
 * loopback name, the bound address or one of `allowedHosts` (against DNS rebinding, on every bind); actions
 * need the configured `token` in the
 * `x-cuckmq-token` header, and without a token the dashboard is read-only; no action is taken by a GET;
 * every value is rendered as text (payloads and errors are never parsed as HTML).
 *
 * One shared refresh per process: the server asks the admin API for the overview every `refreshInterval`
 * while at least one browser is connected, and pushes the result to every open tab by Server-Sent Events,
 * so ten open tabs cost the database what one does. A hidden tab closes its stream (and reopens it when shown), and
 * at most `maxStreams` streams are open at once.
 *
 * @example
 * ```ts
 * import { Layer, Redacted } from "effect"
 * import { NodeRuntime } from "@effect/platform-node"
 * import { PgClient } from "@effect/sql-pg"
 * import { Cuckmq, CuckmqAdmin, CuckmqDashboard } from "@cuckmq/effect"
 *
 * const AdminLive = CuckmqAdmin.layer().pipe(
 *   Layer.provideMerge(Cuckmq.layer({ migrate: false, deploy: false })),
 *   Layer.provideMerge(PgClient.layer({ url: Redacted.make(process.env.DATABASE_URL!) }))
 * )
 * // http://127.0.0.1:8080/ ; actions need the token (the page asks for it), read-only without one
 * const Dashboard = CuckmqDashboard.layer({ port: 8080, token: Redacted.make(process.env.CUCKMQ_DASHBOARD_TOKEN!) })
 *
 * Layer.launch(Dashboard.pipe(Layer.provide(AdminLive))).pipe(NodeRuntime.runMain)
 * ```
 *
 * @since 0.2.0
 */
import * as Http from "node:http"
import { Context, Duration, Effect, Layer, Option, Predicate, Redacted, Schema } from "effect"
import { CuckmqAdmin } from "./CuckmqAdmin.js"
import { InvalidOptions, TypeId } from "./CuckmqError.js"
import * as Assets from "./internal/dashboard/assets.js"
import * as Backend from "./internal/dashboard/backend.js"
import * as Hub from "./internal/dashboard/hub.js"
import * as Server from "./internal/dashboard/server.js"

/**
 * Options of the dashboard.
 *
 * @since 0.2.0
 */
export interface Options {
  /** The TCP port to listen on; 0 picks a free one (read it from {@link CuckmqDashboard}). Defaults to 8080. */
  readonly port?: number | undefined
  /**
   * The address to bind. Defaults to `"127.0.0.1"`, so that the dashboard is reachable from this machine only;
   * give `"0.0.0.0"` (or `"::"`) to expose it, behind a proxy that authenticates, and list the names it is
   * reached by in `allowedHosts`.
   */
  readonly host?: string | undefined
  /**
   * The host names (or IP addresses) the dashboard answers to besides the bound address and the loopback names
   * (`localhost`, `127.0.0.1`, `[::1]`), which are always answered: the name of a proxy in front of it, the
   * machine's address on a `0.0.0.0` bind. Compared with the request's `Host` header without its port, ignoring
   * case; any other Host gets 421, on every bind, so that a page of another site cannot read the dashboard by
   * pointing its own name at this server (DNS rebinding). Names only: no port, no scheme, no wildcard.
   * Defaults to none.
   */
  readonly allowedHosts?: ReadonlyArray<string> | undefined
  /**
   * Event streams (open tabs) served at once; one more is refused with 503 until one closes. Each holds a
   * connection and a subscription to the shared refresh. 1 to 10,000. Defaults to 100.
   */
  readonly maxStreams?: number | undefined
  /**
   * The token that actions (retry, cancel, delete, pause, resume) need, sent by the page in the
   * `x-cuckmq-token` header (the page asks for it once and keeps it in the tab's session storage). At least
   * 16 characters. Without a token the dashboard is read-only. Defaults to none.
   */
  readonly token?: string | Redacted.Redacted<string> | undefined
  /**
   * Refuse every action (403), even with a token. Defaults to `true` when no `token` is given and `false`
   * otherwise; `readOnly: false` without a token is refused (`InvalidOptions`), since actions open to anyone
   * who can reach the port are never the default.
   */
  readonly readOnly?: boolean | undefined
  /**
   * The time between two refreshes of the shared overview (at least 500 milliseconds). One refresh serves every
   * open tab, and none runs while no tab is open. Defaults to 2 seconds.
   */
  readonly refreshInterval?: Duration.Input | undefined
  /** Jobs per page on the jobs page (1 to 500). Defaults to 50. */
  readonly pageSize?: number | undefined
  /** The title of the pages. Defaults to `"cuckmq"`. */
  readonly title?: string | undefined
}

/**
 * The defaults of {@link Options}.
 *
 * @since 0.2.0
 */
export const defaults = {
  port: 8080,
  host: "127.0.0.1",
  refreshInterval: Duration.seconds(2),
  pageSize: 50,
  maxStreams: 100,
  title: "cuckmq"
} as const

/**
 * The dashboard could not start: the port is taken, the address cannot be bound, or the front end's chart
 * library (the `uplot` package) cannot be found.
 *
 * @since 0.2.0
 */
export class DashboardError extends Schema.TaggedError<DashboardError>()("DashboardError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  /** The cuckmq error type id (see `CuckmqError.isCuckmqError`). */
  readonly [TypeId]: TypeId = TypeId
}

/**
 * Whether a value is a {@link DashboardError}.
 *
 * @since 0.2.0
 */
export const isDashboardError = (u: unknown): u is DashboardError => Predicate.isTagged(u, "DashboardError")

/**
 * A running dashboard: where it listens and whether actions are enabled.
 *
 * @since 0.2.0
 */
export class CuckmqDashboard extends Context.Service<CuckmqDashboard, {
  /** The address bound (the real port when `port: 0` was given). */
  readonly host: string
  /** The port bound. */
  readonly port: number
  /** The dashboard's address, e.g. `http://127.0.0.1:8080/`. */
  readonly url: string
  /** Whether actions are refused. */
  readonly readOnly: boolean
}>()("cuckmq/CuckmqDashboard") {}

/**
 * Every error that starting the dashboard can fail with.
 *
 * @since 0.2.0
 */
export type LayerError = InvalidOptions | DashboardError

/** Always answered: the names a browser on this machine uses for a loopback or wildcard bind. */
const loopbackNames = ["localhost", "127.0.0.1", "[::1]"]

/** Binds to every interface: no Host is that address (the machine's names go in `allowedHosts`). */
const wildcardAddress = /^(0\.0\.0\.0|::|\[::\])$/

/** A host name, an IPv4 address, or an IPv6 address (bracketed or not); no port, scheme or path. */
const hostPattern = /^(?:[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?\.?|\[[0-9a-f:.]+\]|[0-9a-f.]*:[0-9a-f:.]*)$/i

/** A name as the Host header's host part gives it: lower case, an IPv6 address in brackets. */
const asHostName = (name: string) => {
  const lower = name.toLowerCase()
  return lower.includes(":") && !lower.startsWith("[") ? `[${lower}]` : lower
}

const validate = (options: Options) =>
  Effect.gen(function*() {
    const invalid = (message: string) => Effect.fail(new InvalidOptions({ message: `CuckmqDashboard.layer: ${message}` }))
    const port = options.port ?? defaults.port
    if (!Number.isInteger(port) || port < 0 || port > 65535) return yield* invalid(`port must be an integer from 0 to 65535 (got ${port})`)
    const host = options.host ?? defaults.host
    if (host.trim() === "") return yield* invalid("host must not be empty")
    const token = options.token === undefined ? undefined : Redacted.isRedacted(options.token) ? Redacted.value(options.token) : options.token
    if (token !== undefined && token.length < 16) return yield* invalid("token must have at least 16 characters")
    const readOnly = options.readOnly ?? token === undefined
    if (!readOnly && token === undefined) {
      return yield* invalid("readOnly: false needs a token (actions open to anyone who reaches the port are never enabled)")
    }
    const decoded = Duration.fromInput(options.refreshInterval ?? defaults.refreshInterval)
    if (Option.isNone(decoded) || !(Duration.toMillis(decoded.value) >= 500)) {
      return yield* invalid("refreshInterval must be a Duration.Input of at least 500 milliseconds")
    }
    const refreshInterval = decoded.value
    const pageSize = options.pageSize ?? defaults.pageSize
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 500) return yield* invalid(`pageSize must be an integer from 1 to 500 (got ${pageSize})`)
    const maxStreams = options.maxStreams ?? defaults.maxStreams
    if (!Number.isInteger(maxStreams) || maxStreams < 1 || maxStreams > 10_000) {
      return yield* invalid(`maxStreams must be an integer from 1 to 10000 (got ${maxStreams})`)
    }
    const allowed = new Set(loopbackNames)
    if (!wildcardAddress.test(host)) allowed.add(asHostName(host))
    for (const name of options.allowedHosts ?? []) {
      if (typeof name !== "string" || !hostPattern.test(name)) {
        return yield* invalid(`allowedHosts: ${JSON.stringify(name)} is not a host name or address (give names only: no port, scheme or path)`)
      }
      allowed.add(asHostName(name))
    }
    const title = options.title ?? defaults.title
    return { port, host, token, readOnly, refreshInterval, pageSize, title, maxStreams, allowedHosts: allowed as ReadonlySet<string> }
  })

/**
 * Serves the dashboard for as long as the layer's scope lives (closing it ends the open event streams and
 * stops the server). It reads and acts through the {@link CuckmqAdmin} in context, so it works on either
 * backend. `@effect/platform-node` is loaded when the layer is built (it is needed only here).
 *
 * @since 0.2.0
 */
export const layer = (options: Options = {}): Layer.Layer<CuckmqDashboard, LayerError, CuckmqAdmin> =>
  Layer.effect(
    CuckmqDashboard,
    Effect.gen(function*() {
      const settings = yield* validate(options)
      const admin = yield* CuckmqAdmin
      const assets = yield* Effect.try({
        try: () => Assets.load(),
        catch: (cause) => new DashboardError({ message: "the dashboard's chart library (the uplot package) could not be read", cause })
      })
      // loaded here, not at import: the package's other modules do not need it (it is an optional peer)
      const NodeHttpServer = yield* Effect.tryPromise({
        try: () => import("@effect/platform-node/NodeHttpServer"),
        catch: (cause) => new DashboardError({ message: "the dashboard needs the @effect/platform-node package", cause })
      })
      const backend = Backend.make(admin)
      const hub = yield* Hub.make(backend, settings.refreshInterval)
      const app = Server.make({ ...settings, backend, hub, assets })
      const server = Http.createServer()
      const http = yield* NodeHttpServer.make(() => server, {
        port: settings.port,
        host: settings.host,
        // open event streams are ended first (below); what is left gets a second to finish
        gracefulShutdownTimeout: Duration.seconds(1)
      }).pipe(
        Effect.mapError((e) =>
          new DashboardError({ message: `the dashboard could not listen on ${settings.host}:${settings.port}: ${e.message}`, cause: e })
        )
      )
      yield* http.serve(app)
      // registered after the server's own finalizers, so it runs before them
      yield* Effect.addFinalizer(() => hub.close)
      const address = server.address()
      const port = address !== null && typeof address === "object" ? address.port : settings.port
      const urlHost = settings.host.includes(":") ? `[${settings.host}]` : settings.host
      return CuckmqDashboard.of({ host: settings.host, port, url: `http://${urlHost}:${port}/`, readOnly: settings.readOnly })
    }).pipe(Effect.withSpan("CuckmqDashboard.layer"))
  )
