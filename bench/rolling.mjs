// The rolling-restart benchmark: the scenario of test/rolling (N replicas of the example app behind a real
// HAProxy under keep-alive load, each replaced the way Kubernetes does it), run in interleaved rounds with
// fastify-shutdown and with the baseline (plain Fastify + close-with-grace), compared on what clients see:
// failed requests and latency. One round of each is drawn as requests/s and failures over time, with every
// replica's shutdown phases marked.
import os from 'node:os'
import { DEFAULTS, haproxyVersion, runRollingRestart } from '../test/helpers/rolling/index.mjs'
import { chart } from './chart.mjs'

export const SCENARIOS = ['plugin', 'baseline']

const NAMES = { plugin: 'fastify-shutdown', baseline: 'close-with-grace + fastify.close()' }

/** One restart over a short load: the whole scenario still runs, in about 10 s a round. */
export const SMOKE_OPTIONS = Object.freeze({ restarts: 1, warmRequests: 100, longMs: Object.freeze([1500, 2000]) })

const MARKER_KINDS = {
  sigterm: { label: 'SIGTERM sent', color: '#d97706', dash: '5 3' },
  listenerClosed: { label: 'listener closed (baseline: close() called)', color: '#7c3aed', dash: '2 2' },
  exit: { label: 'process exited', color: '#374151' }
}

const COLORS = { plugin: '#2563eb', baseline: '#0d9488', failed: '#dc2626' }

/**
 * Runs `rounds` rounds of every scenario, interleaved (plugin, baseline, plugin, baseline, ...) so that a
 * machine slowing down or speeding up weighs on both alike. Resolves with each scenario result, `round` added.
 */
export async function runRounds ({ rounds, scenarios = SCENARIOS, overrides = {}, script, log = () => {} }) {
  const results = []
  for (let round = 1; round <= rounds; round++) {
    for (const app of scenarios) {
      log(`round ${round}/${rounds}: ${app}`)
      const result = await runRollingRestart({ app, script: app === 'plugin' ? script : undefined, log, ...overrides })
      results.push({ ...result, round })
    }
  }
  return results
}

export const suite = {
  name: 'rolling',
  title: 'Rolling restart behind HAProxy',
  async run ({ smoke, log }) {
    const version = haproxyVersion()
    if (version === null) throw new Error('haproxy is not installed: apt-get install -y haproxy')
    const rounds = smoke ? 1 : 2
    const overrides = smoke ? SMOKE_OPTIONS : {}
    const options = { ...DEFAULTS, ...overrides }
    const results = await runRounds({ rounds, overrides, log })
    return {
      tables: [summaryTable(results, options, version), roundsTable(results)],
      raw: { haproxy: version, rounds, options, results },
      charts: [{ file: 'rolling-restart.svg', svg: rollingChart(results) }]
    }
  }
}

/** Per scenario, over its rounds: median with the min–max spread when there is more than one round. */
export function summaryTable (results, options, haproxy) {
  const rows = SCENARIOS.filter((app) => results.some((r) => r.scenario === app)).map((app) => {
    const mine = results.filter((r) => r.scenario === app)
    const exits = mine.flatMap((r) => r.replicas.map((x) => x.sigtermToExitMs))
    const killed = mine.flatMap((r) => r.replicas).filter((x) => x.killed).length
    return [
      NAMES[app],
      `${mine.length} × ${options.restarts}`,
      spread(mine.map((r) => r.requests)),
      spread(mine.map((r) => r.non2xx)),
      spread(mine.map((r) => r.connectionErrors)),
      spread(mine.map((r) => r.latencyMs.p50)),
      spread(mine.map((r) => r.latencyMs.p99)),
      spread(mine.map((r) => r.latencyMs.fastP99)),
      spread(exits) + (killed > 0 ? ` (${killed} SIGKILLed)` : '')
    ]
  })
  return {
    title: 'Client errors and latency across rolling restarts',
    columns: ['app', 'rounds × restarts', 'requests', 'non-2xx', 'connection errors', 'p50 ms', 'p99 ms', 'p99 ms, fast requests', 'SIGTERM → exit ms'],
    rows,
    notes: [
      `${options.replicas} replicas of example-app behind ${haproxy.replace(/ - https?:\S+/, '')} (keep-alive both sides, \`retries 0\`, ` +
        `health check \`GET ${options.checkPath}\` every ${options.checkIntervalMs} ms); ${options.fastLoops} fast, ${options.slowLoops} slow ` +
        `(${options.slowMs.join('–')} ms) and ${options.longLoops} long (${options.longMs.join('–')} ms) client loops on one keep-alive agent.`,
      'Each restart: start a replica, wait until HAProxy has it UP, SIGTERM the oldest, take it out of rotation after the endpoint lag ' +
        `(${options.lagsMs.slice(0, options.restarts).join(', ')} ms in turn), SIGKILL at ${options.gracePeriodMs} ms.`,
      `fastify-shutdown: preStopDelay ${options.preStopDelayMs} ms, drainTimeout ${options.drainTimeoutMs} ms. Baseline: the same app ` +
        'with close-with-grace (delay 500 ms) calling `fastify.close()`.',
      'Rounds interleaved (fastify-shutdown, baseline, ...); cells are the median over rounds with (min–max). Latency counts every ' +
        'request of the run, failed ones included; "fast" are `GET /orders/1` and `POST /orders`.'
    ]
  }
}

