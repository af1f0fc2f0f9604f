/**
 * Worker "hosts" on one machine: Linux network namespaces (`ip netns`), each joined to the root namespace by
 * a veth pair, with an added round-trip time. Used by the benchmark's `net-*` workloads (bench/run.ts) and by
 * test/netns.test.ts. Needs root (CAP_NET_ADMIN) and iproute2; `netnsUnavailable()` says why not otherwise.
 *
 * Topology of host k (k = 0, 1, ...): a namespace `cqmq-<pid>-<k>`; a veth pair whose root end has
 * 10.77.X.1/24 and whose namespace end has 10.77.X.2/24 (X a free third octet). The database servers listen
 * on 127.0.0.1 of the root namespace only, which a namespace cannot reach; so a small TCP forwarder
 * (`forward`) in the root namespace listens on 10.77.X.1:<port> and pipes each connection to the real
 * server. A process started with `execIn(host)` (`ip netns exec <ns> ...`) connects to that address: its
 * packets cross the veth, and the delay applies to them.
 *
 * The added round-trip time (RTT) is put on the path from the servers to the host (one direction, as
 * `tc qdisc add dev <root end> root netem delay <RTT>` does), in one of two ways, whichever the kernel allows:
 * - "netem": `tc qdisc replace dev <root end> root netem delay <RTT>ms`;
 * - "forwarder": the kernel has no sch_netem (CONFIG_NET_SCH_NETEM unset, as in some VMs), so the forwarder
 *   holds every chunk it pipes from the server to the host for RTT ms (in order, per connection; no
 *   bandwidth limit). Node's timers have a resolution of about 1 ms, so the delay is approximate:
 *   `measureRtt` reports what a process in the namespace actually sees.
 * A request/response round trip gets the whole RTT either way; a message the server sends by itself (a
 * NOTIFY, a Redis pub/sub message) gets it too (on a real link it would get about half).
 *
 * Names carry the owner's pid: `cleanupStale()` deletes the namespaces of processes that are gone (a crash),
 * and leaves those of live processes (another benchmark or test run) alone.
 */
import { execFile, execFileSync, spawn } from "node:child_process"
import * as net from "node:net"
import { performance } from "node:perf_hooks"
import { promisify } from "node:util"

const run = promisify(execFile)
const prefix = "cqmq-"

/** One "host": a network namespace and its veth pair. */
export interface Host {
  /** The namespace's name (`ip netns exec <name>`). */
  readonly name: string
  /** The veth end in the root namespace, and its address (where the forwarders listen). */
  readonly rootDev: string
  readonly gateway: string
  /** The veth end inside the namespace, and its address. */
  readonly nsDev: string
  readonly address: string
}

/** How the added round-trip time is applied (see the module's doc comment). */
export type DelayMode = "netem" | "forwarder"

/** A set of hosts with one added round-trip time, changeable between runs. */
export interface Network {
  readonly hosts: ReadonlyArray<Host>
  readonly mode: DelayMode
  /** The added round-trip time in ms, for every host. */
  readonly rttMs: () => number
  /** Sets the added round-trip time of every host (0: none). */
  readonly setRtt: (ms: number) => Promise<void>
  /**
   * A forwarder on `host.gateway` to `target` (a server of the root namespace): the address a process in
   * the namespace connects to. Closed with the network.
   */
  readonly forward: (host: Host, target: { readonly host: string; readonly port: number }) => Promise<{ readonly host: string; readonly port: number }>
  /** Takes the host's link down (`ip link set ... down`, both ends) or up again. */
  readonly setLink: (host: Host, up: boolean) => Promise<void>
  /** Closes the forwarders and deletes the namespaces (and with them the veth pairs and qdiscs). */
  readonly close: () => Promise<void>
}

const ip = (...args: Array<string>) => run("ip", args)

/** The command prefix that runs a program inside the host's namespace. */
export const execIn = (host: Host | string): Array<string> => ["ip", "netns", "exec", typeof host === "string" ? host : host.name]

/** Undefined when namespaces can be made here; otherwise why not (for a skip message). */
export const netnsUnavailable = async (): Promise<string | undefined> => {
  if (process.platform !== "linux") return `network namespaces need Linux (this is ${process.platform})`
  const probe = `${prefix}${process.pid}-probe`
  try {
    await ip("netns", "add", probe)
  } catch (e) {
    return `\`ip netns add\` is not permitted or ip is missing (${firstLine(e)}): run as root with CAP_NET_ADMIN and iproute2`
  }
  await ip("netns", "del", probe).catch(() => {})
  return undefined
}

