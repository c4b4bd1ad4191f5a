// The example app's configurations for PM2, Docker Compose and systemd, checked by `fastify-shutdown check`'s
// own rules (lib/check*.ts) against the plugin's configuration (example-app/config.mjs), as
// test/manifests.test.ts checks the Kubernetes manifests; then what the example promises beyond those rules.
import { test } from 'tap'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { parse } from 'yaml'
import { check, type CheckResult } from '../lib/check'
import { resolveOptions } from '../lib/options'
import { pm2Process, warnIfPm2KillsFirst } from '../lib/pm2'

const EXAMPLE_APP = path.join(__dirname, '..', 'example-app')
const OPTIONS = path.join(EXAMPLE_APP, 'config.mjs')

const rulesOf = (result: CheckResult): [string, string[]][] => result.checked.map(({ object, rules }) => [object, [...rules].sort()])

test('PM2 ecosystem file: kill_timeout outlasts the budget, SIGINT is handled, cluster mode with a pre-stop window, node runs the script', async (t) => {
  const result = await check({ inputs: [path.join(EXAMPLE_APP, 'ecosystem.config.cjs')], options: OPTIONS })
  t.same(result.findings, [])
  t.same(rulesOf(result), [['app orders-api', ['budget-exceeds-grace', 'npm-start', 'options-invalid', 'pm2-fork-mode', 'pm2-prestop-delay', 'shell-form', 'stop-signal-unhandled']]])

  const [app] = require(path.join(EXAMPLE_APP, 'ecosystem.config.cjs')).apps
  t.equal(app.wait_ready, true, 'a reload waits for the plugin\'s ready message')
  t.ok(app.listen_timeout > 0)
  // The plugin's own warning at start reads the same kill_timeout: it agrees with the command.
  const { shutdownOptions } = await import(OPTIONS)
  const warnings: unknown[] = []
  warnIfPm2KillsFirst({ warn: (...args: unknown[]) => warnings.push(args) } as any, resolveOptions(shutdownOptions(app.env)),
    pm2Process({ pm_id: '0', exec_mode: 'cluster_mode', kill_timeout: String(app.kill_timeout) })!)
  t.same(warnings, [], 'the plugin would not warn under it')
})

test('Compose file: stop_grace_period outlasts the budget and is passed down, SIGTERM reaches node through the image\'s exec-form CMD', async (t) => {
  const result = await check({ inputs: [path.join(EXAMPLE_APP, 'compose.yaml')], options: OPTIONS })
  t.same(result.findings, [])
  t.same(result.notes, [], 'the Dockerfile it builds from was read')
  t.same(rulesOf(result), [['service orders-api', ['budget-exceeds-grace', 'grace-period-not-passed', 'npm-start', 'options-invalid', 'shell-form', 'stop-signal-unhandled']]])

  const service = parse(readFileSync(path.join(EXAMPLE_APP, 'compose.yaml'), 'utf8')).services['orders-api']
  t.equal(service.init, true, 'docker-init reaps what node leaves')
  t.equal(service.environment.HOST, '0.0.0.0', 'reachable through the published port')
  t.match(readFileSync(path.join(EXAMPLE_APP, 'Dockerfile'), 'utf8'), /^FROM node:24-slim$/m, 'the current LTS line')
})

test('systemd unit: TimeoutStopSec outlasts the budget and is passed down, SIGTERM goes to node, the rest is SIGKILLed at the end', async (t) => {
  const result = await check({ inputs: [path.join(EXAMPLE_APP, 'fastify-shutdown-example.service')], options: OPTIONS })
  t.same(result.findings, [])
  t.same(rulesOf(result), [['unit fastify-shutdown-example.service', ['budget-exceeds-grace', 'grace-period-not-passed', 'npm-start', 'options-invalid', 'shell-form', 'stop-signal-unhandled', 'systemd-kill-mode']]])

  const unit = readFileSync(path.join(EXAMPLE_APP, 'fastify-shutdown-example.service'), 'utf8')
  t.match(unit, /^Type=simple$/m)
  t.match(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m, 'a reload is cluster.mjs\'s rolling restart')
  t.match(unit, /^Environment=.* PRE_STOP_DELAY_MS=1000 /m, 'the workers\' kept-alive clients are told to reconnect before a worker\'s listener closes')
})
