import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import diagnostics from 'node:diagnostics_channel'
import fastifyShutdown from './helpers/plugin'

/** A closed server's handle is released in the close phase of the next loop turn: let two turns pass. */
async function settled (): Promise<string[]> {
  await new Promise(setImmediate)
  await new Promise(setImmediate)
  return process.getActiveResourcesInfo().sort()
}

test('100 apps registered and closed leave no listener, handle, subscriber or warning behind', async (t) => {
  const events = ['SIGTERM', 'SIGINT', 'uncaughtException', 'unhandledRejection', 'beforeExit'] as const
  const listenersBefore = events.map((event) => process.listenerCount(event))
  const resourcesBefore = await settled()
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => process.removeListener('warning', onWarning))

  const apps: FastifyInstance[] = []
  for (let i = 0; i < 100; i++) {
    const app = Fastify()
    await app.register(fastifyShutdown, { exit: false })
    await app.listen({ port: 0, host: '127.0.0.1' })
    apps.push(app)
  }
  t.equal(process.listenerCount('SIGTERM'), listenersBefore[0]! + 1, 'one listener serves every app')
  await Promise.all(apps.slice(0, 50).map((app) => app.close()))
  await Promise.all(apps.slice(50).map((app) => app.shutdown.start()))

  t.same(events.map((event) => process.listenerCount(event)), listenersBefore)
  t.notOk(diagnostics.hasSubscribers('http.server.response.finish'))
  t.same(await settled(), resourcesBefore, 'no handle outlives close()')
  t.same(warnings.map(String), [])
})
