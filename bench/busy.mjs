// Client-visible errors per shutdown under busy keep-alive load (issue 12): 12 keep-alive clients talk straight
// to one process, 6 on a fast route and 6 on a 300 ms route, each sending its next request the moment its
// previous response has ended; SIGTERM once they are warm. fastify-shutdown (default options, and with
// idleCloseDelay 0) against what apps write today (close-with-grace calling fastify.close()), in the same
// rounds, interleaved, with Node's http.Agent, undici's Pool and autocannon as clients.
//
//   npm run build && node bench/busy.mjs [--smoke] [--rounds 5] [--json]   (--json: every measurement after the tables)
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { CLIENT_KINDS, REFUSED, clientVisibleErrors, runBusyClients } from './lib-busy-clients.mjs'
import { bounded, startServer } from './lib-child.mjs'
import { amount, count, exitCodes, markdown, noiseNote, roundOrder, spread, summarize } from './lib-rounds.mjs'

const SERVER = fileURLToPath(new URL('stop-server.cjs', import.meta.url))
const PATHS = [...Array(6).fill('/'), ...Array(6).fill('/slow')]

const VARIANTS = [
  { key: 'plugin', label: 'fastify-shutdown, default options (idleCloseDelay 1,000 ms)', server: { variant: 'plugin' } },
  { key: 'plugin-no-grace', label: 'fastify-shutdown, idleCloseDelay: 0 (no grace)', server: { variant: 'plugin', pluginOptions: { idleCloseDelay: 0 } } },
  { key: 'baseline', label: 'close-with-grace + fastify.close()', server: { variant: 'baseline' } }
]

const PLANS = {
  full: { rounds: 5, warmUpMs: 1_500, clients: CLIENT_KINDS },
  smoke: { rounds: 1, warmUpMs: 500, clients: ['node-agent'] }
}

/** How long clients may keep sending after the signal: a working shutdown ends far sooner (the baseline's delay is 10 s). */
const CLIENT_LIMIT_MS = 20_000

export const suite = {
  name: 'busy',
  title: 'Client-visible errors per shutdown under busy keep-alive load',
  async run ({ smoke = false, log = () => {}, rounds } = {}) {
    const plan = { ...PLANS[smoke ? 'smoke' : 'full'], ...(rounds === undefined ? {} : { rounds }) }
    const runs = []
    for (let round = 0; round < plan.rounds; round++) {
      for (const client of plan.clients) {
        for (const variant of roundOrder(VARIANTS, round)) {
          const run = { round, client, variant: variant.key, ...await shutDownUnderLoad(variant.server, client, plan.warmUpMs) }
          runs.push(run)
          log(`round ${round + 1}/${plan.rounds} ${client} ${variant.key}: ${run.visibleErrors} client-visible errors ${JSON.stringify(run.errors)}, ` +
            `${run.statuses['503'] ?? 0} × 503, SIGTERM → exit ${amount(run.exitMs)}, exit ${run.code}`)
        }
      }
    }
    return { tables: [errorsTable(runs, plan), exitTable(runs, plan)], raw: { plan, paths: PATHS, runs } }
  }
}

async function shutDownUnderLoad (serverConfig, client, warmUpMs) {
  const server = await startServer(SERVER, serverConfig)
  try {
    let answers = 0
    let warm
    const warmedUp = new Promise((resolve) => { warm = resolve })
    const startedAt = performance.now()
    const clients = runBusyClients(client, {
      paths: PATHS,
      port: server.port,
      until: startedAt + warmUpMs + CLIENT_LIMIT_MS,
      answered: () => {
        // Warm once every slow client has had a few answers, and not before warmUpMs.
        if (++answers >= PATHS.length * 3 && performance.now() - startedAt >= warmUpMs) warm()
      }
    })
    await bounded(Promise.race([warmedUp, clients.then(() => { throw new Error('the clients stopped before the signal') })]), 'the clients to warm up')
    const answersBefore = answers
    const signalled = server.kill('SIGTERM')
    const exit = await server.ended()
    const tally = await bounded(clients, 'the clients to stop')
    return {
      code: exit.code ?? exit.signal,
      exitMs: exit.at - signalled.at,
      answersBeforeSignal: answersBefore,
      statuses: tally.statuses,
      errors: tally.errors,
      visibleErrors: clientVisibleErrors(tally),
      report: reportOf(server)
    }
  } finally {
    await server.stop()
  }
}

/** What the plugin's report says about the shutdown and its connections; null for the baseline. */
function reportOf (server) {
  const line = server.lines.find((l) => l.msg === 'shutdown complete' || l.msg === 'shutdown forced')
  if (line === undefined) return null
  const { outcome, exitCode, durationMs, completedRequests, rejectedRequests, connections, unreadConnections } = line
  return { outcome, exitCode, durationMs, completedRequests, rejectedRequests, connections, unreadConnections: unreadConnections?.length ?? 0 }
}

