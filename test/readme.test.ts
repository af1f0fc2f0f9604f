/**
 * Every ```ts block of the README, and every `@example` of the public modules' doc comments (src/*.ts),
 * compiles as written. All blocks are written to a scratch directory inside
 * the repo (.tmp/, ignored by git) and type-checked by one run of the project's `tsc`, with the project's
 * compiler options and `@cuckmq/effect` (and its other entries) mapped to `src/`, so the check is fast and
 * does not depend on a build. Each block is a module of its own, so it must carry its imports. Markers on the
 * line before a block:
 *
 * - `<!-- from examples/x.ts -->`: an excerpt of a file that runs; it must appear verbatim in that file, and
 *   the file is type-checked in the same run (an excerpt cannot compile alone).
 * - `<!-- file: name.ts -->`: the block is written as `name.ts`, so later blocks can import it as `./name.js`.
 *
 * A block fenced ```` ```ts no-check ```` is only counted, not checked (deliberately partial; keep it rare).
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"

const root = path.resolve(import.meta.dirname, "..")
const readme = fs.readFileSync(path.join(root, "README.md"), "utf8")

interface Block {
  /** The file it is in: README.md, or a module of src/. */
  readonly source: string
  /** Line of the block's first code line in `source` (1-based). */
  readonly line: number
  readonly code: string
  readonly noCheck: boolean
  readonly from?: string
  readonly file?: string
}

const parseBlocks = (markdown: string): ReadonlyArray<Block> => {
  const lines = markdown.split("\n")
  const blocks: Array<Block> = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,})(\S*)\s*(.*)$/.exec(lines[i]!)
    if (open === null) continue
    const [, fence, lang, rest] = open
    let end = i + 1
    while (end < lines.length && !lines[end]!.startsWith(fence!)) end++
    if (lang === "ts" || lang === "typescript") {
      let before = i - 1
      while (before >= 0 && lines[before]!.trim() === "") before--
      const marker = before >= 0 ? /^<!-- (from|file:) (\S+) -->$/.exec(lines[before]!.trim()) : null
      blocks.push({
        source: "README.md",
        line: i + 2,
        code: lines.slice(i + 1, end).join("\n") + "\n",
        noCheck: /\bno-check\b/.test(rest!),
        ...(marker?.[1] === "from" ? { from: marker[2]! } : {}),
        ...(marker?.[1] === "file:" ? { file: marker[2]! } : {})
      })
    }
    i = end
  }
  return blocks
}

/** The ```ts blocks under `@example` in the doc comments of a module (each line's leading ` * ` removed). */
const parseExamples = (file: string): ReadonlyArray<Block> => {
  const lines = fs.readFileSync(path.join(root, file), "utf8").split("\n")
  const examples: Array<Block> = []
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s*\* @example\s*$/.test(lines[i]!) || !/^\s*\* ```ts\s*$/.test(lines[i + 1] ?? "")) continue
    let end = i + 2
    while (end < lines.length && !/^\s*\* ```\s*$/.test(lines[end]!)) end++
    const code = lines.slice(i + 2, end).map((line) => line.replace(/^\s*\*(?: |$)/, "")).join("\n") + "\n"
    examples.push({ source: file, line: i + 3, code, noCheck: false, file: `example-${path.basename(file, ".ts")}-${i + 3}.ts` })
    i = end
  }
  return examples
}

const blocks = parseBlocks(readme)
const docExamples = fs.readdirSync(path.join(root, "src"))
  .filter((name) => name.endsWith(".ts"))
  .sort()
  .flatMap((name) => parseExamples(`src/${name}`))
const checked = [...blocks, ...docExamples].filter((block) => !block.noCheck)

/**
 * `paths` for the scratch tsconfig: every public entry of package.json `exports` mapped to its source in src/
 * (whether `exports` points at `src/*.ts` or at the build in `dist/`).
 */
const entryPaths = (dir: string): Record<string, Array<string>> => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as {
    readonly name: string
    readonly exports: Record<string, unknown>
  }
  const target = (value: unknown): string | undefined => {
    if (typeof value === "string") return value
    if (value !== null && typeof value === "object") {
      const conditions = value as Record<string, unknown>
      return target(conditions.types ?? conditions.import ?? conditions.default)
    }
    return undefined
  }
  const paths: Record<string, Array<string>> = {}
  for (const [key, value] of Object.entries(pkg.exports)) {
    const file = target(value)
    if (key.includes("*") || file === undefined || !/\.m?[jt]s$/.test(file)) continue // e.g. "./package.json"
    const source = /^\.\/(?:src|dist)\/(?:src\/)?(.+?)(?:\.d)?\.(?:ts|js|mts|mjs)$/.exec(file)?.[1]
    if (source === undefined || !fs.existsSync(path.join(root, "src", `${source}.ts`))) {
      throw new Error(`package.json exports ${JSON.stringify(key)}: no source in src/ for ${file}`)
    }
    const specifier = key === "." ? pkg.name : `${pkg.name}/${key.slice(2)}`
    paths[specifier] = [path.relative(dir, path.join(root, "src", `${source}.ts`))]
  }
  return paths
}

// A file that must fail to compile (a wrong type on a value imported from the package): proves that the run
// reports errors and that `@cuckmq/effect` resolves (an unresolved import would be TS2307, not TS2322).
const canary = `import { Cuckmq } from "@cuckmq/effect"\nexport const schema: number = Cuckmq.defaults.schema\n`

