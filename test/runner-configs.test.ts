// The example app's configurations for PM2, Docker Compose and systemd, checked against the plugin's own
// configuration (example-app/config.mjs) the way test/manifests.test.ts checks the Kubernetes manifests:
// every deadline a runner keeps must outlast the plugin's worst case with margin.
import { test } from 'tap'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { parse } from 'yaml'
import { resolveOptions } from '../lib/options'
import { KILL_MARGIN_MS, worstCaseMs } from '../lib/shutdown-budget'
import { pm2Process, warnIfPm2KillsFirst } from '../lib/pm2'
import type { FastifyShutdownOptions, ResolvedShutdownOptions } from '../types'

const EXAMPLE_APP = path.join(__dirname, '..', 'example-app')

/** The plugin's options as the example app resolves them from this environment. */
async function optionsFrom (env: Record<string, string>): Promise<ResolvedShutdownOptions> {
  const { shutdownOptions } = await import('../example-app/config.mjs' as string)
  const options: FastifyShutdownOptions = shutdownOptions(env)
  const saved = process.env.TERMINATION_GRACE_PERIOD_SECONDS
  if (env.TERMINATION_GRACE_PERIOD_SECONDS === undefined) delete process.env.TERMINATION_GRACE_PERIOD_SECONDS
  else process.env.TERMINATION_GRACE_PERIOD_SECONDS = env.TERMINATION_GRACE_PERIOD_SECONDS
  try {
    return resolveOptions(options)
  } finally {
    if (saved === undefined) delete process.env.TERMINATION_GRACE_PERIOD_SECONDS
    else process.env.TERMINATION_GRACE_PERIOD_SECONDS = saved
  }
}

test('PM2 ecosystem file: kill_timeout outlasts the budget, a reload waits for ready, workers get Connection: close before they stop', async (t) => {
  const [app] = require(path.join(EXAMPLE_APP, 'ecosystem.config.cjs')).apps
  const options = await optionsFrom(app.env)
  t.ok(worstCaseMs(options) + KILL_MARGIN_MS <= app.kill_timeout,
    `${worstCaseMs(options)} ms worst case + ${KILL_MARGIN_MS} ms margin within kill_timeout ${app.kill_timeout} ms`)
  const warnings: unknown[] = []
  const log = { warn: (...args: unknown[]) => warnings.push(args) } as any
  warnIfPm2KillsFirst(log, options, pm2Process({ pm_id: '0', exec_mode: 'cluster_mode', kill_timeout: String(app.kill_timeout) })!)
  t.same(warnings, [], 'the plugin would not warn under it')
  t.equal(app.exec_mode, 'cluster', 'a reload starts the new worker before it stops the old one only in cluster mode')
  t.equal(app.wait_ready, true)
  t.ok(app.listen_timeout > 0)
  t.ok(options.preStopDelay > 0, 'kept-alive clients are told to reconnect before the listener closes')
  t.equal(app.script, 'server.mjs')
})

/** A Compose duration: `16s`, `1m30s`, `1500ms`. */
function composeMs (duration: string): number {
  const match = /^(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$/.exec(duration)
  if (match === null || duration === '') throw new Error(`not a duration this test reads: ${duration}`)
  return (Number(match[1] ?? 0) * 60 + Number(match[2] ?? 0)) * 1000 + Number(match[3] ?? 0)
}

test('Compose file: stop_grace_period outlasts the budget, the plugin budgets for it, and SIGTERM reaches node', async (t) => {
  const compose = parse(readFileSync(path.join(EXAMPLE_APP, 'compose.yaml'), 'utf8'))
  const service = compose.services['orders-api']
  const options = await optionsFrom(service.environment)
  const graceMs = composeMs(service.stop_grace_period)
  t.ok(worstCaseMs(options) + KILL_MARGIN_MS <= graceMs, `${worstCaseMs(options)} ms worst case + ${KILL_MARGIN_MS} ms margin within stop_grace_period ${service.stop_grace_period}`)
  t.equal(options.gracePeriod, graceMs, 'TERMINATION_GRACE_PERIOD_SECONDS is the stop_grace_period')
  t.equal(service.stop_signal ?? 'SIGTERM', 'SIGTERM')
  t.ok(options.signals.includes('SIGTERM'))
  const dockerfile = readFileSync(path.join(EXAMPLE_APP, service.build.dockerfile.replace(/^example-app\//, '')), 'utf8')
  t.ok(service.init === true || /^CMD \["node", /m.test(dockerfile), 'an init or an exec-form CMD: node gets the signal, npm never stands in between')
  t.notMatch(dockerfile, /^CMD .*npm/m)
  t.match(dockerfile, /^FROM node:24-slim$/m, 'the current LTS line')
  t.equal(service.environment.HOST, '0.0.0.0', 'reachable through the published port')
})

/** A systemd unit's `[Service]` settings; repeated keys (Environment=) collected in order. */
function unitSettings (text: string): Map<string, string[]> {
  const settings = new Map<string, string[]>()
  let section = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    if (line.startsWith('[')) { section = line; continue }
    if (section !== '[Service]') continue
    const equals = line.indexOf('=')
    const key = line.slice(0, equals)
    settings.set(key, [...(settings.get(key) ?? []), line.slice(equals + 1)])
  }
  return settings
}

test('systemd unit: TimeoutStopSec outlasts the budget, the plugin budgets for it, SIGTERM goes to node, the rest is SIGKILLed at the end', async (t) => {
  const unit = unitSettings(readFileSync(path.join(EXAMPLE_APP, 'fastify-shutdown-example.service'), 'utf8'))
  const one = (key: string): string | undefined => unit.get(key)?.at(-1)
  const env = Object.fromEntries((unit.get('Environment') ?? []).flatMap((value) => value.split(/\s+/)).map((pair) => pair.split('=')))
  const options = await optionsFrom(env)
  const timeoutMs = Number(one('TimeoutStopSec')) * 1000
  t.ok(worstCaseMs(options) + KILL_MARGIN_MS <= timeoutMs, `${worstCaseMs(options)} ms worst case + ${KILL_MARGIN_MS} ms margin within TimeoutStopSec=${one('TimeoutStopSec')}`)
  t.equal(options.gracePeriod, timeoutMs, 'TERMINATION_GRACE_PERIOD_SECONDS is TimeoutStopSec')
  t.equal(one('KillSignal'), 'SIGTERM')
  t.ok(options.signals.includes('SIGTERM'))
  t.ok(['mixed', 'control-group'].includes(one('KillMode')!), 'whatever the app leaves behind is SIGKILLed at the end')
  t.not(one('SendSIGKILL'), 'no')
  t.match(one('ExecStart'), /^\/usr\/bin\/node /, 'node itself, not npm')
  t.equal(one('Type'), 'simple')
  t.match(one('ExecReload'), /kill -HUP \$MAINPID/, 'a reload is cluster.mjs\'s rolling restart')
  t.ok(options.preStopDelay > 0, 'the workers\' kept-alive clients are told to reconnect before a worker\'s listener closes')
})
