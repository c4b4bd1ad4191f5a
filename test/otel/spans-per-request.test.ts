import { test, type Test } from 'tap'
import { startFixture } from '../helpers/child'

type Span = { name: string, kind: number, attributes: Record<string, unknown>, events: { name: string, attributes: Record<string, unknown> }[], status: { code: number } }
interface Result {
  statuses: number[]
  serving: Span[][]
  refused: { answer: { status: number, connection?: string }, traces: Span[][] } | null
}

const SETUPS = ['@fastify/otel first', '@fastify/otel after the plugin', 'instrumentation-fastify + instrumentation-http'] as const
/** What instrumentation-http alone, or no HTTP instrumentation, leaves of a refused request's trace. */
const WITH_HTTP_SPAN: Record<(typeof SETUPS)[number], boolean> = {
  '@fastify/otel first': false,
  '@fastify/otel after the plugin': false,
  'instrumentation-fastify + instrumentation-http': true
}

const SERVER = 1

/**
 * A span's name, less the plugin chain Fastify's `pluginName` gives a handler registered after a
 * fastify-plugin (`fastify -> fastify-shutdown`): every such plugin adds it (docs/opentelemetry.md).
 */
function named (span: Span): string {
  return span.name.replace(' -> fastify-shutdown', '')
}

async function run (t: Test, setup: string, plugin: boolean): Promise<Result> {
  const child = await startFixture(t, 'otel-spans', { setup, plugin })
  return await child.message((m) => m.type === 'result', 'the spans') as unknown as Result
}

for (const setup of SETUPS) {
  test(`${setup}: while serving, the plugin adds no span to a request's trace; a refused request's trace says why`, async (t) => {
    const [without, withPlugin] = await Promise.all([run(t, setup, false), run(t, setup, true)])
    t.same(withPlugin.statuses, without.statuses)
    t.equal(without.serving.length, 5, 'a trace per request')
    const names = (trace: Span[]): string[] => trace.map(named).sort()
    t.same(withPlugin.serving.map(names), without.serving.map(names), `the same spans per request: ${names(without.serving[0]).join(', ')}`)
    t.notOk(withPlugin.serving.flat().some((span) => /shutdown/i.test(named(span))), 'no span of the plugin\'s')

    const refused = withPlugin.refused!
    t.match(refused.answer, { status: 503, connection: 'close' })
    t.equal(refused.traces.length, 1, 'the refused request has one trace')
    const trace = refused.traces[0]
    const marked = trace.filter((span) => span.attributes['fastify_shutdown.refused'] === true)
    t.equal(marked.length, 1, 'one span says the request was refused')
    const [span] = marked
    t.match(span.attributes, { 'fastify_shutdown.state': 'draining', 'fastify_shutdown.reason': 'the server is shutting down' })
    if (WITH_HTTP_SPAN[setup]) {
      // The fixture's own client span (instrumentation-http traces the client too) is the server span's parent.
      t.same(trace.filter((s) => s.kind === SERVER).map((s) => s.name), ['GET'], 'only instrumentation-http\'s server span: Fastify never saw the request')
      t.equal(span.kind, SERVER)
      t.match(span, { attributes: { 'http.response.status_code': 503 }, status: { code: 2 } })
      t.match(span.events, [{ name: 'fastify_shutdown.refused', attributes: { 'fastify_shutdown.state': 'draining' } }])
    } else {
      t.same(trace.map((s) => s.name), ['fastify-shutdown refused'], 'no HTTP span to mark: the plugin\'s own server span')
      t.match(span, { attributes: { 'http.request.method': 'GET', 'url.path': '/hello', 'http.response.status_code': 503 }, status: { code: 2 } })
    }
  })
}
