/**
 * The dashboard's HTTP application: one handler that routes by method and path (a dozen routes do not need a
 * router), serving the static front end, a JSON API over the admin API, and the Server-Sent Events stream of
 * the shared refresh. Security lives here: the Host check against DNS rebinding on every request, the
 * token check (constant time) and the Origin check on every action, actions by POST only, a cap on open event
 * streams, and headers that keep the browser from running anything but the page's own script.
 */
import { createHash, timingSafeEqual } from "node:crypto"
import { Effect, Option, Schedule, Stream } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import type { Assets } from "./assets.js"
import type { Hub } from "./hub.js"
import { jobStates } from "../../CuckmqAdmin.js"
import type { Action, Backend, BackendError, JobsQuery } from "./model.js"

/** The settings the application needs (already validated by the layer). */
export interface AppOptions {
  readonly backend: Backend
  readonly hub: Hub
  readonly assets: Assets
  /** The token actions need; undefined when read-only. */
  readonly token: string | undefined
  readonly readOnly: boolean
  readonly pageSize: number
  readonly title: string
  /**
   * The host names (lower case, IPv6 addresses in brackets, no port) whose Host header is answered: the loopback
   * names, the bound address and the `allowedHosts` option. Every other Host gets 421.
   */
  readonly allowedHosts: ReadonlySet<string>
  /** Event streams open at once, at most; one more is refused with 503. */
  readonly maxStreams: number
}

/** The header the page sends the token in. */
export const tokenHeader = "x-cuckmq-token"

const securityHeaders = {
  // the page's own script and styles only: no inline script, no other origin, no framing
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store"
}

const json = (body: unknown, status = 200) =>
  HttpServerResponse.jsonUnsafe(body, { status, headers: securityHeaders })

const problem = (status: number, message: string) => json({ error: message }, status)

const fromBackend = (e: BackendError) => problem(e.status, e.message)

const digest = (s: string) => createHash("sha256").update(s).digest()

/** Constant-time comparison (of digests, so that lengths do not leak either). */
const sameToken = (given: string, expected: string) => timingSafeEqual(digest(given), digest(expected))

/** The host name of a Host header (without the port, lower case). */
const hostName = (host: string) =>
  (host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.split(":")[0]!).toLowerCase()

const encoder = new TextEncoder()

const pageRoutes = new Set(["/", "/jobs", "/workers"])

