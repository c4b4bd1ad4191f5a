/**
 * The fault matrix: every hostile condition the plugin promises to survive, with what an operator sees.
 * Each row is proven by the test whose title `faultTest(id)` gives; test/fault-matrix.test.ts checks that
 * every row has its test and that the table in docs/fault-matrix.md is the one `matrixTable()` renders.
 */
export interface FaultRow {
  readonly area: 'signals' | 'clients' | 'app code' | 'dependencies' | 'misuse' | 'resources'
  readonly condition: string
  /** The process's exit code, or what register/start does when nothing exits. */
  readonly exit: string
  /** The longest it may take, in option names (defaults: drainTimeout 10 s, forceTimeout 3 s). */
  readonly within: string
  readonly client: string
  readonly report: string
}

export const FAULT_MATRIX = {
  'signal-storm': {
    area: 'signals',
    condition: '10 SIGTERMs within 10 ms',
    exit: '0',
    within: 'last response + a few ms',
    client: 'in-flight requests complete, with `Connection: close`',
    report: '`completed`, trigger SIGTERM'
  },
  'duplicate-signal': {
    area: 'signals',
    condition: 'the same signal again within `duplicateSignalWindow` (one Ctrl-C forwarded by npm, tsx or nodemon)',
    exit: '0',
    within: 'last response + a few ms',
    client: 'in-flight requests complete',
    report: '`completed`; an info line says the duplicate was ignored'
  },
  'deliberate-second-signal': {
    area: 'signals',
    condition: 'the same signal again after `duplicateSignalWindow`',
    exit: '1',
    within: 'forceTimeout',
    client: 'in-flight requests are cut (ECONNRESET)',
    report: '`forced`, forcedBy `second-signal`, openRequests names them'
  },
  'sigint-then-sigterm': {
    area: 'signals',
    condition: 'SIGINT, then SIGTERM',
    exit: '1',
    within: 'forceTimeout',
    client: 'in-flight requests are cut (ECONNRESET)',
    report: '`forced`, forcedBy `second-signal`, trigger SIGINT, openRequests names them'
  },
  'signal-during-pre-stop': {
    area: 'signals',
    condition: 'a second signal during `preStopDelay`, after `duplicateSignalWindow`',
    exit: '1',
    within: 'forceTimeout',
    client: 'served until then, with `Connection: close`; then every socket is closed at once; nothing was in flight to cut',
    report: '`forced`, forcedBy `second-signal`, openRequests empty'
  },
  'signal-before-listen': {
    area: 'signals',
    condition: 'SIGTERM while the app boots: fastify-shutdown has loaded, `listen()` has not bound yet',
    exit: '0',
    within: 'startup + a few ms',
    client: 'never served: connections are refused (one that lands in the millisecond `listen()` binds before the close is reset)',
    report: '`completed`, 0 requests'
  },
  'signal-during-app-close': {
    area: 'signals',
    condition: 'SIGTERM while app code is already running `fastify.close()`',
    exit: '0',
    within: 'last response + a few ms',
    client: 'in-flight requests complete',
    report: 'one report, `completed`'
  },
  'stuck-handler': {
    area: 'clients',
    condition: 'a handler that never answers',
    exit: '1',
    within: 'drainTimeout + forceTimeout',
    client: 'its request is cut (ECONNRESET) at drainTimeout',
    report: '`forced`, forcedBy `drain-timeout`, openRequests names method, URL, route and age'
  },
  slowloris: {
    area: 'clients',
    condition: 'a slowloris connection that sent half its headers',
    exit: '0',
    within: 'a few ms after the last other response',
    client: 'its socket is closed once nothing else drains (a request it completes before that gets a 503)',
    report: '`completed`, it is not counted as a request'
  },
  'slow-upload': {
    area: 'clients',
    condition: 'a large body still uploading slowly when draining starts',
    exit: '0',
    within: 'last response + a few ms',
    client: 'the upload completes and is answered, with `Connection: close`',
    report: '`completed`, counted in completedRequests'
  },
  pipelined: {
    area: 'clients',
    condition: 'requests pipelined on one keep-alive socket across the moment draining starts',
    exit: '0',
    within: 'last response + a few ms',
    client: 'those whose handlers ran get their responses; later ones get 503 and never reach a handler',
    report: '`completed`, the 503s counted in rejectedRequests'
  },
  'busy-keep-alive': {
    area: 'clients',
    condition: 'busy keep-alive clients (Node http.Agent, undici Pool, autocannon) send their next request as draining starts',
    exit: '0',
    within: 'last response + idleCloseDelay at most',
    client: 'every request is answered: 200, or 503 with `Connection: close` and `Retry-After`; then ECONNREFUSED, never a reset',
    report: '`completed`, the 503s counted in rejectedRequests, `unreadConnections` empty'
  },
  'own-code-throws': {
    area: 'misuse',
    condition: 'the plugin\'s own code throws inside a Node callback while draining (here: a connection whose `bytesRead` throws)',
    exit: '0',
    within: 'last response + a few ms',
    client: 'requests in flight complete; other idle connections close as usual',
    report: '`completed`; `errors` names the internal error; the connection it could not read is destroyed once alone and listed in `unreadConnections`; never forcedBy `manual`'
  },
  'never-reads': {
    area: 'clients',
    condition: 'a client that never reads its response',
    exit: '1',
    within: 'drainTimeout + forceTimeout',
    client: 'its socket is destroyed at drainTimeout',
    report: '`forced`, forcedBy `drain-timeout`, openRequests names it'
  },
  'idle-10k': {
    area: 'clients',
    condition: '10,000 idle keep-alive sockets',
    exit: '0',
    within: 'a few hundred ms',
    client: 'every socket is closed by the server, none with a request on it',
    report: '`completed`'
  },
  'onclose-throws': {
    area: 'app code',
    condition: 'an `onClose` hook that throws (async) or calls `done(err)`',
    exit: '1',
    within: 'last response + a few ms',
    client: 'in-flight requests complete',
    report: '`completed`, exitCode 1, errors names the hook\'s error'
  },
  'onclose-hangs': {
    area: 'app code',
    condition: 'an `onClose` hook that never resolves',
    exit: '1',
    within: 'drainTimeout + forceTimeout',
    client: 'in-flight requests complete first',
    report: '`forced`, forcedBy `drain-timeout`, errors says forceTimeout ran out'
  },
  'task-throws': {
    area: 'app code',
    condition: 'a shutdown task that throws',
    exit: '0',
    within: 'last response + a few ms',
    client: 'in-flight requests complete',
    report: 'tasks lists it `failed` with its error; the other tasks still run'
  },
  'route-throws-during-drain': {
    area: 'app code',
    condition: 'a route that throws while draining',
    exit: '0',
    within: 'last response + a few ms',
    client: 'that request gets Fastify\'s 500, with `Connection: close`',
    report: '`completed`, counted in completedRequests'
  },
  'uncaught-exception': {
    area: 'app code',
    condition: 'an uncaught exception while serving',
    exit: '1',
    within: 'last response + a few ms',
    client: 'in-flight requests complete',
    report: '`completed`, trigger `error` with message and stack, exitCode 1'
  },
  'unhandled-rejection': {
    area: 'app code',
    condition: 'an unhandled rejection while serving',
    exit: '1',
    within: 'last response + a few ms',
    client: 'in-flight requests complete',
    report: '`completed`, trigger `error` with message and stack, exitCode 1'
  },
  'uncaught-exception-mid-drain': {
    area: 'app code',
    condition: 'an uncaught exception in the middle of a drain',
    exit: '1',
    within: 'forceTimeout',
    client: 'in-flight requests are cut (ECONNRESET)',
    report: '`forced`, forcedBy `fatal-error`, errors has the message, openRequests names them'
  },
  'unhandled-rejection-mid-drain': {
    area: 'app code',
    condition: 'an unhandled rejection in the middle of a drain',
    exit: '1',
    within: 'forceTimeout',
    client: 'in-flight requests are cut (ECONNRESET)',
    report: '`forced`, forcedBy `fatal-error`, errors has the message, openRequests names them'
  },
  'telemetry-refused': {
    area: 'dependencies',
    condition: 'telemetry endpoint down: nothing listens (ECONNREFUSED, retried by the exporter)',
    exit: '0',
    within: 'last response + telemetryTimeout',
    client: 'in-flight requests complete',
    report: '`completed`, telemetry `confirmed: false, timedOut: true`'
  },
  'telemetry-hangs': {
    area: 'dependencies',
    condition: 'telemetry endpoint accepts and never answers',
    exit: '0',
    within: 'last response + telemetryTimeout',
    client: 'in-flight requests complete',
    report: '`completed`, telemetry `confirmed: false, timedOut: true`'
  },
  'telemetry-unavailable': {
    area: 'dependencies',
    condition: 'telemetry endpoint answers 503 to every export (retried by the exporter)',
    exit: '0',
    within: 'last response + telemetryTimeout',
    client: 'in-flight requests complete',
    report: '`completed`, telemetry `confirmed: false, timedOut: true`'
  },
  'telemetry-rejects': {
    area: 'dependencies',
    condition: 'exporters that give up before telemetryTimeout',
    exit: '0',
    within: 'last response + the exporters\' own timeout',
    client: 'in-flight requests complete',
    report: '`completed`, telemetry `failed` names each exporter\'s error'
  },
  'telemetry-dns': {
    area: 'dependencies',
    condition: 'telemetry endpoint\'s host name does not resolve (ENOTFOUND, retried by the exporter)',
    exit: '0',
    within: 'last response + telemetryTimeout',
    client: 'in-flight requests complete',
    report: '`completed`, telemetry `confirmed: false, timedOut: true`; `failed` names the DNS error when the exporters give up first'
  },
  'telemetry-hangs-on-force': {
    area: 'dependencies',
    condition: 'a second signal while the telemetry endpoint never answers',
    exit: '1',
    within: 'forceTimeout',
    client: 'in-flight requests are cut',
    report: '`forced`, telemetry not confirmed'
  },
  'register-twice': {
    area: 'misuse',
    condition: 'registering the plugin twice on one instance',
    exit: 'register rejects',
    within: 'at register',
    client: 'the server never starts',
    report: 'FST_SHUTDOWN_ALREADY_REGISTERED'
  },
  encapsulated: {
    area: 'misuse',
    condition: 'registering inside an encapsulated context while routes live outside it',
    exit: 'drains as from the root',
    within: 'as from the root',
    client: 'those routes get the 503 too: the gate stands in front of Fastify\'s router',
    report: '`rejectedRequests` counts them'
  },
  'option-fuzz': {
    area: 'misuse',
    condition: 'any bad option (the option object fuzzed)',
    exit: 'register rejects',
    within: 'at register',
    client: 'the server never starts',
    report: 'FST_SHUTDOWN_INVALID_OPTION, FST_SHUTDOWN_UNKNOWN_OPTION or FST_SHUTDOWN_BUDGET_EXCEEDED; an accepted one shuts down cleanly'
  },
  'start-after-close': {
    area: 'misuse',
    condition: '`shutdown.start()` after `fastify.close()`',
    exit: '0, once',
    within: 'at once',
    client: '— (the server is closed)',
    report: 'the report of the close that already ran; no second shutdown'
  },
  'force-before-start': {
    area: 'misuse',
    condition: '`shutdown.force()` before `shutdown.start()`',
    exit: '1',
    within: 'forceTimeout',
    client: 'in-flight requests are cut',
    report: '`forced`, forcedBy `manual`'
  },
  'register-close-1000': {
    area: 'resources',
    condition: '1,000 register/listen/close cycles in one process',
    exit: '—',
    within: '—',
    client: '—',
    report: 'no listener, timer, socket or warning left (`process.getActiveResourcesInfo()`), heap does not grow'
  }
} as const satisfies Record<string, FaultRow>

export type FaultId = keyof typeof FAULT_MATRIX

/** The title of the test that proves a row. */
export function faultTest (id: FaultId): string {
  return `fault matrix [${id}]: ${FAULT_MATRIX[id].condition}`
}

const cell = (text: string): string => text.replaceAll('|', '\\|')

/** The table in docs/fault-matrix.md. */
export function matrixTable (): string {
  const lines = [
    '| | Condition | Exit | Within | The client sees | The report says |',
    '|---|---|---|---|---|---|'
  ]
  for (const row of Object.values(FAULT_MATRIX) as FaultRow[]) {
    lines.push(`| ${row.area} | ${[row.condition, row.exit, row.within, row.client, row.report].map(cell).join(' | ')} |`)
  }
  return lines.join('\n')
}