let dir = ""
const errors = new Map<string, Array<string>>() // absolute file -> its errors
const fileOf = new Map<Block, string>()

beforeAll(() => {
  fs.mkdirSync(path.join(root, ".tmp"), { recursive: true })
  dir = fs.mkdtempSync(path.join(root, ".tmp", "readme-snippets-"))
  const files: Array<string> = []
  for (const block of checked) {
    const file = block.from !== undefined
      ? path.join(root, block.from)
      : path.join(dir, block.file ?? `readme-line-${block.line}.ts`)
    if (block.from === undefined) fs.writeFileSync(file, block.code)
    fileOf.set(block, file)
    files.push(file)
  }
  const canaryFile = path.join(dir, "canary.ts")
  fs.writeFileSync(canaryFile, canary)
  files.push(canaryFile)
  fs.writeFileSync(
    path.join(dir, "tsconfig.json"),
    JSON.stringify(
      {
        extends: path.relative(dir, path.join(root, "tsconfig.json")),
        compilerOptions: {
          noEmit: true,
          // a snippet shows values it does not use
          noUnusedLocals: false,
          noUnusedParameters: false,
          // every snippet is a module, even one without imports
          moduleDetection: "force",
          // the project's own check covers the libraries' .d.ts
          skipLibCheck: true,
          paths: entryPaths(dir)
        },
        include: [],
        files: [...new Set(files)].map((file) => path.relative(dir, file))
      },
      null,
      2
    )
  )
  const tsc = spawnSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", dir, "--pretty", "false"], {
    cwd: root,
    encoding: "utf8"
  })
  if (tsc.error) throw tsc.error
  let current: Array<string> | undefined
  for (const line of `${tsc.stdout}${tsc.stderr}`.split("\n")) {
    const match = /^(.+?)\((\d+),(\d+)\): (error .*)$/.exec(line)
    if (match !== null) {
      const file = path.resolve(root, match[1]!)
      current = errors.get(file) ?? []
      errors.set(file, current)
      current.push(`${match[2]}:${match[3]} ${match[4]}`)
    } else if (line.trim() !== "") {
      if (current !== undefined && /^\s/.test(line)) current[current.length - 1] += `\n${line}`
      else errors.set("(tsc)", [...(errors.get("(tsc)") ?? []), line])
    }
  }
}, 120_000)

afterAll(() => {
  if (dir !== "") fs.rmSync(dir, { recursive: true, force: true })
})

/** A block's errors, with their lines as lines of its source (for a block checked as its own file). */
const errorsOf = (block: Block): Array<string> => {
  const file = fileOf.get(block)!
  return (errors.get(file) ?? []).map((error) => {
    if (block.from !== undefined) return `${block.from}:${error}`
    const [position, ...rest] = error.split(" ")
    const [line, column] = position!.split(":")
    return `${block.source}:${block.line + Number(line) - 1}:${column} ${rest.join(" ")}`
  })
}

describe("README", () => {
  it("has ts snippets, and few that are not checked", () => {
    assert.isAtLeast(checked.length, 6)
    assert.isAtMost(blocks.length - checked.length, 2, "keep ```ts no-check blocks rare")
    assert.isAtLeast(blocks.filter((block) => block.from !== undefined).length, 2)
  })

  it("names its blocks uniquely (a `<!-- file: name.ts -->` is one plain file name)", () => {
    const names = blocks.flatMap((block) => block.file === undefined ? [] : [block.file])
    for (const name of names) assert.match(name, /^[A-Za-z0-9_-]+\.ts$/)
    assert.deepStrictEqual(names, [...new Set(names)])
  })

  it("the snippet check reports errors and resolves @cuckmq/effect", () => {
    const found = errors.get(path.join(dir, "canary.ts")) ?? []
    assert.strictEqual(found.length, 1, found.join("\n"))
    assert.match(found[0]!, /^2:\d+ error TS2322:/)
  })

  it("tsc reported no error outside the snippets (one run for all of them)", () => {
    const known = new Set([...fileOf.values(), path.join(dir, "canary.ts")])
    const other = [...errors].filter(([file]) => !known.has(file))
    assert.deepStrictEqual(other, [])
  })

  for (const block of blocks) {
    const where = `README.md:${block.line}${block.from !== undefined ? ` (from ${block.from})` : ""}${block.file !== undefined ? ` (${block.file})` : ""}`
    if (block.noCheck) {
      it.skip(`${where} is marked no-check`, () => {})
      continue
    }
    if (block.from !== undefined) {
      it(`${where} is in the file`, () => {
        const source = fs.readFileSync(path.join(root, block.from!), "utf8")
        assert.include(source, block.code.trimEnd())
      })
    }
    it(`${where} type-checks`, () => {
      assert.deepStrictEqual(errorsOf(block), [], `\n${errorsOf(block).join("\n")}\n\n${block.code}`)
    })
  }
})

describe("doc comments", () => {
  it("the public modules have @example blocks", () => {
    assert.isAtLeast(docExamples.length, 5)
  })
  for (const block of docExamples) {
    it(`the @example at ${block.source}:${block.line} type-checks`, () => {
      assert.deepStrictEqual(errorsOf(block), [], `\n${errorsOf(block).join("\n")}\n\n${block.code}`)
    })
  }
})
