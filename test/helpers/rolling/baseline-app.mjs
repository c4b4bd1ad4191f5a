// The baseline of the rolling-restart scenario: example-app/server.mjs without fastify-shutdown, shut down the
// way Fastify apps are today: close-with-grace calling `await app.close()`, as `fastify eject` writes it
// (delay from FASTIFY_CLOSE_GRACE_DELAY, else 500 ms, like fastify-cli). Same routes, same database stand-in,
// same environment (PORT, HOST, LOG_LEVEL) and the same IPC 'ready' message.
import closeWithGrace from 'close-with-grace'
import Fastify from 'fastify'
import { createDb } from '../../../example-app/db.mjs'
import { orderRoutes } from '../../../example-app/orders.mjs'

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } })
const db = createDb()

app.addHook('onClose', async (instance) => {
  const { orders } = await db.close()
  instance.log.info({ orders }, 'database closed')
})

// The example app's readiness routes (its own /health, the plugin's /readyz) and liveness route (/livez):
// here all three can only ever say 200.
for (const path of ['/health', '/readyz', '/livez']) app.get(path, async () => ({ status: 'ok' }))

orderRoutes(app, db)

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
