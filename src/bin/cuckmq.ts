#!/usr/bin/env node
/**
 * The `cuckmq` command (the package's `bin`): a launcher that loads the command line (./cli.js) and runs it.
 *
 * It exists apart from cli.js so that a missing package is reported as an install instruction: the command
 * line needs `@effect/platform-node`, an optional peer dependency that an app which only uses the library
 * does not install, and the `effect` and `@effect/sql-pg` peers. A static import would fail with Node's
 * ERR_MODULE_NOT_FOUND stack trace instead.
 */
const needed = ["@effect/platform-node", "@effect/sql-pg", "effect"]

try {
  const cli = await import("./cli.js")
  cli.main()
} catch (error) {
  const e = error as { readonly code?: unknown; readonly message?: unknown }
  const missing = e.code === "ERR_MODULE_NOT_FOUND" && typeof e.message === "string"
    ? needed.find((name) => (e.message as string).includes(`'${name}'`) || (e.message as string).includes(`'${name}/`))
    : undefined
  if (missing === undefined) throw error
  process.stderr.write(
    `cuckmq: the command line needs the package ${missing}, which is not installed.\n` +
      `Install it next to @cuckmq/effect, e.g. \`npm install ${missing}\` (at the version that matches your effect).\n`
  )
  process.exitCode = 1
}
