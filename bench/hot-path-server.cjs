// One server for the hot-path benchmarks: a hello-world route on `/` (a variant may give its own handler), bare
// or with a plugin, on a free port of 127.0.0.1 sent over IPC once listening. `GET /exit` ends the process
// after its response.
'use strict'
const Fastify = require('fastify')

// How many times slower than normal the server runs: valgrind sets it. A timer firing every second would
// otherwise weigh ~100 times more per request than at full speed, and a loop blocked for a whole sample
// interval (valgrind translating code) reads to under-pressure as an infinite delay: 503 on every route.
const SLOWDOWN = Number(process.env.BENCH_SLOWDOWN ?? 1)

const hello = async () => ({ hello: 'world' })

// Each variant sets the app up, and may give the route's handler.
const VARIANTS = {
  bare () {},
  // The plugin as the README's quick start registers it: default options.
  shutdown (app) {
    app.register(require(process.env.SHUTDOWN_MODULE ?? '..'))
  },
  // The plugin with everything a Kubernetes app turns on, and the measured route using request.shutdownSignal
  // the way docs/long-lived-work.md shows, which makes the request's AbortController.
  'shutdown-in-use' (app) {
    app.register(require(process.env.SHUTDOWN_MODULE ?? '..'), {
      readiness: { path: '/readyz' },
      liveness: { path: '/livez' }
    })
    return {
      async handler (request) {
        request.shutdownSignal.throwIfAborted()
        return { hello: 'world' }
      }
    }
  },
  // The plugin with `telemetry` configured (a target that flushes nothing): it also notes each request's
  // context, for the force path to end its spans.
  'shutdown-with-telemetry' (app) {
    app.register(require(process.env.SHUTDOWN_MODULE ?? '..'), { telemetry: { async shutdown () {} } })
  },
  // @fastify/otel as its README registers it, with no SDK (its spans record nothing): the reference for the next.
  'fastify-otel' (app) {
    const FastifyOtelInstrumentation = require('@fastify/otel')
    app.register(new FastifyOtelInstrumentation().plugin())
  },
  // And the plugin with `telemetry`: with @fastify/otel it also notes each request's reply from Fastify's
  // handler channel, the one way to that instrumentation's request span.
  'fastify-otel-and-shutdown-with-telemetry' (app) {
    VARIANTS['fastify-otel'](app)
    VARIANTS['shutdown-with-telemetry'](app)
  },
  // As its README configures it: every check on, so each request runs them, with limits it never reaches (a
  // tripped check answers 503, a different path); maxEventLoopUtilization is left out, a benchmark keeps the
  // loop busy on purpose. Its clock-driven settings scale with the slowdown (see SLOWDOWN).
  'under-pressure' (app) {
    app.register(require('@fastify/under-pressure'), {
      maxEventLoopDelay: 1000 * SLOWDOWN,
      maxHeapUsedBytes: 1024 ** 3,
      maxRssBytes: 4 * 1024 ** 3,
      sampleInterval: 1000 * SLOWDOWN,
      exposeStatusRoute: '/status'
    })
  },
  // Not a plugin: how most apps meet SIGTERM without one, close-with-grace calling fastify.close(). Its
  // listeners on the process are what every app with a signal handler has.
  'close-with-grace' (app) {
    require('close-with-grace')(async () => { await app.close() })
  },
  // Not a plugin: the least any plugin that drains on a signal runs, a flag hook and listeners from boot for
  // the signals and fatal errors it handles. On Node 20 this floor alone is past +2 % (docs/benchmarks.md).
  'flag-hook-and-listeners' (app) {
    VARIANTS['flag-hook'](app)
    const exit = (reason) => {
      if (reason instanceof Error) console.error(reason)
      process.exit(1)
    }
    for (const event of ['SIGTERM', 'SIGINT', 'uncaughtException', 'unhandledRejection']) process.on(event, exit)
  },
  // Not a plugin: the least an onRequest hook can do, one flag read (the plugin's drain hook was one until its
  // request gate replaced it).
  'flag-hook' (app) {
    const gate = { serving: true }
    app.addHook('onRequest', (request, reply, done) => {
      if (gate.serving) { done(); return }
      reply.code(503).send()
    })
  }
}

const variant = process.argv[2]
if (!(variant in VARIANTS)) throw new TypeError(`Expected a variant (${Object.keys(VARIANTS).join(', ')}), got "${variant}"`)

const app = Fastify()
const { handler = hello } = VARIANTS[variant](app) ?? {}
app.get('/', handler)
app.get('/exit', (_request, reply) => {
  reply.raw.on('finish', () => process.exit(0))
  reply.send('bye')
})
// The benchmark gone, the server has nothing left to do.
process.on('disconnect', () => process.exit(1))
app.listen({ port: 0, host: '127.0.0.1' }).then(() => process.send({ port: app.server.address().port }))
