/**
 * `npm run bench`: the benchmark is a package of its own (bench/package.json: bullmq, graphile-worker,
 * pg-boss, ioredis, pg), so that installing the library's development dependencies stays small. This
 * installs it on first use, and again when bench/package.json changed since, then runs bench/run.ts with
 * tsx, passing the arguments on (`npm run bench -- --quick --only=cuckmq`).
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const bench = path.join(root, "bench")
const installed = path.join(bench, "node_modules", ".package-lock.json")

const mtime = (file) => fs.statSync(file).mtimeMs
const stale = !fs.existsSync(installed) || mtime(path.join(bench, "package.json")) > mtime(installed)

// Waits for the child; exits with its code if it failed. A terminal's Ctrl-C reaches the child by itself
// (same process group), so this process only waits for it to clean up; SIGTERM is passed on.
const run = (command, args) =>
  new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio: "inherit" })
    const ignore = () => {}
    const forward = () => child.kill("SIGTERM")
    process.on("SIGINT", ignore)
    process.on("SIGTERM", forward)
    child.on("error", (error) => {
      console.error(`bench: cannot run ${command}: ${error.message}`)
      process.exit(1)
    })
    child.on("exit", (code, signal) => {
      process.off("SIGINT", ignore)
      process.off("SIGTERM", forward)
      if (code !== 0) process.exit(code ?? (signal === "SIGINT" ? 130 : 1))
      resolve()
    })
  })

if (stale) {
  console.error("bench: installing the benchmark's dependencies into bench/node_modules (first use)")
  // Under `npm run`, npm_execpath is npm's own CLI script: run it with this Node.
  const npm = process.env.npm_execpath
  const args = ["install", "--prefix", bench, "--no-audit", "--no-fund"]
  if (npm !== undefined && npm.endsWith(".js")) await run(process.execPath, [npm, ...args])
  else await run(process.platform === "win32" ? "npm.cmd" : "npm", args)
}

await run(process.execPath, ["--import", "tsx", path.join(bench, "run.ts"), ...process.argv.slice(2)])
