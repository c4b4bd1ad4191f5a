import { test, type Test } from 'tap'
import { startFixture } from '../helpers/child'
import { faultTest } from '../helpers/fault-matrix'
import { slowRequestThroughDrain } from '../helpers/scenarios'
import { telemetryReport, type TelemetryReportLine } from '../helpers/otel/app'

const TELEMETRY_MS = 1000
/** Slack for a loaded machine on top of a deadline the plugin promises. */
const MARGIN_MS = 500
/** `.invalid` is reserved (RFC 2606): no resolver may ever answer it with an address. */
const UNRESOLVABLE = 'http://otel-collector.invalid:4318'

/**
 * A request in flight at SIGTERM, exporters aimed at a host that does not resolve: the request completes
 * and the process exits 0 within telemetryTimeout of it. Resolves with the report.
 */
async function drainWithUnresolvableCollector (t: Test, exporterTimeout?: number): Promise<TelemetryReportLine> {
  const child = await startFixture(t, 'otel-app', {
    otel: { url: UNRESOLVABLE, protocol: 'protobuf', instrumentation: '@fastify/otel', exporterTimeout },
    telemetry: true,
    shutdown: { telemetryTimeout: TELEMETRY_MS }
  })
  const response = await slowRequestThroughDrain(t, child, '1')
  const exit = await child.exited()
  t.equal(exit.code, 0, 'telemetry that could not be exported does not fail the shutdown')
  const afterResponse = exit.at - response.endAt
  t.ok(afterResponse < TELEMETRY_MS + MARGIN_MS, `exited ${Math.round(afterResponse)} ms after the last response (telemetryTimeout ${TELEMETRY_MS} ms)`)
  const report = await telemetryReport(child)
  t.match(report, { msg: 'shutdown complete', outcome: 'completed', exitCode: 0, completedRequests: 1, errors: [] })
  return report
}

// Resolution may fail at once (ENOTFOUND: no such name; EAI_AGAIN: no resolver reachable) or hang on a
// resolver that never answers, depending on the machine; the outcomes below hold for each.
test(faultTest('telemetry-dns'), async (t) => {
  t.test('with the SDK\'s own exporter timeout (10 s) the bound ends the flush', async (t) => {
    // The exporters retry ENOTFOUND and EAI_AGAIN as they retry a refused connection, and wait out a hung lookup.
    const report = await drainWithUnresolvableCollector(t)
    t.match(report.telemetry, { confirmed: false, targets: 1, timedOut: true, failed: [`1 of 1 did not confirm within ${TELEMETRY_MS} ms`] })
  })

  t.test('exporters that give up first: the report names the failure', async (t) => {
    const report = await drainWithUnresolvableCollector(t, 200)
    t.match(report.telemetry, { confirmed: false, targets: 1, timedOut: false, failed: [/ENOTFOUND|EAI_AGAIN|timed out/] })
    t.comment(`the exporters gave up after ${report.phases.telemetryMs} ms: ${JSON.stringify(report.telemetry?.failed)}`)
  })
})
