'use strict'

// The server the stop benchmark signals. argv[2] is JSON:
// {
//   variant: 'plugin' | 'baseline',
//   hold?: n,                 // the 'held' message is sent once n requests wait in /hold
//   keepAliveTimeout?: ms,    // Fastify's own (72 s) otherwise
//   graceDelay?: ms,          // baseline: close-with-grace's `delay`; its default (10 s) otherwise
//   pluginOptions?: {...}     // plugin: its options; its defaults otherwise
// }
// plugin: fastify-shutdown from dist/ with its defaults (preStopDelay 0) unless pluginOptions says otherwise.
// baseline: what apps write today, close-with-grace calling fastify.close().
// GET / answers at once. GET /slow answers after 300 ms. GET /hold waits for {type: 'release', afterMs}:
// every held request, those to come included, answers afterMs after that message arrives.

const Fastify = require('fastify')
const { listenAndTimeExit } = require('./lib-server.cjs')
const { LogController } = Fastify

const config = JSON.parse(process.argv[2])

// Both variants log like a production app (the plugin's report among it), but not a line per request: at
// ten thousand requests a round, the pipe would be what is measured.
const app = Fastify({
  logger: { level: 'info' },
  logController: new LogController({ disableRequestLogging: true }),
  ...(config.keepAliveTimeout === undefined ? {} : { keepAliveTimeout: config.keepAliveTimeout })
})

if (config.variant === 'plugin') {
  app.register(require('..'), config.pluginOptions ?? {})
} else if (config.variant === 'baseline') {
  const closeWithGrace = require('close-with-grace')
  closeWithGrace(config.graceDelay === undefined ? {} : { delay: config.graceDelay }, async () => {
    await app.close()
  })
} else {
  throw new Error(`unknown variant ${JSON.stringify(config.variant)}`)
}

let holding = 0
let release
const released = new Promise((resolve) => { release = resolve })
process.on('message', (message) => {
  if (message.type === 'release') setTimeout(release, message.afterMs)
})

app.get('/', async () => ({ hello: 'world' }))
app.get('/slow', async () => {
  await new Promise((resolve) => setTimeout(resolve, 300))
  return { slow: true }
})
app.get('/hold', async () => {
  holding++
  if (holding === config.hold) process.send({ type: 'held', holding })
  await released
  return { held: true }
})

listenAndTimeExit(app)
