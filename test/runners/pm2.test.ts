// PM2, the real one from npm, with a daemon of each test's own: the example app's ecosystem file under two
// `pm2 reload`s with keep-alive load, and a fork-mode app that meets PM2's defaults.
import { test } from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { get } from '../helpers/http'
import { EXAMPLE_APP, freePort, jsonLines, pm2 } from '../helpers/runners'

const harness = import('../helpers/rolling/index.mjs')
const ecosystem = require(path.join(EXAMPLE_APP, 'ecosystem.config.cjs'))
const app = ecosystem.apps[0]

test('pm2 cluster mode: two reloads under keep-alive load lose no request, and every report reaches PM2\'s log', async (t) => {
  const { startLoad } = await harness
  const daemon = pm2(t)
  const port = await freePort()
  // The documented ecosystem file, on a port of the test's own, with one worker: a reload replaces each worker
  // the same way, one after the other, and one keeps the test short.
  const config = path.join(daemon.home, 'ecosystem.config.cjs')
  writeFileSync(config, `const { apps: [app] } = require(${JSON.stringify(path.join(EXAMPLE_APP, 'ecosystem.config.cjs'))})
module.exports = { apps: [{ ...app, instances: 1, env: { ...app.env, PORT: '${port}' } }] }
`)
  await daemon.run('start', config)

  const load = startLoad({ port, fastPath: '/reports/slow?ms=0', fastLoops: 6, slowLoops: 2, slowMs: [200, 600], maxMs: 60_000 })
  await load.warm(200)
  for (let n = 0; n < 2; n++) {
    await daemon.run('reload', app.name)
    await load.warm(load.records.length + 100)
  }
  const { records, stoppedBy } = await load.stop()

  t.equal(stoppedBy, 'stop', 'the load ran through both reloads')
  const failed = records.filter((record) => record.error !== null || record.status < 200 || record.status > 299)
  t.same(failed, [], `no failed request among ${records.length}`)
  t.ok(records.some((record) => record.kind === 'slow'), 'slow requests were part of the load')
  // PM2 logs this when the new worker's 'ready' message arrives; when listen_timeout runs out instead, it
  // stops the old worker without a word.
  const daemonLog = readFileSync(path.join(daemon.home, 'pm2.log'), 'utf8')
  t.equal(daemonLog.match(/-reload- New worker listening/g)?.length, 2, 'each reload went on when the new worker said \'ready\'')

  const logs = daemon.outLogs(app.name).flatMap(jsonLines)
  const reports = logs.filter((line) => line.msg === 'shutdown complete' || line.msg === 'shutdown forced')
  t.equal(reports.length, 2, 'one report per stopped worker, in PM2\'s log files')
  t.same(reports.map((report) => [report.outcome, report.exitCode, report.trigger]),
    reports.map(() => ['completed', 0, { type: 'signal', signal: 'SIGINT' }]), 'each drained on PM2\'s SIGINT and exited 0')
  t.notOk(logs.some((line) => /PM2 SIGKILLs/.test(line.msg)), 'the budget fits kill_timeout: no warning')
  t.notOk(/still alive after/.test(await daemon.run('logs', '--nostream', '--lines', '200', 'PM2')), 'PM2 never had to SIGKILL')
})

/**
 * Starts the example app in fork mode under `settings`, holds an event stream open (its headers say the
 * request is in its handler, and draining ends it with a last event), stops the app, and returns that stream's
 * response and the app's log lines. wait_ready, with a listen_timeout far beyond the test's patience, so that
 * `pm2 start` returns once the plugin has said 'ready'.
 */
async function stopWithRequestInFlight (t: Parameters<typeof pm2>[0], name: string, settings: string) {
  const daemon = pm2(t)
  const port = await freePort()
  const config = path.join(daemon.home, `${name}.config.cjs`)
  writeFileSync(config, `module.exports = { apps: [{ name: '${name}', script: 'server.mjs', cwd: ${JSON.stringify(EXAMPLE_APP)},
  exec_mode: 'fork', wait_ready: true, listen_timeout: 60000, ${settings} env: { PORT: '${port}', HOST: '127.0.0.1' } }] }
`)
  await daemon.run('start', config)
  const events = get(false, port, '/events?everyMs=100')
  await events.headers
  await daemon.run('stop', name)
  return { response: await events.response, logs: daemon.outLogs(name).flatMap(jsonLines) }
}

test('pm2 fork mode with PM2\'s default kill_timeout: a warning with the numbers at start; a request in flight at stop completes, and the report is in the log', async (t) => {
  // No kill_timeout: PM2's 1600 ms.
  const { response, logs } = await stopWithRequestInFlight(t, 'forked', '')
  t.equal(response.status, 200)
  t.match(response.body, /event: bye/, 'the request in flight at SIGINT was wrapped up and completed')

  const warning = logs.find((line) => /PM2 SIGKILLs/.test(line.msg))
  t.match(warning, { level: 40, pm2KillTimeoutMs: 1600, pm2KillTimeoutFrom: 'default', worstCaseMs: 13_000, drainTimeoutMs: 10_000, forceTimeoutMs: 3_000 },
    'warned at start, with the numbers')
  t.match(warning?.msg, /set `kill_timeout: 15000`/, 'and with the kill_timeout that fits')
  t.match(logs.find((line) => line.msg === 'shutdown complete'), { trigger: { type: 'signal', signal: 'SIGINT' }, exitCode: 0, completedRequests: 1 })
})

test('pm2 with shutdown_with_message: the IPC message \'shutdown\' drains like SIGINT, and the report names it', async (t) => {
  const { response, logs } = await stopWithRequestInFlight(t, 'by-message', 'shutdown_with_message: true, kill_timeout: 15000,')
  t.equal(response.status, 200)
  t.match(response.body, /event: bye/, 'the request in flight at the message was wrapped up and completed')
  t.match(logs.find((line) => line.msg === 'shutdown complete'),
    { trigger: { type: 'manual', reason: 'PM2 shutdown message' }, outcome: 'completed', exitCode: 0, completedRequests: 1 })
})