export function roundsTable (results) {
  return {
    title: 'Each round',
    columns: ['round', 'app', 'load s', 'requests', 'non-2xx', 'connection errors', 'failures by kind', 'p50 ms', 'p99 ms', 'max ms', 'SIGTERM → exit ms, each replica'],
    rows: results.map((r) => [
      String(r.round),
      NAMES[r.scenario] ?? r.scenario,
      (r.durationMs / 1000).toFixed(1),
      String(r.requests),
      String(r.non2xx),
      String(r.connectionErrors),
      Object.entries(r.failureKinds).map(([kind, n]) => `${n} × ${kind}`).join(', ') || '—',
      String(r.latencyMs.p50),
      String(r.latencyMs.p99),
      String(r.latencyMs.max),
      r.replicas.map((x) => `${x.sigtermToExitMs}${x.killed ? ' (SIGKILL)' : x.exitCode === 0 ? '' : ` (exit ${x.exitCode ?? x.exitSignal})`}`).join(', ')
    ]),
    notes: []
  }
}

/** The first round of each scenario, one panel each, on one time axis. */
export function rollingChart (results) {
  const firsts = SCENARIOS.map((app) => results.find((r) => r.scenario === app)).filter((r) => r !== undefined)
  const cpus = os.cpus()
  return chart({
    title: 'Rolling restart behind HAProxy: requests/s and failed requests',
    subtitle: `${plural(firsts[0]?.options.restarts, 'restart')} of ${firsts[0]?.options.replicas} replicas under keep-alive load, round 1 of each; ` +
      `${cpus.length} × ${cpus[0]?.model.trim()}, Node ${process.version}`,
    xLabel: 'seconds since the load started',
    markerKinds: MARKER_KINDS,
    panels: firsts.map((result) => {
      const { bucketMs } = result.timeline
      // The load is told to stop once the last replica has exited; past that only the loops' last requests
      // end, which would read as an outage.
      const lastExitMs = Math.max(...result.replicas.map((x) => x.sigtermAtMs + x.sigtermToExitMs))
      const buckets = Math.min(result.timeline.ok.length, Math.floor(lastExitMs / bucketMs))
      const ok = result.timeline.ok.slice(0, buckets)
      const failed = result.timeline.failed.slice(0, buckets)
      const centre = (i) => (i + 0.5) * bucketMs / 1000
      const failures = result.non2xx + result.connectionErrors
      return {
        title: `${NAMES[result.scenario]}: ${result.requests} requests, ${failures} failed`,
        left: {
          label: 'requests/s (2xx)',
          series: [{ name: `requests/s, ${NAMES[result.scenario]}`, color: COLORS[result.scenario] ?? '#6b7280', type: 'line', points: ok.map((n, i) => [centre(i), n * 1000 / bucketMs]) }]
        },
        right: {
          label: `failed per ${bucketMs} ms`,
          series: [{ name: `failed requests per ${bucketMs} ms`, color: COLORS.failed, type: 'bars', barWidth: bucketMs / 1000, points: failed.map((n, i) => [centre(i), n]) }]
        },
        markers: result.replicas.flatMap((replica, i) => [
          { x: replica.sigtermAtMs / 1000, kind: 'sigterm', label: String(i + 1) },
          ...(replica.listenerClosedAfterMs === null ? [] : [{ x: (replica.sigtermAtMs + replica.listenerClosedAfterMs) / 1000, kind: 'listenerClosed' }]),
          { x: (replica.sigtermAtMs + replica.sigtermToExitMs) / 1000, kind: 'exit' }
        ])
      }
    })
  })
}

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`

/** `median (min–max)`, or the one value. */
function spread (values) {
  if (values.length === 1) return format(values[0])
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length / 2
  const median = sorted.length % 2 === 1 ? sorted[Math.floor(middle)] : (sorted[middle - 1] + sorted[middle]) / 2
  return `${format(median)} (${format(sorted[0])}–${format(sorted.at(-1))})`
}

function format (n) {
  return String(Math.round(n * 10) / 10)
}
