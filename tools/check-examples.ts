/**
 * Type-checks every `@example` of the doc comments in src/ (public and internal modules), so the API
 * reference never shows code that does not compile.
 *
 * Each fenced block (```ts) of an `@example` tag, or the whole tag when it has no fence, becomes one file
 * that imports the library by its package names: `@cuckmq/effect`, `@cuckmq/effect/testing` and
 * `@cuckmq/effect/promise` map to src/ through `paths` in a scratch tsconfig (under .tmp/), which extends the
 * project's tsconfig, so an example is checked with the project's compiler options (strict,
 * exactOptionalPropertyTypes) minus the unused-name checks (an example may declare something only to show
 * it). Then the project's `tsc` checks them all in one run. An example is a module of its own: it must
 * import what it uses, and may `declare` what it does not define (`declare const SendEmail: ...`).
 *
 * Run: `npx tsx tools/check-examples.ts` (`--keep` keeps the scratch files). Exit code 1 when an example
 * fails, with each error mapped back to its line in src/.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")

/** One fenced block of an `@example` tag. */
export interface Example {
  /** The module, relative to the repository root, e.g. `src/Cuckmq.ts`. */
  readonly file: string
  /** The 1-based line in `file` of the example's first line of code. */
  readonly line: number
  readonly code: string
}

/** A compiler error in an example, mapped back to its place in src/. */
export interface ExampleError {
  readonly example: Example
  /** The 1-based line in the module (`example.file`). */
  readonly line: number
  readonly column: number
  readonly message: string
}

/** What `checkExamples` found. */
export interface Result {
  readonly examples: ReadonlyArray<Example>
  readonly errors: ReadonlyArray<ExampleError>
  /** Compiler output that could not be mapped to an example (e.g. a broken tsconfig). */
  readonly other: ReadonlyArray<string>
}

const sourceFiles = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(full)
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [full] : []
  }).sort()