const firstLine = (e: unknown): string => {
  const err = e as { stderr?: string; message?: string }
  return (err.stderr?.trim() || err.message || String(e)).split("\n")[0]!
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** Deletes the namespaces (and their veth pairs) left by processes that are gone. */
export const cleanupStale = async (): Promise<Array<string>> => {
  const { stdout } = await ip("netns", "list").catch(() => ({ stdout: "" }))
  const stale = stdout.split("\n").map((l) => l.split(" ")[0]!).filter((name) => {
    const m = new RegExp(`^${prefix}(\\d+)-`).exec(name)
    return m !== null && !alive(Number(m[1]))
  })
  for (const name of stale) await ip("netns", "del", name).catch(() => {})
  return stale
}

/** Third octets of 10.77.X.0/24 already in use on this machine (by other runs). */
const usedOctets = (): Set<number> => {
  const out = execFileSync("ip", ["-4", "-o", "addr", "show"], { encoding: "utf8" })
  return new Set([...out.matchAll(/inet 10\.77\.(\d+)\./g)].map((m) => Number(m[1])))
}

const netemWorks = async (host: Host): Promise<boolean> => {
  try {
    await run("tc", ["qdisc", "replace", "dev", host.rootDev, "root", "netem", "delay", "0ms"])
    return true
  } catch {
    return false
  }
}

/** Creates `count` hosts with an added round-trip time of `rttMs` (default 0). */
export const createNetwork = async (options: { readonly hosts: number; readonly rttMs?: number; readonly mode?: DelayMode }): Promise<Network> => {
  await cleanupStale()
  const hosts: Array<Host> = []
  const servers: Array<net.Server> = []
  const sockets = new Set<net.Socket>()
  let rtt = 0
  const close = async () => {
    for (const s of sockets) s.destroy()
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
    for (const h of hosts) await ip("netns", "del", h.name).catch(() => {})
    // the root end of a veth goes with its peer; delete it anyway if a namespace was never made
    for (const h of hosts) await ip("link", "del", h.rootDev).catch(() => {})
  }
  try {
    const used = usedOctets()
    const tag = process.pid.toString(36)
    for (let k = 0; k < options.hosts; k++) {
      let octet = 1
      while (used.has(octet)) octet++
      if (octet > 254) throw new Error("no free 10.77.X.0/24 subnet")
      used.add(octet)
      const host: Host = {
        name: `${prefix}${process.pid}-${k}`,
        rootDev: `cq${tag}h${k}`,
        nsDev: `cq${tag}n${k}`,
        gateway: `10.77.${octet}.1`,
        address: `10.77.${octet}.2`
      }
      hosts.push(host)
      await ip("netns", "add", host.name)
      await ip("link", "add", host.rootDev, "type", "veth", "peer", "name", host.nsDev)
      await ip("link", "set", host.nsDev, "netns", host.name)
      await ip("addr", "add", `${host.gateway}/24`, "dev", host.rootDev)
      await ip("link", "set", host.rootDev, "up")
      await ip("-n", host.name, "addr", "add", `${host.address}/24`, "dev", host.nsDev)
      await ip("-n", host.name, "link", "set", host.nsDev, "up")
      await ip("-n", host.name, "link", "set", "lo", "up")
      await ip("-n", host.name, "route", "add", "default", "via", host.gateway)
    }
    const mode: DelayMode = options.mode ?? (hosts.length > 0 && (await netemWorks(hosts[0]!)) ? "netem" : "forwarder")
    const setRtt = async (ms: number) => {
      rtt = ms
      if (mode !== "netem") return
      for (const h of hosts) await run("tc", ["qdisc", "replace", "dev", h.rootDev, "root", "netem", "delay", `${ms}ms`])
    }
    await setRtt(options.rttMs ?? 0)
    const forwarderDelay = () => (mode === "forwarder" ? rtt : 0)
    const forward: Network["forward"] = (host, target) =>
      new Promise((resolve, reject) => {
        const server = net.createServer((client) => {
          const upstream = net.connect(target.port, target.host)
          client.setNoDelay(true)
          upstream.setNoDelay(true)
          sockets.add(client)
          sockets.add(upstream)
          const done = () => {
            client.destroy()
            upstream.destroy()
            sockets.delete(client)
            sockets.delete(upstream)
          }
          client.on("error", done).on("close", done)
          upstream.on("error", done).on("close", done)
          pipeDelayed(client, upstream, () => 0) // host to server: no delay
          pipeDelayed(upstream, client, forwarderDelay) // server to host: the whole RTT
        })
        server.on("error", reject)
        server.listen(0, host.gateway, () => {
          servers.push(server)
          const address = server.address() as net.AddressInfo
          resolve({ host: host.gateway, port: address.port })
        })
      })
    const setLink = async (host: Host, up: boolean) => {
      const state = up ? "up" : "down"
      await ip("link", "set", host.rootDev, state)
      await ip("-n", host.name, "link", "set", host.nsDev, state)
      if (up) {
        // the root end's subnet route comes back by itself; the namespace's default route does not
        await ip("-n", host.name, "route", "replace", "default", "via", host.gateway).catch(() => {})
      }
    }
    return { hosts, mode, rttMs: () => rtt, setRtt, forward, setLink, close }
  } catch (e) {
    await close()
    throw e
  }
}

/**
 * Pipes `from` into `to`, each chunk held `delayMs()` ms (when above 0) and written in order; pauses `from`
 * while `to` is full. Ends `to` once `from` ended and everything held was written.
 */
const pipeDelayed = (from: net.Socket, to: net.Socket, delayMs: () => number): void => {
  const held: Array<{ readonly at: number; readonly chunk: Buffer }> = []
  let timer: NodeJS.Timeout | undefined
  let ended = false
  const write = (chunk: Buffer) => {
    if (!to.write(chunk)) {
      from.pause()
      to.once("drain", () => from.resume())
    }
  }
  const flush = () => {
    timer = undefined
    // Node's timers fire up to about 1 ms late (never early): a chunk due within 0.6 ms goes now
    const now = performance.now() + 0.6
    while (held.length > 0 && held[0]!.at <= now) write(held.shift()!.chunk)
    if (held.length > 0) schedule()
    else if (ended) to.end()
  }
  const schedule = () => {
    if (timer === undefined) timer = setTimeout(flush, Math.max(0, held[0]!.at - performance.now() - 0.8))
  }
  from.on("data", (chunk: Buffer) => {
    const delay = delayMs()
    if (delay <= 0 && held.length === 0) write(chunk)
    else {
      held.push({ at: performance.now() + delay, chunk })
      schedule()
    }
  })
  from.on("end", () => {
    ended = true
    if (held.length === 0) to.end()
  })
}

/** Round trips of one byte from inside the host through a forwarder to an echo server: p50 and p90, in ms. */
export const measureRtt = async (network: Network, host: Host, samples = 200): Promise<{ readonly p50: number; readonly p90: number }> => {
  const echo = net.createServer((s) => {
    s.setNoDelay(true)
    s.on("error", () => {})
    s.pipe(s)
  })
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", () => resolve()))
  try {
    const target = await network.forward(host, { host: "127.0.0.1", port: (echo.address() as net.AddressInfo).port })
    const script = `
      const net = require("node:net"); const { performance } = require("node:perf_hooks")
      const s = net.connect(${target.port}, ${JSON.stringify(target.host)}); s.setNoDelay(true)
      const times = []; let t = 0
      s.on("connect", () => { t = performance.now(); s.write("x") })
      s.on("data", () => {
        times.push(performance.now() - t)
        if (times.length < ${samples}) { t = performance.now(); s.write("x") }
        else { times.sort((a, b) => a - b); console.log(JSON.stringify({ p50: times[Math.floor(times.length * 0.5)], p90: times[Math.floor(times.length * 0.9)] })); s.destroy() }
      })`
    const [command, ...args] = [...execIn(host), process.execPath, "-e", script]
    return await new Promise((resolve, reject) => {
      const child = spawn(command!, args, { stdio: ["ignore", "pipe", "pipe"] })
      let out = ""
      child.stdout.on("data", (c: Buffer) => (out += c.toString()))
      child.stderr.on("data", (c: Buffer) => (out += c.toString()))
      child.on("error", reject)
      child.on("exit", (code) => {
        try {
          resolve(JSON.parse(out.trim()) as { p50: number; p90: number })
        } catch {
          reject(new Error(`RTT probe exited (${code}): ${out}`))
        }
      })
    })
  } finally {
    echo.close()
  }
}
