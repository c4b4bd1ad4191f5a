import { test } from 'tap'
import type { Child } from '../helpers/child'
import { RawConnection } from '../helpers/http'
import { logRecords, points, startOtelApp, telemetryReport } from '../helpers/otel/app'
import { OtlpReceiver } from '../helpers/otel/receiver'

interface Teardown {
  teardown (fn: () => void | Promise<void>): void
}

/**
 * A scheduled shutdown with one request in flight (a stream whose headers went out before it) and one
 * request pipelined behind it while draining, which is answered 503.
 */
async function shutDownWithOneInFlightAndOneRejected (t: Teardown, child: Child): Promise<void> {
  const connection = await RawConnection.open(t, child.port)
  connection.get('/stream/a')
  await connection.head(0)
  child.signal('SIGTERM')
  await child.log('listener closed, draining')
  connection.get('/count?late=1')
  await child.message((m) => m.type === 'request' && m.url === '/count?late=1', 'the late request to arrive')
  child.send({ type: 'release', id: 'a' })
  await connection.response(0)
  const rejected = await connection.response(1)
  if (rejected.status !== 503) throw new Error(`the late request got ${rejected.status}, not 503`)
}

test("the plugin's own span, with a child span per phase, and its metrics are exported with the rest", async (t) => {
  const receiver = await OtlpReceiver.start(t)
  const child = await startOtelApp(t, receiver, { protocol: 'json', telemetry: true })
  await shutDownWithOneInFlightAndOneRejected(t, child)
  t.equal((await child.exited()).code, 0)
  const report = await telemetryReport(child)
  t.match(report, { outcome: 'completed', completedRequests: 1, rejectedRequests: 1, telemetry: { confirmed: true } })

  const roots = receiver.spansWhere('fastify-shutdown')
  t.equal(roots.length, 1, 'one fastify-shutdown span')
  const root = roots[0]!
  t.match(root, {
    scope: 'fastify-shutdown',
    parentSpanId: undefined,
    status: { code: 0 },
    resource: { 'service.name': 'otel-app' },
    attributes: {
      'fastify_shutdown.trigger': 'signal',
      'fastify_shutdown.signal': 'SIGTERM',
      'fastify_shutdown.outcome': 'completed',
      'fastify_shutdown.exit_code': 0,
      'fastify_shutdown.requests.completed': 1,
      'fastify_shutdown.requests.rejected': 1
    }
  })

  const phases = receiver.spansWhere((span) => span.parentSpanId === root.spanId).sort((a, b) => a.startMs - b.startMs)
  t.same(phases.map((span) => span.name), ['fastify-shutdown pre-stop', 'fastify-shutdown draining', 'fastify-shutdown closing'],
    'a child span per phase, in order')
  // A span's start is Date.now(), whole milliseconds; its end, the start plus a precise duration: spans
  // started a fraction of a millisecond apart can disagree by up to one.
  const times = JSON.stringify([root, ...phases].map(({ name, startMs, endMs }) => ({ name, startMs, endMs })))
  t.ok(phases.every((span) => span.traceId === root.traceId && span.startMs >= root.startMs - 1 && span.endMs <= root.endMs + 1),
    `every phase lies within the shutdown span: ${times}`)
  t.ok(phases.every((span, i) => i === 0 || span.startMs >= phases[i - 1]!.endMs - 1), `the phases follow one another: ${times}`)

  const duration = points(receiver, 'fastify_shutdown.duration')
  t.match(duration, [{ type: 'histogram', unit: 's', count: 1, attributes: { 'fastify_shutdown.outcome': 'completed' } }])
  const seconds = duration[0]?.sum ?? 0
  t.ok(seconds > 0 && seconds <= report.durationMs / 1000 + 0.001,
    `fastify_shutdown.duration recorded ${seconds} s; the report, taken after the telemetry phase, says ${report.durationMs} ms`)
  t.match(points(receiver, 'fastify_shutdown.drain.duration'), [{ type: 'histogram', unit: 's', count: 1 }])
  t.match(points(receiver, 'fastify_shutdown.requests.rejected'), [{ type: 'sum', value: 1 }])
  t.match(points(receiver, 'fastify_shutdown.requests.in_flight', { 'fastify_shutdown.phase': 'pre-stop' }), [{ type: 'gauge', value: 1 }],
    'one request was in flight when the shutdown began')
  t.match(points(receiver, 'fastify_shutdown.requests.in_flight', { 'fastify_shutdown.phase': 'end' }), [{ type: 'gauge', value: 0 }])
  t.ok(points(receiver, 'fastify_shutdown.forced').every((point) => point.value === 0), 'nothing counted as forced')
})

// The README: the report goes out as a log record of its own, recorded before the final flush.
test('the report reaches the receiver as a log record, beside the bridged pino lines', async (t) => {
  const receiver = await OtlpReceiver.start(t)
  const child = await startOtelApp(t, receiver, { protocol: 'protobuf', telemetry: true })
  await shutDownWithOneInFlightAndOneRejected(t, child)
  await child.exited()
  const report = await child.report()
  t.ok(logRecords(receiver, 'drained').length === 1, 'pino lines from before the flush arrive through the bridge')
  t.match(logRecords(receiver, 'shutdown complete'), [{
    scope: 'fastify-shutdown',
    severityText: 'INFO',
    attributes: {
      'fastify_shutdown.outcome': 'completed',
      'fastify_shutdown.exitCode': 0,
      'fastify_shutdown.trigger': 'signal',
      'fastify_shutdown.completedRequests': report.completedRequests,
      'fastify_shutdown.rejectedRequests': 1
    }
  }], 'the report arrived as a log record')
})
