import { test } from 'tap'
import { faultTest } from '../helpers/fault-matrix'
import { get, keepAliveAgent } from '../helpers/http'
import { secondSignalWhileStuck } from '../helpers/scenarios'
import { holdRequests, INSTRUMENTATIONS, points, serverSpan, startOtelApp, telemetryReport } from '../helpers/otel/app'
import { OtlpReceiver } from '../helpers/otel/receiver'

const FORCE_MS = 1500
/** Long enough never to be what ends these tests, short enough to end a broken run. */
const LONG_DRAIN_MS = 8000
/** Slack for a loaded machine on top of a deadline the plugin promises. */
const MARGIN_MS = 500
const FAST = 10
const HELD = 5
const STUCK = ['0', '1', '2']

for (const instrumentation of INSTRUMENTATIONS) {
  test(`a second SIGTERM with requests stuck (${instrumentation}): exit 1 within forceTimeout; spans of completed requests arrive, and the stuck ones' ended, cut and in error`, async (t) => {
    const receiver = await OtlpReceiver.start(t)
    const child = await startOtelApp(t, receiver, {
      protocol: 'protobuf',
      instrumentation,
      telemetry: true,
      shutdown: { drainTimeout: LONG_DRAIN_MS, forceTimeout: FORCE_MS, duplicateSignalWindow: 0 }
    })
    const agent = keepAliveAgent(t)

    // Completed before the shutdown, completed during the drain, and stuck for good.
    const fast = await Promise.all(Array.from({ length: FAST }, () => get(agent, child.port, '/fast').response))
    t.same(fast.map((response) => response.status), Array(FAST).fill(200))
    const held = await holdRequests(child, agent, HELD)
    const stuck = STUCK.map((id) => get(agent, child.port, `/stuck/${id}`))
    await Promise.all(STUCK.map((id) => child.message((m) => m.type === 'handling' && m.route === '/stuck/:id' && m.id === id, `the handler of /stuck/${id}`)))

    child.signal('SIGTERM')
    await child.log('listener closed, draining')
    held.release()
    const released = await Promise.all(held.requests.map((request) => request.response))
    t.same(released.map((response) => response.status), Array(HELD).fill(200), 'the requests released during the drain completed')

    const secondAt = child.signal('SIGTERM')
    for (const request of stuck) await t.rejects(request.response, { code: 'ECONNRESET' })
    const exit = await child.exited()
    t.equal(exit.code, 1)
    t.ok(exit.at - secondAt < FORCE_MS + MARGIN_MS, `exited ${Math.round(exit.at - secondAt)} ms after the second signal (forceTimeout ${FORCE_MS} ms)`)

    const report = await telemetryReport(child)
    t.match(report, {
      msg: 'shutdown forced',
      outcome: 'forced',
      forcedBy: 'second-signal',
      exitCode: 1,
      completedRequests: HELD,
      telemetry: { confirmed: true, targets: 1, timedOut: false, failed: [] }
    })
    t.same(report.openRequests.map((open) => open.url).sort(), STUCK.map((id) => `/stuck/${id}`))
    t.ok(report.telemetry!.cutSpans >= STUCK.length, `${report.telemetry!.cutSpans} spans were cut`)

    t.same(receiver.errors, [])
    const fastSpans = receiver.spansWhere((span) => span.kind === 2 && span.attributes['url.path'] === '/fast')
    t.equal(fastSpans.length, FAST, 'the server span of every request completed before the shutdown arrived')
    t.ok(fastSpans.every((span) => span.status.code !== 2 && span.attributes['fastify_shutdown.cut'] === undefined), 'none of them is cut')
    for (const id of held.ids) {
      t.match(serverSpan(receiver, `/held/${id}`), { status: { code: 0 }, attributes: { 'http.response.status_code': 200 } },
        `the server span of /held/${id}, completed during the drain, arrived whole`)
    }
    for (const id of STUCK) {
      const path = `/stuck/${id}`
      t.match(serverSpan(receiver, path), { status: { code: 2, message: String }, attributes: { 'fastify_shutdown.cut': true } },
        `the server span of ${path} was ended, cut and in error`)
      if (instrumentation === '@fastify/otel') {
        t.match(receiver.spansWhere((span) => span.name === 'request' && span.attributes['url.path'] === path),
          [{ scope: '@fastify/otel', status: { code: 2 }, attributes: { 'fastify_shutdown.cut': true } }],
          `@fastify/otel's request span of ${path} too`)
      }
    }

    t.match(receiver.spansWhere('fastify-shutdown'), [{ status: { code: 2 } }], "the plugin's own span arrived, in error")
    t.equal(points(receiver, 'fastify_shutdown.forced')[0]?.value, 1, 'fastify_shutdown.forced counted the forced shutdown')
  })
}

test(faultTest('telemetry-hangs-on-force'), async (t) => {
  const receiver = await OtlpReceiver.start(t, 'hang')
  const child = await startOtelApp(t, receiver, {
    protocol: 'json',
    telemetry: true,
    shutdown: { drainTimeout: LONG_DRAIN_MS, forceTimeout: FORCE_MS, duplicateSignalWindow: 0 }
  })
  const { secondAt, exit } = await secondSignalWhileStuck(t, child, '0')
  t.equal(exit.code, 1)
  const elapsed = exit.at - secondAt
  t.ok(elapsed < FORCE_MS + MARGIN_MS, `exited ${Math.round(elapsed)} ms after the second signal (forceTimeout ${FORCE_MS} ms)`)

  const report = await telemetryReport(child)
  t.match(report, { outcome: 'forced', forcedBy: 'second-signal', exitCode: 1, telemetry: { confirmed: false, timedOut: true } })
  t.ok(receiver.requests.length > 0, `the export was attempted (${receiver.requests.length} requests, none answered)`)
})
