// Time to stop and drain precision: fastify-shutdown against what apps write today (plain Fastify with
// close-with-grace calling fastify.close()), in the same rounds, interleaved.
//
//   npm run build && node bench/stop.mjs [--smoke] [--rounds 5] [--json]   (--json: every measurement after the tables)
//
// - Idle: SIGTERM → exit with 0 to 10,000 idle keep-alive connections held open by the client.
// - Busy: one request in flight on a keep-alive connection, answered 200 ms after the signal; the client
//   keeps the connection, as real clients do.
// - Drain precision: N requests in flight, each on its own connection, all answered 200 ms after the signal:
//   the time from the end of the last response (as the client read it) to the exit.
// - Scaling: the same, per connection and per request.
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { chart } from './chart.mjs'
import { bounded, startServer } from './lib-child.mjs'
import { amount, count, differenceSpread, exitCodes, markdown, minus, noiseNote, over, paired, ratioSpread, roundOrder, spread, summarize } from './lib-rounds.mjs'
import { destroyAll, openConnections } from './lib-sockets.mjs'

const SERVER = fileURLToPath(new URL('stop-server.cjs', import.meta.url))
const PLUGIN = 'fastify-shutdown'
const BASELINE = 'close-with-grace + fastify.close()'
/** When the held requests answer, counted from the signal: the drain is under way by then. */
const RELEASE_AFTER_MS = 200

const BUSY_DEFAULTS = { label: "Fastify's defaults: keepAliveTimeout 72 s; close-with-grace's delay 10 s", server: {} }
const BUSY_SHORT_KEEP_ALIVE = (ms) => ({ label: `keepAliveTimeout ${ms / 1000} s on both; close-with-grace's delay 10 s`, server: { keepAliveTimeout: ms } })
const BUSY_CLI_DELAY = { label: "Fastify's defaults; close-with-grace's delay 500 ms (fastify-cli's)", server: { graceDelay: 500 } }

const PLANS = {
  full: { rounds: 5, idle: [0, 10, 100, 1_000, 10_000], busy: [BUSY_DEFAULTS, BUSY_SHORT_KEEP_ALIVE(2_000), BUSY_CLI_DELAY], drain: [10, 100, 1_000, 10_000] },
  smoke: { rounds: 1, idle: [0, 10], busy: [BUSY_SHORT_KEEP_ALIVE(1_000)], drain: [10] }
}

/** The drain runs: the plugin with real keep-alive clients, and both servers with clients that ask to close. */
const DRAIN_RUNS = [
  { key: 'plugin-keep-alive', variant: 'plugin', close: false },
  { key: 'plugin-close', variant: 'plugin', close: true },
  { key: 'baseline-close', variant: 'baseline', close: true }
]

export const suite = {
  name: 'stop',
  title: 'Time to stop and drain precision',
  async run ({ smoke = false, log = () => {}, rounds } = {}) {
    const plan = { ...PLANS[smoke ? 'smoke' : 'full'], ...(rounds === undefined ? {} : { rounds }) }
    const raw = { rounds: plan.rounds, releaseAfterMs: RELEASE_AFTER_MS, idle: [], busy: [], drain: [] }
    for (let round = 0; round < plan.rounds; round++) {
      const progress = `round ${round + 1}/${plan.rounds}`
      for (const connections of plan.idle) {
        for (const variant of roundOrder(['plugin', 'baseline'], round)) {
          const result = await timeIdleStop(variant, connections)
          raw.idle.push({ round, variant, connections, ...result })
          log(`${progress} idle ${connections} ${variant}: ${amount(result.exitMs)}, exit ${result.code}`)
        }
      }
      for (const setting of plan.busy) {
        for (const variant of roundOrder(['plugin', 'baseline'], round)) {
          const result = await timeBusyStop(variant, setting.server)
          raw.busy.push({ round, variant, setting: setting.label, ...result })
          log(`${progress} busy (${setting.label}) ${variant}: ${amount(result.exitMs)}, exit ${result.code}`)
        }
      }
      for (const requests of plan.drain) {
        for (const run of roundOrder(DRAIN_RUNS, round)) {
          const result = await timeDrain(run.variant, requests, run.close)
          raw.drain.push({ round, run: run.key, variant: run.variant, clientAsksToClose: run.close, requests, ...result })
          log(`${progress} drain ${requests} ${run.key}: last response → exit ${amount(result.lastEndToExitMs)}, ${result.failed} failed, exit ${result.code}`)
        }
      }
    }
    return {
      tables: [idleTable(raw, plan), busyTable(raw, plan), drainTable(raw, plan), scalingTable(raw, plan)],
      raw,
      charts: [{ file: 'stop-scaling.svg', svg: scalingChart(raw, plan) }]
    }
  }
}

