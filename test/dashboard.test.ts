/**
 * The dashboard end to end: a real PostgreSQL schema, the real admin service, a worker in this process, the
 * dashboard's HTTP server, and headless Chromium (Debian's `chromium`, driven by playwright-core) clicking
 * through the pages as a person would. Counting, never timing: each wait is for a state the page or the
 * database shows (deadlines only keep a broken test from hanging), and what is asserted is a count or a state.
 *
 * Screenshots of each page go to .tmp/dashboard-test/; with CUCKMQ_UPDATE_SCREENSHOTS=1 they are also
 * copied to docs/images/ for the README.
 */
import { execFileSync } from "node:child_process"
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs"
import * as Http from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Layer, PubSub, Schema, Scope } from "effect"
import { type BrowserContext, chromium, type Page } from "playwright-core"
import { afterAll, afterEach, beforeAll } from "vitest"
import { Cuckmq, JobDefinition, Worker } from "../src/index.js"
import { CuckmqTest } from "../src/testing.js"
import * as Admin from "../src/CuckmqAdmin.js"

const { CuckmqAdmin } = Admin
type CuckmqAdmin = Admin.CuckmqAdmin
import * as CuckmqDashboard from "../src/CuckmqDashboard.js"
import * as Backend from "../src/internal/dashboard/backend.js"
import * as Hub from "../src/internal/dashboard/hub.js"
import { PgWithSchema, uniqueSchema } from "./support/pg.js"

const TOKEN = "test-token-0123456789"
const outDir = join(process.cwd(), ".tmp", "dashboard-test")
const imagesDir = join(process.cwd(), "docs", "images")

/** Debian's chromium, as CI installs it; the suite fails (does not skip) without it. */
const chromiumPath = () => execFileSync("bash", ["-c", "command -v chromium"]).toString().trim()

// --- the application under test ----------------------------------------------------------------------------
let healthy = false // the flaky job fails until the test "fixes" it
let emailRuns = 0

const Report = JobDefinition.make({
  name: "dash-report",
  channel: "reports",
  payload: Schema.Struct({ text: Schema.String }),
  handler: () => Effect.void
})
const Flaky = JobDefinition.make({
  name: "dash-flaky",
  channel: "flaky",
  numAttempts: 1,
  payload: Schema.Struct({ order: Schema.Int }),
  handler: () => healthy ? Effect.void : Effect.fail(new Error("payment service unavailable (not yet fixed)"))
})
const Email = JobDefinition.make({
  name: "dash-email",
  channel: "emails",
  payload: Schema.Struct({ to: Schema.String }),
  handler: () => Effect.sync(() => void emailRuns++)
})

const schema = uniqueSchema("dashboard")
const scope = Effect.runSync(Scope.make())
let context: Context.Context<Cuckmq.Cuckmq | CuckmqAdmin>
let dashboard: CuckmqDashboard.CuckmqDashboard["Service"]
let readOnly: CuckmqDashboard.CuckmqDashboard["Service"]
let statisticsCalls = 0
let browser: BrowserContext
let userDataDir: string
const reportIds: Array<string> = []
let xssId = ""
let flakyId = ""

const run = <A, E>(effect: Effect.Effect<A, E, Cuckmq.Cuckmq | CuckmqAdmin>): Promise<A> =>
  Effect.runPromise(Effect.provide(effect, context))

const admin = () => Context.get(context, CuckmqAdmin)
const stateOf = (id: string) => run(Effect.map(admin().getJob(id), (j) => j.state))

/** Polls `check` every 50 ms until it holds (a hang guard of 60 s only). */
const until = async (what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const shot = async (page: Page, name: string) => {
  const file = join(outDir, `dashboard-${name}.png`)
  await page.screenshot({ path: file, fullPage: true })
  if (process.env.CUCKMQ_UPDATE_SCREENSHOTS === "1") {
    mkdirSync(imagesDir, { recursive: true })
    copyFileSync(file, join(imagesDir, `dashboard-${name}.png`))
  }
}

/** Script errors of every page, asserted empty after each test. */
const pageErrors: Array<string> = []

const newPage = async () => {
  const page = await browser.newPage()
  page.on("pageerror", (e) => void pageErrors.push(e.message))
  return page
}

/**
 * Hides or shows a tab as the browser does when it goes to the background: headless pages are always visible,
 * so `document.hidden` and `visibilityState` are overridden and `visibilitychange` is dispatched, which is what
 * the page's script listens to.
 */
const setHidden = (page: Page, hidden: boolean) =>
  page.evaluate((h) => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => h })
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => h ? "hidden" : "visible" })
    document.dispatchEvent(new Event("visibilitychange"))
  }, hidden)

