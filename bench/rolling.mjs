// The rolling-restart benchmark: the scenarios of test/rolling (replicas of the example app behind a real
// HAProxy, and behind a real nginx configured as ingress-nginx runs it, under keep-alive load, each replaced
// the way Kubernetes does it), run in interleaved rounds with fastify-shutdown and with the baseline (plain
// Fastify + close-with-grace), compared on what clients see: failed requests and latency. One round of each
// is drawn as requests/s and failures over time, with every replica's shutdown phases marked. Without nginx
// installed, the HAProxy half runs alone and the tables say so.
import os from 'node:os'
import { DEFAULTS, NGINX_SETTINGS, defaultsFor, haproxyVersion, nginxVersion, runRollingRestart } from '../test/helpers/rolling/index.mjs'
import { chart } from './chart.mjs'

export const SCENARIOS = ['plugin', 'baseline']
export const INGRESSES = ['haproxy', 'nginx']

const NAMES = { plugin: 'fastify-shutdown', baseline: 'close-with-grace + fastify.close()' }
const INGRESS_NAMES = { haproxy: 'HAProxy', nginx: 'nginx' }

/** One restart over a short load: the whole scenario still runs, in about 10 s a round. */
export const SMOKE_OPTIONS = Object.freeze({ restarts: 1, warmRequests: 100, longMs: Object.freeze([1500, 2000]) })

const MARKER_KINDS = {
  sigterm: { label: 'SIGTERM sent', color: '#d97706', dash: '5 3' },
  listenerClosed: { label: 'listener closed (baseline: close() called)', color: '#7c3aed', dash: '2 2' },
  exit: { label: 'process exited', color: '#374151' }
}

const COLORS = { plugin: '#2563eb', baseline: '#0d9488', failed: '#dc2626' }

/**
 * Runs `rounds` rounds of every scenario behind every ingress, interleaved (plugin, baseline, plugin,
 * baseline, ...) so that a machine slowing down or speeding up weighs on both alike. Resolves with each
 * scenario result, `round` added.
 */
export async function runRounds ({ rounds, scenarios = SCENARIOS, ingresses = ['haproxy'], overrides = {}, script, log = () => {} }) {
  const results = []
  for (let round = 1; round <= rounds; round++) {
    for (const ingress of ingresses) {
      for (const app of scenarios) {
        log(`round ${round}/${rounds}: ${app} behind ${ingress}`)
        const result = await runRollingRestart({ app, ingress, script: app === 'plugin' ? script : undefined, log, ...overrides })
        results.push({ ...result, round })
      }
    }
  }
  return results
}

export const suite = {
  name: 'rolling',
  title: 'Rolling restarts behind HAProxy and nginx',
  async run ({ smoke, log }) {
    const haproxy = haproxyVersion()
    if (haproxy === null) throw new Error('haproxy is not installed: apt-get install -y haproxy')
    const nginx = nginxVersion()
    if (nginx === null) log('nginx is not installed (apt-get install -y nginx-light): HAProxy only')
    const ingresses = nginx === null ? ['haproxy'] : INGRESSES
    const rounds = smoke ? 1 : 2
    const overrides = smoke ? SMOKE_OPTIONS : {}
    const results = await runRounds({ rounds, ingresses, overrides, log })
    const versions = { haproxy, nginx }
    return {
      tables: [summaryTable(results, overrides, versions), roundsTable(results)],
      raw: { haproxy, nginx, rounds, options: Object.fromEntries(ingresses.map((i) => [i, { ...defaultsFor(i), ...overrides }])), results },
      charts: ingresses.map((ingress) => ({
        file: ingress === 'haproxy' ? 'rolling-restart.svg' : `rolling-restart-${ingress}.svg`,
        svg: rollingChart(results.filter((r) => r.options.ingress === ingress))
      }))
    }
  }
}

