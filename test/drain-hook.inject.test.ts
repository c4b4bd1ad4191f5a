import { test } from 'tap'
import Fastify from 'fastify'
import { createDrainHook, type DrainGate } from '../lib/drain-hook'
import { PROBE_ROUTE } from '../lib/probe-routes'
import { STATE, type ShutdownState } from '../lib/states'

function appWithGate (state: ShutdownState) {
  const gate: DrainGate = { serving: state === STATE.SERVING, state, rejectedRequests: 0 }
  const app = Fastify()
  let handled = 0
  app.addHook('onRequest', createDrainHook(gate, 7, null))
  app.get('/work', async () => { handled++; return { ok: true } })
  return { app, gate, handled: () => handled }
}

test('while serving the hook adds nothing to the response', async (t) => {
  const { app, handled } = appWithGate(STATE.SERVING)
  const res = await app.inject('/work')
  t.equal(res.statusCode, 200)
  t.not(res.headers.connection, 'close')
  t.equal(handled(), 1)
})

for (const state of [STATE.DRAINING, STATE.CLOSING, STATE.FORCING]) {
  test(`while ${state} requests get 503 without reaching the handler`, async (t) => {
    const { app, gate, handled } = appWithGate(state)
    const res = await app.inject('/work')
    t.equal(res.statusCode, 503)
    t.equal(res.headers.connection, 'close')
    t.equal(res.headers['retry-after'], '7')
    t.match(res.headers['content-type'], /^application\/json/)
    t.same(res.json(), {
      statusCode: 503,
      code: 'FST_SHUTDOWN_DRAINING',
      error: 'Service Unavailable',
      message: 'The server is shutting down; retry on another connection'
    })
    t.equal(handled(), 0)
    t.equal(gate.rejectedRequests, 1)
  })
}

test('probe routes pass through while draining, so they answer for themselves', async (t) => {
  const { app, gate } = appWithGate(STATE.DRAINING)
  app.get('/readyz', { config: { [PROBE_ROUTE]: true } }, async (_request, reply) => reply.code(503).send({ status: gate.state }))
  const res = await app.inject('/readyz')
  t.equal(res.statusCode, 503)
  t.same(res.json(), { status: 'draining' })
  t.equal(res.headers.connection, 'close')
  t.equal(gate.rejectedRequests, 0)
})
