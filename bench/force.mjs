// The force path: a second SIGTERM with 10,000 spans queued and not yet exported, an OTLP/HTTP receiver on
// loopback. fastify-shutdown against close-with-grace (which exits at once on a second signal), in the same
// rounds, interleaved; and fastify-shutdown with nothing queued, to tell the flush from the rest.
//
//   npm run build && node bench/force.mjs [--smoke] [--rounds 5] [--json]   (--json: every measurement after the tables)
//
// Each run: the server starts with the spans queued; one request gets stuck, so the drain cannot end; first
// SIGTERM; once the server has handled it, a second SIGTERM; then the time to exit, what the receiver got,
// and what the plugin's report says about the flush.
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { bounded, startServer } from './lib-child.mjs'
import { OtlpReceiver } from './lib-otlp-receiver.mjs'
import { amount, count, differenceSpread, exitCodes, markdown, minus, noiseNote, paired, roundOrder, spread, summarize } from './lib-rounds.mjs'
import { destroyAll, openConnections } from './lib-sockets.mjs'

const SERVER = fileURLToPath(new URL('force-server.cjs', import.meta.url))
const QUEUED_SPAN = 'queued'

const PLANS = {
  full: { rounds: 5, spans: 10_000 },
  smoke: { rounds: 1, spans: 1_000 }
}

/** The runs of a round; `spans` 0 marks the reference run with nothing queued. */
const RUNS = (spans) => [
  { key: 'plugin', variant: 'plugin', spans, label: `fastify-shutdown, ${count(spans)} spans queued` },
  { key: 'baseline', variant: 'baseline', spans, label: `close-with-grace + fastify.close() + provider.shutdown(), ${count(spans)} spans queued` },
  { key: 'plugin-empty', variant: 'plugin', spans: 0, label: 'fastify-shutdown, nothing queued' }
]

export const suite = {
  name: 'force',
  title: 'Force path: a second signal with spans queued',
  async run ({ smoke = false, log = () => {}, rounds } = {}) {
    const plan = { ...PLANS[smoke ? 'smoke' : 'full'], ...(rounds === undefined ? {} : { rounds }) }
    const runs = RUNS(plan.spans)
    const raw = { rounds: plan.rounds, spans: plan.spans, runs: [] }
    for (let round = 0; round < plan.rounds; round++) {
      for (const run of roundOrder(runs, round)) {
        const result = await forceWithSpansQueued(run.variant, run.spans)
        raw.runs.push({ round, run: run.key, ...result })
        log(`round ${round + 1}/${plan.rounds} ${run.key}: second SIGTERM → exit ${amount(result.exitMs)}, exit ${result.code}, ${count(result.queuedReceived)} of ${count(run.spans)} queued spans received`)
      }
    }
    return { tables: [forceTable(raw, runs, plan)], raw }
  }
}

async function forceWithSpansQueued (variant, spans) {
  const receiver = await OtlpReceiver.start()
  let server = null
  let clients = []
  try {
    server = await startServer(SERVER, { variant, receiver: receiver.url, spans })
    const receivedBeforeSignal = receiver.total
    clients = await openConnections(server.port, 1, { path: '/stuck' })
    await server.message((m) => m.type === 'held', 'the request to get stuck')
    server.kill('SIGTERM')
    await server.line(variant === 'plugin' ? (l) => l.msg === 'listener closed, draining' : (l) => l.msg === 'closing', 'the first signal to be handled')
    const second = server.kill('SIGTERM')
    const exit = await server.ended()
    await receiver.settled()
    const report = server.lines.find((l) => l.msg === 'shutdown forced' || l.msg === 'shutdown complete')
    return {
      code: exit.code ?? exit.signal,
      exitMs: exit.at - second.at,
      exitListenerMs: exit.stampAt === null ? null : exit.stampAt - second.wallAt,
      receivedBeforeSignal,
      queuedReceived: receiver.count(QUEUED_SPAN),
      otherSpansReceived: receiver.total - receiver.count(QUEUED_SPAN),
      exportRequests: receiver.requests,
      receiverErrors: receiver.errors,
      // The last export arrived this long after the second signal.
      lastExportMs: receiver.lastArrivalAt === null ? null : receiver.lastArrivalAt - second.at,
      stuckRequestCut: await bounded(clients[0].pending.then(() => false, () => true), 'the stuck request to end'),
      report: report === undefined ? null : { msg: report.msg, forcedBy: report.forcedBy, exitCode: report.exitCode, phases: report.phases, telemetry: report.telemetry, errors: report.errors }
    }
  } finally {
    destroyAll(clients)
    await server?.stop()
    await receiver.close()
  }
}

