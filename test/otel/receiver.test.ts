import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { SeverityNumber } from '@opentelemetry/api-logs'
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor, type ReadableLogRecord } from '@opentelemetry/sdk-logs'
import { MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import http from 'node:http'
import { test } from 'tap'
import { exportersFor, exportOnce } from '../helpers/otel/exporters'
import { OtlpReceiver, type Encoding } from '../helpers/otel/receiver'

const ENCODINGS: readonly Encoding[] = ['json', 'protobuf']

/** A metric reader that only collects when asked: the test exports what it collected itself. */
class ManualReader extends MetricReader {
  protected async onForceFlush (): Promise<void> {}
  protected async onShutdown (): Promise<void> {}
}

/** One of each kind of thing the receiver decodes, recorded in memory so both encodings send the same. */
async function recordTelemetry (): Promise<{ spans: ReadableSpan[], metrics: ResourceMetrics, logs: ReadableLogRecord[] }> {
  const spanMemory = new InMemorySpanExporter()
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanMemory)] })
  const tracer = tracerProvider.getTracer('receiver-test', '1.2.3')
  const parent = tracer.startSpan('GET /slow/:id', {
    kind: SpanKind.SERVER,
    attributes: { 'http.route': '/slow/:id', 'http.response.status_code': 200, ratio: 0.25, cut: false, tags: ['a', 'b'] }
  })
  const child = tracer.startSpan('handler', {}, trace.setSpan(context.active(), parent))
  child.addEvent('exception', { 'exception.message': 'boom' })
  child.setStatus({ code: SpanStatusCode.ERROR, message: 'cut off' })
  child.setAttribute('fastify_shutdown.cut', true)
  child.end()
  parent.end()

  const reader = new ManualReader()
  const meterProvider = new MeterProvider({ readers: [reader] })
  const meter = meterProvider.getMeter('receiver-test')
  meter.createCounter('requests').add(3, { route: '/fast' })
  meter.createCounter('bytes').add(2.5)
  meter.createUpDownCounter('in_flight').add(-2)
  const duration = meter.createHistogram('duration', { unit: 's' })
  for (const seconds of [0.1, 0.2, 0.7]) duration.record(seconds, { outcome: 'completed' })
  meter.createGauge('temperature').record(21.5)
  const { resourceMetrics } = await reader.collect()

  const logMemory = new InMemoryLogRecordExporter()
  const loggerProvider = new LoggerProvider({ processors: [new SimpleLogRecordProcessor({ exporter: logMemory })] })
  const logger = loggerProvider.getLogger('receiver-test')
  logger.emit({ severityNumber: SeverityNumber.WARN, severityText: 'warn', body: 'forcing shutdown', attributes: { openRequests: 2 } })
  logger.emit({ severityNumber: SeverityNumber.INFO, body: { msg: 'structured', n: 1 } })

  return { spans: spanMemory.getFinishedSpans(), metrics: resourceMetrics, logs: logMemory.getFinishedLogRecords() }
}

test('spans, metrics and logs sent by the real exporters as http/json and http/protobuf decode to the same records', async (t) => {
  const telemetry = await recordTelemetry()
  const decoded: Partial<Record<Encoding, unknown>> = {}

  for (const encoding of ENCODINGS) {
    const receiver = await OtlpReceiver.start(t)
    const exporters = exportersFor(receiver, encoding)
    const outcomes = await Promise.all([
      exportOnce(exporters.traces, telemetry.spans),
      exportOnce(exporters.metrics, telemetry.metrics),
      exportOnce(exporters.logs, telemetry.logs)
    ])
    t.same(outcomes.map((outcome) => outcome.succeeded), [true, true, true], `${encoding}: every export succeeded`)
    t.same(receiver.errors, [], `${encoding}: every request decoded`)
    t.match(receiver.requests, [
      { encoding, answered: true }, { encoding, answered: true }, { encoding, answered: true }
    ])
    t.same(receiver.requests.map((request) => request.signal).sort(), ['logs', 'metrics', 'traces'])

    const [parent, child] = [receiver.spansWhere('GET /slow/:id')[0], receiver.spansWhere('handler')[0]]
    t.match(parent, {
      kind: 2,
      parentSpanId: undefined,
      scope: 'receiver-test',
      status: { code: 0 },
      attributes: { 'http.route': '/slow/:id', 'http.response.status_code': 200, ratio: 0.25, cut: false, tags: ['a', 'b'] },
      resource: { 'telemetry.sdk.language': 'nodejs' }
    }, `${encoding}: the server span`)
    const source = telemetry.spans.find((span) => span.name === 'handler')!
    t.match(child, {
      traceId: source.spanContext().traceId,
      spanId: source.spanContext().spanId,
      parentSpanId: parent!.spanId,
      status: { code: 2, message: 'cut off' },
      attributes: { 'fastify_shutdown.cut': true },
      events: [{ name: 'exception', attributes: { 'exception.message': 'boom' } }]
    }, `${encoding}: the child span`)
    const startNs = BigInt(source.startTime[0]) * 1_000_000_000n + BigInt(source.startTime[1])
    t.equal(child!.startTimeUnixNano, String(startNs), `${encoding}: start time to the nanosecond`)
    t.ok(child!.endMs >= child!.startMs && Math.abs(child!.startMs - Date.now()) < 60_000, `${encoding}: times in milliseconds`)

    t.match(receiver.metric('requests'), [{ type: 'sum', value: 3, monotonic: true, attributes: { route: '/fast' } }])
    t.match(receiver.metric('bytes'), [{ type: 'sum', value: 2.5 }])
    t.match(receiver.metric('in_flight'), [{ type: 'sum', value: -2, monotonic: false }])
    t.match(receiver.metric('duration'), [{ type: 'histogram', unit: 's', count: 3, min: 0.1, max: 0.7, attributes: { outcome: 'completed' } }])
    t.ok(Math.abs(receiver.metric('duration')[0]!.sum! - 1) < 1e-9, `${encoding}: histogram sum`)
    t.match(receiver.metric('temperature'), [{ type: 'gauge', value: 21.5 }])

    t.match(receiver.logs, [
      { body: 'forcing shutdown', severityNumber: SeverityNumber.WARN, severityText: 'warn', attributes: { openRequests: 2 } },
      { body: { msg: 'structured', n: 1 }, severityNumber: SeverityNumber.INFO }
    ])

    decoded[encoding] = [receiver.spans, receiver.dataPoints, receiver.logs].map((records) =>
      records.map(({ encoding: _encoding, at: _at, ...rest }: { encoding: Encoding, at: number }) => rest))
  }
  t.same(decoded.protobuf, decoded.json, 'protobuf and JSON carry the same records')
})

