#!/usr/bin/env node
// The API reference: TypeDoc over the public entry points, written to docs/api/, failing on any warning.
//
// TypeDoc needs the TypeScript JS compiler API, which the project's TypeScript 7 (native) does not have, so
// the docs tooling is a package of its own (docs/package.json, pinned typedoc and typescript), installed here
// on first use: the library's own `npm install` stays small. The library's imports (effect, @effect/sql-pg)
// resolve from the root node_modules, as for `tsc`.
//
// Run: `node docs/build.mjs` (what `npm run docs` runs). Options: `--check` validates without writing
// docs/api/ (for CI).
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const docs = path.dirname(fileURLToPath(import.meta.url))
const root = path.dirname(docs)
const check = process.argv.includes("--check")
const members = process.argv.includes("--members")

const exportKinds = ["Module", "Namespace", "Enum", "Variable", "Function", "Class", "Interface", "TypeAlias"]
const memberKinds = ["EnumMember", "Property", "Method", "Accessor"]
const intentionallyNotExported = [
  // JobDefinition.MakeOptions: the repeat options' type
  "src/JobDefinition.ts:RepeatOptions",
  // CuckmqTest's `jobs`: the in-memory store's snapshot
  "src/internal/memory/store.ts:MemorySnapshot",
  // the Cuckmq service's engine, under a symbol the package does not export (internal on purpose)
  "src/internal/engine.ts:Engine",
  // promise's PoolLike: an alias of the structural pool type (any pg 8.x Pool)
  "src/internal/promise/pool.ts:PoolLike"
]

// installed on first use, and again when docs/package.json pins other versions than those installed
const pinned = JSON.parse(fs.readFileSync(path.join(docs, "package.json"), "utf8")).devDependencies
const installed = (name) => {
  try {
    return JSON.parse(fs.readFileSync(path.join(docs, "node_modules", name, "package.json"), "utf8")).version
  } catch {
    return undefined
  }
}
if (Object.entries(pinned).some(([name, version]) => installed(name) !== version)) {
  console.log("docs: installing the docs tooling into docs/node_modules")
  const npm = process.platform === "win32" ? "npm.cmd" : "npm"
  const args = fs.existsSync(path.join(docs, "package-lock.json")) ? ["ci"] : ["install"]
  const run = spawnSync(npm, [...args, "--prefix", docs, "--no-audit", "--no-fund"], { stdio: "inherit" })
  if (run.status !== 0) process.exit(run.status ?? 1)
}

const td = await import("typedoc")
const { default: ts } = await import("typescript")

const hasSummary = (comment) => comment?.summary.some((part) => part.text.trim() !== "") ?? false
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"))

// the package's public entry points, by their import names; src/promise.ts only once it exists
const entries = [
  ["src/index.ts", pkg.name],
  ["src/testing.ts", `${pkg.name}/testing`],
  ["src/promise.ts", `${pkg.name}/promise`]
].filter(([file]) => fs.existsSync(path.join(root, file)))

const started = Date.now()
const app = await td.Application.bootstrapWithPlugins(
  {
    name: pkg.name,
    includeVersion: true,
    entryPoints: entries.map(([file]) => path.join(root, file)),
    tsconfig: path.join(docs, "tsconfig.json"),
    out: path.join(docs, "api"),
    readme: path.join(docs, "index.md"),
    // our own tag on every export
    blockTags: [...td.OptionDefaults.blockTags, "@since"],
    excludeInternal: true,
    excludePrivate: true,
    excludeProtected: true,
    // the reference is built locally (docs/api/ is not checked in) and the package has no public repository
    // yet: "Defined in" links to the file in this checkout
    disableGit: true,
    sourceLinkTemplate: `${pathToFileURL(root).href}/{path}#L{line}`,
    displayBasePath: root,
    sort: ["kind", "alphabetical"],
    treatWarningsAsErrors: true,
    treatValidationWarningsAsErrors: true,
    validation: { notExported: true, invalidLink: true, rewrittenLink: true, notDocumented: true, unusedMergeModuleWith: true },
    // every export; `--members` also requires their properties (not enforced yet: README, "API reference")
    requiredToBeDocumented: members ? [...exportKinds, ...memberKinds] : exportKinds,
    // internal types that public signatures mention; each is a finding to fix in src/ (export it, or stop
    // mentioning it), listed so that the build can fail on any new one
    intentionallyNotExported,
    logLevel: "Info"
  },
  [new td.TSConfigReader()]
)

// modules are named by their import path (`@cuckmq/effect/testing`), not by file name (`testing`)
const names = new Map(entries.map(([file, name]) => [path.join(root, file), name]))
app.converter.on(td.Converter.EVENT_RESOLVE_BEGIN, (context) => {
  for (const child of context.project.children ?? []) {
    const name = names.get(path.normalize(child.sources?.[0]?.fullFileName ?? ""))
    if (name === undefined) throw new Error(`docs: no import name for the module ${child.name}`)
    child.name = name
  }
})

