/**
 * The README shows code taken from examples/: every ```ts block preceded by `<!-- from examples/x.ts -->`
 * must appear verbatim in that file, so the README never drifts from code that runs.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"

const root = path.resolve(import.meta.dirname, "..")
const readme = fs.readFileSync(path.join(root, "README.md"), "utf8")
const blocks = Array.from(readme.matchAll(/<!-- from (\S+) -->\n```ts\n([\s\S]*?)```/g))

describe("README", () => {
  it("has snippets taken from examples", () => {
    assert.isAtLeast(blocks.length, 2)
  })
  for (const [, file, code] of blocks) {
    it(`snippet from ${file} is in the file`, () => {
      const source = fs.readFileSync(path.join(root, file!), "utf8")
      assert.include(source, code!.trimEnd())
    })
  }
})
