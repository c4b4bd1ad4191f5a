import { test } from 'tap'
import { faultTest } from '../helpers/fault-matrix'
import { once } from 'node:events'
import { createServer } from 'node:http'
import { startFixture } from '../helpers/child'
import { get, keepAliveAgent } from '../helpers/http'

test('a handler blocked on a never-answering upstream is released by shutdownSignal at the drain deadline', async (t) => {
  const upstream = createServer(() => {})
  upstream.listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.teardown(() => { upstream.closeAllConnections(); upstream.close() })
  const url = `http://127.0.0.1:${(upstream.address() as { port: number }).port}/`

  const child = await startFixture(t, 'app', { shutdown: { drainTimeout: 500, forceTimeout: 2_000 } })
  const call = get(keepAliveAgent(t), child.port, `/upstream?url=${encodeURIComponent(url)}`)
  await once(upstream, 'request')
  child.signal('SIGTERM')

  const released = await child.log('upstream call released')
  t.match(released, { reason: 'FST_SHUTDOWN_ABORTED', rejectedWith: 'FST_SHUTDOWN_ABORTED' }, 'fetch let go with the reason of the shutdown')
  await t.rejects(call.response, 'the client is cut off: the report says so')
  t.equal((await child.exited()).code, 1)
  t.match(await child.report(), { outcome: 'forced', forcedBy: 'drain-timeout', abortedRequests: 1, openRequests: [{ route: '/upstream' }] })
})

test(faultTest('task-throws'), async (t) => {
  const tasks = [
    { name: 'stop consumers', phase: 0, outcome: 'complete' },
    { name: 'broken consumer', phase: 0, outcome: 'throw' },
    { name: 'finish jobs', phase: 1, outcome: 'complete' },
    { name: 'flush batch', phase: 2, outcome: 'complete' }
  ]
  const child = await startFixture(t, 'app', { tasks })
  child.signal('SIGTERM')
  const exit = await child.exited()
  t.equal(exit.code, 0)
  const started = child.logs.filter((line) => line.msg === 'task started').map((line) => line.task)
  t.same(started.slice(2), ['finish jobs', 'flush batch'], 'later phases start only after earlier ones settled')
  t.same(new Set(started.slice(0, 2)), new Set(['stop consumers', 'broken consumer']))
  const report = await child.report()
  t.match(report, { outcome: 'completed', exitCode: 0 })
  t.match(report.tasks, [
    { name: 'stop consumers', outcome: 'completed' },
    { name: 'broken consumer', outcome: 'failed', error: 'broken consumer failed' },
    { name: 'finish jobs', outcome: 'completed' },
    { name: 'flush batch', outcome: 'completed' }
  ])
})

test('a task still running at the drain deadline is cut and reported; the process exits 1 on time', async (t) => {
  const child = await startFixture(t, 'app', {
    shutdown: { drainTimeout: 300, forceTimeout: 1_000 },
    tasks: [{ name: 'endless', phase: 0, outcome: 'hang' }]
  })
  child.signal('SIGTERM')
  t.equal((await child.exited()).code, 1)
  t.match(await child.report(), { outcome: 'forced', forcedBy: 'drain-timeout', tasks: [{ name: 'endless', outcome: 'cut' }] })
})
