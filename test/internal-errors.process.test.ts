import { test } from 'tap'
import { startFixture } from './helpers/child'
import { faultTest } from './helpers/fault-matrix'
import { closed, get, keepAliveAgent } from './helpers/http'

/** How soon after the last response has ended the process must be gone. */
const PROMPT_MS = 200

test(faultTest('own-code-throws'), async (t) => {
  const child = await startFixture(t, 'app', { unreadableBytes: true, shutdown: { idleCloseDelay: 0 } })
  const idle = await get(keepAliveAgent(t), child.port, '/fast').response
  const slow = get(keepAliveAgent(t), child.port, '/slow/1')
  await child.message((m) => m.type === 'handling' && m.id === '1', 'the handler of /slow/1')

  child.signal('SIGTERM')
  t.match(await child.log('internal error, the drain goes on'), { level: 50, during: 'closing an idle connection', err: { message: 'bytesRead is unreadable' } })
  child.send({ type: 'release', id: '1' })
  const response = await slow.response
  t.equal(response.status, 200, 'the request in flight completed')
  t.equal(response.headers.connection, 'close')
  await closed(idle.socket)
  t.pass('the idle connection the plugin could not read was closed once nothing else was left')

  const exit = await child.exited()
  t.equal(exit.code, 0)
  t.ok(exit.at - response.endAt < PROMPT_MS, `exited ${Math.round(exit.at - response.endAt)} ms after the last response (limit ${PROMPT_MS} ms)`)
  const report = await child.report()
  t.match(report, {
    outcome: 'completed',
    errors: [/^internal error while closing an idle connection: bytesRead is unreadable$/],
    unreadConnections: [{ remoteAddress: '127.0.0.1', bytesRead: -1 }]
  })
  t.notOk('forcedBy' in report, 'nothing was forced')
})