async function timeIdleStop (variant, connections) {
  const server = await startServer(SERVER, { variant })
  let clients = []
  try {
    clients = await openConnections(server.port, connections, { path: '/', awaitResponse: true })
    const signalled = server.kill('SIGTERM')
    const exit = await server.ended()
    return { ...exitFigures(signalled, exit), report: reportOf(server) }
  } finally {
    destroyAll(clients)
    await server.stop()
  }
}

async function timeBusyStop (variant, serverConfig) {
  const server = await startServer(SERVER, { variant, hold: 1, ...serverConfig })
  let clients = []
  try {
    clients = await openConnections(server.port, 1, { path: '/hold' })
    await server.message((m) => m.type === 'held', 'the request to be held')
    const signalled = server.kill('SIGTERM')
    server.send({ type: 'release', afterMs: RELEASE_AFTER_MS })
    const [client] = clients
    const response = await bounded(client.pending, 'the held response')
    const exit = await server.ended()
    return {
      ...exitFigures(signalled, exit),
      status: response.status,
      connectionHeader: response.connection,
      responseEndMs: response.endAt - signalled.at,
      // Until the server closed it, or until the process was gone if it never did.
      openAfterResponseMs: (client.closedAt ?? exit.at) - response.endAt,
      report: reportOf(server)
    }
  } finally {
    destroyAll(clients)
    await server.stop()
  }
}

async function timeDrain (variant, requests, close) {
  const server = await startServer(SERVER, { variant, hold: requests })
  let clients = []
  try {
    clients = await openConnections(server.port, requests, { path: '/hold', close })
    await server.message((m) => m.type === 'held', `${requests} requests to be held`)
    const signalled = server.kill('SIGTERM')
    server.send({ type: 'release', afterMs: RELEASE_AFTER_MS })
    const outcomes = await bounded(Promise.allSettled(clients.map((client) => client.pending)), `${requests} responses`)
    const exit = await server.ended()
    const ends = outcomes.filter((outcome) => outcome.status === 'fulfilled').map((outcome) => outcome.value.endAt)
    const ok = outcomes.filter((outcome) => outcome.status === 'fulfilled' && outcome.value.status === 200).length
    const lastEndAt = ends.reduce((a, b) => Math.max(a, b), -Infinity)
    return {
      ...exitFigures(signalled, exit),
      ok,
      failed: requests - ok,
      signalToLastEndMs: lastEndAt - signalled.at,
      lastEndToExitMs: exit.at - lastEndAt,
      lastEndToExitListenerMs: exit.stampAt === null ? null : exit.stampAt - (performance.timeOrigin + lastEndAt),
      report: reportOf(server)
    }
  } finally {
    destroyAll(clients)
    await server.stop()
  }
}

/**
 * SIGTERM → exit twice over: to the 'exit' event in this process (what a supervisor sees), and to the
 * server's own 'exit' listener (without the kernel's teardown of its sockets and this process's event loop).
 */
function exitFigures (signalled, exit) {
  return {
    code: exit.code ?? exit.signal,
    exitMs: exit.at - signalled.at,
    exitListenerMs: exit.stampAt === null ? null : exit.stampAt - signalled.wallAt
  }
}

/** The plugin's report, from its log line; null for the baseline. */
function reportOf (server) {
  const line = server.lines.find((l) => l.msg === 'shutdown complete' || l.msg === 'shutdown forced')
  if (line === undefined) return null
  const { outcome, exitCode, durationMs, phases, completedRequests, rejectedRequests, openRequests } = line
  return { outcome, exitCode, durationMs, phases, completedRequests, rejectedRequests, openRequests: openRequests?.length ?? 0 }
}

// ---- tables

const field = (name) => (run) => run[name]
const isVariant = (variant) => (run) => run.variant === variant
const isRun = (key) => (run) => run.run === key
const codesOf = (runs) => `${exitCodes(runs.filter(isVariant('plugin')).map(field('code')))} / ${exitCodes(runs.filter(isVariant('baseline')).map(field('code')))}`

const roundsNote = (plan) => plan.rounds === 1
  ? 'One round (smoke): single measurements, not for quoting.'
  : `Median of ${plan.rounds} rounds, (min–max) over rounds; the variants alternate order from round to round. Differences and ratios are taken within each round, then summarised.`

const PLUGIN_VERSUS_BASELINE = [isVariant('plugin'), isVariant('baseline')]

/** SIGTERM → exit of the plugin and the baseline, then their difference and ratio within each round. */
function exitTimesVersus (runs, rounds, summaries) {
  const [plugin, baseline] = PLUGIN_VERSUS_BASELINE.map((is) => summarize(runs.filter(is).map(field('exitMs'))))
  summaries.push(plugin, baseline)
  return [
    spread(plugin),
    spread(baseline),
    differenceSpread(paired(runs, rounds, PLUGIN_VERSUS_BASELINE, field('exitMs'), minus)),
    ratioSpread(paired(runs, rounds, PLUGIN_VERSUS_BASELINE, field('exitMs'), over))
  ]
}

