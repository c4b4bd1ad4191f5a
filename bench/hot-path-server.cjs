// One server for the instruction count: a hello-world route, bare or with a plugin, that exits when told.
'use strict'
const Fastify = require('fastify')

const variant = process.argv[2]
const app = Fastify()
if (variant === 'shutdown') app.register(require(process.env.SHUTDOWN_MODULE ?? '..'), { handleSignals: false, exit: false })
if (variant === 'under-pressure') app.register(require('@fastify/under-pressure'))
if (variant === 'flag-hook') {
  // The floor for any drain hook: an onRequest hook that reads one flag.
  const gate = { serving: true }
  app.addHook('onRequest', (request, reply, done) => {
    if (gate.serving) { done(); return }
    reply.code(503).send()
  })
}
app.get('/', async () => ({ hello: 'world' }))
app.get('/exit', (_request, reply) => {
  reply.raw.on('finish', () => process.exit(0))
  reply.send('bye')
})
app.listen({ port: 0, host: '127.0.0.1' }).then(() => process.send({ port: app.server.address().port }))
