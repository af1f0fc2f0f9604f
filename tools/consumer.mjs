/**
 * The consumer test (`npm run test:consumer`, run by .ci/run; too slow for `npm test`): the package as an
 * app gets it from the registry.
 *
 * 1. `npm pack` (whose `prepack` runs the build) and a check of the tarball: JavaScript, declarations and
 *    source maps for every `exports` entry, no tests, benchmark, tools or examples.
 * 2. A scratch app in a temporary directory installs the tarball with the peer dependencies (`effect`,
 *    `@effect/sql-pg`) at the versions under test, plus typescript, vitest and @types/node.
 * 3. For the lowest and the highest peer versions the package supports:
 *    - exactly one copy of effect and of @effect/sql-pg is installed (the app's);
 *    - the app (which imports every entry point) type-checks with a strict tsconfig (noPropertyAccessFromIndexSignature,
 *      exactOptionalPropertyTypes, noUncheckedIndexedAccess, skipLibCheck false) under
 *      `moduleResolution: "NodeNext"` (emitting JavaScript) and under `"bundler"`;
 *    - every entry point loads under plain Node (by `import` and by `require`), and
 *      `@cuckmq/effect/internal/*` does not;
 *    - the compiled program runs under plain Node (this Node, 22+; no TypeScript loader) against the
 *      database in DATABASE_URL: in a schema of its own it enqueues a job, a worker runs it, and it drops
 *      the schema;
 *    - one vitest test that uses `@cuckmq/effect/testing` passes;
 *    - the installed `cuckmq` bin (through `npm exec`, as `npx cuckmq` runs it): without the optional peer
 *      `@effect/platform-node` it exits non-zero and says to install it (no stack trace); with it installed
 *      (at the version of the set; on effect 4.0.x with @effect/platform-node-shared pinned to 4.0.x, see
 *      PLATFORM_NODE), `cuckmq --help` lists the commands and `cuckmq sql` prints the
 *      migration SQL (no database needed); the peer is uninstalled again afterwards.
 *
 * Usage: node tools/consumer.mjs [--peers=lowest|highest|all] [--keep]   (DATABASE_URL must be set)
 * The app's sources are test/consumer/*. Exits non-zero, saying which step failed, on any failure.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const templates = path.join(root, "test", "consumer")
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"))

/**
 * The peer versions under test: the lowest and the highest that `peerDependencies` admit and that are
 * published (@effect/sql-pg's own peer range is effect ^4.0.5, so 4.0.5 is the floor of both).
 */
const PEER_SETS = {
  lowest: { effect: "4.0.5", "@effect/sql-pg": "4.0.5" },
  highest: { effect: "4.1.0", "@effect/sql-pg": "4.0.5" }
}
/**
 * The optional peer the `cuckmq` bin needs, per set (installed only for the bin's check). On effect 4.0.x,
 * @effect/platform-node 4.0.x alone does not load: its dependency `@effect/platform-node-shared: ^4.0.5` lets
 * npm install 4.1.0, which needs effect 4.1 (its peer range says so; npm installs it anyway, with a warning,
 * and Node fails on a module effect 4.0.5 lacks). So the lowest set pins platform-node-shared too, as the
 * README tells users on effect 4.0.x to do.
 */
const PLATFORM_NODE = {
  lowest: ["@effect/platform-node@4.0.5", "@effect/platform-node-shared@4.0.5"],
  highest: ["@effect/platform-node@4.1.0"]
}
// The app's tools: the versions this repository develops with.
const TOOLS = ["typescript", "vitest", "@types/node"].map((name) => `${name}@${pkg.devDependencies[name]}`)

const flag = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
const peersArg = flag("peers") ?? "all"
const keep = process.argv.includes("--keep")
const sets = peersArg === "all" ? ["lowest", "highest"] : [peersArg]
for (const s of sets) if (!(s in PEER_SETS)) fail(`unknown --peers=${s} (lowest, highest or all)`)

function fail(message) {
  console.error(`consumer: FAILED: ${message}`)
  process.exit(1)
}

const major = Number(process.versions.node.split(".")[0])
if (major < 22) fail(`needs Node 22+ (this is ${process.version}); run it with \`npm run test:consumer\``)
const databaseUrl = process.env.DATABASE_URL
if (!databaseUrl) fail("DATABASE_URL is not set (the program runs against a real database)")

// npm, and the environment of the npm commands run in the scratch app: without the npm_* variables of
// the `npm run` that started us (they describe this package, not the app).
const npmCli = process.env.npm_execpath?.endsWith(".js") ? process.env.npm_execpath : undefined
const cleanEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith("npm_") || k === "npm_config_cache" || k === "npm_config_registry")
)

