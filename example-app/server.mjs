// A small orders API using fastify-shutdown, configured from the environment:
//   PORT (3000), HOST (127.0.0.1), LOG_LEVEL (info), and the shutdown settings read in config.mjs (with
//   PROBE_PORT, the probes and the preStop endpoint move to a port of their own, as in the k8s manifests)
// Run it with `node example-app/server.mjs`, then send it SIGTERM (or press Ctrl-C) while a slow request runs:
//   curl 'http://127.0.0.1:3000/reports/slow?ms=3000' & sleep 0.5; kill -TERM <pid>
// Long-lived connections end by themselves when draining starts: an event stream (`curl -N
// http://127.0.0.1:3000/events`) gets a last `bye` event, a WebSocket on /echo a goodbye and a close frame 1001.
// With OpenTelemetry (see telemetry.mjs), the SDK starts before this file loads:
//   OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 node --import ./example-app/telemetry.mjs example-app/server.mjs
// First import: when started without --import, it must still run before fastify loads.
import { fastifyOtel, sdk } from './telemetry.mjs'
import { PassThrough } from 'node:stream'
import { pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import underPressure from '@fastify/under-pressure'
import fastifyWebsocket from '@fastify/websocket'
import fastifyShutdown from 'fastify-shutdown'
import { shutdownOptions } from './config.mjs'
import { createDb } from './db.mjs'
import { orderRoutes } from './orders.mjs'

export async function buildServer ({ logger = { level: process.env.LOG_LEVEL ?? 'info' }, shutdown = {} } = {}) {
  const app = Fastify({ logger })
  const db = createDb()

  // Before everything else: @fastify/otel wraps in spans the hooks and routes registered after it.
  if (fastifyOtel !== null) await app.register(fastifyOtel.plugin())

  // With telemetry on, the SDK is shut down last: after the drain and the onClose hooks, once the shutdown's
  // own span, metrics and log record are recorded, so that all of them are exported.
  await app.register(fastifyShutdown, { ...shutdownOptions(process.env, sdk), ...shutdown })

  // Load shedding next to shutdown: /status turns 503 under pressure and, through healthCheck, once a
  // shutdown starts. No healthCheckInterval: with one, under-pressure answers 503 on every route once the
  // check fails, and the pre-stop window must keep serving.
  await app.register(underPressure, {
    maxEventLoopDelay: 1000,
    exposeStatusRoute: '/status',
    healthCheck: async () => app.shutdown.ready
  })

  await app.register(fastifyWebsocket)

  // A background job: every few seconds it exports an order count. The shutdown stops scheduling it (phase 0),
  // then waits for a run under way to finish (phase 1), all before the database closes in onClose.
  let exportTimer = null
  let exportRun = Promise.resolve()
  const exportOrders = () => {
    exportRun = db.countOrders().then((orders) => app.log.info({ orders }, 'orders exported'))
    exportTimer = setTimeout(exportOrders, Number(process.env.EXPORT_INTERVAL_MS ?? 5000))
  }
  app.addHook('onReady', async () => { exportOrders() })
  app.shutdown.addTask({ name: 'stop order export', phase: 0, run: () => clearTimeout(exportTimer) })
  app.shutdown.addTask({ name: 'finish order export', phase: 1, timeout: 2000, run: () => exportRun })

  // Runs after the drain: every request that was in flight has had its answer.
  app.addHook('onClose', async (instance) => {
    const { orders } = await db.close()
    instance.log.info({ orders }, 'database closed')
  })

  // The plugin serves /readyz and /livez (see config.mjs); an app's own health route reads the same state.
  // Readiness fails from the first moment of a shutdown, so a load balancer stops routing here while the
  // pre-stop delay still serves whatever it sends meanwhile.
  app.get('/health', async (request, reply) => {
    if (!app.shutdown.ready) return reply.code(503).send({ status: app.shutdown.state })
    return { status: 'ok' }
  })

  orderRoutes(app, db)

  // Server-sent events: an event every `everyMs` until the client leaves, or until the server starts draining.
  // Then a last `bye` event (with `retry`, so an EventSource reconnects, to another instance, soon) and the end
  // of the stream, so it never holds the drain. Every event is one write: the stream ends between two events.
  app.get('/events', {
    schema: {
      querystring: {
        type: 'object',
        properties: { everyMs: { type: 'integer', minimum: 10, maximum: 60000, default: 1000 } }
      }
    }
  }, (request, reply) => {
    const events = new PassThrough()
    let id = 0
    const tick = setInterval(() => {
      events.write(`id: ${++id}\nevent: tick\ndata: ${JSON.stringify({ at: new Date().toISOString() })}\n\n`)
    }, request.query.everyMs)
    // Aborts when draining starts; read with `?.`, so the route also runs with a plugin version without it.
    const wrapUp = request.wrapUpSignal
    const stop = () => {
      clearInterval(tick)
      wrapUp?.removeEventListener('abort', bye)
    }
    function bye () {
      stop()
      events.end(`id: ${++id}\nevent: bye\nretry: 1000\ndata: ${JSON.stringify({ reason: 'server shutting down' })}\n\n`)
    }
    if (wrapUp?.aborted) bye()
    else wrapUp?.addEventListener('abort', bye, { once: true })
    // The client left, or the response ended: either way no more ticks.
    reply.raw.once('close', stop)
    return reply.type('text/event-stream').header('cache-control', 'no-cache').send(events)
  })

  // A WebSocket echo. When draining starts the plugin sends every open socket the goodbye message of
  // config.mjs and a close frame 1001 (Going Away), and cuts one that does not answer within a second.
  app.get('/echo', { websocket: true }, (socket) => {
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }))
  })

  return app
}

async function main () {
  const app = await buildServer()
  try {
    await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
  } catch (err) {
    app.log.error({ err }, 'could not listen')
    process.exit(1)
  }
  // Started by a parent with fork(): tell it where we listen (the port may have been 0).
  if (process.send) process.send({ type: 'ready', port: app.server.address().port })
}

// Started directly (not imported, say by a test using buildServer() with inject()). PM2 imports this file from
// its own wrapper, which is argv[1] then, and names the app's script in pm_exec_path.
const entry = process.env.pm_exec_path ?? process.argv[1]
if (entry && import.meta.url === pathToFileURL(entry).href) await main()
