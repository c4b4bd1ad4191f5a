// The rolling restarts of test/rolling/ from the command line: N replicas behind a real HAProxy (or a real
// nginx configured as ingress-nginx runs it) under keep-alive load, each replaced in turn the way Kubernetes
// does it, once with fastify-shutdown (example-app/server.mjs) and once with close-with-grace +
// fastify.close() (the baseline), then a table.
// `node bench/run.mjs --only rolling` runs the same as a benchmark suite (bench/rolling.mjs); this CLI is for
// trying options out.
//
//   npm run build && node bench/rolling-restart.mjs [options]
//
//   --scenario plugin,baseline   which to run (default both, in that order)
//   --ingress haproxy            the load balancer: haproxy, nginx, or both (haproxy,nginx); each has its
//                                own defaults (nginx: 2 replicas, 4 restarts, lag 1500 ms, pre-stop 2500 ms)
//   --rounds 1                   how many times, interleaved (plugin, baseline, plugin, baseline, ...)
//   --chart file.svg             draw the first round of each: requests/s and failures over time
//   --restarts 5                 replicas replaced, one after another
//   --pre-stop 1500              the plugin's preStopDelay (PRE_STOP_DELAY_MS), ms
//   --lags 1000,1250,...         endpoint propagation lag of each restart in turn, ms
//   --check-path /health         what HAProxy's health check asks (/livez: only a closed listener fails it)
//   --check-interval 500         HAProxy's health check interval, ms (nginx checks no health)
//   --slow 300,800               range of the slow requests, ms;  --long 2000,3000  the long ones
//   --script path                run this app instead of the example app (same routes, env and IPC message)
//   --json                       print every result as JSON after the table (failures on the timeline,
//                                the load balancer's log of abnormal requests and errors, nginx's reloads,
//                                each replica's report)
//
// Needs haproxy (`apt-get install -y haproxy`) or nginx (`apt-get install -y nginx-light`) for the ingress
// asked for. Everything listens on 127.0.0.1 and stops by itself.
import { existsSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { APPS, defaultsFor, formatTable, haproxyVersion, nginxVersion } from '../test/helpers/rolling/index.mjs'
import { rollingChart, runRounds } from './rolling.mjs'

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'plugin,baseline' },
    ingress: { type: 'string', default: 'haproxy' },
    rounds: { type: 'string', default: '1' },
    chart: { type: 'string' },
    restarts: { type: 'string' },
    'pre-stop': { type: 'string' },
    lags: { type: 'string' },
    'check-path': { type: 'string' },
    'check-interval': { type: 'string' },
    slow: { type: 'string' },
    long: { type: 'string' },
    script: { type: 'string' },
    json: { type: 'boolean', default: false }
  }
})

const numbers = (name, text) => {
  const list = text.split(',').map(Number)
  if (list.some((n) => !Number.isFinite(n) || n < 0)) throw new TypeError(`Expected --${name} to be comma-separated milliseconds, got "${text}"`)
  return list
}

const overrides = {}
if (values.restarts !== undefined) overrides.restarts = numbers('restarts', values.restarts)[0]
if (values['pre-stop'] !== undefined) overrides.preStopDelayMs = numbers('pre-stop', values['pre-stop'])[0]
if (values.lags !== undefined) overrides.lagsMs = numbers('lags', values.lags)
if (values['check-path'] !== undefined) overrides.checkPath = values['check-path']
if (values['check-interval'] !== undefined) overrides.checkIntervalMs = numbers('check-interval', values['check-interval'])[0]
if (values.slow !== undefined) overrides.slowMs = numbers('slow', values.slow)
if (values.long !== undefined) overrides.longMs = numbers('long', values.long)

const VERSIONS = { haproxy: haproxyVersion, nginx: nginxVersion }
const INSTALL = { haproxy: 'apt-get install -y haproxy', nginx: 'apt-get install -y nginx-light' }
const ingresses = values.ingress.split(',')
const versions = []
for (const ingress of ingresses) {
  if (!(ingress in VERSIONS)) throw new TypeError(`Expected --ingress to list ${Object.keys(VERSIONS).join(', ')}, got "${ingress}"`)
  const version = VERSIONS[ingress]()
  if (version === null) {
    console.error(`${ingress} is not installed: ${INSTALL[ingress]}`)
    process.exit(1)
  }
  versions.push(version)
}
if (!existsSync(new URL('../dist/index.js', import.meta.url))) {
  console.error('dist/ is missing: npm run build (the example app imports the built package)')
  process.exit(1)
}

const scenarios = values.scenario.split(',')
for (const scenario of scenarios) {
  if (!(scenario in APPS)) throw new TypeError(`Expected --scenario to list ${Object.keys(APPS).join(', ')}, got "${scenario}"`)
}

const rounds = numbers('rounds', values.rounds)[0]
if (!Number.isInteger(rounds) || rounds < 1) throw new TypeError(`Expected --rounds to be a positive integer, got "${values.rounds}"`)

for (const [i, ingress] of ingresses.entries()) console.error(`${versions[i]}; ${JSON.stringify({ ...defaultsFor(ingress), ...overrides })}`)
const results = await runRounds({ rounds, scenarios, ingresses, overrides, script: values.script, log: (line) => console.error(line) })

// Of the first ingress asked for: a chart is one load balancer's.
if (values.chart !== undefined) writeFileSync(values.chart, rollingChart(results.filter((r) => r.options.ingress === ingresses[0])))
console.log(formatTable(results))
for (const result of results) {
  console.log(`${result.scenario} behind ${result.options.ingress}, round ${result.round}: failures ${JSON.stringify(result.failureKinds)}; p50 ${result.latencyMs.p50} ms, p99 fast ${result.latencyMs.fastP99} / slow ${result.latencyMs.slowP99} / long ${result.latencyMs.longP99} ms`)
}
if (values.json) console.log(JSON.stringify(results, null, 2))
// Reload resets are nginx's own (see test/helpers/rolling/nginx.mjs): they do not count against the plugin.
process.exitCode = results.some((r) => r.scenario === 'plugin' && r.non2xx + r.connectionErrors > 0) ? 1 : 0