/** Builds the application (an Effect run once per request). */
export const make = (options: AppOptions) => {
  const { assets, backend, hub } = options

  const config = { title: options.title, readOnly: options.readOnly, pageSize: options.pageSize, states: jobStates, tokenHeader }

  const page = HttpServerResponse.text(assets.page(options.title), {
    contentType: "text/html; charset=utf-8",
    headers: securityHeaders
  })

  const asset = (body: string, contentType: string) =>
    HttpServerResponse.text(body, { contentType, headers: { ...securityHeaders, "cache-control": "max-age=300" } })

  // open event streams: counted when the request is answered (synchronously, so that a burst of connections
  // cannot all pass the check before any stream starts) and released when the stream ends
  let streams = 0

  const events = Effect.sync(() => {
    if (streams >= options.maxStreams) {
      // each stream holds a connection and a subscription: beyond the cap, refuse rather than pile up
      return problem(503, `too many open event streams (at most ${options.maxStreams})`).pipe(
        HttpServerResponse.setHeader("retry-after", "10")
      )
    }
    streams++
    let released = false
    const release = Effect.sync(() => {
      if (!released) {
        released = true
        streams--
      }
    })
    return HttpServerResponse.stream(
      Stream.unwrap(Effect.gen(function*() {
        yield* Effect.addFinalizer(() => release)
        const sub = yield* hub.subscribe
        const current = yield* hub.latest
        // the hub encoded each snapshot once; every stream writes those bytes
        const first = Option.isSome(current) ? Stream.make(current.value.frame) : Stream.empty
        // a comment every 15 s keeps proxies from closing an idle stream
        const keepAlive = Stream.fromSchedule(Schedule.spaced("15 seconds")).pipe(Stream.map(() => encoder.encode(": keep-alive\n\n")))
        return Stream.concat(
          Stream.make(encoder.encode("retry: 2000\n\n")),
          Stream.concat(
            first,
            Stream.merge(Stream.fromSubscription(sub).pipe(Stream.map((p) => p.frame)), keepAlive, { haltStrategy: "left" })
          )
        )
      })).pipe(Stream.ensuring(release)),
      {
        contentType: "text/event-stream",
        headers: { ...securityHeaders, "x-accel-buffering": "no" }
      }
    )
  })

  const trimmed = (v: string | null) => {
    const s = v?.trim()
    return s === undefined || s === "" ? undefined : s.slice(0, 200)
  }

  const listJobs = (url: URL) => {
    const state = trimmed(url.searchParams.get("state"))
    if (state !== undefined && !(jobStates as ReadonlyArray<string>).includes(state)) {
      return Effect.succeed(problem(400, `unknown state "${state}" (one of ${jobStates.join(", ")})`))
    }
    const limitParam = Number(url.searchParams.get("limit") ?? options.pageSize)
    const limit = Number.isInteger(limitParam) && limitParam >= 1 && limitParam <= 500 ? limitParam : options.pageSize
    const query: JobsQuery = {
      state,
      definition: trimmed(url.searchParams.get("definition")),
      channel: trimmed(url.searchParams.get("channel")),
      group: trimmed(url.searchParams.get("group")),
      cursor: trimmed(url.searchParams.get("cursor")),
      limit
    }
    return backend.listJobs(query).pipe(Effect.map((p) => json(p)), Effect.catch((e) => Effect.succeed(fromBackend(e))))
  }

  const getJob = (id: string) =>
    backend.getJob(id).pipe(
      Effect.map((job) => job === null ? problem(404, `no job ${id}`) : json(job)),
      Effect.catch((e) => Effect.succeed(fromBackend(e)))
    )

  const act = (request: HttpServerRequest.HttpServerRequest, action: Action) => {
    if (options.readOnly || options.token === undefined) {
      return Effect.succeed(problem(403, "the dashboard is read-only"))
    }
    const given = request.headers[tokenHeader]
    if (given === undefined || !sameToken(given, options.token)) {
      return Effect.succeed(problem(401, `this action needs the dashboard's token (header ${tokenHeader})`))
    }
    // a custom header already keeps other sites' forms and scripts out (no CORS is granted); the Origin check
    // says so in plain terms when a browser sends one. `Origin: null` (a sandboxed frame, a file: page, some
    // redirects) names no site that could be ours: refused too
    const origin = request.headers["origin"]
    const host = request.headers["host"] ?? ""
    if (origin !== undefined && origin !== `http://${host}` && origin !== `https://${host}`) {
      return Effect.succeed(problem(403, "cross-origin actions are refused"))
    }
    return backend.act(action).pipe(
      Effect.tap(() => hub.poke),
      Effect.map((message) => json({ ok: true, message })),
      Effect.catch((e) => Effect.succeed(fromBackend(e)))
    )
  }

  const jobAction = /^\/api\/jobs\/([^/]+)\/(retry|cancel|delete|run-now)$/
  const channelAction = /^\/api\/channels\/([^/]+)\/(pause|resume)$/
  const jobPath = /^\/api\/jobs\/([^/]+)$/
  const jobPage = /^\/jobs\/([^/]+)$/

  const decode = (s: string) => {
    try {
      return decodeURIComponent(s)
    } catch {
      return undefined
    }
  }

  return Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const host = request.headers["host"] ?? ""
    if (!options.allowedHosts.has(hostName(host))) {
      // a page of another site that points its name at this server (DNS rebinding) gets nothing, on any bind
      return problem(421, "this dashboard does not answer to that host name (see the allowedHosts option)")
    }
    const url = new URL(request.url, "http://localhost")
    const path = url.pathname
    const method = request.method

    if (method === "GET" || method === "HEAD") {
      if (pageRoutes.has(path) || jobPage.test(path)) return page
      switch (path) {
        case "/assets/app.js":
          return asset(assets.script, "text/javascript; charset=utf-8")
        case "/assets/app.css":
          return asset(assets.style, "text/css; charset=utf-8")
        case "/assets/uplot.js":
          return asset(assets.uplotScript, "text/javascript; charset=utf-8")
        case "/assets/uplot.css":
          return asset(assets.uplotStyle, "text/css; charset=utf-8")
        case "/favicon.ico":
          return HttpServerResponse.empty({ status: 204 })
        case "/api/config":
          return json(config)
        case "/api/overview":
          return json(yield* hub.fresh)
        case "/api/events":
          return yield* events
        case "/api/jobs":
          return yield* listJobs(url)
      }
      // action paths first: /api/jobs/retry-failed also has the shape of a job's path
      if (jobAction.test(path) || channelAction.test(path) || path === "/api/jobs/retry-failed") {
        return problem(405, "actions are taken by POST only").pipe(HttpServerResponse.setHeader("allow", "POST"))
      }
      const job = jobPath.exec(path)
      if (job !== null) {
        const id = decode(job[1]!)
        return id === undefined ? problem(400, "bad job id") : yield* getJob(id)
      }
      return problem(404, "not found")
    }

    if (method === "POST") {
      if (path === "/api/jobs/retry-failed") {
        return yield* act(request, {
          _tag: "retryFailed",
          definition: trimmed(url.searchParams.get("definition")),
          channel: trimmed(url.searchParams.get("channel")),
          group: trimmed(url.searchParams.get("group"))
        })
      }
      const job = jobAction.exec(path)
      if (job !== null) {
        const id = decode(job[1]!)
        if (id === undefined) return problem(400, "bad job id")
        const tag = job[2] === "run-now" ? "runNow" : (job[2] as "retry" | "cancel" | "delete")
        return yield* act(request, { _tag: tag, id })
      }
      const channel = channelAction.exec(path)
      if (channel !== null) {
        const name = decode(channel[1]!)
        if (name === undefined) return problem(400, "bad channel name")
        return yield* act(request, { _tag: channel[2] as "pause" | "resume", channel: name })
      }
      return problem(404, "not found")
    }

    return problem(405, "method not allowed").pipe(HttpServerResponse.setHeader("allow", "GET, POST"))
  })
}
