import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import fastifyShutdown from './helpers/plugin'
import { faultTest } from './helpers/fault-matrix'

test(faultTest('register-twice'), async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyShutdown, { handleSignals: false, exit: false })
  await t.rejects(async () => { await app.register(fastifyShutdown, { handleSignals: false, exit: false }) }, {
    code: 'FST_SHUTDOWN_ALREADY_REGISTERED',
    message: /already registered on this instance/
  })
})

test(faultTest('encapsulated'), async (t) => {
  const inChild = async (child: FastifyInstance): Promise<void> => {
    await child.register(fastifyShutdown, { handleSignals: false, exit: false })
  }
  for (const [where, prefix] of [['an encapsulated plugin', undefined], ['a prefixed plugin', '/api']] as const) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(inChild, { prefix }) }, { code: 'FST_SHUTDOWN_NOT_ROOT', message: /root instance/ }, where)
  }
})

test('registered from a plugin wrapped with fastify-plugin, it reaches the root and works', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fp(async (wrapped) => { await wrapped.register(fastifyShutdown, { handleSignals: false, exit: false }) }))
  app.get('/', async () => 'ok')
  await app.ready()
  t.equal(app.shutdown.state, 'serving')
})

test(faultTest('start-after-close'), async (t) => {
  const exits: number[] = []
  const app = Fastify()
  await app.register(fastifyShutdown, { handleSignals: false, exit: (code) => { exits.push(code) } })
  await app.listen({ port: 0, host: '127.0.0.1' })
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
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyShutdown, { handleSignals: false, exit: false })
  t.throws(() => app.shutdown.addTask({ name: 'long', run: () => {}, timeout: 2 ** 31 }), {
    code: 'FST_SHUTDOWN_INVALID_OPTION',
    message: /`task.timeout`.*2147483647/
  })
  t.throws(() => app.shutdown.addTask({ name: 10n as unknown as string, run: () => {} }), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /`task.name`.*10n/ })
})
