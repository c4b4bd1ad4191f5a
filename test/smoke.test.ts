import { test } from 'tap'
import Fastify from 'fastify'
import fastifyShutdown from '../lib/index'

test('decorates the instance', async (t) => {
  const app = Fastify()
  await app.register(fastifyShutdown, { exit: false, handleSignals: false })
  t.equal(app.shutdown.state, 'serving')
  await app.close()
})
