import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

// `@cuckmq/effect` inside this repository is the source in src/ (as tsconfig.json's `paths` says for tsc
// and tsx); the package's `exports` point at the build in dist/, which only `npm pack` and the consumer
// test use.
const src = (file: string) => fileURLToPath(new URL(`./src/${file}`, import.meta.url))

export default defineConfig({
  resolve: {
    alias: [
      { find: /^@cuckmq\/effect$/, replacement: src("index.ts") },
      { find: /^@cuckmq\/effect\/(testing|promise)$/, replacement: src("$1.ts") }
    ]
  },
  test: {
    include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
    exclude: ["**/node_modules/**", "test/consumer/**"],
    globalSetup: ["test/support/globalSetup.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    reporters: ["default"]
  }
})