// Every step has a time limit (installs 5 minutes, the rest 2), so that a hang fails CI instead of stalling it.
// `expectFailure`: the command must exit non-zero (its output is returned, with `code`).
const run = (label, command, args, { cwd = root, env = cleanEnv, limitSecs = 120, expectFailure = false } = {}) =>
  new Promise((resolve) => {
    const t0 = Date.now()
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] })
    const timer = setTimeout(() => {
      console.error(out)
      child.kill("SIGKILL")
      fail(`${label}: no result after ${limitSecs} s`)
    }, limitSecs * 1000)
    let out = ""
    let stdout = ""
    child.stdout.on("data", (d) => {
      out += d
      stdout += d
    })
    child.stderr.on("data", (d) => (out += d))
    child.on("error", (e) => fail(`${label}: cannot run ${command}: ${e.message}`))
    child.on("exit", (code, signal) => {
      clearTimeout(timer)
      const secs = ((Date.now() - t0) / 1000).toFixed(1)
      if (expectFailure ? code === 0 || code === null : code !== 0) {
        console.error(out)
        fail(`${label} (exit ${code ?? signal}${expectFailure ? ", expected a failure" : ""}, ${secs} s)`)
      }
      console.log(`consumer: ok   ${label} (${secs} s)`)
      resolve({ out, stdout, code })
    })
  })
const npm = (label, args, options) =>
  npmCli !== undefined
    ? run(label, process.execPath, [npmCli, ...args], options)
    : run(label, process.platform === "win32" ? "npm.cmd" : "npm", args, options)
const node = (label, args, options) => run(label, process.execPath, args, options)

const t0 = Date.now()
const work = fs.mkdtempSync(path.join(os.tmpdir(), "cuckmq-consumer-"))
const app = path.join(work, "app")
const cleanup = () => {
  if (keep) console.log(`consumer: kept ${work}`)
  else fs.rmSync(work, { recursive: true, force: true })
}
process.on("exit", cleanup)