/** A raw request (node:http, so that the Host header can be anything). */
const request = (options: { method: string; path: string; headers?: Record<string, string>; port?: number }) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = Http.request(
      { host: "127.0.0.1", port: options.port ?? dashboard.port, method: options.method, path: options.path, headers: options.headers },
      (res) => {
        let body = ""
        res.on("data", (c) => body += c)
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
      }
    )
    req.on("error", reject)
    req.end()
  })

beforeAll(async () => {
  rmSync(outDir, { recursive: true, force: true })
  mkdirSync(outDir, { recursive: true })
  // one pool of 10 for the test, the admin, the worker and both dashboards (plus the worker's listener)
  const base = Cuckmq.layer({ schema, definitions: [Report, Flaky, Email] }).pipe(
    Layer.provideMerge(PgWithSchema(schema, { maxConnections: 10 }))
  )
  const adminLive = Admin.layer().pipe(Layer.provideMerge(base))
  const built = await Effect.runPromise(Layer.buildWithScope(adminLive, scope))
  context = built
  // the admin the dashboards see counts its statistics calls: one per shared refresh, whatever the tabs
  const real = Context.get(built, CuckmqAdmin)
  const counted = Layer.succeed(CuckmqAdmin, CuckmqAdmin.of({ ...real, statistics: Effect.andThen(Effect.sync(() => void statisticsCalls++), real.statistics) }))
  const dashboards = await Effect.runPromise(Layer.buildWithScope(
    CuckmqDashboard.layer({ port: 0, token: TOKEN, refreshInterval: "500 millis", pageSize: 3 }).pipe(Layer.provide(counted)),
    scope
  ))
  dashboard = Context.get(dashboards, CuckmqDashboard.CuckmqDashboard)
  const readOnlyCtx = await Effect.runPromise(Layer.buildWithScope(
    CuckmqDashboard.layer({ port: 0 }).pipe(Layer.provide(Layer.succeed(CuckmqAdmin, real))),
    scope
  ))
  readOnly = Context.get(readOnlyCtx, CuckmqDashboard.CuckmqDashboard)
  await Effect.runPromise(Layer.buildWithScope(
    Worker.layer({ name: "dash-worker", concurrency: 2, prefetch: 0, pollIntervalSecs: 0.2 }).pipe(Layer.provide(Layer.succeedContext(built))),
    scope
  ))

  // a known mix: six reports (one with markup in its payload) that succeed, one order that fails
  const texts = ["q1", "q2", "q3", "q4", "q5"]
  for (const text of texts) reportIds.push(await run(Report.enqueue({ text })))
  xssId = await run(Report.enqueue({ text: `<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>` }))
  reportIds.push(xssId)
  flakyId = await run(Flaky.enqueue({ order: 42 }))
  await until("the reports succeeded and the order failed", async () =>
    (await Promise.all(reportIds.map(stateOf))).every((s) => s === "succeeded") && (await stateOf(flakyId)) === "failed")

  userDataDir = mkdtempSync(join(tmpdir(), "cuckmq-chromium-"))
  browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath(),
    headless: true,
    viewport: { width: 1280, height: 640 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
  })
})

afterAll(async () => {
  await browser?.close()
  if (userDataDir !== undefined) rmSync(userDataDir, { recursive: true, force: true })
  await Effect.runPromise(Scope.close(scope, Exit.void))
})

