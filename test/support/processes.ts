/**
 * Child processes for multi-process tests: a fixture program run with this project's Node (22+) and tsx,
 * killed on scope exit if still alive.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as path from "node:path"
import { Effect, type Scope } from "effect"

export interface Child {
  readonly pid: number
  /** Resolves once the child printed READY. */
  readonly ready: Effect.Effect<void>
  /** Sends a signal. */
  readonly kill: (signal: NodeJS.Signals) => Effect.Effect<void>
  /** Waits for the child to exit and returns its exit code (or the signal's name). */
  readonly exited: Effect.Effect<number | string>
  readonly output: () => string
}

const root = path.resolve(import.meta.dirname, "../..")

export const spawnFixture = (fixture: string, env: Record<string, string>): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", path.resolve(root, "test/fixtures", fixture)], {
        cwd: root,
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let out = ""
      let readyResolve: () => void
      const readyPromise = new Promise<void>((resolve) => (readyResolve = resolve))
      const exitPromise = new Promise<number | string>((resolve) =>
        child.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown"))
      )
      child.stdout!.on("data", (chunk: Buffer) => {
        out += chunk.toString()
        if (out.includes("READY")) readyResolve()
      })
      child.stderr!.on("data", (chunk: Buffer) => {
        out += chunk.toString()
      })
      const handle: Child = {
        pid: child.pid!,
        ready: Effect.promise(() => Promise.race([readyPromise, exitPromise.then((code) => {
          throw new Error(`fixture ${fixture} exited (${code}) before READY:\n${out}`)
        })])),
        kill: (signal) => Effect.sync(() => void child.kill(signal)),
        exited: Effect.promise(() => exitPromise),
        output: () => out
      }
      return { child, handle }
    }),
    ({ child }) => Effect.sync(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    })
  ).pipe(Effect.map(({ handle }) => handle))