function idleTable (raw, plan) {
  const summaries = []
  const rows = plan.idle.map((connections) => {
    const runs = raw.idle.filter((run) => run.connections === connections)
    return [
      count(connections),
      ...exitTimesVersus(runs, plan.rounds, summaries),
      differenceSpread(paired(runs, plan.rounds, PLUGIN_VERSUS_BASELINE, field('exitListenerMs'), minus)),
      codesOf(runs)
    ]
  })
  return {
    title: 'Time to stop with idle keep-alive connections: SIGTERM → exit',
    columns: ['idle connections', PLUGIN, BASELINE, 'difference', 'ratio', "difference, to the server's exit listener", 'exit codes (plugin / baseline)'],
    rows,
    notes: [
      "Each connection has served one request and is held open by the client; preStopDelay 0. Measured in the bench process from kill() to the child's 'exit' event; the second difference stops at the server's own 'exit' listener instead (without the kernel's teardown of the sockets or a wait on the bench's event loop).",
      roundsNote(plan),
      noiseNote(summaries)
    ].filter(Boolean)
  }
}

function busyTable (raw, plan) {
  const summaries = []
  const rows = plan.busy.map(({ label }) => {
    const runs = raw.busy.filter((run) => run.setting === label)
    return [
      label,
      ...exitTimesVersus(runs, plan.rounds, summaries),
      PLUGIN_VERSUS_BASELINE.map((is) => spread(summarize(runs.filter(is).map(field('openAfterResponseMs'))))).join(' / '),
      codesOf(runs)
    ]
  })
  return {
    title: 'Time to stop with one busy keep-alive connection: SIGTERM → exit',
    columns: ['setting', PLUGIN, BASELINE, 'difference', 'ratio', 'connection open after its response (plugin / baseline)', 'exit codes (plugin / baseline)'],
    rows,
    notes: [
      `One request in flight, answered ${RELEASE_AFTER_MS} ms after the signal; the client keeps the connection open afterwards, as keep-alive clients do. fastify.close() closes the connections idle when it runs, not one that becomes idle later: the baseline waits for the keep-alive timeout (Node 20 adds 1 s to Fastify's keepAliveTimeout), or until close-with-grace's delay runs out and it exits 1. The plugin answers that request with \`Connection: close\`, so the connection ends with the response.`,
      roundsNote(plan),
      noiseNote(summaries)
    ].filter(Boolean)
  }
}

function drainTable (raw, plan) {
  const summaries = []
  const rows = plan.drain.map((requests) => {
    const runs = raw.drain.filter((run) => run.requests === requests)
    const precision = (key) => summarize(runs.filter(isRun(key)).map(field('lastEndToExitMs')))
    const failures = DRAIN_RUNS.map(({ key }) => runs.filter(isRun(key)).reduce((sum, run) => sum + run.failed, 0))
    const cells = DRAIN_RUNS.map(({ key }) => precision(key))
    summaries.push(...cells)
    return [
      count(requests),
      spread(cells[0]),
      spread(summarize(runs.filter(isRun('plugin-keep-alive')).map(field('lastEndToExitListenerMs')))),
      spread(cells[1]),
      spread(cells[2]),
      differenceSpread(paired(runs, plan.rounds, [isRun('plugin-close'), isRun('baseline-close')], field('lastEndToExitMs'), minus)),
      spread(summarize(runs.filter(isRun('plugin-keep-alive')).map(field('signalToLastEndMs')))),
      failures.every((n) => n === 0) ? 'none' : failures.join(' / ')
    ]
  })
  return {
    title: 'Drain precision: end of the last response → exit',
    columns: ['requests in flight', `${PLUGIN}, keep-alive clients`, "same, to the server's exit listener", `${PLUGIN}, clients send Connection: close`, `${BASELINE}, clients send Connection: close`, 'difference (same clients)', `signal → last response (${PLUGIN}, keep-alive)`, 'failed requests'],
    rows,
    notes: [
      `Each request on its own connection, all answered ${RELEASE_AFTER_MS} ms after SIGTERM; the end of the last response is when the bench read its last byte. With keep-alive clients the baseline does not drain: it waits for the keep-alive timeout or close-with-grace's delay (see the busy table), so it is compared here with clients that ask to close, where fastify.close() can finish as soon as the sockets do. The plugin's figures include its report and the wait for its log line to be written; no telemetry is configured.`,
      roundsNote(plan),
      noiseNote(summaries)
    ].filter(Boolean)
  }
}

