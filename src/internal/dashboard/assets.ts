/**
 * The dashboard's front end: one HTML shell for every page, a stylesheet and a script (plain JavaScript, no
 * build step), kept as strings in this module so that they ship inside the compiled package with no copy
 * step. Charts are uPlot (the `uplot` package: small, fast, MIT), read from its installed files once when the
 * dashboard starts and served from this server (no CDN).
 *
 * The script renders every value with `textContent` (never `innerHTML`), so payloads, error messages and
 * names are text whatever they contain; the server's Content-Security-Policy allows no inline script either.
 */
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"

/** The files the server serves. */
export interface Assets {
  readonly page: (title: string) => string
  readonly script: string
  readonly style: string
  readonly uplotScript: string
  readonly uplotStyle: string
}

/** Escapes text for HTML (the title is the only value the server puts into markup). */
export const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c]!)

const page = (title: string) =>
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="/assets/uplot.css">
<link rel="stylesheet" href="/assets/app.css">
<script src="/assets/uplot.js" defer></script>
<script src="/assets/app.js" defer></script>
</head>
<body>
<header>
  <a class="brand" href="/">${escapeHtml(title)}</a>
  <nav><a href="/" data-nav="/">Overview</a><a href="/jobs" data-nav="/jobs">Jobs</a><a href="/workers" data-nav="/workers">Workers</a></nav>
  <span id="live" class="live" data-testid="live"></span>
  <span id="auth" class="auth"></span>