// A module's doc is the first comment of its file (Effect's convention: a summary and `@since`), which TypeDoc
// takes only when it has a `@module` tag; and `export * as Cuckmq from "./Cuckmq.js"` in index.ts has a
// comment of its own with only `@since`. A module or namespace without a summary gets its file's comment.
const fileComments = new Map()
app.converter.on(td.Converter.EVENT_CREATE_DECLARATION, (context, reflection) => {
  if (!reflection.kindOf(td.ReflectionKind.Module | td.ReflectionKind.Namespace)) return
  const symbol = context.getSymbolFromReflection(reflection)
  const file = symbol?.declarations?.find(ts.isSourceFile)
  if (file === undefined) return
  const first = (ts.getLeadingCommentRanges(file.text, 0) ?? [])[0]
  if (first === undefined || !file.text.startsWith("/**", first.pos)) return
  // the file cut after its first comment, so that the comment leads a statement of its own
  const head = ts.createSourceFile(file.fileName, `${file.text.slice(0, first.end)}\nexport {}\n`, ts.ScriptTarget.Latest, true)
  const comment = context.getNodeComment(head.statements[0], false)
  if (comment !== undefined) fileComments.set(reflection, comment)
})
app.converter.on(td.Converter.EVENT_RESOLVE_BEGIN, () => {
  for (const [reflection, comment] of fileComments) {
    if (!hasSummary(reflection.comment)) reflection.comment = comment
  }
})

// Members a class inherits from Effect (a TaggedError's `make` and `annotate`, a service's `of` and `key`) are
// Effect's to document: they are dropped, except the `_tag` of a tagged class and a service's `Service`,
// whose type is the shape written here (what `yield* Cuckmq` gives), with the doc comments of its members.
const isExternal = (reflection) =>
  reflection.sources !== undefined && reflection.sources.length > 0 &&
  reflection.sources.every((source) => source.fullFileName.split(path.sep).includes("node_modules"))
app.converter.on(td.Converter.EVENT_RESOLVE_BEGIN, (context) => {
  for (const owner of context.project.getReflectionsByKind(td.ReflectionKind.Class)) {
    for (const member of [...(owner.children ?? [])]) {
      if (member.inheritedFrom === undefined || !isExternal(member)) continue
      if (member.name === "_tag") continue
      if (member.name === "Service" && member.kindOf(td.ReflectionKind.Property)) {
        member.comment = new td.Comment([{ kind: "text", text: `The service's shape: what \`yield* ${owner.name}\` gives.` }])
        continue
      }
      context.project.removeReflection(member)
    }
  }
})

// TypeDoc counts a comment with only block tags (`/** @since 0.1.0 */`) as documentation: an export also
// needs a summary, its own or (for a function) its signature's
app.on(td.Application.EVENT_VALIDATE_PROJECT, (project) => {
  const kinds = exportKinds.reduce((all, kind) => all | td.ReflectionKind[kind], 0)
  for (const reflection of project.getReflectionsByKind(kinds)) {
    if (reflection.sources?.some((source) => source.fullFileName.split(path.sep).includes("node_modules"))) continue
    const comments = [reflection.comment, ...(reflection.signatures ?? []).map((s) => s.comment)]
    // no comment at all: TypeDoc's own check reports it
    if (comments.every((c) => c === undefined)) continue
    if (!comments.some(hasSummary)) {
      const where = reflection.sources?.[0]
      app.logger.validationWarning(
        `${reflection.getFriendlyFullName()} (${td.ReflectionKind[reflection.kind]}), defined in ${
          where ? `${path.relative(root, where.fullFileName)}:${where.line}` : "?"
        }, has no summary (a doc comment with only tags)`
      )
    }
  }
})

const project = await app.convert()
if (project === undefined) {
  console.error("docs: TypeDoc could not convert the project")
  process.exit(1)
}
app.validate(project)
// written even when there are warnings, to look at; the exit code is what fails the build
if (!check) await app.generateOutputs(project)
const seconds = ((Date.now() - started) / 1000).toFixed(1)
if (app.logger.hasErrors() || app.logger.hasWarnings()) {
  console.error(`docs: ${app.logger.errorCount} errors, ${app.logger.warningCount} warnings (warnings fail the build), ${seconds} s`)
  process.exit(1)
}
const what = check ? "checked" : `written to ${path.relative(root, path.join(docs, "api"))}/`
console.log(`docs: ${entries.map(([, name]) => name).join(", ")} ${what} in ${seconds} s`)
