import { test, type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import fastifyShutdown from './helpers/plugin'
import { get, keepAliveAgent } from './helpers/http'
import type { FastifyShutdownOptions } from '../types'

async function listening (t: Test, options: FastifyShutdownOptions, routes: (app: FastifyInstance) => void): Promise<{ app: FastifyInstance, port: number }> {
  const app = Fastify()
  await app.register(fastifyShutdown, { handleSignals: false, exit: false, ...options })
  routes(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, port: (app.server.address() as { port: number }).port }
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

test('tasks run phase by phase beside the drain; one that fails or runs late never holds back the others', async (t) => {
  const events: string[] = []
  const app = Fastify()
  await app.register(fastifyShutdown, { handleSignals: false, exit: false })
  app.addHook('onClose', async () => { events.push('onClose') })
  await app.ready()
  let consumersStopped!: () => void
  const stopped = new Promise<void>((resolve) => { consumersStopped = resolve })
  app.shutdown.addTask({ name: 'stop consumers', run: () => { events.push('stop consumers'); consumersStopped() } })
  app.shutdown.addTask({ name: 'broken consumer', run: async () => { events.push('broken consumer'); throw new Error('queue gone') } })
  app.shutdown.addTask({ name: 'finish jobs', phase: 1, run: async () => { await stopped; events.push('finish jobs') } })
  app.shutdown.addTask({
    name: 'stuck flush',
    phase: 1,
    timeout: 50,
    run: (signal) => new Promise((resolve) => signal.addEventListener('abort', () => { events.push(`stuck flush aborted: ${(signal.reason as { code: string }).code}`); resolve(undefined) }))
  })

  const report = await app.shutdown.start()
  t.same(events, ['stop consumers', 'broken consumer', 'finish jobs', 'stuck flush aborted: FST_SHUTDOWN_TASK_TIMEOUT', 'onClose'])
  t.match(report.tasks, [
    { name: 'stop consumers', phase: 0, outcome: 'completed' },
    { name: 'broken consumer', phase: 0, outcome: 'failed', error: 'queue gone' },
    { name: 'finish jobs', phase: 1, outcome: 'completed' },
    { name: 'stuck flush', phase: 1, outcome: 'timed-out', error: /ran past its timeout of 50 ms/ }
  ])
  t.equal(report.outcome, 'completed')
})

test('a task still running at the drain deadline is cut, with its signal aborted', async (t) => {
  const app = Fastify()
  await app.register(fastifyShutdown, { handleSignals: false, exit: false, drainTimeout: 100, forceTimeout: 500 })
  await app.ready()
  let aborted: unknown
  app.shutdown.addTask({ name: 'endless', run: (signal) => new Promise(() => { signal.addEventListener('abort', () => { aborted = signal.reason }) }) })
  const report = await app.shutdown.start()
  t.match(report, { outcome: 'forced', forcedBy: 'drain-timeout', tasks: [{ name: 'endless', outcome: 'cut' }] })
  t.match(aborted, { code: 'FST_SHUTDOWN_TASK_CUT' })
})

test('addTask refuses bad tasks, and tasks added once the shutdown has started', async (t) => {
  const app = Fastify()
  await app.register(fastifyShutdown, { handleSignals: false, exit: false })
  await app.ready()
  t.teardown(() => app.close())
  app.shutdown.addTask({ name: 'once', run: () => {} })
  t.throws(() => app.shutdown.addTask({ name: 'once', run: () => {} }), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /`task.name`/ })
  t.throws(() => app.shutdown.addTask({ name: '', run: () => {} }), { code: 'FST_SHUTDOWN_INVALID_OPTION' })
  t.throws(() => app.shutdown.addTask({ name: 'no run' } as never), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /`task.run` to be a function/ })
  t.throws(() => app.shutdown.addTask({ name: 'half', run: () => {}, phase: 0.5 }), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /`task.phase`/ })
  t.throws(() => app.shutdown.addTask({ name: 'late', run: () => {}, timeout: -1 }), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /`task.timeout`/ })
  const report = app.shutdown.start()
  await new Promise(setImmediate)
  t.throws(() => app.shutdown.addTask({ name: 'too late', run: () => {} }), { code: 'FST_SHUTDOWN_TASK_TOO_LATE' })
  await report
})

test('a direct fastify.close() runs the shutdown tasks and waits for them before the onClose hooks', async (t) => {
  const events: string[] = []
  const app = Fastify()
  await app.register(fastifyShutdown, { handleSignals: false, exit: false })
  app.addHook('onClose', async () => { events.push('onClose') })
  await app.ready()
  let finish!: () => void
  let taskStarted!: () => void
  const started = new Promise<void>((resolve) => { taskStarted = resolve })
  app.shutdown.addTask({
    name: 'finish jobs',
    run: () => new Promise<void>((resolve) => {
      events.push('task started')
      finish = () => { events.push('task done'); resolve() }
      taskStarted()
    })
  })
  const closing = app.close()
  await started
  // One full turn of the event loop: time enough for an onClose hook that did not wait to have run.
  await new Promise(setImmediate)
  t.same(events, ['task started'], 'the onClose hooks wait for the task')
  finish()
  await closing
  t.same(events, ['task started', 'task done', 'onClose'])
})
