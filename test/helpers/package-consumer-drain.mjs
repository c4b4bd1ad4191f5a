// Fixture for test/package.test.ts, copied into the fresh project that installed the packed tarball: the
// README's quick start as an ES module, with one route that stays in flight until the test sends
// `{ type: 'release' }` over IPC.
import Fastify from 'fastify'
import fastifyShutdown from 'fastify-shutdown'

const fastify = Fastify({ logger: true })
await fastify.register(fastifyShutdown)

let release = () => {}
process.on('message', (message) => {
  if (message.type === 'release') release()
})
fastify.get('/held', async (request) => {
  request.log.info('held request started')
  await new Promise((resolve) => { release = resolve })
  return { released: true }
})

await fastify.listen({ port: 0, host: '127.0.0.1' })
process.send({ type: 'ready', port: fastify.server.address().port })