test('waitFor resolves at once when its check holds, else on the arrival that makes it hold', async (t) => {
  const receiver = await OtlpReceiver.start(t)
  await receiver.waitFor(() => true, 'nothing')
  const { spans } = await recordTelemetry()
  const exporters = exportersFor(receiver, 'protobuf')
  let arrived = false
  const waiting = receiver.waitFor(() => receiver.spans.length >= 4, 'four spans').then(() => { arrived = true })
  await exportOnce(exporters.traces, spans)
  t.notOk(arrived, 'two spans are not four')
  await exportOnce(exporters.traces, spans)
  await waiting
  t.equal(receiver.spans.length, 4)
})

test('refuse: nothing listens, the exporter meets ECONNREFUSED and gives up within its timeout', async (t) => {
  const receiver = await OtlpReceiver.start(t, 'refuse')
  const { spans } = await recordTelemetry()
  // ECONNREFUSED counts as retryable; the first retry would come after about a second, past this timeout.
  const outcome = await exportOnce(exportersFor(receiver, 'json', 300).traces, spans)
  t.notOk(outcome.succeeded)
  t.match(outcome.result.error, { code: 'ECONNREFUSED' })
  t.ok(outcome.ms < 300, `gave up after ${Math.round(outcome.ms)} ms`)
  t.same(receiver.requests, [])
})

test('hang: requests are read and never answered; the exporter times out; close() ends held connections', async (t) => {
  const receiver = await OtlpReceiver.start(t, 'hang')
  const { spans } = await recordTelemetry()
  const outcome = await exportOnce(exportersFor(receiver, 'protobuf', 400).traces, spans)
  t.notOk(outcome.succeeded)
  t.match(outcome.result.error, { message: 'Request timed out' })
  t.ok(outcome.ms >= 390, `the export waited ${Math.round(outcome.ms)} ms, its whole timeout`)
  t.match(receiver.requests, [{ signal: 'traces', encoding: 'protobuf', items: 2, answered: false }])
  t.equal(receiver.spans.length, 2, 'what a hung receiver reads is still decoded')

  // A client without a timeout of its own: only the receiver's close() can end its request.
  const held = new Promise<Error>((resolve) => {
    const req = http.request(receiver.endpoint('logs'), { method: 'POST', headers: { 'content-type': 'application/json' } })
    req.on('error', resolve)
    req.end('{}')
  })
  await receiver.waitFor(() => receiver.requests.length === 2, 'the held request')
  await receiver.close()
  t.match(await held, { code: 'ECONNRESET' }, 'the held request was cut when the receiver closed')
})

test('what is not an OTLP export is answered 404 or 415 and noted', async (t) => {
  const receiver = await OtlpReceiver.start(t)
  const post = (path: string, contentType: string, body = '{}'): Promise<number> => new Promise((resolve, reject) => {
    const req = http.request(`${receiver.url}${path}`, { method: 'POST', headers: { 'content-type': contentType } }, (res) => {
      res.resume()
      resolve(res.statusCode!)
    })
    req.on('error', reject)
    req.end(body)
  })
  t.equal(await post('/v1/profiles', 'application/json'), 404)
  t.equal(await post('/v1/traces', 'text/plain'), 415)
  t.equal(await post('/v1/traces', 'application/x-protobuf; charset=binary', ''), 200, 'parameters after the media type are fine')
  t.equal(receiver.errors.length, 2)
})