// ---- tables

const runsOf = (runs, variant, client) => runs.filter((run) => run.variant === variant && (client === undefined || run.client === client))
const sum = (values) => values.reduce((a, b) => a + b, 0)
const whole = (n) => Number.isInteger(n) ? count(n) : n.toFixed(1)

/** `6 (4–9)`: a count per shutdown, median (min–max) over rounds. */
function countSpread (summary) {
  if (summary === null) return '—'
  return summary.n === 1 || summary.min === summary.max ? whole(summary.median) : `${whole(summary.median)} (${whole(summary.min)}–${whole(summary.max)})`
}

/** `0 in 15 shutdowns`, or the errors by code over all of them. */
function errorCell (runs) {
  const total = sum(runs.map((run) => run.visibleErrors))
  const byCode = {}
  for (const run of runs) {
    for (const [code, n] of Object.entries(run.errors)) if (code !== REFUSED) byCode[code] = (byCode[code] ?? 0) + n
  }
  const perShutdown = countSpread(summarize(runs.map((run) => run.visibleErrors)))
  return total === 0 ? '0' : `${perShutdown}: ${Object.entries(byCode).map(([code, n]) => `${code} ×${n}`).join(', ')}`
}

const roundsNote = (plan) => plan.rounds === 1
  ? 'One round (smoke): single measurements, not for quoting.'
  : `${plan.rounds} rounds; each round shuts every variant down once per client kind, the variants in reverse order every other round. Per shutdown: median (min–max) over rounds.`

function errorsTable (runs, plan) {
  const rows = []
  for (const client of plan.clients) {
    for (const { key, label } of VARIANTS) {
      const these = runsOf(runs, key, client)
      rows.push([
        client,
        label,
        errorCell(these),
        countSpread(summarize(these.map((run) => run.statuses['503'] ?? 0))),
        countSpread(summarize(these.map((run) => run.errors[REFUSED] ?? 0))),
        exitCodes(these.map((run) => run.code))
      ])
    }
  }
  return {
    title: 'Client-visible errors per shutdown: 12 busy keep-alive clients, SIGTERM',
    columns: ['client', 'server', 'client-visible errors per shutdown', '503 answers per shutdown', 'ECONNREFUSED per shutdown (listener closed)', 'exit codes'],
    rows,
    notes: [
      `${PATHS.length} clients, one keep-alive connection each: 6 on a route that answers at once, 6 on one that answers after 300 ms; each sends its next request the moment its previous response has ended, and stops once a new connection is refused. SIGTERM once they have run ${amount(plan.warmUpMs)} (and the slow ones have had answers). ` +
        'A client-visible error is a request that got no answer: a reset (ECONNRESET), EPIPE, "socket hang up", a timeout. ECONNREFUSED after the listener has closed is not one: nothing listens there any more, and a client retries elsewhere. A 503 (with Connection: close and Retry-After from the plugin, from Fastify\'s own return503OnClosing in the baseline) is an answer.',
      roundsNote(plan)
    ]
  }
}

function exitTable (runs, plan) {
  const summaries = []
  const rows = VARIANTS.map(({ key, label }) => {
    const cells = plan.clients.map((client) => {
      const summary = summarize(runsOf(runs, key, client).map((run) => run.exitMs))
      summaries.push(summary)
      return spread(summary)
    })
    return [label, ...cells, exitCodes(runsOf(runs, key).map((run) => run.code))]
  })
  return {
    title: 'Time from SIGTERM to exit under the same load',
    columns: ['server', ...plan.clients, 'exit codes'],
    rows,
    notes: [
      'Measured in the bench process, from kill() to the child\'s \'exit\' event. With the default idleCloseDelay the fast-route connections, in use a moment ago, get the grace: the next request each sends is answered 503 with Connection: close and the connection closes after it, well before the grace (1,000 ms) would end; the slow-route requests in flight finish (300 ms) with Connection: close. With idleCloseDelay 0 an idle connection is closed at once (after reading what the kernel already holds), which resets a request its client is sending at that moment. The baseline (fastify.close(): Node\'s closeIdleConnections(), then Fastify\'s 503 on later requests) has the same race.',
      roundsNote(plan),
      noiseNote(summaries)
    ].filter(Boolean)
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { smoke: { type: 'boolean', default: false }, rounds: { type: 'string' }, json: { type: 'boolean', default: false } } })
  const rounds = values.rounds === undefined ? undefined : Number(values.rounds)
  if (rounds !== undefined && !(Number.isInteger(rounds) && rounds > 0)) throw new TypeError(`Expected --rounds to be a positive integer, got "${values.rounds}"`)
  const { tables, raw } = await suite.run({ smoke: values.smoke, rounds, log: (line) => console.error(`[busy] ${line}`) })
  console.log(markdown(tables))
  if (values.json) console.log(JSON.stringify(raw, null, 2))
}
