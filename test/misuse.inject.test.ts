import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import fastifyShutdown from './helpers/plugin'
import { faultTest } from './helpers/fault-matrix'
import { appWithShutdown, listenLocally } from './helpers/app'
import { get, keepAliveAgent } from './helpers/http'

type ShutdownController = FastifyInstance['shutdown']

test(faultTest('register-twice'), async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyShutdown, { handleSignals: false, exit: false })
  await t.rejects(async () => { await app.register(fastifyShutdown, { handleSignals: false, exit: false }) }, {
    code: 'FST_SHUTDOWN_ALREADY_REGISTERED',
    message: /already registered on this instance/
  })
})

/** The plugin from an encapsulated plugin, with routes of its own there and in a child, as `routes/` would. */
function encapsulated (found: (shutdown: ShutdownController) => void) {
  return async function app (child: FastifyInstance): Promise<void> {
    await child.register(fastifyShutdown, { handleSignals: false, exit: false })
    found(child.shutdown)
    child.get('/inside', async () => 'reached')
    await child.register(async (routes) => { routes.get('/inside/:id', async () => 'reached') }, { prefix: '/nested' })
  }
}

test(faultTest('encapsulated'), async (t) => {
  const cases: [string, (app: FastifyInstance, found: (shutdown: ShutdownController) => void) => void, string[]][] = [
    ['a root route registered before the plugin\'s context', (app, found) => {
      app.get('/before', async () => 'outside')
      app.register(encapsulated(found))
    }, ['/before']],
    ['a root route registered after it', (app, found) => {
      app.register(encapsulated(found), { prefix: '/api' })
      app.get('/after', async () => 'outside')
    }, ['/after']],
    ['routes of a sibling plugin, one under the same prefix', (app, found) => {
      app.register(async (sibling) => {
        sibling.get('/sibling', async () => 'outside')
        sibling.get('/api/sibling', async () => 'outside')
      })
      app.register(encapsulated(found), { prefix: '/api' })
    }, ['/sibling', '/api/sibling']]
  ]
  for (const [where, build, outside] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    let shutdown: ShutdownController | undefined
    build(app, (controller) => { shutdown = controller })
    const port = await listenLocally(app)
    // A connection each, kept alive: the listener is closed once the drain starts.
    const agents = outside.map(() => keepAliveAgent(t))
    for (const [i, path] of outside.entries()) t.equal((await get(agents[i], port, path).response).body, 'outside', `${where}: ${path} serves`)
    const report = shutdown!.start()
    for (const [i, path] of outside.entries()) {
      t.equal((await get(agents[i], port, path).response).status, 503, `${where}: ${path}, outside the plugin's context, is refused while draining`)
    }
    t.match(await report, { outcome: 'completed', rejectedRequests: outside.length }, `${where}: the report counts them`)
  }
})

test('an encapsulated context that holds every route is accepted: fastify-cli\'s layout', async (t) => {
  // fastify-cli registers app.js without fastify-plugin; app.js autoloads plugins/ (wrapped with
  // fastify-plugin, so they land in app.js's context) and then routes/ (each its own child context).
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(async function appJs (appContext) {
    await appContext.register(fp(async (plugins) => { await plugins.register(fastifyShutdown, { handleSignals: false, exit: false }) }))
    appContext.get('/', async () => 'root route of app.js')
    await appContext.register(async (routes) => { routes.get('/', async () => 'example') }, { prefix: '/example' })
  })
  await app.ready()
  t.equal(app.shutdown, undefined, 'the decorator stays in app.js\'s context')
  t.equal((await app.inject('/example')).body, 'example')
})

test('registered at the root, routes anywhere are within reach', async (t) => {
  const { app } = await appWithShutdown(t)
  await app.register(async (child) => { child.get('/child', async () => 'ok') }, { prefix: '/api' })
  app.get('/', async () => 'ok')
  await app.ready()
  t.equal(app.shutdown.state, 'serving')
})

test(faultTest('start-after-close'), async (t) => {
  const { app, exits } = await appWithShutdown(t)
  await listenLocally(app)
  await app.close()
  t.equal(app.shutdown.state, 'closed')
  const report = await app.shutdown.start('too late')
  t.match(report, { outcome: 'completed', exitCode: 0 })
  t.equal(await app.shutdown.start('again'), report, 'every later start() gets the same report')
  t.same(exits, [0], 'start() asked for an exit, once, after the close that already ran')
})

test('a probe path the app already uses rejects register with Fastify\'s coded error, and leaves no listener', async (t) => {
  const listeners = process.listenerCount('SIGTERM')
  const app = Fastify()
  t.teardown(() => app.close())
  app.get('/readyz', async () => 'mine')
  await t.rejects(async () => { await app.register(fastifyShutdown, { readiness: { path: '/readyz' } }) }, {
    code: 'FST_ERR_DUPLICATED_ROUTE',
    message: /\/readyz/
  })
  t.equal(process.listenerCount('SIGTERM'), listeners)
})

test('a task timeout past the longest timer Node keeps is a coded error, not a 1 ms timer', async (t) => {
  const { app } = await appWithShutdown(t)
  t.throws(() => app.shutdown.addTask({ name: 'long', run: () => {}, timeout: 2 ** 31 }), {
    code: 'FST_SHUTDOWN_INVALID_OPTION',
    message: /`task.timeout`.*2147483647/
  })
  t.throws(() => app.shutdown.addTask({ name: 10n as unknown as string, run: () => {} }), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /`task.name`.*10n/ })
})

// Fastify's own suite does this: it ends the log destination in a teardown that runs before fastify.close().
test('a logger that throws on every line never stops a shutdown: the report says so, and close() resolves', async (t) => {
  let destinationClosed = false
  const app = Fastify({
    logger: {
      stream: {
        write () {
          if (destinationClosed) throw new Error('destination closed')
        }
      }
    }
  })
  await app.register(fastifyShutdown, { handleSignals: false, exit: false })
  await app.ready()
  destinationClosed = true
  const report = await app.shutdown.start('logger gone')
  t.match(report, { outcome: 'completed', exitCode: 0 })
  t.same(report.errors, ['logging failed: destination closed'], 'reported once, however many lines failed')
  await app.close()
  t.equal(app.shutdown.state, 'closed')
})
