import { test, type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import { appWithShutdown, listenLocally } from './helpers/app'
import { get, keepAliveAgent } from './helpers/http'
import type { FastifyShutdownOptions } from '../types'

async function listening (t: Test, options: FastifyShutdownOptions, routes: (app: FastifyInstance) => void): Promise<{ app: FastifyInstance, port: number }> {
  const { app } = await appWithShutdown(t, options)
  routes(app)
  return { app, port: await listenLocally(app) }
}

/** An upstream that accepts requests and never answers them. */
async function silentUpstream (t: Test): Promise<string> {
  const server: Server = createServer(() => {})
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return `http://127.0.0.1:${(server.address() as { port: number }).port}/`
}

test('a long-poll answers early on wrapUpSignal, and the drain completes', async (t) => {
  const { app, port } = await listening(t, {}, (app) => {
    app.get('/poll', async (request) => {
      const reason = await once(request.wrapUpSignal, 'abort').then(() => request.wrapUpSignal.reason as { code: string })
      return { wrappedUp: reason.code }
    })
  })
  const poll = get(keepAliveAgent(t), port, '/poll')
  await once(app.server, 'request')
  const report = await app.shutdown.start()
  const response = await poll.response
  t.same(JSON.parse(response.body), { wrappedUp: 'FST_SHUTDOWN_WRAP_UP' })
  t.equal(response.headers.connection, 'close')
  t.match(report, { outcome: 'completed', completedRequests: 1, abortedRequests: 0 })
})

test('a handler blocked on a silent upstream is released by shutdownSignal when the drain deadline passes', async (t) => {
  const upstream = await silentUpstream(t)
  let released!: (reason: unknown) => void
  const release = new Promise((resolve) => { released = resolve })
  const { app, port } = await listening(t, { drainTimeout: 200, forceTimeout: 1_000 }, (app) => {
    app.get('/proxy', async (request) => {
      try {
        return await fetch(upstream, { signal: request.shutdownSignal })
      } catch (err) {
        released(request.shutdownSignal.reason)
        throw err
      }
    })
  })
  const proxied = get(keepAliveAgent(t), port, '/proxy')
  await once(app.server, 'request')
  const report = await app.shutdown.start()
  t.match(await release, { code: 'FST_SHUTDOWN_ABORTED' }, 'the fetch let go with the shutdown\'s reason')
  await t.rejects(proxied.response)
  t.match(report, { outcome: 'forced', forcedBy: 'drain-timeout', abortedRequests: 1, openRequests: [{ route: '/proxy' }] })
})

test('signals stay quiet while serving and in the pre-stop window', async (t) => {
  const { app, port } = await listening(t, { preStopDelay: 60_000, gracePeriod: Infinity }, (app) => {
    app.get('/read', async (request) => ({ wrapUp: request.wrapUpSignal.aborted, shutdown: request.shutdownSignal.aborted }))
  })
  t.same(JSON.parse((await get(false, port, '/read').response).body), { wrapUp: false, shutdown: false })
  const report = app.shutdown.start()
  t.same(JSON.parse((await get(false, port, '/read').response).body), { wrapUp: false, shutdown: false }, 'pre-stop still serves as usual')
  void app.shutdown.force()
  await report
})

test('a wrapUpSignal first read after draining started is already aborted', async (t) => {
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const { app, port } = await listening(t, {}, (app) => {
    app.get('/late', async (request) => {
      await gate
      return { aborted: request.wrapUpSignal.aborted, code: (request.wrapUpSignal.reason as { code?: string } | undefined)?.code }
    })
  })
  const late = get(keepAliveAgent(t), port, '/late')
  await once(app.server, 'request')
  const report = app.shutdown.start()
  t.equal(app.shutdown.state, 'draining')
  release()
  t.same(JSON.parse((await late.response).body), { aborted: true, code: 'FST_SHUTDOWN_WRAP_UP' })
  t.match(await report, { outcome: 'completed' })
})
