import { test, type Test } from 'tap'
import type { Child, Exit } from '../helpers/child'
import { keepAliveAgent } from '../helpers/http'
import { handlerSpan, holdRequests, INSTRUMENTATIONS, logRecords, points, serverSpan, startOtelApp, telemetryReport, type Instrumentation } from '../helpers/otel/app'
import { OtlpReceiver, type Encoding } from '../helpers/otel/receiver'

const IN_FLIGHT = 200
const PROTOCOLS: readonly Encoding[] = ['json', 'protobuf']

/** SIGTERM with IN_FLIGHT requests held in their handlers, all released once the listener has closed. */
async function drainHeldRequests (t: Test, child: Child): Promise<{ ids: string[], exit: Exit }> {
  const { ids, requests, release } = await holdRequests(child, keepAliveAgent(t), IN_FLIGHT)
  child.signal('SIGTERM')
  await child.log('listener closed, draining')
  release()
  const responses = await Promise.all(requests.map((request) => request.response))
  const incomplete = ids.filter((id, i) => responses[i]!.status !== 200 || responses[i]!.body !== JSON.stringify({ id }))
  t.same(incomplete, [], `all ${IN_FLIGHT} requests answered 200 with their whole body`)
  return { ids, exit: await child.exited() }
}

/**
 * Everything the app recorded about the requests reached the receiver, and before `deadline` (a moment,
 * in this process, that the child reached only after its telemetry was shut down).
 */
function checkExported (t: Test, receiver: OtlpReceiver, instrumentation: Instrumentation, ids: string[], deadline: number): void {
  t.same(receiver.errors, [], 'every export decoded')

  const withoutServerSpan: string[] = []
  const withoutHandlerSpan: string[] = []
  const failed: string[] = []
  for (const id of ids) {
    const server = serverSpan(receiver, `/held/${id}`)
    if (server === undefined) {
      withoutServerSpan.push(id)
      continue
    }
    if (server.status.code === 2 || server.attributes['http.response.status_code'] !== 200) failed.push(id)
    if (handlerSpan(receiver, instrumentation, server) === undefined) withoutHandlerSpan.push(id)
  }
  t.same(withoutServerSpan, [], `the server span of each of the ${ids.length} requests arrived`)
  t.same(withoutHandlerSpan, [], `the ${instrumentation} handler span of each request arrived`)
  t.same(failed, [], 'every request span says 200, none is an error')

  const durations = points(receiver, 'http.server.request.duration', { 'http.route': '/held/:id' })
  t.equal(durations[0]?.count, ids.length, `http.server.request.duration counted ${ids.length} requests`)
  const responses = points(receiver, 'otel_app.responses', { route: '/held/:id', status: 200 })
  t.equal(responses[0]?.value, ids.length, `the app's own counter counted ${ids.length} responses`)

  const handled = new Set(logRecords(receiver, 'handler ran').map((record) => record.attributes.url))
  t.same(ids.filter((id) => !handled.has(`/held/${id}`)), [], 'the "handler ran" log record of each request arrived')
  t.match(logRecords(receiver, 'drained'), [{ attributes: { plugin: 'fastify-shutdown', completedRequests: ids.length } }],
    "the plugin's own 'drained' log record arrived")

  const last = Math.max(...receiver.requests.map((request) => request.at))
  t.ok(last < deadline, `the last export arrived ${Math.round(deadline - last)} ms before the process said its telemetry was shut down`)
}

for (const instrumentation of INSTRUMENTATIONS) {
  for (const protocol of PROTOCOLS) {
    test(`SIGTERM with ${IN_FLIGHT} requests in flight (${instrumentation}, http/${protocol}): every span, metric and log is exported before exit 0`, async (t) => {
      const receiver = await OtlpReceiver.start(t)
      const child = await startOtelApp(t, receiver, { protocol, instrumentation, telemetry: true })
      const { ids, exit } = await drainHeldRequests(t, child)
      t.equal(exit.code, 0)

      const report = await telemetryReport(child)
      t.match(report, {
        msg: 'shutdown complete',
        outcome: 'completed',
        exitCode: 0,
        completedRequests: IN_FLIGHT,
        telemetry: { confirmed: true, targets: 1, failed: [], timedOut: false, cutSpans: 0 },
        errors: []
      })
      t.type(report.phases.telemetryMs, 'number', 'the telemetry shutdown is a phase of the report')
      // The report is logged once the SDK's shutdown() has resolved: everything was in by then.
      checkExported(t, receiver, instrumentation, ids, report.at)
    })
  }
}

// Without the `telemetry` option, the way apps flush today: the plugin's `exit` shuts the SDK down, then
// exits. A control for the tests above: the SDK, its exporters and the receiver on their own.
test('an exit hook that shuts the SDK down exports every span, metric and log too (@opentelemetry/instrumentation-fastify, http/protobuf)', async (t) => {
  const instrumentation = '@opentelemetry/instrumentation-fastify'
  const receiver = await OtlpReceiver.start(t)
  const child = await startOtelApp(t, receiver, { protocol: 'protobuf', instrumentation, flushOnExit: true })
  const { ids, exit } = await drainHeldRequests(t, child)
  t.equal(exit.code, 0)
  t.match(await child.report(), { outcome: 'completed', exitCode: 0, completedRequests: IN_FLIGHT })
  const shutDown = await child.log('sdk shut down')
  checkExported(t, receiver, instrumentation, ids, shutDown.at)
})
