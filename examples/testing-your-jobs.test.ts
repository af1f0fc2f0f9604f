/**
 * Testing your own jobs without a database, as a user would: only the package's entry points are imported.
 * The context runs on the in-memory store of `@cuckmq/effect/testing`, and TestClock moves time.
 *
 *   npx vitest run examples/testing-your-jobs.test.ts
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import { JobDefinition } from "@cuckmq/effect"
import { CuckmqTest } from "@cuckmq/effect/testing"

// --- the app: a mailer service, a job that uses it, and code that enqueues the job ---
class Mailer extends Context.Service<Mailer, {
  readonly send: (to: string, subject: string) => Effect.Effect<void, MailerDown>
}>()("app/Mailer") {}

class MailerDown extends Schema.TaggedError<MailerDown>()("MailerDown", {}) {}

const WelcomeEmail = JobDefinition.make({
  name: "welcome-email",
  payload: Schema.Struct({ email: Schema.String }),
  numAttempts: 3,
  timeoutSecs: 60,
  handler: ({ email }) =>
    Effect.gen(function*() {
      const mailer = yield* Mailer
      yield* mailer.send(email, "Welcome!")
    })
})

const signUp = (email: string) => WelcomeEmail.enqueue({ email }, { delaySecs: 10 })

// --- the test: a fake mailer that fails once ---
const sent: Array<string> = []
let failuresLeft = 0
const FakeMailer = Layer.succeed(Mailer, {
  send: (to) => failuresLeft-- > 0 ? Effect.fail(new MailerDown()) : Effect.sync(() => void sent.push(to))
})

// provideMerge: the jobs get the fake mailer, and so does `perform` (which runs a handler in the test itself)
const TestLive = CuckmqTest.layer({ definitions: [WelcomeEmail] }).pipe(Layer.provideMerge(FakeMailer))

describe("welcome email", () => {
  it.effect("is enqueued on sign-up, waits its delay, and is retried after a failure", () =>
    Effect.gen(function*() {
      const test = yield* CuckmqTest
      failuresLeft = 1
      yield* signUp("ada@example.com")

      const [job] = yield* test.enqueued(WelcomeEmail)
      assert.deepStrictEqual(job?.payload, { email: "ada@example.com" })

      assert.deepStrictEqual(yield* test.drain, { succeeded: 0, retried: 0, failed: 0 }) // not due yet
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(yield* test.drain, { succeeded: 0, retried: 1, failed: 0 }) // the mailer was down
      yield* TestClock.adjust("60 seconds")
      assert.deepStrictEqual(yield* test.drain, { succeeded: 1, retried: 0, failed: 0 })
      assert.deepStrictEqual(sent, ["ada@example.com"])
    }).pipe(Effect.provide(TestLive)))

  it.effect("perform runs the handler directly and fails with its error", () =>
    Effect.gen(function*() {
      const test = yield* CuckmqTest
      failuresLeft = 1
      const error = yield* Effect.flip(test.perform(WelcomeEmail, { email: "bob@example.com" }))
      assert.strictEqual(error._tag, "MailerDown")
      yield* test.perform(WelcomeEmail, { email: "bob@example.com" })
      assert.include(sent, "bob@example.com")
    }).pipe(Effect.provide(TestLive)))
})