/** Per ingress and scenario, over its rounds: median with the min–max spread when there is more than one round. */
export function summaryTable (results, overrides, versions) {
  const groups = INGRESSES.flatMap((ingress) => SCENARIOS.map((app) => ({ ingress, app, mine: results.filter((r) => r.options.ingress === ingress && r.scenario === app) })))
  const rows = groups.filter(({ mine }) => mine.length > 0).map(({ ingress, app, mine }) => {
    const exits = mine.flatMap((r) => r.replicas.map((x) => x.sigtermToExitMs))
    const killed = mine.flatMap((r) => r.replicas).filter((x) => x.killed).length
    return [
      `${NAMES[app]}, ${INGRESS_NAMES[ingress]}`,
      `${mine.length} × ${mine[0].options.restarts}`,
      spread(mine.map((r) => r.requests)),
      spread(mine.map((r) => r.non2xx)),
      spread(mine.map((r) => r.connectionErrors)),
      ingress === 'nginx' ? spread(mine.map((r) => r.reloadResets)) : '—',
      spread(mine.map((r) => r.latencyMs.p50)),
      spread(mine.map((r) => r.latencyMs.p99)),
      spread(mine.map((r) => r.latencyMs.fastP99)),
      spread(exits) + (killed > 0 ? ` (${killed} SIGKILLed)` : '')
    ]
  })
  const haproxy = { ...DEFAULTS, ...overrides }
  const nginx = { ...defaultsFor('nginx'), ...overrides }
  const loops = (o) => `${o.fastLoops} fast, ${o.slowLoops} slow (${o.slowMs.join('–')} ms) and ${o.longLoops} long (${o.longMs.join('–')} ms) client loops on one keep-alive agent`
  const notes = [
    `HAProxy: ${haproxy.replicas} replicas of example-app behind ${versions.haproxy.replace(/ - https?:\S+/, '')} (keep-alive both sides, \`retries 0\`, ` +
      `health check \`GET ${haproxy.checkPath}\` every ${haproxy.checkIntervalMs} ms); ${loops(haproxy)}. Each restart: start a replica, wait until ` +
      `HAProxy has it UP, SIGTERM the oldest, take it out of rotation after the endpoint lag (${haproxy.lagsMs.slice(0, haproxy.restarts).join(', ')} ms in turn), ` +
      `SIGKILL at ${haproxy.gracePeriodMs} ms. fastify-shutdown: preStopDelay ${haproxy.preStopDelayMs} ms, drainTimeout ${haproxy.drainTimeoutMs} ms.`
  ]
  if (versions.nginx === null) {
    notes.push('nginx: not run, nginx is not installed (`apt-get install -y nginx-light`).')
  } else {
    notes.push(`nginx: ${nginx.replicas} replicas behind ${versions.nginx.replace('nginx version: ', '')} configured as ingress-nginx runs it (upstream ` +
      `\`keepalive ${NGINX_SETTINGS.upstreamKeepalive}\`, HTTP/1.1, \`Connection ""\`, \`proxy_next_upstream ${NGINX_SETTINGS.proxyNextUpstream}\`, ` +
      `no health checks); ${loops(nginx)}. Each restart: start a replica, reload nginx with it, SIGTERM the oldest, reload without it ` +
      `${nginx.lagsMs.join('/')} ms later. fastify-shutdown: preStopDelay ${nginx.preStopDelayMs} ms. "Reload resets" are requests on a client ` +
      'connection that a worker retired by the reload closed as they were sent: nginx never read them, no replica saw them.')
  }
  notes.push('Baseline: the same app with close-with-grace (delay 500 ms) calling `fastify.close()`.',
    'Rounds interleaved (fastify-shutdown, baseline, ...); cells are the median over rounds with (min–max). Latency counts every ' +
      'request of the run, failed ones included; "fast" are `GET /orders/1` and `POST /orders`.')
  return {
    title: 'Client errors and latency across rolling restarts',
    columns: ['app, ingress', 'rounds × restarts', 'requests', 'non-2xx', 'connection errors', 'reload resets', 'p50 ms', 'p99 ms', 'p99 ms, fast requests', 'SIGTERM → exit ms'],
    rows,
    notes
  }
}

export function roundsTable (results) {
  return {
    title: 'Each round',
    columns: ['round', 'app', 'ingress', 'load s', 'requests', 'non-2xx', 'connection errors', 'failures by kind', 'p50 ms', 'p99 ms', 'max ms', 'SIGTERM → exit ms, each replica'],
    rows: results.map((r) => [
      String(r.round),
      NAMES[r.scenario] ?? r.scenario,
      INGRESS_NAMES[r.options.ingress],
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

/** The first round of each scenario (all behind one ingress), one panel each, on one time axis. */
export function rollingChart (results) {
  const firsts = SCENARIOS.map((app) => results.find((r) => r.scenario === app)).filter((r) => r !== undefined)
  const cpus = os.cpus()
  const ingress = INGRESS_NAMES[firsts[0]?.options.ingress] ?? 'a load balancer'
  return chart({
    title: `Rolling restart behind ${ingress}: requests/s and failed requests`,
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
      const failures = result.non2xx + result.connectionErrors + result.reloadResets
      const resets = result.reloadResets > 0 ? ` (${result.reloadResets} of them reload resets)` : ''
      return {
        title: `${NAMES[result.scenario]}: ${result.requests} requests, ${failures} failed${resets}`,
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
