import { test } from 'tap'
import { once } from 'node:events'
import { createServer } from 'node:http'
import { startFixture } from './helpers/child'
import { get, keepAliveAgent } from './helpers/http'

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