function scalingTable (raw, plan) {
  const idle = (variant, n) => summarize(raw.idle.filter((run) => run.variant === variant && run.connections === n).map(field('exitMs')))
  const drain = (key, n) => summarize(raw.drain.filter((run) => run.run === key && run.requests === n).map(field('lastEndToExitMs')))
  const [firstIdle] = plan.idle
  const [firstDrain] = plan.drain
  // The slope from the smallest count: what one more connection or request costs, in microseconds. When
  // the two cells' ranges over rounds overlap, the change says nothing about the slope.
  const perUnit = (at, base, n, baseN) => {
    if (at === null || base === null || n === baseN) return '—'
    if (at.min <= base.max && at.max >= base.min) return 'within noise'
    return amount((at.median - base.median) * 1000 / (n - baseN), 'µs')
  }
  const sizes = [...new Set([...plan.idle, ...plan.drain])].filter((n) => n > 0).sort((a, b) => a - b)
  const rows = sizes.map((n) => {
    const cells = [count(n)]
    for (const variant of ['plugin', 'baseline']) {
      const at = plan.idle.includes(n) ? idle(variant, n) : null
      cells.push(at === null ? '—' : amount(at.median), perUnit(at, idle(variant, firstIdle), n, firstIdle))
    }
    for (const key of ['plugin-keep-alive', 'baseline-close']) {
      const at = plan.drain.includes(n) ? drain(key, n) : null
      cells.push(at === null ? '—' : amount(at.median), perUnit(at, drain(key, firstDrain), n, firstDrain))
    }
    return cells
  })
  return {
    title: 'Scaling: stop time and drain precision against connections and requests in flight',
    columns: ['N', `stop, N idle: ${PLUGIN}`, 'per connection', `stop, N idle: ${BASELINE}`, 'per connection', `drain, N in flight: ${PLUGIN} (keep-alive)`, 'per request', `drain: ${BASELINE} (Connection: close)`, 'per request'],
    rows,
    notes: [
      `Medians from the tables above. "Per connection" is (median at N − median at ${count(firstIdle)}) / ${firstIdle === 0 ? 'N' : `(N − ${count(firstIdle)})`}; "per request" is (median at N − median at ${count(firstDrain)}) / (N − ${count(firstDrain)}): what each more connection or request adds to the time to stop. "Within noise": the min–max ranges over rounds at N and at the smallest count overlap.`,
      roundsNote(plan)
    ]
  }
}

const COLORS = { plugin: '#2563eb', pluginClose: '#93c5fd', baseline: '#0d9488' }

/** Medians against N: the time to stop with N idle connections, and the drain's tail with N requests. */
function scalingChart (raw, plan) {
  const medians = (runs, n) => summarize(runs.filter((run) => run.n === n).map((run) => run.ms))?.median
  const line = (name, color, runs, sizes) => ({ name, color, type: 'line', points: sizes.map((n) => [n, medians(runs, n)]) })
  const idle = (variant) => raw.idle.filter(isVariant(variant)).map((run) => ({ n: run.connections, ms: run.exitMs }))
  const drain = (key) => raw.drain.filter(isRun(key)).map((run) => ({ n: run.requests, ms: run.lastEndToExitMs }))
  return chart({
    title: 'Time to stop against connections and requests in flight',
    subtitle: `Medians of ${plan.rounds} round${plan.rounds === 1 ? '' : 's'}; SIGTERM with preStopDelay 0`,
    xLabel: 'connections (top) / requests in flight (bottom)',
    panels: [
      {
        title: 'SIGTERM → exit, N idle keep-alive connections',
        left: { label: 'ms', series: [line(PLUGIN, COLORS.plugin, idle('plugin'), plan.idle), line(BASELINE, COLORS.baseline, idle('baseline'), plan.idle)] }
      },
      {
        title: 'End of the last response → exit, N requests in flight',
        left: {
          label: 'ms',
          series: [
            line(`${PLUGIN}, keep-alive clients`, COLORS.plugin, drain('plugin-keep-alive'), plan.drain),
            line(`${PLUGIN}, clients send Connection: close`, COLORS.pluginClose, drain('plugin-close'), plan.drain),
            line(`${BASELINE}, clients send Connection: close`, COLORS.baseline, drain('baseline-close'), plan.drain)
          ]
        }
      }
    ]
  })
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { smoke: { type: 'boolean', default: false }, rounds: { type: 'string' }, json: { type: 'boolean', default: false } } })
  const rounds = values.rounds === undefined ? undefined : Number(values.rounds)
  if (rounds !== undefined && !(Number.isInteger(rounds) && rounds > 0)) throw new TypeError(`Expected --rounds to be a positive integer, got "${values.rounds}"`)
  const { tables, raw } = await suite.run({ smoke: values.smoke, rounds, log: (line) => console.error(`[stop] ${line}`) })
  console.log(markdown(tables))
  if (values.json) console.log(JSON.stringify(raw, null, 2))
}
