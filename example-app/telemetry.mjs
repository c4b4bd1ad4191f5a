// OpenTelemetry for the orders API: traces, metrics and logs over OTLP/HTTP, on only when
// OTEL_EXPORTER_OTLP_ENDPOINT is set. Instrumentations patch modules as they are loaded, so this must run
// before anything loads fastify, pino or http; start the server with
//   OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 node --import ./example-app/telemetry.mjs example-app/server.mjs
// server.mjs imports the same module (Node evaluates it once) for the started `sdk`, which it hands to
// fastify-shutdown as `telemetry`, and for `fastifyOtel`, whose plugin it registers.
//
// The SDK packages are loaded only when telemetry is on: without the variable nothing here needs them, so
// the app runs where they are not installed (the Docker image, for one).
//
// No top-level await: when server.mjs is started without --import, this module is one of its imports, and
// an asynchronous import would let the imports after it (fastify among them) run first.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

/** OTEL_EXPORTER_OTLP_PROTOCOL → the packages of its three exporters. */
const EXPORTERS = {
  'http/json': ['@opentelemetry/exporter-trace-otlp-http', '@opentelemetry/exporter-metrics-otlp-http', '@opentelemetry/exporter-logs-otlp-http'],
  'http/protobuf': ['@opentelemetry/exporter-trace-otlp-proto', '@opentelemetry/exporter-metrics-otlp-proto', '@opentelemetry/exporter-logs-otlp-proto']
}

/** Metrics are exported this often, and once more by the final flush. 60 s, the SDK's default: a shutdown's
 * metrics leave with the flush, whatever the interval. */
const METRIC_INTERVAL_MS = 60_000

const endpoint = process.env.OTEL_EXPORTER_OTLP_ENDPOINT

const started = endpoint ? startSdk(process.env) : null

/** The started NodeSDK, or null when telemetry is off. */
export const sdk = started?.sdk ?? null

/** @fastify/otel's instrumentation, started with the SDK (null when off): the app registers its `plugin()`
 * before its routes and hooks, which it then wraps in spans. */
export const fastifyOtel = started?.fastifyOtel ?? null

function startSdk (env) {
  const protocol = env.OTEL_EXPORTER_OTLP_PROTOCOL || 'http/json'
  const packages = EXPORTERS[protocol]
  if (packages === undefined) {
    throw new TypeError(`Expected OTEL_EXPORTER_OTLP_PROTOCOL to be one of ${Object.keys(EXPORTERS).map((p) => `"${p}"`).join(', ')}, got ${JSON.stringify(protocol)}`)
  }
  // Started after fastify has run, the instrumentations would miss what it loaded. (`loaded`, not just in
  // the cache: an ESM import puts a CommonJS module in the cache before running it, when it links.)
  if (require.cache[require.resolve('fastify')]?.loaded) {
    process.emitWarning('fastify was loaded before the OpenTelemetry SDK started: start the server with --import ./example-app/telemetry.mjs')
  }

  const { diag, DiagConsoleLogger, DiagLogLevel } = require('@opentelemetry/api')
  const { NodeSDK } = require('@opentelemetry/sdk-node')
  const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base')
  const { PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics')
  const { BatchLogRecordProcessor } = require('@opentelemetry/sdk-logs')
  const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http')
  const { PinoInstrumentation } = require('@opentelemetry/instrumentation-pino')
  const FastifyOtelInstrumentation = require('@fastify/otel')
  const { OTLPTraceExporter } = require(packages[0])
  const { OTLPMetricExporter } = require(packages[1])
  const { OTLPLogExporter } = require(packages[2])

  // Without a diagnostic logger a failed export is silent. OTEL_LOG_LEVEL, when set, is the SDK's to apply.
  if (!env.OTEL_LOG_LEVEL) diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.WARN)

  // The exporters read the endpoint (with /v1/traces, /v1/metrics, /v1/logs appended), headers and timeouts
  // from the standard OTEL_EXPORTER_OTLP_* variables themselves.
  const fastifyOtel = new FastifyOtelInstrumentation()
  const sdk = new NodeSDK({
    serviceName: 'orders-api',
    // Every request leaves several spans (HTTP server, Fastify request, hooks, handler): room for bursts
    // above the default queue of 2048, past which spans are dropped. OTEL_BSP_MAX_QUEUE_SIZE still wins.
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter(), env.OTEL_BSP_MAX_QUEUE_SIZE ? {} : { maxQueueSize: 8192 })],
    metricReaders: [new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter(), exportIntervalMillis: METRIC_INTERVAL_MS })],
    logRecordProcessors: [new BatchLogRecordProcessor({ exporter: new OTLPLogExporter() })],
    // instrumentation-pino adds trace_id/span_id to each log line and sends the lines as log records too.
    instrumentations: [new HttpInstrumentation(), new PinoInstrumentation(), fastifyOtel]
  })
  sdk.start()
  return { sdk, fastifyOtel }
}
