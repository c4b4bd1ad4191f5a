import { test, type Test } from 'tap'
import Fastify from 'fastify'
import { RequestGate, type DrainGate } from '../lib/request-gate'
import { STATE, type ShutdownState } from '../lib/states'
import { kLastRequestAt, kRejected } from '../lib/symbols'
import { listenLocally } from './helpers/app'
import { get, keepAliveAgent } from './helpers/http'
import { logCapture } from './helpers/log-capture'

const PROBE = '/readyz'

async function appBehindGate (t: Test, state: ShutdownState, { logRefusals = true, rejections = () => null as null } = {}) {
  const gate: DrainGate = { serving: state === STATE.SERVING, state, rejectedRequests: 0 }
  const { stream, lines } = logCapture()
  const app = Fastify({ logger: { stream } })
  const failures: string[] = []
  let handled = 0
  app.get('/work', async () => { handled++; return { ok: true } })
  app.get(PROBE, async (_request, reply) => reply.code(503).send({ status: gate.state }))
  const fastifysOwn = app.server.listeners('request')
  const requestGate = new RequestGate(gate, 7, new Set([PROBE]), app.log, rejections, null, logRefusals, (_err, during) => { failures.push(during) })
  requestGate.attach(app.server)
  t.teardown(() => app.close())
  const port = await listenLocally(app)
  return { app, gate, port, requestGate, fastifysOwn, failures, lines, handled: () => handled }
}

test('while serving the gate notes the arrival and hands the request to Fastify unchanged', async (t) => {
  const { port, handled } = await appBehindGate(t, STATE.SERVING)
  const res = await get(keepAliveAgent(t), port, '/work').response
  t.equal(res.status, 200)
  t.not(res.headers.connection, 'close')
  t.equal(handled(), 1)
})

test('the socket keeps when its last request arrived', async (t) => {
  const { app, port } = await appBehindGate(t, STATE.SERVING)
  const arrived: (number | undefined)[] = []
  app.server.on('request', (request) => { arrived.push((request.socket as unknown as Record<symbol, number | undefined>)[kLastRequestAt]) })
  const before = Date.now()
  await get(keepAliveAgent(t), port, '/work').response
  t.equal(arrived.length, 1)
  t.ok(arrived[0]! >= before && arrived[0]! <= Date.now(), 'noted before Fastify ran, at the request\'s arrival')
})

for (const state of [STATE.DRAINING, STATE.CLOSING, STATE.FORCING]) {
  test(`while ${state} requests get 503 from the gate, without reaching Fastify`, async (t) => {
    const { app, gate, port, handled, lines } = await appBehindGate(t, STATE.SERVING)
    const agent = keepAliveAgent(t)
    await get(agent, port, '/work').response
    const refused: unknown[] = []
    app.server.on('request', (_request, response) => { refused.push((response as unknown as Record<symbol, unknown>)[kRejected]) })
    Object.assign(gate, { serving: false, state })
    const res = await get(agent, port, '/work?x=1').response
    t.equal(res.status, 503)
    t.equal(res.headers.connection, 'close')
    t.equal(res.headers['retry-after'], '7')
    t.match(res.headers['content-type'], /^application\/json/)
    t.same(JSON.parse(res.body), {
      statusCode: 503,
      code: 'FST_SHUTDOWN_DRAINING',
      error: 'Service Unavailable',
      message: 'The server is shutting down; retry on another connection'
    })
    t.equal(handled(), 1, 'only the request before the shutdown reached the handler')
    t.equal(gate.rejectedRequests, 1)
    t.same(refused, [true], 'the response is marked refused, so it is not counted as completed')
    t.match(lines.filter((line) => line.msg === 'request refused: the server is shutting down'),
      [{ level: 30, req: { method: 'GET', url: '/work?x=1' }, res: { statusCode: 503 }, state }])
  })
}

test('no line per refusal when the app turned request logging off', async (t) => {
  const { gate, port, lines } = await appBehindGate(t, STATE.DRAINING, { logRefusals: false })
  t.equal((await get(false, port, '/work').response).status, 503)
  t.equal(gate.rejectedRequests, 1)
  t.same(lines.filter((line) => line.msg === 'request refused: the server is shutting down'), [])
})

test('the probe routes pass through while draining, so they answer for themselves, and close their connection', async (t) => {
  const { gate, port } = await appBehindGate(t, STATE.DRAINING)
  const res = await get(false, port, `${PROBE}?verbose=1`).response
  t.equal(res.status, 503)
  t.same(JSON.parse(res.body), { status: 'draining' })
  t.equal(res.headers.connection, 'close')
  t.equal(gate.rejectedRequests, 0)
})

test('during the pre-stop delay every request is served, and closes its connection', async (t) => {
  const { gate, port, handled } = await appBehindGate(t, STATE.PRE_STOP)
  const res = await get(keepAliveAgent(t), port, '/work').response
  t.equal(res.status, 200)
  t.equal(res.headers.connection, 'close')
  t.equal(handled(), 1)
  t.equal(gate.rejectedRequests, 0)
})

test('what the gate\'s own code throws is reported and never reaches Node; the client still has its 503', async (t) => {
  const { gate, port, failures } = await appBehindGate(t, STATE.DRAINING, {
    rejections: () => { throw new Error('telemetry broke') }
  })
  const res = await get(false, port, '/work').response
  t.equal(res.status, 503)
  t.equal(gate.rejectedRequests, 1)
  t.same(failures, ['answering a request while shutting down'])
})

test('detach gives the server Fastify\'s own listener back; attach twice gates once', async (t) => {
  const { app, requestGate, fastifysOwn, port, handled } = await appBehindGate(t, STATE.SERVING)
  requestGate.attach(app.server)
  t.equal(app.server.listenerCount('request'), 1)
  t.not(app.server.listeners('request')[0], fastifysOwn[0], 'the gate stands in front')
  requestGate.detach()
  t.same(app.server.listeners('request'), fastifysOwn)
  t.equal((await get(false, port, '/work').response).status, 200)
  t.equal(handled(), 1)
})

test('only the first request listener, Fastify\'s, is behind the gate: one the app adds hears every request', async (t) => {
  const { app, gate, port, handled } = await appBehindGate(t, STATE.SERVING)
  const heard: string[] = []
  app.server.on('request', (request) => { heard.push(request.url!) })
  t.equal((await get(false, port, '/work').response).status, 200)
  Object.assign(gate, { serving: false, state: STATE.DRAINING })
  t.equal((await get(false, port, '/work?late=1').response).status, 503)
  t.same(heard, ['/work', '/work?late=1'])
  t.equal(handled(), 1)
})

test('fastify.inject() goes around the server, so around the gate: an injected request is served while draining', async (t) => {
  const { app, gate, handled } = await appBehindGate(t, STATE.DRAINING)
  t.equal((await app.inject('/work')).statusCode, 200)
  t.equal(handled(), 1)
  t.equal(gate.rejectedRequests, 0)
})
