'use strict'

// The server the force benchmark signals twice. argv[2] is JSON:
// { variant: 'plugin' | 'baseline', receiver: 'http://127.0.0.1:PORT/v1/traces', spans: n }
// It ends n spans at start-up into a BatchSpanProcessor that holds them (its batch is bigger than n and its
// timer an hour long), exporting to the bench's receiver over OTLP/HTTP JSON. GET /stuck never answers, so
// the drain cannot end and only the second signal ends the process.
// plugin: fastify-shutdown from dist/ with the provider as `telemetry` and duplicateSignalWindow 0 (any
// second SIGTERM forces). baseline: close-with-grace calling fastify.close() then provider.shutdown(), and
// provider.shutdown() again on the second signal, the most its synchronous second-signal hook allows.

const { diag, DiagConsoleLogger, DiagLogLevel, trace } = require('@opentelemetry/api')
const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base')
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http')
const Fastify = require('fastify')
const { listenAndTimeExit } = require('./lib-server.cjs')
const { LogController } = Fastify

const config = JSON.parse(process.argv[2])

diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.WARN)
// A batch bigger than the queue: a full batch would be exported at once, and the spans must stay queued.
// Room on top for the plugin's own spans, recorded before its final flush.
const queueSize = config.spans + 1024
const provider = new BasicTracerProvider({
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: config.receiver }), {
    maxQueueSize: queueSize,
    maxExportBatchSize: queueSize,
    scheduledDelayMillis: 3_600_000
  })]
})
trace.setGlobalTracerProvider(provider)

const tracer = trace.getTracer('bench')
for (let i = 0; i < config.spans; i++) tracer.startSpan('queued').end()

const app = Fastify({ logger: { level: 'info' }, logController: new LogController({ disableRequestLogging: true }) })

if (config.variant === 'plugin') {
  app.register(require('..'), { telemetry: provider, duplicateSignalWindow: 0 })
} else if (config.variant === 'baseline') {
  const closeWithGrace = require('close-with-grace')
  closeWithGrace({
    onSecondSignal () {
      void provider.shutdown()
    }
  }, async () => {
    app.log.info('closing')
    await app.close()
    await provider.shutdown()
  })
} else {
  throw new Error(`unknown variant ${JSON.stringify(config.variant)}`)
}

app.get('/stuck', () => {
  process.send({ type: 'held' })
  return new Promise(() => {})
})

listenAndTimeExit(app)
