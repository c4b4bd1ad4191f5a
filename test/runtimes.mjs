// The runtimes besides Node.js that CI runs the apps under, and the one list of what each leaves out and why.
// test/lines.mjs runs a line per runtime after the Node lines: it installs the runtime from the npm registry,
// then runs the process tests with FASTIFY_SHUTDOWN_RUNTIME set, so that test/helpers/child.ts starts every
// fixture app under that runtime while tap, the clients and the assertions stay on Node.

/** Installed from the npm registry into the cache the Node lines use; `binary` is the path inside the package. */
export const RUNTIMES = {
  bun: { name: 'Bun', package: '@oven/bun-linux-x64', version: '1.4.4', binary: 'bin/bun' },
  deno: { name: 'Deno', package: '@deno/linux-x64-glibc', version: '2.9.6', binary: 'deno' }
}

/**
 * The test files whose apps run as child processes through test/helpers/child.ts. Every other test file runs
 * nothing under the runtime (inject and unit tests, docs, types: in tap's own Node process), or starts its
 * children under Node itself (test/runners/, test/rolling/, the docs samples, the package test, the
 * benchmark smoke): the Node lines run those.
 */
export const APP_PROCESS_TESTS = [
  'test/*.process.test.ts',
  'test/otel/dns.test.ts',
  'test/otel/drain.test.ts',
  'test/otel/force.test.ts',
  'test/otel/shutdown-telemetry.test.ts',
  'test/otel/unreachable.test.ts'
]

/**
 * What a runtime line leaves out: a whole file (`file`) or the top-level tests whose title starts with `test`
 * (a fault matrix row by its `fault matrix [id]`), each with the reason. README "Supported runtimes" says
 * the same to users.
 */
export const SKIPPED = [
  { runtimes: ['bun', 'deno'], file: 'test/watchers.process.test.ts', reason: 'nodemon, tsx watch and node --watch are Node runners' },
  { runtimes: ['bun', 'deno'], file: 'test/fastify-cli.process.test.ts', reason: 'fastify-cli starts the app under Node' },
  { runtimes: ['bun', 'deno'], file: 'test/dual-stack.process.test.ts', reason: 'its wrapper runs Node in a mount namespace of its own' },
  { runtimes: ['bun', 'deno'], file: 'test/check.process.test.ts', reason: 'the check command runs under Node: no app of it runs under the runtime' },
  {
    runtimes: ['bun'],
    file: 'test/otel/*',
    reason: "OpenTelemetry's http instrumentation sees no server request under Bun's native node:http: no server span, no request metric"
  },
  {
    runtimes: ['bun'],
    test: 'fault matrix [slowloris]',
    reason: "Bun parses HTTP natively: nothing tells the test that the server has read the half-sent headers (the tests of 'a connection that sent half its headers' cover Bun)"
  },
  {
    runtimes: ['bun'],
    test: 'a direct fastify.close() does not wait for a slowloris connection either',
    reason: 'as fault matrix [slowloris]'
  },
  {
    runtimes: ['bun'],
    test: 'a request still arriving when the listener closes gets its 503 while other work drains',
    reason: 'Bun counts no socket.bytesRead: a request still arriving looks like a new connection, closed after idleCloseDelay, not answered 503 (warned at register)'
  },
  {
    runtimes: ['bun'],
    test: 'h2 over TLS: the force path names every stream it cuts, several on one session',
    reason: "Bun's session.destroy() ends with GOAWAY NO_ERROR and a Node client never learns that its streams were cut (warned at register)"
  },
  { runtimes: ['bun'], test: 'h2c: the force path names every stream it cuts, several on one session', reason: 'as the h2 over TLS one' },
  {
    runtimes: ['bun'],
    test: 'a handler blocked on a never-answering upstream is released by shutdownSignal at the drain deadline',
    reason: "Bun's fetch() rejects an aborted call about 10 ms after the abort, once the force path has exited: the abort is counted, the handler's catch never runs"
  },
  {
    runtimes: ['deno'],
    test: 'a response that said keep-alive before the shutdown leaves its socket idleCloseDelay, then the process exits 0',
    reason: "Deno's node:http destroys a keep-alive connection as soon as a response on it finishes once the listener has closed: no grace (warned at register)"
  },
  {
    runtimes: ['deno'],
    test: 'fault matrix [busy-keep-alive]',
    reason: 'as the keep-alive one: a client that sends its next request as its connection is destroyed sees a reset, and a 503 already sent can be lost with it'
  }
]

/** The entries of SKIPPED that apply to `runtime`, files and tests apart. */
export function skippedOn (runtime) {
  const entries = SKIPPED.filter((entry) => entry.runtimes.includes(runtime))
  return {
    files: entries.filter((entry) => entry.file !== undefined),
    tests: entries.filter((entry) => entry.test !== undefined)
  }
}

/** Whether `file` (relative to the repository) is what a SKIPPED `file` names: a path, or a folder's `/*`. */
export function fileMatches (pattern, file) {
  return pattern.endsWith('/*') ? file.startsWith(pattern.slice(0, -1)) : file === pattern
}

/** tap's `--grep` for the tests named: a title that starts with a name, followed by its end or a colon. */
export function testPattern (names) {
  const escaped = names.map((name) => name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
  return `^(?:${escaped.join('|')})(?::|$)`
}
