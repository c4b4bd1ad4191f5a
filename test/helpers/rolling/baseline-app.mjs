// The baseline of the rolling-restart scenario: example-app/server.mjs without fastify-shutdown, shut down the
// way Fastify apps are today: close-with-grace calling `await app.close()`, as `fastify eject` writes it
// (delay from FASTIFY_CLOSE_GRACE_DELAY, else 500 ms, like fastify-cli). Same routes, same database stand-in,
// same environment (PORT, HOST, LOG_LEVEL) and the same IPC 'ready' message.
import { setTimeout as sleep } from 'node:timers/promises'
import closeWithGrace from 'close-with-grace'
import Fastify from 'fastify'
import { createDb } from '../../../example-app/db.mjs'

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } })
const db = createDb()

app.addHook('onClose', async (instance) => {
  const { orders } = await db.close()
  instance.log.info({ orders }, 'database closed')
})

// The example app's readiness routes (its own /health, the plugin's /readyz) and liveness route (/livez):
// here all three can only ever say 200.
for (const path of ['/health', '/readyz', '/livez']) app.get(path, async () => ({ status: 'ok' }))

app.get('/orders/:id', {
  schema: { params: { type: 'object', properties: { id: { type: 'integer', minimum: 1 } }, required: ['id'] } }
}, async (request, reply) => {
  const order = await db.getOrder(request.params.id)
  if (order === null) return reply.code(404).send({ error: 'Not Found', message: `no order ${request.params.id}` })
  return order
})

app.post('/orders', {
  schema: {
    body: {
      type: 'object',
      properties: { item: { type: 'string', minLength: 1 }, quantity: { type: 'integer', minimum: 1 } },
      required: ['item', 'quantity'],
      additionalProperties: false
    }
  }
}, async (request, reply) => reply.code(201).send(await db.createOrder(request.body)))

app.get('/reports/slow', {
  schema: {
    querystring: { type: 'object', properties: { ms: { type: 'integer', minimum: 0, maximum: 60000, default: 1000 } } }
  }
}, async (request) => {
  const { ms } = request.query
  await sleep(ms)
  return { report: 'orders', tookMs: ms, orders: await db.countOrders() }
})

closeWithGrace({ delay: Number(process.env.FASTIFY_CLOSE_GRACE_DELAY) || 500, logger: app.log }, async ({ signal, err }) => {
  if (err) app.log.error({ err }, 'server closing with error')
  else app.log.info({ signal }, 'server closing')
  await app.close()
  app.log.info('server closed')
})

try {
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
} catch (err) {
  app.log.error({ err }, 'could not listen')
  process.exit(1)
}
if (process.send) process.send({ type: 'ready', port: app.server.address().port })
