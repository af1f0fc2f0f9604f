/**
 * Every `@example` of the doc comments in src/ compiles (tools/check-examples.ts: one `tsc` run over all of
 * them, importing the library by its package names). The full API reference build (TypeDoc, warnings as
 * errors) is `npm run docs`, run by CI.
 */
import { assert, describe, it } from "@effect/vitest"
import { checkExamples, examplesOf, formatResult } from "../tools/check-examples.js"

describe("doc comment examples", () => {
  it("are found: fenced blocks, unfenced tags, not other languages", () => {
    const text = [
      "/**",
      " * Summary.",
      " *",
      " * @example",
      " * ```ts",
      " * const a = 1",
      " * ```",
      " *",
      " * ```sql",
      " * SELECT 1",
      " * ```",
      " *",
      " * @example Unfenced, with a title",
      " * const b = 2",
      " *",
      " * @since 0.1.0",
      " */",
      "export const x = 1",
      "/** @example const c = 3 */"
    ].join("\n")
    assert.deepStrictEqual(examplesOf("src/X.ts", text), [
      { file: "src/X.ts", line: 6, code: "const a = 1\n" },
      { file: "src/X.ts", line: 14, code: "const b = 2\n" }
    ])
  })

  it("compile, and a broken one is reported at its line in src/", () => {
    const broken = { file: "src/Broken.ts", line: 40, code: "import { Cuckmq } from \"@cuckmq/effect\"\n\nCuckmq.nope\n" }
    const result = checkExamples({ extra: [broken] })
    assert.isAtLeast(result.examples.length, 7)
    assert.deepStrictEqual(result.other, [])
    const report = formatResult({ ...result, errors: result.errors.filter((e) => e.example !== broken) })
    assert.deepStrictEqual(result.errors.filter((e) => e.example !== broken), [], report)
    assert.deepStrictEqual(result.errors.map((e) => [e.example.file, e.line, e.message.slice(0, 6)]), [
      ["src/Broken.ts", 42, "TS2339"]
    ])
  })
})
