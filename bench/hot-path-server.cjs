// One server for the instruction count: a hello-world route, bare or with a plugin, that exits when told.
'use strict'
const Fastify = require('fastify')

const variant = process.argv[2]
const app = Fastify()
if (variant === 'shutdown') app.register(require('..'), { handleSignals: false, exit: false })
if (variant === 'under-pressure') app.register(require('@fastify/under-pressure'))
app.get('/', async () => ({ hello: 'world' }))
app.get('/exit', (_request, reply) => {
  reply.raw.on('finish', () => process.exit(0))
  reply.send('bye')
})
app.listen({ port: 0, host: '127.0.0.1' }).then(() => process.send({ port: app.server.address().port }))
