/**
 * CPU time of the database server, from /proc: the PostgreSQL postmaster of the benchmarked server and all
 * of its children (backends, checkpointer, walwriter, autovacuum, ...), or the redis-server process.
 * Each process contributes utime + stime, plus cutime + cstime (the CPU of its children that have exited,
 * e.g. backends that ended between two samples, or a redis BGSAVE fork), so that nothing that ran between
 * two samples is lost.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import pg from "pg"
import { Redis } from "ioredis"

let clockTicks: number | undefined
const ticksPerSecond = (): number => {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100
    } catch {
      clockTicks = 100
    }
  }
  return clockTicks
}

interface Stat {
  readonly comm: string
  readonly ppid: number
  readonly ticks: number
}

const readStat = (pid: number): Stat | undefined => {
  let text: string
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  } catch {
    return undefined
  }
  const open = text.indexOf("(")
  const close = text.lastIndexOf(")")
  const comm = text.slice(open + 1, close)
  const fields = text.slice(close + 2).split(" ") // fields[0] is field 3 (state)
  const num = (field: number) => Number(fields[field - 3])
  return { comm, ppid: num(4), ticks: num(14) + num(15) + num(16) + num(17) }
}

/** A sampler of one server's CPU seconds so far; `undefined` when the server's process is not on this machine. */
export type CpuProbe = () => number

const pids = (): Array<number> =>
  fs.readdirSync("/proc").filter((name) => /^\d+$/.test(name)).map(Number)

const probeTree = (root: number, comm: string): CpuProbe | undefined => {
  const stat = readStat(root)
  if (!stat || stat.comm !== comm) return undefined
  return () => {
    let ticks = 0
    for (const pid of pids()) {
      if (pid !== root) {
        const s = readStat(pid)
        if (s && s.ppid === root) ticks += s.ticks
      } else {
        ticks += readStat(pid)?.ticks ?? 0
      }
    }
    return ticks / ticksPerSecond()
  }
}

/** The postmaster (parent of our backend) of the server at `databaseUrl`, and its children. */
export const postgresProbe = async (databaseUrl: string): Promise<CpuProbe | undefined> => {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")
    const backend = readStat(rows[0]!.pid)
    if (!backend || backend.comm !== "postgres") return undefined
    return probeTree(backend.ppid, "postgres")
  } finally {
    await client.end()
  }
}

/** The redis-server process of the server at host:port. */
export const redisProbe = async (host: string, port: number): Promise<CpuProbe | undefined> => {
  const redis = new Redis({ host, port, lazyConnect: true })
  await redis.connect()
  try {
    const info = await redis.info("server")
    const pid = Number(/process_id:(\d+)/.exec(info)?.[1])
    return Number.isFinite(pid) ? probeTree(pid, "redis-server") : undefined
  } finally {
    redis.disconnect()
  }
}
