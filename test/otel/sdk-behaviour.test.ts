// What the OpenTelemetry SDK itself does when it is shut down or flushed against an endpoint that is slow,
// hung or refusing: the facts the plugin's telemetry option is built on (shutdown() rather than
// forceFlush(), a bound of its own), checked against the versions installed here.
import { metrics, trace } from '@opentelemetry/api'
import { NodeSDK } from '@opentelemetry/sdk-node'
import { LoggerProvider, BatchLogRecordProcessor } from '@opentelemetry/sdk-logs'
import { PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { performance } from 'node:perf_hooks'
import { test } from 'tap'
import { exportersFor } from '../helpers/otel/exporters'
import { OtlpReceiver } from '../helpers/otel/receiver'

/** The exporters' own bound on one export, retries included. */
const EXPORT_TIMEOUT_MS = 1000
/** Slack for a loaded machine. */
const MARGIN_MS = 250

/** How long a promise took to settle, and whether it resolved. */
async function timed (promise: Promise<unknown>): Promise<{ ms: number, resolved: boolean }> {
  const start = performance.now()
  const resolved = await promise.then(() => true, () => false)
  return { ms: performance.now() - start, resolved }
}

test('BatchSpanProcessor: forceFlush() does not wait for an export already under way; shutdown() does', async (t) => {
  const receiver = await OtlpReceiver.start(t, 'hang')
  const processor = new BatchSpanProcessor(exportersFor(receiver, 'protobuf', EXPORT_TIMEOUT_MS).traces, { scheduledDelayMillis: 1 })
  const provider = new BasicTracerProvider({ spanProcessors: [processor] })
  provider.getTracer('sdk-behaviour').startSpan('exported on its own timer').end()
  await receiver.waitFor(() => receiver.requests.length === 1, 'the scheduled export to reach the receiver')
  const exportStarted = receiver.requests[0]!.at

  const flush = await timed(processor.forceFlush())
  t.ok(flush.resolved && flush.ms < 100, `forceFlush() resolved after ${Math.round(flush.ms)} ms, with the export still unanswered`)

  const shutdown = await timed(processor.shutdown())
  const held = performance.now() - exportStarted
  t.ok(held >= EXPORT_TIMEOUT_MS - MARGIN_MS, `shutdown() settled ${Math.round(held)} ms after the export began: it waited for the exporter's timeout (${EXPORT_TIMEOUT_MS} ms)`)
  // The failure of an export the timer started goes to the global error handler; shutdown() only flushes
  // what is still buffered (nothing) and waits for the exporter to be idle.
  t.ok(shutdown.resolved, 'and resolved, although that export failed: a resolved shutdown() is no proof of delivery')
})

test('BatchLogRecordProcessor: forceFlush() does wait for an export already under way', async (t) => {
  const receiver = await OtlpReceiver.start(t, 'hang')
  const processor = new BatchLogRecordProcessor({ exporter: exportersFor(receiver, 'protobuf', EXPORT_TIMEOUT_MS).logs, scheduledDelayMillis: 1 })
  const provider = new LoggerProvider({ processors: [processor] })
  provider.getLogger('sdk-behaviour').emit({ body: 'exported on its own timer' })
  await receiver.waitFor(() => receiver.requests.length === 1, 'the scheduled export to reach the receiver')
  const exportStarted = receiver.requests[0]!.at

  const flush = await timed(processor.forceFlush())
  const held = performance.now() - exportStarted
  t.ok(held >= EXPORT_TIMEOUT_MS - MARGIN_MS, `forceFlush() settled ${Math.round(held)} ms after the export began: it waited for the export`)
  t.ok(flush.resolved, 'and resolved although the export failed (the failure goes to the global error handler)')
  await provider.shutdown()
})

test('a refused connection is retried: shutdown() takes until the exporter gives up, not one refusal', async (t) => {
  const receiver = await OtlpReceiver.start(t, 'refuse')
  // ECONNREFUSED is retryable: the first retry comes after 1 s ± 20 %, the next 1.5 s ± 20 % after it.
  const timeout = 2500
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exportersFor(receiver, 'json', timeout).traces)] })
  provider.getTracer('sdk-behaviour').startSpan('refused').end()
  const shutdown = await timed(provider.shutdown())
  t.notOk(shutdown.resolved)
  t.ok(shutdown.ms >= 750 && shutdown.ms < timeout + MARGIN_MS, `shutdown() rejected after ${Math.round(shutdown.ms)} ms (exporter timeout ${timeout} ms)`)
})

test("NodeSDK.shutdown() rejects with the first provider that fails, while another provider's export is still under way", async (t) => {
  const refusing = await OtlpReceiver.start(t, 'refuse')
  const hung = await OtlpReceiver.start(t, 'hang')
  const sdk = new NodeSDK({
    autoDetectResources: false,
    // Traces fail at once (a refused connection, no time left to retry); metrics wait on a hung endpoint.
    spanProcessors: [new BatchSpanProcessor(exportersFor(refusing, 'json', 200).traces)],
    metricReaders: [new PeriodicExportingMetricReader({ exporter: exportersFor(hung, 'json', 1500).metrics, exportIntervalMillis: 3_600_000 })]
  })
  sdk.start()
  t.teardown(() => hung.close())
  trace.getTracer('sdk-behaviour').startSpan('refused').end()
  metrics.getMeter('sdk-behaviour').createCounter('pending').add(1)

  const shutdown = await timed(sdk.shutdown())
  t.notOk(shutdown.resolved)
  t.ok(shutdown.ms < 1000, `NodeSDK.shutdown() rejected after ${Math.round(shutdown.ms)} ms`)
  await hung.waitFor(() => hung.requests.some((request) => request.signal === 'metrics'), 'the metrics export')
  t.ok(hung.requests.every((request) => !request.answered),
    'the metrics export had not finished (its endpoint never answers): a rejection does not mean every provider is done')
})
