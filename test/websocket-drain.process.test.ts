import { test } from 'tap'
import { startFixture } from './helpers/child'
import { connect } from './helpers/websocket'

/** How soon after the last socket closed the process must be gone. */
const PROMPT_MS = 100
const CLOSE_TIMEOUT_MS = 300
/** Slack for a loaded machine on top of a deadline the plugin promises. */
const MARGIN_MS = 250
/** Timers run on the monotonic clock, log times are Date.now(): they can disagree by a few milliseconds. */
const EARLY_MS = 5

test('open WebSockets get the goodbye and a close frame 1001 with the reason; the process exits 0 at once', async (t) => {
  const child = await startFixture(t, 'websocket-app', { shutdown: { websocket: { goodbye: 'bye now', reason: 'deploying' } } })
  const ids = ['a', 'b', 'c']
  const clients = ids.map((id) => connect(t, child.port, `/ws?id=${id}`))
  await Promise.all(clients.map((client) => client.opened))
  await Promise.all(ids.map((id) => child.message((m) => m.type === 'ws-open' && m.id === id, `the server side of ${id}`)))
  clients[0]!.ws.send('ping')
  await clients[0]!.message('ping')
  t.pass('the echo route works')

  child.signal('SIGTERM')
  const closes = await Promise.all(clients.map((client) => client.closed))
  closes.forEach((closed, i) => {
    t.same(clients[i]!.messages.filter((message) => message !== 'ping'), ['bye now'], `${ids[i]} got the goodbye first`)
    t.equal(closed.code, 1001, `${ids[i]} got close code 1001 (Going Away)`)
    t.equal(closed.reason, 'deploying', `${ids[i]} got the configured reason`)
  })
  const lastClosedAt = Math.max(...closes.map((closed) => closed.at))

  const exit = await child.exited()
  t.equal(exit.code, 0)
  t.ok(exit.at - lastClosedAt < PROMPT_MS, `exited ${Math.round(exit.at - lastClosedAt)} ms after the last socket closed (limit ${PROMPT_MS} ms)`)
  t.match(await child.log('closing websockets'), { webSockets: 3, closeTimeoutMs: 1000 })
  t.match(await child.log('websockets closed'), { closed: 3, terminated: 0 })
  t.notOk(child.logs.some((line) => line.msg === 'websockets terminated'), 'none had to be terminated')
  const report = await child.report()
  t.match(report, { outcome: 'completed', exitCode: 0, openRequests: [], errors: [] })
  t.ok(report.phases.closeMs! < PROMPT_MS, `fastify.close() took ${report.phases.closeMs} ms: no upgraded socket held it`)
})

test('a client that never answers the close frame is terminated after closeTimeout; the process still exits 0', async (t) => {
  const child = await startFixture(t, 'websocket-app', { shutdown: { websocket: { closeTimeout: CLOSE_TIMEOUT_MS } } })
  const answering = connect(t, child.port, '/ws?id=answering')
  const silent = connect(t, child.port, '/ws?id=silent')
  await Promise.all([answering.opened, silent.opened])
  await child.message((m) => m.type === 'ws-open' && m.id === 'silent', 'the server side of the silent socket')
  await child.message((m) => m.type === 'ws-open' && m.id === 'answering', 'the server side of the answering socket')
  // It reads nothing from now on, so it never sees the close frame, let alone answers it.
  silent.ws.pause()

  const signalAt = child.signal('SIGTERM')
  t.equal((await answering.closed).code, 1001, 'the other socket closes as usual')
  const closing = await child.log('closing websockets')
  const terminated = await child.log('websockets terminated')
  t.match(terminated, { terminated: 1, closed: 1, terminatedBy: 'close-timeout', closeTimeoutMs: CLOSE_TIMEOUT_MS })
  const waited = (terminated.time as number) - (closing.time as number)
  t.ok(waited >= CLOSE_TIMEOUT_MS - EARLY_MS && waited < CLOSE_TIMEOUT_MS + MARGIN_MS,
    `terminated ${waited} ms after the close frames went out (closeTimeout ${CLOSE_TIMEOUT_MS} ms)`)

  const exit = await child.exited()
  t.equal(exit.code, 0)
  t.ok(exit.at - signalAt < CLOSE_TIMEOUT_MS + MARGIN_MS, `exited ${Math.round(exit.at - signalAt)} ms after SIGTERM (closeTimeout ${CLOSE_TIMEOUT_MS} ms)`)
  t.match(await child.report(), {
    outcome: 'completed',
    exitCode: 0,
    openRequests: [],
    connections: { websocket: { closed: 1, terminated: 1 } }
  }, 'the report says one socket was terminated on purpose')
})

test('a WebSocket whose handshake completes while draining is closed with 1001 as it opens', async (t) => {
  const child = await startFixture(t, 'websocket-app', { shutdown: { websocket: { goodbye: 'bye now' } } })
  const late = connect(t, child.port, '/ws/gated/g?id=late')
  await child.message((m) => m.type === 'handshake-waiting' && m.id === 'g', 'the handshake to wait')

  child.signal('SIGTERM')
  await child.log('listener closed, draining')
  child.send({ type: 'release', id: 'g' })
  await late.opened
  const closed = await late.closed
  t.same(late.messages, ['bye now'])
  t.match(closed, { code: 1001, reason: 'server shutting down' }, 'the default reason')

  t.equal((await child.exited()).code, 0)
  t.match(await child.log('websockets closed'), { closed: 1, terminated: 0 })
  t.match(await child.report(), { outcome: 'completed', exitCode: 0 })
})

// Without the plugin's help a WebSocket is an upgraded socket like any other to Node's server.close(): it
// holds the drain until its deadline, and the force path cuts it and names it.
test('with websocket: false an open WebSocket holds the drain until drainTimeout, and the report names it', async (t) => {
  const child = await startFixture(t, 'websocket-app', { shutdown: { websocket: false, drainTimeout: 300, forceTimeout: 1000 } })
  const client = connect(t, child.port, '/ws?id=held')
  await client.opened
  await child.message((m) => m.type === 'ws-open' && m.id === 'held', 'the server side of the socket')

  child.signal('SIGTERM')
  t.equal((await client.closed).code, 1006, 'cut without a close frame')
  t.equal((await child.exited()).code, 1)
  t.notOk(child.logs.some((line) => line.msg === 'closing websockets'))
  const report = await child.report()
  t.match(report, { outcome: 'forced', forcedBy: 'drain-timeout' })
  t.match(report.openRequests, [{ method: 'GET', url: '/ws?id=held', route: '/ws' }])
})