function forceTable (raw, runs, plan) {
  const isRun = (key) => (run) => run.run === key
  const exitMs = (run) => run.exitMs
  const summaries = []
  const rows = runs.map(({ key, spans, label }) => {
    const mine = raw.runs.filter(isRun(key))
    const exit = summarize(mine.map(exitMs))
    summaries.push(exit)
    const received = mine.map((run) => run.queuedReceived)
    const [fewest, most] = [Math.min(...received), Math.max(...received)]
    const confirmed = mine.filter((run) => run.report?.telemetry?.confirmed === true).length
    return [
      label,
      spread(exit),
      key === 'baseline' ? '—' : differenceSpread(paired(raw.runs, plan.rounds, [isRun(key), isRun('baseline')], exitMs, minus)),
      spans === 0 ? '—' : `${count(fewest)}${fewest === most ? '' : `–${count(most)}`} of ${count(spans)}`,
      spans === 0 ? '—' : count(spans - fewest),
      key === 'baseline' ? 'no report' : confirmed === mine.length ? 'yes, every round' : `${confirmed} of ${mine.length} rounds`,
      key === 'baseline' ? '—' : spread(summarize(mine.map((run) => run.report?.phases?.forceMs ?? NaN))),
      exitCodes(mine.map((run) => run.code))
    ]
  })
  const flush = paired(raw.runs, plan.rounds, [isRun('plugin'), isRun('plugin-empty')], exitMs, minus)
  return {
    title: `Force path: second SIGTERM → exit, with ${count(plan.spans)} spans queued`,
    columns: ['server', 'second SIGTERM → exit', 'vs close-with-grace', 'queued spans the receiver got', 'lost (worst round)', 'report: telemetry confirmed', 'report: forceMs', 'exit code'],
    rows,
    notes: [
      'A BatchSpanProcessor holds the spans (its batch is bigger than the queue and its timer an hour long); the exporter is OTLP/HTTP JSON to a receiver in the bench process on 127.0.0.1. A request stuck in its handler keeps the drain from ending; the second SIGTERM is sent once the server has handled the first. The plugin runs with its default forceTimeout (3 s) and duplicateSignalWindow 0. close-with-grace exits synchronously on a second signal: the export its hook starts never leaves the process.',
      flush === null ? '' : `Flushing the queued spans costs the force path ${differenceSpread(flush)} over the same path with nothing queued (per-round differences).`,
      plan.rounds === 1
        ? 'One round (smoke): single measurements, not for quoting.'
        : `Median of ${plan.rounds} rounds, (min–max) over rounds; the runs alternate order from round to round. Measured in the bench process from kill() to the child's 'exit' event.`,
      noiseNote(summaries)
    ].filter(Boolean)
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { smoke: { type: 'boolean', default: false }, rounds: { type: 'string' }, json: { type: 'boolean', default: false } } })
  const rounds = values.rounds === undefined ? undefined : Number(values.rounds)
  if (rounds !== undefined && !(Number.isInteger(rounds) && rounds > 0)) throw new TypeError(`Expected --rounds to be a positive integer, got "${values.rounds}"`)
  const { tables, raw } = await suite.run({ smoke: values.smoke, rounds, log: (line) => console.error(`[force] ${line}`) })
  console.log(markdown(tables))
  if (values.json) console.log(JSON.stringify(raw, null, 2))
}