describe("dashboard in headless Chromium", () => {
  afterEach(() => {
    assert.deepStrictEqual(pageErrors.splice(0), [], "script errors in the pages")
  })

  it("options: actions need a token; a short token, a bad port and a refresh under 500 ms are refused", async () => {
    const real = Context.get(context, CuckmqAdmin)
    const attempt = (options: CuckmqDashboard.Options) =>
      Effect.runPromise(Effect.scoped(Layer.build(CuckmqDashboard.layer(options).pipe(Layer.provide(Layer.succeed(CuckmqAdmin, real))))).pipe(
        Effect.flip,
        Effect.map((e) => e._tag)
      ))
    assert.strictEqual(await attempt({ port: 0, readOnly: false }), "InvalidOptions")
    assert.strictEqual(await attempt({ port: 0, token: "short" }), "InvalidOptions")
    assert.strictEqual(await attempt({ port: 70000, token: TOKEN }), "InvalidOptions")
    assert.strictEqual(await attempt({ port: 0, refreshInterval: "100 millis" }), "InvalidOptions")
    assert.strictEqual(await attempt({ port: dashboard.port }), "DashboardError") // the port is taken
    assert.strictEqual(dashboard.host, "127.0.0.1")
    assert.isFalse(dashboard.readOnly)
    assert.isTrue(readOnly.readOnly)
  })

  it("overview: every channel and definition with its counts, both charts, live", async () => {
    const page = await newPage()
    await page.goto(dashboard.url)
    await page.waitForSelector("[data-testid=channels] tr[data-channel=reports]")
    // the counters are flushed every 200 ms: wait for the figures the known mix gives
    await page.waitForFunction(() => {
      const cell = (sel: string, col: number) => document.querySelector(sel)?.querySelectorAll("td")[col]?.textContent
      return cell("tr[data-definition=dash-report]", 6) === "6" && cell("tr[data-definition=dash-flaky]", 7) === "1"
    })
    const channels = await page.$$eval("[data-testid=channels] tbody tr", (rows) => rows.map((r) => r.getAttribute("data-channel")))
    assert.includeMembers(channels, ["reports", "flaky", "emails"])
    const definitions = await page.$$eval("[data-testid=definitions] tbody tr", (rows) => rows.map((r) => r.getAttribute("data-definition")))
    assert.includeMembers(definitions, ["dash-report", "dash-flaky", "dash-email"])
    assert.strictEqual(await page.locator(".uplot").count(), 2)
    // live: the refresh number moves without a reload
    const seq = Number(await page.getAttribute("[data-testid=live]", "data-seq"))
    await page.waitForFunction((s) => Number(document.querySelector("[data-testid=live]")?.getAttribute("data-seq")) > s, seq)
    await shot(page, "overview")
    await page.close()
  })

  it("one shared refresh per process: over measured spans, three tabs cost what one does (one call per interval), and none when all are closed", async () => {
    const interval = 500 // the dashboard's refreshInterval
    const seqOf = (p: Page) => p.getAttribute("[data-testid=live]", "data-seq").then(Number)
    /**
     * Opens `n` tabs, then counts the statistics calls over a span of six intervals or more in which every tab
     * sees five more refreshes.
     * The hub sleeps an interval after each refresh, so one shared refresh makes at most floor(span / interval)
     * + 1 calls in a span (+ 1 for a call under way at its start), whatever the tabs; a refresh per tab would
     * make about n times that.
     */
    const span = async (n: number) => {
      const pages = await Promise.all(Array.from({ length: n }, () => newPage()))
      await Promise.all(pages.map((p) => p.goto(dashboard.url)))
      await until("every tab saw a refresh", async () => (await Promise.all(pages.map(seqOf))).every((s) => s > 0))
      const start = Math.max(...(await Promise.all(pages.map(seqOf))))
      const calls0 = statisticsCalls
      const t0 = Date.now()
      // a span of at least six intervals, in which every tab saw five more refreshes
      await until("every tab saw five more refreshes", async () =>
        Date.now() - t0 >= 6 * interval && (await Promise.all(pages.map(seqOf))).every((s) => s >= start + 5))
      const calls = statisticsCalls - calls0
      const elapsed = Date.now() - t0
      await Promise.all(pages.map((p) => p.close()))
      return { calls, elapsed, bound: Math.floor(elapsed / interval) + 2 }
    }
    const one = await span(1)
    const three = await span(3)
    assert.isAtLeast(one.calls, 4)
    assert.isAtLeast(three.calls, 4)
    assert.isAtMost(one.calls, one.bound, JSON.stringify(one))
    assert.isAtMost(three.calls, three.bound, JSON.stringify({ one, three }))
    // and per unit of time, three tabs call no more than one tab does (with a margin of half for the ends)
    assert.isAtMost(three.calls / three.elapsed, 1.5 * (one.calls + 1) / one.elapsed, JSON.stringify({ one, three }))
    // with no tab open the refresh stops: over three intervals, no call (beyond one already under way)
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
    await until("the refresh stopped", async () => {
      const before = statisticsCalls
      await sleep(1500)
      return statisticsCalls === before
    })
    const stopped = statisticsCalls
    await sleep(1500)
    assert.strictEqual(statisticsCalls, stopped)
  })

  it("hidden tabs: a hidden tab closes its event stream (the refresh stops) and reopens it when shown; eight tabs, seven hidden, leave the browser's six connections per host free", async () => {
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
    const seqOf = (p: Page) => p.getAttribute("[data-testid=live]", "data-seq").then(Number)
    const stopped = () =>
      until("the refresh stopped", async () => {
        const before = statisticsCalls
        await sleep(1500)
        return statisticsCalls === before
      })
    const page = await newPage()
    await page.goto(dashboard.url)
    await until("the tab saw a refresh", async () => (await seqOf(page)) > 0)
    await setHidden(page, true)
    // its only listener gone, the shared refresh stops: no call over three intervals
    await stopped()
    const quiet = statisticsCalls
    await sleep(1500)
    assert.strictEqual(statisticsCalls, quiet)
    assert.strictEqual(await page.getAttribute("[data-testid=live]", "data-state"), "paused")
    await setHidden(page, false)
    const seen = await seqOf(page)
    await until("the shown tab saw new refreshes", async () => (await seqOf(page)) >= seen + 2)
    assert.isAbove(statisticsCalls, quiet)
    await page.close()

    // Chromium opens at most six HTTP/1.1 connections per host: seven tabs each holding a stream would leave
    // the eighth's requests waiting forever; hidden tabs hold none
    const hidden: Array<Page> = []
    for (let i = 0; i < 7; i++) {
      const p = await newPage()
      await p.goto(dashboard.url)
      await until("the tab saw a refresh", async () => (await seqOf(p)) > 0, 20_000)
      await setHidden(p, true)
      hidden.push(p)
    }
    const last = await newPage()
    await last.goto(dashboard.url + "jobs?definition=dash-report")
    await last.waitForSelector("[data-testid=jobs]", { timeout: 20_000 })
    await last.goto(dashboard.url)
    await until("the eighth tab is live", async () => (await seqOf(last)) > 0, 20_000)
    await Promise.all([...hidden, last].map((p) => p.close()))
  })

  it("open streams are capped (503 beyond maxStreams, 100 by default); a closed stream frees its place", async () => {
    // the read-only dashboard has the default cap
    const open = (port: number) =>
      new Promise<{ status: number; req: Http.ClientRequest }>((resolve, reject) => {
        const req = Http.request(
          { host: "127.0.0.1", port, method: "GET", path: "/api/events", agent: false, headers: { host: `127.0.0.1:${port}` } },
          (res) => {
            res.resume()
            resolve({ status: res.statusCode ?? 0, req })
          }
        )
        req.on("error", (e) => (e as NodeJS.ErrnoException).code === "ECONNRESET" ? undefined : reject(e))
        req.end()
      })
    const streams: Array<{ status: number; req: Http.ClientRequest }> = []
    try {
      for (let i = 0; i < 100; i++) streams.push(await open(readOnly.port))
      assert.deepStrictEqual([...new Set(streams.map((s) => s.status))], [200])
      const refused = await open(readOnly.port)
      assert.strictEqual(refused.status, 503)
      refused.req.destroy()
      // pages and the JSON API still answer
      assert.strictEqual((await request({ method: "GET", path: "/api/config", port: readOnly.port, headers: { host: `127.0.0.1:${readOnly.port}` } })).status, 200)
      streams.pop()!.req.destroy()
      await until("a place is free again", async () => {
        const s = await open(readOnly.port)
        if (s.status === 200) streams.push(s)
        else s.req.destroy()
        return s.status === 200
      }, 10_000)
    } finally {
      for (const s of streams) s.req.destroy()
    }
  })

  it("each snapshot is encoded once in the hub: every tab's stream gets the same bytes", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const hub = yield* Hub.make(Backend.make(Context.get(context, CuckmqAdmin)), Duration.millis(500))
      const a = yield* hub.subscribe
      const b = yield* hub.subscribe
      const [x, y] = yield* Effect.all([PubSub.take(a), PubSub.take(b)])
      assert.strictEqual(x.frame, y.frame) // one Uint8Array, not one encoding per subscriber
      assert.strictEqual(x.snapshot, y.snapshot)
      assert.include(new TextDecoder().decode(x.frame), `"seq":${x.snapshot.seq}`)
    }))))

  it("jobs: filters by definition and state, pages by cursor with no job twice", async () => {
    const page = await newPage()
    await page.goto(dashboard.url + "jobs")
    await page.waitForSelector("[data-testid=filters]")
    await page.selectOption("[data-testid=filter-state]", "succeeded")
    await page.fill("[data-testid=filter-definition]", "dash-report")
    await Promise.all([page.waitForURL(/state=succeeded/), page.click("[data-testid=filter-apply]")])
    const seen: Array<string> = []
    for (let pageNo = 0; pageNo < 10; pageNo++) {
      await page.waitForSelector("[data-testid=jobs], [data-testid=no-jobs], [data-testid=jobs-error]")
      if ((await page.locator("[data-testid=jobs-error]").count()) > 0) throw new Error(String(await page.textContent("[data-testid=jobs-error]")))
      const rows = await page.$$eval("[data-testid=jobs] tbody tr", (trs) =>
        trs.map((tr) => ({ id: tr.getAttribute("data-job")!, cells: [...tr.querySelectorAll("td")].map((td) => td.textContent) })))
      assert.isAtMost(rows.length, 3) // pageSize
      for (const r of rows) {
        assert.strictEqual(r.cells[1], "dash-report")
        assert.strictEqual(r.cells[4], "succeeded")
        seen.push(r.id)
      }
      if (pageNo === 0) await shot(page, "jobs")
      const next = page.locator("[data-testid=next-page]")
      if ((await next.count()) === 0) break
      await Promise.all([page.waitForURL(/cursor=/), next.click()])
    }
    assert.sameMembers(seen, reportIds)
    assert.strictEqual(new Set(seen).size, seen.length)
    await page.close()
  })

  it("job detail: a failed job shows its payload and error; Retry (with the token) runs it again and it succeeds", async () => {
    const page = await newPage()
    await page.goto(dashboard.url + "jobs?state=failed&definition=dash-flaky")
    await page.waitForSelector("[data-testid=jobs], [data-testid=jobs-error]")
    if ((await page.locator("[data-testid=jobs-error]").count()) > 0) throw new Error(String(await page.textContent("[data-testid=jobs-error]")))
    await page.fill("[data-testid=token]", TOKEN)
    await page.click("[data-testid=token-save]")
    await Promise.all([page.waitForURL(/\/jobs\/\d+/), page.click(`[data-job="${flakyId}"] [data-testid=job-link]`)])
    await page.waitForSelector("[data-testid=job][data-state=failed]")
    assert.include(await page.textContent("[data-testid=payload]"), "42")
    assert.include(await page.textContent("[data-testid=last-error]"), "payment service unavailable")
    await shot(page, "job")
    healthy = true
    await page.click("[data-testid=retry]")
    await page.waitForSelector("[data-testid=job][data-state=succeeded]")
    assert.strictEqual(await stateOf(flakyId), "succeeded")
    assert.include(await page.textContent("[data-testid=message]"), "retried 1 job")
    await page.close()
  })

  it("escaping: markup in a payload is shown as text and never runs", async () => {
    const page = await newPage()
    await page.goto(dashboard.url + `jobs/${xssId}`)
    await page.waitForSelector("[data-testid=payload]")
    assert.include(await page.textContent("[data-testid=payload]"), `<img src=x onerror=\\"window.__xss=1\\"><script>`)
    assert.strictEqual(await page.locator("main img, main script").count(), 0)
    assert.isUndefined(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss))
    await page.close()
  })

  it("pause from the overview: the worker stops taking the channel's jobs (and takes others); resume: they run", async () => {
    const page = await newPage()
    await page.goto(dashboard.url)
    await page.fill("[data-testid=token]", TOKEN)
    await page.click("[data-testid=token-save]")
    await page.click("tr[data-channel=emails] [data-testid=pause]")
    await page.waitForSelector("tr[data-channel=emails].paused")
    const before = emailRuns
    const emails = [await run(Email.enqueue({ to: "a@example.com" })), await run(Email.enqueue({ to: "b@example.com" })), await run(Email.enqueue({ to: "c@example.com" }))]
    // a newer job of another channel: once the worker has run it, its claims have passed the paused emails by
    const later = await run(Report.enqueue({ text: "after the pause" }))
    await until("the newer report ran", async () => (await stateOf(later)) === "succeeded")
    assert.strictEqual(emailRuns, before)
    assert.deepStrictEqual(await Promise.all(emails.map(stateOf)), ["waiting", "waiting", "waiting"])
    await page.waitForFunction(() => document.querySelector("tr[data-channel=emails]")?.querySelectorAll("td")[2]?.textContent === "3")
    await shot(page, "paused")
    await page.click("tr[data-channel=emails] [data-testid=resume]")
    await until("the emails ran", () => emailRuns === before + 3)
    await page.waitForSelector("tr[data-channel=emails]:not(.paused)")
    await page.close()
  })

  it("refusals: no token, a wrong token, another origin, a GET, a foreign Host, a read-only dashboard", async () => {
    const delayed = await run(Report.enqueue({ text: "later" }, { delay: "1 hour" }))
    // a fresh tab has no token: the page's Cancel is refused and says why
    const page = await newPage()
    await page.goto(dashboard.url + `jobs/${delayed}`)
    await page.waitForSelector("[data-testid=job][data-state=delayed]")
    await page.click("[data-testid=cancel]")
    await page.waitForSelector("#message.error")
    assert.include(await page.textContent("[data-testid=message]"), "needs the dashboard's token")
    assert.strictEqual(await stateOf(delayed), "delayed")

    const path = `/api/jobs/${delayed}/cancel`
    const host = `127.0.0.1:${dashboard.port}`
    assert.strictEqual((await request({ method: "POST", path, headers: { host } })).status, 401)
    assert.strictEqual((await request({ method: "POST", path, headers: { host, "x-cuckmq-token": "wrong-token-0123456789" } })).status, 401)
    assert.strictEqual((await request({ method: "POST", path, headers: { host, "x-cuckmq-token": TOKEN, origin: "http://evil.example" } })).status, 403)
    assert.strictEqual((await request({ method: "GET", path, headers: { host, "x-cuckmq-token": TOKEN } })).status, 405)
    assert.strictEqual((await request({ method: "GET", path: "/api/overview", headers: { host: "evil.example" } })).status, 421)
    // a page in a sandboxed frame or a file: sends Origin null: refused as well
    assert.strictEqual((await request({ method: "POST", path, headers: { host, "x-cuckmq-token": TOKEN, origin: "null" } })).status, 403)
    // the bulk redrive by GET is refused as an action (405), not read as a job id
    const getRetry = await request({ method: "GET", path: "/api/jobs/retry-failed", headers: { host, "x-cuckmq-token": TOKEN } })
    assert.strictEqual(getRetry.status, 405, getRetry.body)
    assert.strictEqual(await stateOf(delayed), "delayed")
    const ro = await request({ method: "POST", path, port: readOnly.port, headers: { host: `127.0.0.1:${readOnly.port}`, "x-cuckmq-token": TOKEN } })
    assert.strictEqual(ro.status, 403)
    assert.strictEqual(await stateOf(delayed), "delayed")

    // the read-only dashboard shows the job with its buttons disabled
    await page.goto(readOnly.url + `jobs/${delayed}`)
    await page.waitForSelector("[data-testid=read-only]")
    assert.isTrue(await page.isDisabled("[data-testid=cancel]"))
    // and with the token, the same request is taken
    const ok = await request({ method: "POST", path, headers: { host, "x-cuckmq-token": TOKEN, origin: `http://${host}` } })
    assert.strictEqual(ok.status, 200, ok.body)
    assert.strictEqual(await stateOf(delayed), "failed")
    await page.close()
  })

  it("retry all matching: the failed jobs the filters show, redriven from the jobs page", async () => {
    healthy = false
    const orders = [await run(Flaky.enqueue({ order: 1 })), await run(Flaky.enqueue({ order: 2 }))]
    await until("both orders failed", async () => (await Promise.all(orders.map(stateOf))).every((s) => s === "failed"))
    healthy = true
    const page = await newPage()
    page.on("dialog", (dialog) => void dialog.accept()) // "Retry every failed job that matches ...?"
    await page.goto(dashboard.url + "jobs?state=failed&definition=dash-flaky")
    await page.fill("[data-testid=token]", TOKEN)
    await page.click("[data-testid=token-save]")
    await page.waitForSelector("[data-testid=jobs]")
    assert.sameMembers(await page.$$eval("[data-testid=jobs] tbody tr", (trs) => trs.map((tr) => tr.getAttribute("data-job")!)), orders)
    await page.click("[data-testid=retry-matching]")
    await page.waitForFunction(() => document.querySelector("[data-testid=message]")?.textContent?.includes("retried 2 jobs"))
    await until("both orders succeeded", async () => (await Promise.all(orders.map(stateOf))).every((s) => s === "succeeded"))
    await page.close()
  })

  it("Host is checked on every bind: the bound host, loopback names and allowedHosts are answered, others 421", async () => {
    const real = Context.get(context, CuckmqAdmin)
    const attempt = (options: CuckmqDashboard.Options) =>
      Effect.runPromise(Effect.scoped(Layer.build(CuckmqDashboard.layer(options).pipe(Layer.provide(Layer.succeed(CuckmqAdmin, real))))).pipe(
        Effect.flip,
        Effect.map((e) => e._tag)
      ))
    assert.strictEqual(await attempt({ port: 0, allowedHosts: [""] }), "InvalidOptions")
    assert.strictEqual(await attempt({ port: 0, allowedHosts: ["dash.example.test/x"] }), "InvalidOptions")
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const ctx = yield* Layer.build(
        CuckmqDashboard.layer({ port: 0, host: "0.0.0.0", allowedHosts: ["Dash.Example.Test", "10.1.2.3", "[fd00::1]"] }).pipe(
          Layer.provide(Layer.succeed(CuckmqAdmin, real))
        )
      )
      const wide = Context.get(ctx, CuckmqDashboard.CuckmqDashboard)
      const status = (host: string) => Effect.promise(() => request({ method: "GET", path: "/api/config", port: wide.port, headers: { host } }).then((r) => r.status))
      // a wildcard bind is no longer open to any Host: only the names it is given (and this machine's loopback)
      assert.strictEqual(yield* status(`dash.example.test:${wide.port}`), 200)
      assert.strictEqual(yield* status("DASH.example.test"), 200)
      assert.strictEqual(yield* status(`10.1.2.3:${wide.port}`), 200)
      assert.strictEqual(yield* status(`[fd00::1]:${wide.port}`), 200)
      assert.strictEqual(yield* status(`127.0.0.1:${wide.port}`), 200)
      assert.strictEqual(yield* status(`localhost:${wide.port}`), 200)
      assert.strictEqual(yield* status(`evil.example:${wide.port}`), 421)
      assert.strictEqual(yield* status(`dash.example.test.evil.example`), 421)
      assert.strictEqual(yield* status(`10.1.2.4:${wide.port}`), 421)
    })))
    // a loopback bind takes allowedHosts too (a name in /etc/hosts, a tunnel)
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const ctx = yield* Layer.build(
        CuckmqDashboard.layer({ port: 0, allowedHosts: ["dash.internal"] }).pipe(Layer.provide(Layer.succeed(CuckmqAdmin, real)))
      )
      const local = Context.get(ctx, CuckmqDashboard.CuckmqDashboard)
      const status = (host: string) => Effect.promise(() => request({ method: "GET", path: "/api/config", port: local.port, headers: { host } }).then((r) => r.status))
      assert.strictEqual(yield* status(`dash.internal:${local.port}`), 200)
      assert.strictEqual(yield* status(`127.0.0.1:${local.port}`), 200)
      assert.strictEqual(yield* status(`other.internal:${local.port}`), 421)
    })))
  })

  it("workers: the live worker with its channels", async () => {
    const page = await newPage()
    await page.goto(dashboard.url + "workers")
    await page.waitForSelector("[data-testid=workers] tbody tr")
    const rows = await page.$$eval("[data-testid=workers] tbody tr", (trs) => trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent)))
    const ours = rows.filter((r) => r[0] === "dash-worker")
    assert.strictEqual(ours.length, 1)
    assert.strictEqual(ours[0]![1], "alive")
    assert.includeMembers(ours[0]![5]!.split(", "), ["reports", "flaky", "emails"])
    await shot(page, "workers")
    await page.close()
  })
})

