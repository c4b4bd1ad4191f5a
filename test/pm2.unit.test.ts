import { test } from 'tap'
import Fastify from 'fastify'
import { logCapture } from './helpers/log-capture'
import { resolveOptions } from '../lib/options'
import { PM2_DEFAULT_KILL_TIMEOUT_MS, pm2LogWritten, pm2Process, warnIfPm2KillsFirst } from '../lib/pm2'

// What PM2 7 puts in the environment of the processes it starts (seen with `pm2 start`, both modes).
const CLUSTER = { pm_id: '0', exec_mode: 'cluster_mode', NODE_APP_INSTANCE: '0', pm_out_log_path: '/tmp/app-out-0.log' }
const FORK = { pm_id: '1', exec_mode: 'fork_mode', NODE_APP_INSTANCE: '0', pm_out_log_path: '/tmp/app-out.log' }

test('PM2 is recognised by pm_id and exec_mode, and nothing else', async (t) => {
  t.equal(pm2Process({}), null)
  t.equal(pm2Process({ pm_id: '0' }), null, 'pm_id alone')
  t.equal(pm2Process({ exec_mode: 'cluster_mode' }), null, 'exec_mode alone')
  t.equal(pm2Process({ pm_id: '0', exec_mode: 'bun_mode' }), null, 'a mode PM2 7 does not have')
  t.same(pm2Process(CLUSTER), { mode: 'cluster', killTimeoutMs: PM2_DEFAULT_KILL_TIMEOUT_MS, killTimeoutFrom: 'default', waitReady: false })
  t.same(pm2Process(FORK), { mode: 'fork', killTimeoutMs: 1600, killTimeoutFrom: 'default', waitReady: false })
})

test('kill_timeout is read when the app\'s configuration sets it, then PM2_KILL_TIMEOUT', async (t) => {
  t.match(pm2Process({ ...FORK, kill_timeout: '16000', wait_ready: 'true' }), { killTimeoutMs: 16_000, killTimeoutFrom: 'kill_timeout', waitReady: true })
  t.match(pm2Process({ ...FORK, PM2_KILL_TIMEOUT: '5000' }), { killTimeoutMs: 5000, killTimeoutFrom: 'PM2_KILL_TIMEOUT' })
  t.match(pm2Process({ ...FORK, kill_timeout: '7000', PM2_KILL_TIMEOUT: '5000' }), { killTimeoutMs: 7000, killTimeoutFrom: 'kill_timeout' })
  for (const bad of ['', '1.5e3', '-1', '0', 'soon']) {
    t.match(pm2Process({ ...FORK, kill_timeout: bad }), { killTimeoutMs: 1600, killTimeoutFrom: 'default' }, `kill_timeout ${JSON.stringify(bad)} is not PM2's`)
  }
})

test('the warning names kill_timeout, the budget and the kill_timeout that would fit; none when it fits', async (t) => {
  const { stream, lines } = logCapture()
  const app = Fastify({ logger: { stream } })
  t.teardown(() => app.close())
  warnIfPm2KillsFirst(app.log, resolveOptions({ preStopDelay: 1000 }), pm2Process(CLUSTER)!)
  t.match(lines, [{
    level: 40,
    preStopDelayMs: 1000,
    drainTimeoutMs: 10_000,
    forceTimeoutMs: 3000,
    worstCaseMs: 14_000,
    marginMs: 2000,
    pm2KillTimeoutMs: 1600,
    pm2KillTimeoutFrom: 'default',
    msg: /^PM2 SIGKILLs this process 1600 ms after its stop signal \(PM2's default: no kill_timeout set\), inside the shutdown budget of 14000 ms \+ 2000 ms margin; set `kill_timeout: 16000`/
  }])
  warnIfPm2KillsFirst(app.log, resolveOptions({ preStopDelay: 1000 }), pm2Process({ ...CLUSTER, kill_timeout: '16000' })!)
  t.equal(lines.length, 1, 'kill_timeout 16000 fits 14000 + 2000')
  warnIfPm2KillsFirst(app.log, resolveOptions({ preStopDelay: 1000 }), pm2Process({ ...CLUSTER, kill_timeout: '15999' })!)
  t.match(lines[1], { pm2KillTimeoutMs: 15_999, pm2KillTimeoutFrom: 'kill_timeout' }, 'one ms short warns')
})

test('the wait for PM2\'s log file only runs in cluster mode', async (t) => {
  const writes: unknown[] = []
  const stdout = {
    write: ((chunk: unknown, encoding: unknown, done: () => void) => {
      writes.push([chunk, encoding])
      setImmediate(done)
      return true
    }) as NodeJS.WriteStream['write']
  }
  await pm2LogWritten(null, {}, stdout)
  await pm2LogWritten(pm2Process(FORK), FORK, stdout)
  t.same(writes, [], 'no write outside PM2, nor in fork mode (stdout is a pipe to the daemon)')
  await pm2LogWritten(pm2Process(CLUSTER), CLUSTER, stdout)
  t.same(writes, [['', 'utf8']], 'an empty write, whose callback comes once the lines before it are in the file')
  await pm2LogWritten(pm2Process(CLUSTER), { ...CLUSTER, log_date_format: 'YYYY-MM-DD' }, stdout)
  t.same(writes[1], ['\n', 'utf8'], 'a newline when PM2 prefixes every write with a timestamp')
})