// 1. pack (prepack builds) and check the tarball
// stdout: what prepack printed, then the JSON array
const { stdout: packOut } = await npm("npm pack (its prepack runs the build)", ["pack", "--json", "--pack-destination", work], { env: process.env, limitSecs: 300 })
const packed = JSON.parse(packOut.slice(packOut.search(/^\[/m)))[0]
const tarball = path.join(work, packed.filename)
const files = new Set(packed.files.map((f) => f.path))
const entries = Object.entries(pkg.exports).filter(([, target]) => target !== null && typeof target === "object")
const checkedEntries = []
for (const [subpath, target] of entries) {
  const name = path.basename(target.import, ".js")
  if (!fs.existsSync(path.join(root, "src", `${name}.ts`))) {
    console.log(`consumer: skip ${subpath}: src/${name}.ts is not in this checkout`)
    continue
  }
  for (const file of [target.types, target.import, `${target.types}.map`, `${target.import}.map`]) {
    if (!files.has(file.replace(/^\.\//, ""))) fail(`the tarball lacks ${file} (exports "${subpath}")`)
  }
  checkedEntries.push(subpath)
}
const stray = [...files].filter((f) => /^(test|bench|tools|examples|\.ci)\//.test(f) || f.endsWith(".tgz"))
if (stray.length > 0) fail(`the tarball carries files users do not need: ${stray.join(", ")}`)
for (const f of ["LICENSE", "README.md", "CHANGELOG.md", "package.json"]) {
  if (!files.has(f)) fail(`the tarball lacks ${f}`)
}
console.log(`consumer: ok   tarball ${packed.filename}: ${files.size} files, ${(packed.size / 1024).toFixed(0)} kB`)

// 2. the scratch app
fs.mkdirSync(app)
fs.writeFileSync(
  path.join(app, "package.json"),
  JSON.stringify({ name: "cuckmq-consumer-app", private: true, version: "0.0.0", type: "module" }, null, 2)
)
for (const f of fs.readdirSync(templates)) fs.copyFileSync(path.join(templates, f), path.join(app, f))
// every entry point in the type-checked program, so that each one's declarations are checked strictly
fs.writeFileSync(
  path.join(app, "entries.ts"),
  checkedEntries.map((subpath, i) => `export * as entry${i} from ${JSON.stringify(path.posix.join("@cuckmq/effect", subpath))}\n`).join("")
)
const installedVersion = (name) =>
  JSON.parse(fs.readFileSync(path.join(app, "node_modules", name, "package.json"), "utf8")).version
// Every installed copy of a package: <some node_modules>/<name>, at any depth.
const copiesOf = (name) => {
  const found = []
  const walk = (nodeModules) => {
    if (fs.existsSync(path.join(nodeModules, name, "package.json"))) found.push(path.join(nodeModules, name))
    for (const entry of fs.readdirSync(nodeModules, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue
      const dir = path.join(nodeModules, entry.name)
      const packages = entry.name.startsWith("@") ? fs.readdirSync(dir).map((s) => path.join(dir, s)) : [dir]
      for (const p of packages) if (fs.existsSync(path.join(p, "node_modules"))) walk(path.join(p, "node_modules"))
    }
  }
  walk(path.join(app, "node_modules"))
  return found
}

// 3. each peer set
for (const set of sets) {
  const peers = PEER_SETS[set]
  const label = `${set} peers (${Object.entries(peers).map(([n, v]) => `${n}@${v}`).join(", ")})`
  console.log(`consumer: --- ${label}`)
  await npm(`npm install the tarball + ${label}`, [
    "install", "--no-audit", "--no-fund", "--save-exact", tarball,
    ...Object.entries(peers).map(([n, v]) => `${n}@${v}`), ...TOOLS
  ], { cwd: app, limitSecs: 300 })
  for (const [name, version] of Object.entries(peers)) {
    if (installedVersion(name) !== version) fail(`${name} is ${installedVersion(name)}, expected ${version}`)
    const copies = copiesOf(name)
    if (copies.length !== 1) fail(`${copies.length} copies of ${name} installed: ${copies.join(", ")}`)
  }
  console.log(`consumer: ok   one copy each of ${Object.keys(peers).join(" and ")}, at the versions under test`)
  const tsc = path.join(app, "node_modules", "typescript", "bin", "tsc")
  fs.rmSync(path.join(app, "out"), { recursive: true, force: true })
  await node("tsc, NodeNext, strict (emits out/)", [tsc, "-p", "tsconfig.nodenext.json"], { cwd: app })
  await node("tsc, bundler, strict", [tsc, "-p", "tsconfig.bundler.json"], { cwd: app })
  const loads = [
    ...checkedEntries.map((subpath) => `await import(${JSON.stringify(path.posix.join("@cuckmq/effect", subpath))})`),
    `await import("@cuckmq/effect/internal/pg/store.js").then(() => { throw new Error("internal/* is importable") }, (e) => { if (e.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") throw e })`
  ].join("; ")
  await node(`plain node imports ${checkedEntries.join(", ")}; internal/* is blocked`, ["--input-type=module", "-e", loads], { cwd: app })
  const requires = checkedEntries.map((subpath) => `require(${JSON.stringify(path.posix.join("@cuckmq/effect", subpath))})`)
  await node(`plain node require()s ${checkedEntries.join(", ")} (require of ES modules, Node 22.12+)`, ["--input-type=commonjs", "-e", requires.join("; ")], { cwd: app })
  const { out: output } = await node("plain node runs out/program.js against DATABASE_URL", [path.join("out", "program.js")], {
    cwd: app,
    env: { ...cleanEnv, DATABASE_URL: databaseUrl }
  })
  for (const expected of ["job ran: hello, consumer (attempt 1)", "dropped: true", "consumer program: ok"]) {
    if (!output.includes(expected)) fail(`the program did not print "${expected}":\n${output}`)
  }
  await node("vitest run greet.test.ts (@cuckmq/effect/testing)", [path.join(app, "node_modules", "vitest", "vitest.mjs"), "run", "greet.test.ts"], { cwd: app })

  // the bin, as `npx cuckmq` runs it: first without the optional peer @effect/platform-node (an app that only
  // uses the library), then with it
  const cuckmq = (label, args, options = {}) =>
    npm(label, ["exec", "--no", "--", "cuckmq", ...args], { cwd: app, env: { ...cleanEnv, DATABASE_URL: "" }, ...options })
  if (fs.existsSync(path.join(app, "node_modules", "@effect", "platform-node"))) fail("@effect/platform-node is installed before the bin's check")
  const { out: missing } = await cuckmq("npx cuckmq --help without @effect/platform-node fails", ["--help"], { expectFailure: true })
  for (const expected of ["cuckmq: the command line needs the package @effect/platform-node", "npm install @effect/platform-node"]) {
    if (!missing.includes(expected)) fail(`without @effect/platform-node, the bin did not say "${expected}":\n${missing}`)
  }
  if (/ERR_MODULE_NOT_FOUND|\n\s+at /.test(missing)) fail(`without @effect/platform-node, the bin printed a stack trace:\n${missing}`)
  await npm(`npm install ${PLATFORM_NODE[set].join(" ")}`, [
    "install", "--no-audit", "--no-fund", "--save-exact", ...PLATFORM_NODE[set]
  ], { cwd: app, limitSecs: 300 })
  const { stdout: help } = await cuckmq("npx cuckmq --help", ["--help"])
  for (const command of ["migrate", "sql", "status", "jobs", "dashboard"]) {
    if (!help.includes(command)) fail(`cuckmq --help does not list "${command}":\n${help}`)
  }
  const { stdout: ddl } = await cuckmq("npx cuckmq sql --schema consumer_sql (no database)", ["sql", "--schema", "consumer_sql"])
  for (const expected of [`CREATE SCHEMA IF NOT EXISTS "consumer_sql"`, `"consumer_sql"."stats_minute"`]) {
    if (!ddl.includes(expected)) fail(`cuckmq sql did not print ${expected}:\n${ddl.slice(0, 2000)}`)
  }
  const installed = PLATFORM_NODE[set].map((spec) => spec.slice(0, spec.lastIndexOf("@")))
  await npm(`npm uninstall ${installed.join(" ")}`, ["uninstall", "--no-audit", "--no-fund", ...installed], { cwd: app, limitSecs: 300 })
}

console.log(`consumer: passed (${sets.join(" and ")} peers) in ${((Date.now() - t0) / 1000).toFixed(0)} s`)