describe("dashboard on the memory backend (its JSON API, no browser)", () => {
  it.live("the same pages' data and actions over CuckmqAdmin.layerMemory", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(
        CuckmqDashboard.layer({ port: 0, token: TOKEN }).pipe(
          Layer.provideMerge(Admin.layerMemory()),
          Layer.provideMerge(CuckmqTest.layer({ definitions: [Report, Email, Flaky] }))
        )
      )
      const memory = Context.get(context, CuckmqDashboard.CuckmqDashboard)
      const ids = yield* Effect.forEach(["m1", "m2"], (text) => Report.enqueue({ text })).pipe(Effect.provide(context))
      yield* Context.get(context, CuckmqTest).drain
      const get = (path: string) => Effect.promise(() => fetch(memory.url + path).then(async (r) => ({ status: r.status, body: await r.json() })))
      const post = (path: string, token?: string) =>
        Effect.promise(() =>
          fetch(memory.url + path, { method: "POST", headers: token === undefined ? {} : { "x-cuckmq-token": token } })
            .then(async (r) => ({ status: r.status, body: await r.json() }))
        )
      const overview = yield* get("api/overview")
      assert.strictEqual(overview.status, 200)
      assert.sameMembers(overview.body.stats.definitions.map((d: { name: string }) => d.name), ["dash-report", "dash-email", "dash-flaky"])
      const listed = yield* get("api/jobs?state=succeeded&definition=dash-report")
      assert.sameMembers(listed.body.jobs.map((j: { id: string }) => j.id), ids)
      assert.strictEqual((yield* get(`api/jobs/${ids[0]}`)).body.payload, JSON.stringify({ text: "m1" }))
      assert.strictEqual((yield* get("api/jobs/999999")).status, 404)
      assert.strictEqual((yield* get("api/jobs?state=nonsense")).status, 400)
      // a succeeded job cannot be retried (409), an unknown channel cannot be paused (404), no token (401)
      assert.strictEqual((yield* post(`api/jobs/${ids[0]}/retry`, TOKEN)).status, 409)
      assert.strictEqual((yield* post("api/channels/nowhere/pause", TOKEN)).status, 404)
      assert.strictEqual((yield* post("api/channels/emails/pause")).status, 401)
      assert.strictEqual((yield* post("api/channels/emails/pause", TOKEN)).status, 200)
      const paused = yield* get("api/overview")
      assert.isTrue(paused.body.stats.channels.find((c: { channel: string }) => c.channel === "emails").paused)

      // "retry all matching": the failed jobs of one definition, by filter, in one bounded call
      healthy = false
      const orders = yield* Effect.forEach([1, 2, 3], (order) => Flaky.enqueue({ order })).pipe(Effect.provide(context))
      yield* Context.get(context, CuckmqTest).drain
      const failed = yield* get("api/jobs?state=failed&definition=dash-flaky")
      assert.sameMembers(failed.body.jobs.map((j: { id: string }) => j.id), orders)
      healthy = true
      assert.strictEqual((yield* post("api/jobs/retry-failed?definition=dash-flaky")).status, 401)
      const retried = yield* post("api/jobs/retry-failed?definition=dash-flaky", TOKEN)
      assert.strictEqual(retried.status, 200)
      assert.include(retried.body.message, "retried 3 jobs")
      yield* Context.get(context, CuckmqTest).drain
      const after = yield* get("api/jobs?state=succeeded&definition=dash-flaky")
      assert.sameMembers(after.body.jobs.map((j: { id: string }) => j.id), orders)
    }).pipe(Effect.scoped))
})