/** The `@example` blocks of one module's doc comments. */
export const examplesOf = (file: string, text: string): Array<Example> => {
  const lines = text.split("\n")
  const examples: Array<Example> = []
  let inComment = false
  // the tag being read: its code lines (with their 1-based line numbers) and whether it had a fence
  // `fence` is the open fence's lines, `skipping` an open fence in another language (```sql)
  let tag:
    | { fenced: boolean; fence: Array<[number, string]> | undefined; skipping: boolean; loose: Array<[number, string]> }
    | undefined
  const endTag = () => {
    if (tag !== undefined && !tag.fenced) {
      const loose = tag.loose
      while (loose.length > 0 && loose[0]![1].trim() === "") loose.shift()
      while (loose.length > 0 && loose[loose.length - 1]![1].trim() === "") loose.pop()
      if (loose.length > 0) {
        examples.push({ file, line: loose[0]![0], code: loose.map(([, l]) => l).join("\n") + "\n" })
      }
    }
    tag = undefined
  }
  lines.forEach((raw, index) => {
    const lineNo = index + 1
    if (!inComment) {
      const start = raw.indexOf("/**")
      if (start === -1) return
      inComment = true
      // a one-line comment: `/** @since 0.1.0 */`
      if (raw.indexOf("*/", start + 3) !== -1) inComment = false
      return
    }
    const closes = raw.includes("*/")
    // the comment line without its ` * ` prefix
    const body = raw.replace(/\*\/.*$/, "").replace(/^\s*\* ?/, "")
    if (tag?.skipping === true) {
      if (/^\s*```\s*$/.test(body)) tag.skipping = false
    } else if (tag?.fence !== undefined) {
      if (/^\s*```\s*$/.test(body)) {
        const fence = tag.fence
        if (fence.length > 0) {
          examples.push({ file, line: fence[0]![0], code: fence.map(([, l]) => l).join("\n") + "\n" })
        }
        tag.fence = undefined
      } else {
        tag.fence.push([lineNo, body])
      }
    } else if (/^@example\b/.test(body)) {
      endTag()
      tag = { fenced: false, fence: undefined, skipping: false, loose: [] }
      const rest = body.replace(/^@example\b\s*/, "")
      // `@example` followed by a title on the same line: the title is not code
      if (rest !== "" && !rest.startsWith("```")) tag.loose.push([lineNo, ""])
    } else if (tag !== undefined && /^@\w/.test(body)) {
      endTag()
    } else if (tag !== undefined) {
      const open = /^\s*```(\w*)\s*$/.exec(body)
      if (open !== null) {
        tag.fenced = true
        if (["", "ts", "typescript"].includes(open[1]!)) tag.fence = []
        else tag.skipping = true
      } else if (!tag.fenced) {
        tag.loose.push([lineNo, body])
      }
    }
    if (closes) {
      endTag()
      inComment = false
    }
  })
  return examples.filter((e) => e.code.trim() !== "")
}

/** Every `@example` block of src/, in file order. */
export const extractExamples = (): Array<Example> =>
  sourceFiles(path.join(root, "src")).flatMap((full) =>
    examplesOf(path.relative(root, full).split(path.sep).join("/"), fs.readFileSync(full, "utf8"))
  )

const exampleFileName = (example: Example) =>
  `${example.file.replace(/^src\//, "").replace(/\.ts$/, "").replace(/[^\w]+/g, "_")}_L${example.line}.ts`

/** Writes every example to a scratch directory and type-checks them with the project's `tsc`, in one run. */
export const checkExamples = (
  options: {
    /** Keep the scratch directory (its path is printed). */
    readonly keep?: boolean
    /** Examples to check along with those of src/ (the test adds a broken one, to see it reported). */
    readonly extra?: ReadonlyArray<Example>
  } = {}
): Result => {
  const examples = [...extractExamples(), ...(options.extra ?? [])]
  const scratchRoot = path.join(root, ".tmp")
  fs.mkdirSync(scratchRoot, { recursive: true })
  const dir = fs.mkdtempSync(path.join(scratchRoot, "examples-"))
  try {
    const byFile = new Map<string, Example>()
    for (const example of examples) {
      const name = exampleFileName(example)
      byFile.set(name, example)
      fs.writeFileSync(path.join(dir, name), example.code)
    }
    const rel = (p: string) => path.relative(dir, path.join(root, p)).split(path.sep).join("/")
    const entries: Record<string, Array<string>> = {
      "@cuckmq/effect": [rel("src/index.ts")],
      "@cuckmq/effect/testing": [rel("src/testing.ts")]
    }
    if (fs.existsSync(path.join(root, "src/promise.ts"))) entries["@cuckmq/effect/promise"] = [rel("src/promise.ts")]
    fs.writeFileSync(
      path.join(dir, "tsconfig.json"),
      JSON.stringify(
        {
          extends: rel("tsconfig.json"),
          compilerOptions: {
            noEmit: true,
            noUnusedLocals: false,
            noUnusedParameters: false,
            // the library's own declarations are checked by `npm run typecheck`: here only the examples matter
            skipLibCheck: true,
            moduleDetection: "force",
            paths: entries
          },
          include: ["*.ts"]
        },
        null,
        2
      )
    )
    if (examples.length === 0) return { examples, errors: [], other: [] }
    const tsc = path.join(root, "node_modules", ".bin", process.platform === "win32" ? "tsc.cmd" : "tsc")
    const run = spawnSync(tsc, ["-p", path.join(dir, "tsconfig.json"), "--pretty", "false"], {
      cwd: root,
      encoding: "utf8"
    })
    if (run.error !== undefined) throw run.error
    const errors: Array<ExampleError> = []
    const other: Array<string> = []
    // `file(line,col): error TS1234: message`, continuation lines indented
    const output = (run.stdout + run.stderr).split("\n")
    for (let i = 0; i < output.length; i++) {
      const line = output[i]!
      if (line.trim() === "") continue
      const match = /^(.*?)\((\d+),(\d+)\): error (TS\d+: .*)$/.exec(line)
      if (match === null) {
        other.push(line)
        continue
      }
      let message = match[4]!
      while (i + 1 < output.length && /^\s+\S/.test(output[i + 1]!)) message += "\n" + output[++i]!
      const example = byFile.get(path.basename(match[1]!))
      if (example === undefined || path.resolve(root, match[1]!) !== path.join(dir, path.basename(match[1]!))) {
        other.push(`${match[1]}(${match[2]},${match[3]}): error ${message}`)
        continue
      }
      errors.push({ example, line: example.line + Number(match[2]) - 1, column: Number(match[3]), message })
    }
    if (run.status !== 0 && errors.length === 0 && other.length === 0) other.push(`tsc exited with ${run.status}`)
    return { examples, errors, other }
  } finally {
    if (options.keep !== true) fs.rmSync(dir, { recursive: true, force: true })
    else console.log(`scratch files kept in ${path.relative(root, dir)}`)
  }
}

/** The report `checkExamples` prints: one line per error, `file:line:column`, as editors link them. */
export const formatResult = (result: Result): string => {
  const lines = result.errors.map((e) => `${e.example.file}:${e.line}:${e.column} (example at line ${e.example.line}): ${e.message}`)
  lines.push(...result.other)
  const failing = new Set(result.errors.map((e) => e.example)).size
  lines.push(
    result.errors.length === 0 && result.other.length === 0
      ? `${result.examples.length} examples compile`
      : `${failing} of ${result.examples.length} examples fail to compile`
  )
  return lines.join("\n")
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const result = checkExamples({ keep: process.argv.includes("--keep") })
  console.log(formatResult(result))
  process.exitCode = result.errors.length === 0 && result.other.length === 0 ? 0 : 1
}