</header>
<div id="message" role="status" data-testid="message"></div>
<main id="main"><noscript>This dashboard needs JavaScript.</noscript></main>
</body>
</html>
`

/** Reads uPlot's files from the installed package (resolved from this module, as Node resolves imports). */
export const load = (): Assets => {
  const require = createRequire(import.meta.url)
  const uplotScript = readFileSync(require.resolve("uplot/dist/uPlot.iife.min.js"), "utf8")
  const uplotStyle = readFileSync(require.resolve("uplot/dist/uPlot.min.css"), "utf8")
  return { page, script, style, uplotScript, uplotStyle }
}

const style = String.raw`
:root { --fg: #1d232a; --muted: #5f6b76; --line: #dde2e7; --bg: #f6f8fa; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: #fff; }
header { display: flex; align-items: center; gap: 18px; padding: 10px 20px; border-bottom: 1px solid var(--line); background: var(--bg); flex-wrap: wrap; }
.brand { font-weight: 700; font-size: 16px; color: var(--fg); text-decoration: none; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
nav a.current { font-weight: 600; color: var(--fg); }
.live { font-size: 12px; color: var(--muted); }
.live.on::before { content: "\25CF "; color: var(--ok); }
.live.off::before { content: "\25CF "; color: var(--bad); }
.auth { margin-left: auto; display: flex; gap: 6px; align-items: center; font-size: 12px; }
.auth input { width: 180px; }
main { padding: 16px 20px 40px; max-width: 1280px; }
h2 { font-size: 15px; margin: 22px 0 8px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.paused td { background: #fff8e6; }
.badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 12px; border: 1px solid var(--line); }
.state-failed { color: var(--bad); border-color: #f3b9bd; }
.state-succeeded { color: var(--ok); border-color: #aee0bb; }
.state-running, .state-alive { color: var(--accent); border-color: #b6d4f7; }
.state-dead { color: var(--bad); border-color: #f3b9bd; }
.state-held { color: var(--muted); }
.state-paused, .state-delayed { color: var(--warn); border-color: #f0d58c; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
.chart { border: 1px solid var(--line); border-radius: 6px; padding: 8px; min-height: 250px; }
.chart h3 { margin: 0 0 6px; font-size: 13px; }
.muted { color: var(--muted); }
.notes { font-size: 12px; color: var(--muted); }
button { font: inherit; padding: 3px 10px; border: 1px solid #c7ced5; border-radius: 5px; background: #fff; cursor: pointer; }
button:hover:not(:disabled) { background: var(--bg); }
button:disabled { color: #a0a8b0; cursor: not-allowed; }
button.danger { color: var(--bad); }
form.filters { display: flex; gap: 10px; align-items: end; flex-wrap: wrap; margin-bottom: 12px; }
form.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
input, select { font: inherit; padding: 3px 6px; border: 1px solid #c7ced5; border-radius: 5px; }
pre { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 10px; overflow: auto; max-height: 360px; white-space: pre-wrap; word-break: break-word; }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; }
dl.fields dt { color: var(--muted); }
dl.fields dd { margin: 0; }
.actions { display: flex; gap: 8px; margin: 12px 0; }
.pager { display: flex; gap: 14px; margin-top: 10px; }
#message { margin: 0 20px; }
#message:not(:empty) { margin-top: 12px; padding: 8px 12px; border-radius: 6px; background: #ddf4ff; border: 1px solid #b6e3ff; }
#message.error { background: #ffebe9; border-color: #ffc1ba; }
.trunc { max-width: 320px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
`

const script = String.raw`"use strict";
(function () {
  var TOKEN_KEY = "cuckmq-token";
  var cfg = null;
  var main = document.getElementById("main");
  var charts = {};
  var chartEnd = {};

  // --- DOM helpers: every value goes in as text ---------------------------------------------------------
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      var v = attrs[k];
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") node.textContent = String(v);
      else if (k === "onclick") node.addEventListener("click", v);
      else if (k === "onsubmit") node.addEventListener("submit", v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    });
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function table(headers, rows, testid) {
    return el("table", { "data-testid": testid }, [
      el("thead", null, [el("tr", null, headers.map(function (h) {
        return el("th", { "class": h.num ? "num" : null, text: h.label || h });
      }))]),
      el("tbody", null, rows)
    ]);
  }
  function td(value, cls) { return el("td", { "class": cls || null, text: value === null || value === undefined ? "" : value }); }
  function badge(state) { return el("span", { "class": "badge state-" + state, "data-testid": "state", text: state }); }

  // --- formatting ---------------------------------------------------------------------------------------
  function count(c) { return c.text; }
  function num(n) { return n === null || n === undefined ? "" : Number(n).toLocaleString("en-US"); }
  function time(ms) { return ms === null || ms === undefined ? "" : new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC"; }
  function rate(n) { return n === null || n === undefined ? "" : (Math.round(n * 10) / 10).toLocaleString("en-US"); }
  function age(secs) {
    if (secs === null || secs === undefined) return "";
    if (secs < 60) return secs.toFixed(secs < 10 ? 1 : 0) + " s";
    if (secs < 3600) return (secs / 60).toFixed(1) + " min";
    return (secs / 3600).toFixed(1) + " h";
  }

  // --- messages, token, requests ------------------------------------------------------------------------
  function say(text, isError) {
    var m = document.getElementById("message");
    m.textContent = text;
    m.className = isError ? "error" : "";
  }
  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
  function getJson(path) {
    return fetch(path, { headers: { accept: "application/json" } }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(body && body.error ? body.error : "HTTP " + r.status);
        return body;
      });
    });
  }
  function act(path, label, then) {
    var headers = { accept: "application/json" };
    headers[cfg.tokenHeader] = token();
    return fetch(path, { method: "POST", headers: headers }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { say(label + " refused: " + (body.error || "HTTP " + r.status), true); return; }
        say(label + ": " + (body.message || "done"), false);
        if (then) then();
      });
    }, function (e) { say(label + " failed: " + e.message, true); });
  }
  function actionButton(label, path, opts) {
    opts = opts || {};
    return el("button", {
      "class": opts.danger ? "danger" : null,
      "data-testid": opts.testid || null,
      disabled: cfg.readOnly,
      title: cfg.readOnly ? "read-only dashboard" : null,
      onclick: function () {
        if (opts.confirm && !window.confirm(opts.confirm)) return;
        act(path, opts.what || label, opts.then);
      },
      text: label
    });
  }
  function renderAuth() {
    var auth = clear(document.getElementById("auth"));
    if (cfg.readOnly) { auth.appendChild(el("span", { "class": "badge", "data-testid": "read-only", text: "read-only" })); return; }
    var input = el("input", { type: "password", placeholder: "token for actions", autocomplete: "off", "data-testid": "token" });
    input.value = token();
    auth.appendChild(el("form", {
      onsubmit: function (e) {
        e.preventDefault();
        sessionStorage.setItem(TOKEN_KEY, input.value);
        say(input.value ? "token saved for this tab" : "token cleared", false);
      }
    }, [input, " ", el("button", { type: "submit", "data-testid": "token-save", text: "Use token" })]));
  }

  // --- live updates: one EventSource per visible tab, fed by the server's shared refresh ----------------
  // A browser opens at most six HTTP/1.1 connections per host and a stream holds one for good: a hidden tab
  // closes its stream (and the server stops refreshing once no tab listens), and reopens it when shown, so
  // background tabs leave the connections to the tab in front.
  var listeners = [];
  var source = null;
  var retryTimer = null;
  function indicate(state, text, cls) {
    var indicator = document.getElementById("live");
    indicator.className = cls;
    indicator.textContent = text;
    indicator.setAttribute("data-state", state);
    return indicator;
  }
  function connect() {
    if (source !== null) return;
    indicate("connecting", "connecting", "live");
    source = new EventSource("/api/events");
    source.addEventListener("snapshot", function (e) {
      var snapshot = JSON.parse(e.data);
      var indicator = snapshot.error
        ? indicate("error", "refresh failed: " + snapshot.error, "live off")
        : indicate("live", "live, refreshed " + new Date(snapshot.at).toLocaleTimeString("en-GB") + " (#" + snapshot.seq + ")", "live on");
      indicator.setAttribute("data-seq", String(snapshot.seq));
      listeners.forEach(function (f) { f(snapshot); });
    });
    source.onerror = function () {
      if (source === null || source.readyState !== EventSource.CLOSED) { indicate("reconnecting", "reconnecting", "live off"); return; }
      // a refused stream (503: the server's cap on open streams) is not retried by the browser: try again later
      source = null;
      indicate("refused", "live updates unavailable, retrying in 10 s", "live off");
      if (retryTimer === null) retryTimer = setTimeout(function () { retryTimer = null; if (!document.hidden) connect(); }, 10000);
    };
  }
  function disconnect() {
    if (source === null) return;
    source.close();
    source = null;
    indicate("paused", "paused while the tab is hidden", "live");
  }
  function live(onSnapshot) {
    listeners.push(onSnapshot);
    if (listeners.length > 1) return;
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) disconnect(); else connect();
    });
    if (document.hidden) indicate("paused", "paused while the tab is hidden", "live"); else connect();
  }

  // --- charts (uPlot) -----------------------------------------------------------------------------------
  var palette = ["#1a7f37", "#cf222e", "#0969da", "#9a6700", "#8250df", "#bc4c00", "#1b7c83", "#6e7781"];
  function chart(key, container, title, labels, data, endSecs) {
    var existing = charts[key];
    var sig = labels.join("|");
    chartEnd[key] = endSecs;
    if (existing && existing.sig === sig) { existing.plot.setData(data); return; }
    if (existing) existing.plot.destroy();
    clear(container);
    container.appendChild(el("h3", { text: title }));
    if (typeof uPlot === "undefined") { container.appendChild(el("p", { "class": "muted", text: "charts unavailable" })); return; }
    var width = Math.max(320, container.clientWidth - 16);
    var opts = {
      width: width, height: 200,
      series: [{}].concat(labels.map(function (l, i) { return { label: l, stroke: palette[i % palette.length], width: 1.5, spanGaps: false }; })),
      axes: [{}, { size: 50 }],
      // both charts span the last hour, however few samples there are yet
      scales: {
        x: { time: true, range: function () { return [chartEnd[key] - 3600, chartEnd[key]]; } },
        y: { range: function (u, min, max) { return [0, Math.max(1, max || 0) * 1.1]; } }
      },
      legend: { live: false }
    };
    var plot = new uPlot(opts, data, container);
    charts[key] = { plot: plot, sig: sig };
  }

  // --- pages --------------------------------------------------------------------------------------------
  function overview() {
    var status = el("p", { "class": "muted", "data-testid": "overview-status", text: "waiting for the first refresh" });
    var channels = el("div"), definitions = el("div"), notes = el("div", { "class": "notes" });
    var throughput = el("div", { "class": "chart", "data-testid": "chart-throughput" });
    var wait = el("div", { "class": "chart", "data-testid": "chart-wait" });
    main.appendChild(el("h2", { text: "Overview" }));
    main.appendChild(status);
    main.appendChild(el("div", { "class": "charts" }, [throughput, wait]));
    main.appendChild(el("h2", { text: "Channels" }));
    main.appendChild(channels);
    main.appendChild(el("h2", { text: "Definitions" }));
    main.appendChild(definitions);
    main.appendChild(notes);
    live(function (snapshot) {
      var stats = snapshot.stats;
      if (!stats) { status.textContent = snapshot.error ? "no figures yet: " + snapshot.error : "no figures yet"; return; }
      status.textContent = stats.channels.length + " channel(s), " + stats.definitions.length + " definition(s), " + stats.workers.length + " live worker(s)";
      clear(channels).appendChild(table(
        ["Channel", "State", { label: "Waiting", num: 1 }, { label: "Delayed", num: 1 }, { label: "Held", num: 1 }, { label: "Running", num: 1 },
          { label: "Succeeded 1h", num: 1 }, { label: "Failed 1h", num: 1 }, { label: "Per min", num: 1 }, { label: "Oldest waiting", num: 1 }, ""],
        stats.channels.map(function (c) {
          return el("tr", { "class": c.paused ? "paused" : null, "data-channel": c.channel }, [
            td(c.channel), el("td", null, [badge(c.paused ? "paused" : "active")]),
            td(count(c.waiting), "num"), td(count(c.delayed), "num"), td(count(c.held), "num"), td(count(c.running), "num"),
            td(num(c.succeededLastHour), "num"), td(num(c.failedLastHour), "num"), td(rate(c.throughputPerMinute), "num"),
            td(age(c.oldestWaitingSecs), "num"),
            el("td", null, [c.paused
              ? actionButton("Resume", "/api/channels/" + encodeURIComponent(c.channel) + "/resume", { testid: "resume", what: "resume " + c.channel })
              : actionButton("Pause", "/api/channels/" + encodeURIComponent(c.channel) + "/pause", { testid: "pause", what: "pause " + c.channel })])
          ]);
        }), "channels"));
      clear(definitions).appendChild(table(
        ["Definition", "Channel", { label: "Waiting", num: 1 }, { label: "Delayed", num: 1 }, { label: "Held", num: 1 }, { label: "Running", num: 1 },
          { label: "Succeeded 1h", num: 1 }, { label: "Failed 1h", num: 1 }, { label: "Per min", num: 1 }],
        stats.definitions.map(function (d) {
          return el("tr", { "data-definition": d.name }, [
            el("td", null, [el("a", { href: "/jobs?definition=" + encodeURIComponent(d.name), text: d.name }), d.deployed ? null : el("span", { "class": "muted", text: " (not deployed)" })]),
            td(d.channel), td(count(d.waiting), "num"), td(count(d.delayed), "num"), td(count(d.held), "num"), td(count(d.running), "num"),
            td(num(d.succeededLastHour), "num"), td(num(d.failedLastHour), "num"), td(rate(d.throughputPerMinute), "num")
          ]);
        }), "definitions"));
      clear(notes);
      stats.notes.forEach(function (n) { notes.appendChild(el("p", { text: n })); });
      var tp = stats.throughput;
      var end = Math.floor(stats.at / 1000) + 60;
      chart("throughput", throughput, "Jobs finished per minute, last hour", ["succeeded", "failed"], [tp.t, tp.succeeded, tp.failed], end);
      var wt = snapshot.waitTime;
      chart("wait", wait, "Oldest waiting job per channel (seconds), sampled by this dashboard",
        wt.series.map(function (s) { return s.channel; }), [wt.t].concat(wt.series.map(function (s) { return s.secs; })), Math.floor(snapshot.at / 1000) + 10);
    });
  }

  function jobs() {
    var params = new URLSearchParams(location.search);
    var state = el("select", { name: "state", "data-testid": "filter-state" }, [el("option", { value: "", text: "any" })].concat(
      cfg.states.map(function (s) { return el("option", { value: s, text: s }); })));
    state.value = params.get("state") || "";
    function field(name, label) {
      var input = el("input", { name: name, "data-testid": "filter-" + name, size: 16 });
      input.value = params.get(name) || "";
      return el("label", null, [label, input]);
    }
    main.appendChild(el("h2", { text: "Jobs" }));
    main.appendChild(el("form", { "class": "filters", method: "get", action: "/jobs", "data-testid": "filters" }, [
      el("label", null, ["state", state]), field("definition", "definition"), field("channel", "channel"), field("group", "group"),
      el("button", { type: "submit", "data-testid": "filter-apply", text: "Filter" }),
      el("a", { href: "/jobs", text: "clear" })
    ]));
    if (params.get("state") === "failed") {
      // a bulk redrive of what the filter shows (definition, channel, group), in bounded batches
      var scope = new URLSearchParams();
      ["definition", "channel", "group"].forEach(function (k) { if (params.get(k)) scope.set(k, params.get(k)); });
      main.appendChild(el("div", { "class": "actions" }, [actionButton("Retry all matching failed jobs", "/api/jobs/retry-failed?" + scope.toString(), {
        testid: "retry-matching", what: "retry all matching", confirm: "Retry every failed job that matches these filters (up to 1,000 at a time)?",
        then: function () { clear(main); jobs(); }
      })]));
    }
    var holder = el("div", { "data-testid": "jobs-holder", text: "loading" });
    main.appendChild(holder);
    var query = new URLSearchParams();
    ["state", "definition", "channel", "group", "cursor"].forEach(function (k) { if (params.get(k)) query.set(k, params.get(k)); });
    getJson("/api/jobs?" + query.toString()).then(function (page) {
      clear(holder);
      if (page.jobs.length === 0) { holder.appendChild(el("p", { "class": "muted", "data-testid": "no-jobs", text: "no jobs match" })); }
      else holder.appendChild(table(
        ["ID", "Definition", "Channel", "Group", "State", { label: "Attempts", num: 1 }, "Created", "Run at / finished", "Last error"],
        page.jobs.map(function (j) {
          return el("tr", { "data-job": j.id }, [
            el("td", null, [el("a", { href: "/jobs/" + encodeURIComponent(j.id), "data-testid": "job-link", text: j.id })]),
            td(j.definition), td(j.channel), td(j.group), el("td", null, [badge(j.state)]),
            td(j.attempts + " / " + j.maxAttempts, "num"), td(time(j.createdAt)), td(time(j.finishedAt !== null ? j.finishedAt : j.runAt)),
            el("td", { "class": "trunc", title: j.lastError || null, text: j.lastError || "" })
          ]);
        }), "jobs"));
      var pager = el("div", { "class": "pager" });
      if (params.get("cursor")) {
        var first = new URLSearchParams(params); first.delete("cursor");
        pager.appendChild(el("a", { href: "/jobs?" + first.toString(), "data-testid": "first-page", text: "\u2190 first page" }));
      }
      if (page.next) {
        var next = new URLSearchParams(params); next.set("cursor", page.next);
        pager.appendChild(el("a", { href: "/jobs?" + next.toString(), "data-testid": "next-page", text: "next page \u2192" }));
      }
      holder.appendChild(pager);
    }, function (e) { clear(holder).appendChild(el("p", { "class": "muted", "data-testid": "jobs-error", text: "could not list jobs: " + e.message })); });
  }

  function jobDetail(id) {
    main.appendChild(el("p", null, [el("a", { href: "/jobs", text: "\u2190 jobs" })]));
    var holder = el("div", { "data-testid": "job", text: "loading" });
    main.appendChild(holder);
    function load() {
      getJson("/api/jobs/" + encodeURIComponent(id)).then(function (job) {
        clear(holder);
        holder.setAttribute("data-state", job.state);
        holder.appendChild(el("h2", null, ["Job ", el("span", { "data-testid": "job-id", text: job.id }), " ", badge(job.state)]));
        var base = "/api/jobs/" + encodeURIComponent(job.id);
        holder.appendChild(el("div", { "class": "actions" }, [
          actionButton("Retry", base + "/retry", { testid: "retry", what: "retry", then: load }),
          job.state === "delayed" ? actionButton("Run now", base + "/run-now", { testid: "run-now", what: "run now", then: load }) : null,
          actionButton("Cancel", base + "/cancel", { testid: "cancel", what: "cancel", then: load }),
          actionButton("Delete", base + "/delete", { testid: "delete", what: "delete", danger: true, confirm: "Delete job " + job.id + "?", then: function () { location.href = "/jobs"; } })
        ]));
        var fields = [["Definition", job.definition], ["Channel", job.channel], ["Group", job.group || ""],
          ["Attempts", job.attempts + " of " + job.maxAttempts], ["Priority", job.priority], ["Run at", time(job.runAt)],
          ["Created", time(job.createdAt)], ["Finished", time(job.finishedAt)]].concat(job.extra || []);
        holder.appendChild(el("dl", { "class": "fields" }, fields.reduce(function (acc, f) {
          acc.push(el("dt", { text: f[0] })); acc.push(el("dd", { text: f[1] === null || f[1] === undefined ? "" : f[1] })); return acc;
        }, [])));
        holder.appendChild(el("h2", { text: "Payload" }));
        holder.appendChild(el("pre", { "data-testid": "payload", text: pretty(job.payload) }));
        holder.appendChild(el("h2", { text: "Last error" }));
        holder.appendChild(job.lastErrorJson === null ? el("p", { "class": "muted", text: "none" }) : el("pre", { "data-testid": "last-error", text: errorText(job.lastErrorJson) }));
        holder.appendChild(el("h2", { text: "Result" }));
        holder.appendChild(job.result === null ? el("p", { "class": "muted", text: "no result recorded (job results are not stored yet)" }) : el("pre", { "data-testid": "result", text: pretty(job.result) }));
      }, function (e) { clear(holder).appendChild(el("p", { "class": "muted", "data-testid": "job-missing", text: e.message })); });
    }
    load();
    // an unfinished job changes as workers take it: at each shared refresh, re-read it (one lookup by id)
    // until it is finished
    live(function () {
      var state = holder.getAttribute("data-state");
      if (!document.hidden && (state === "waiting" || state === "delayed" || state === "held" || state === "running")) load();
    });
  }
  // a stored failure carries its message and a readable form (with the stack): show that form as it is
  function errorText(text) {
    try {
      var o = JSON.parse(text);
      if (o && typeof o.pretty === "string") return o.pretty;
      if (o && typeof o.message === "string") return o.message;
    } catch (e) { /* not JSON: as stored */ }
    return pretty(text);
  }
  function pretty(text) { try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return String(text); } }

  function workers() {
    main.appendChild(el("h2", { text: "Workers" }));
    var holder = el("div", { "data-testid": "workers-holder", text: "waiting for the first refresh" });
    main.appendChild(holder);
    live(function (snapshot) {
      if (!snapshot.stats) return;
      var ws = snapshot.stats.workers;
      clear(holder).appendChild(ws.length === 0 ? el("p", { "class": "muted", "data-testid": "no-workers", text: "no live worker" }) : table(
        ["Name", "State", "ID", "Host", { label: "PID", num: 1 }, "Channels", { label: "Concurrency", num: 1 }, { label: "In flight", num: 1 }, "Started", "Last heartbeat"],
        ws.map(function (w) {
          return el("tr", { "data-worker": w.id }, [td(w.name), el("td", null, [badge(w.alive ? "alive" : "dead")]), td(w.id), td(w.hostname), td(w.pid, "num"),
            td(w.channels.join(", ")), td(w.concurrency === null ? "?" : w.concurrency, "num"), td(w.inFlight, "num"), td(time(w.startedAt)),
            td(age(Math.max(0, (snapshot.stats.at - w.lastHeartbeat) / 1000)) + " ago")]);
        }), "workers"));
    });
  }

  // --- start ------------------------------------------------------------------------------------------------
  getJson("/api/config").then(function (c) {
    cfg = c;
    renderAuth();
    clear(main);
    var path = location.pathname;
    document.querySelectorAll("nav a").forEach(function (a) {
      var nav = a.getAttribute("data-nav");
      if (nav === path || (nav !== "/" && path.indexOf(nav) === 0)) a.className = "current";
    });
    var m = /^\/jobs\/(.+)$/.exec(path);
    if (path === "/") overview();
    else if (path === "/jobs") jobs();
    else if (m) jobDetail(decodeURIComponent(m[1]));
    else if (path === "/workers") workers();
    document.body.setAttribute("data-ready", "true");
  }, function (e) { say("could not load the dashboard: " + e.message, true); });
})();
`
