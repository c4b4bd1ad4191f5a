import { test } from 'tap'
import { holdIdleAndBusySockets } from './helpers/sockets'
import { startFixture } from './helpers/child'
import { closed, get, keepAliveAgent, slowBody } from './helpers/http'

/** How soon after the last response has ended the process (or `close()`) must be done. */
const PROMPT_MS = 100
const PRE_STOP_MS = 1500
/** Timers run on the monotonic clock, log times are Date.now(): they can disagree by a few milliseconds. */
const EARLY_MS = 5

test('during preStopDelay new and reused connections are still served, with Connection: close', async (t) => {
  const child = await startFixture(t, 'app', { shutdown: { preStopDelay: PRE_STOP_MS } })
  const agent = keepAliveAgent(t)
  const idleSocket = (await get(agent, child.port, '/fast').response).socket

  child.signal('SIGTERM')
  const started = await child.log('shutdown started')
  // A keep-alive client of its own, so the `Connection: close` can only come from the server.
  const fresh = await get(keepAliveAgent(t), child.port, '/state').response
  const reused = await get(agent, child.port, '/state').response
  t.notOk(child.logs.some((line) => line.msg === 'listener closed, draining'), 'both answered before the listener closed')

  t.equal(fresh.status, 200, 'a new connection is served')
  t.equal(fresh.headers.connection, 'close')
  t.same(JSON.parse(fresh.body), { state: 'pre-stop', ready: false })
  t.equal(reused.socket, idleSocket, 'the second request reused the idle keep-alive socket')
  t.equal(reused.status, 200)
  t.equal(reused.headers.connection, 'close')
  t.same(JSON.parse(reused.body), { state: 'pre-stop', ready: false })
  await closed(idleSocket)

  const listenerClosed = await child.log('listener closed, draining')
  const delay = (listenerClosed.time as number) - (started.time as number)
  t.ok(delay >= PRE_STOP_MS - EARLY_MS, `the listener closed ${delay} ms after the signal (preStopDelay ${PRE_STOP_MS} ms)`)
  t.equal((await child.exited()).code, 0)
  const report = await child.report()
  t.match(report, { outcome: 'completed', exitCode: 0, completedRequests: 2, rejectedRequests: 0 })
  t.ok(report.phases.preStopMs! >= PRE_STOP_MS - EARLY_MS, `preStopMs is ${report.phases.preStopMs}`)
})

test('two apps in one process both drain on one SIGTERM; the process exits 0 once both are done', async (t) => {
  const child = await startFixture(t, 'two-apps')
  const agent = keepAliveAgent(t)
  const a = get(agent, child.ports.a!, '/slow/1')
  const b = get(agent, child.ports.b!, '/slow/2')
  await child.message((m) => m.type === 'handling' && m.app === 'a' && m.id === '1', 'app a handling /slow/1')
  await child.message((m) => m.type === 'handling' && m.app === 'b' && m.id === '2', 'app b handling /slow/2')

  child.signal('SIGTERM')
  await child.log((line) => line.msg === 'listener closed, draining' && line.app === 'a', 'app a draining')
  await child.log((line) => line.msg === 'listener closed, draining' && line.app === 'b', 'app b draining')

  child.send({ type: 'release', app: 'a', id: '1' })
  const responseA = await a.response
  t.equal(responseA.headers.connection, 'close')
  t.equal(responseA.body, slowBody('1'))
  t.match(await child.report('a'), { outcome: 'completed', exitCode: 0, completedRequests: 1 })
  t.equal(child.exit, null, 'app a is done, but the process waits for app b')

  child.send({ type: 'release', app: 'b', id: '2' })
  const responseB = await b.response
  t.equal(responseB.headers.connection, 'close')
  t.equal(responseB.body, slowBody('2'))
  const exit = await child.exited()
  t.equal(exit.code, 0)
  t.ok(exit.at - responseB.endAt < PROMPT_MS, `exited ${Math.round(exit.at - responseB.endAt)} ms after the last response ended`)
  t.match(await child.report('b'), { outcome: 'completed', exitCode: 0, completedRequests: 1 })
})

// The plugin's own shutdown is not involved: the app calls fastify.close(), and the stream's keep-alive
// socket would hold that close for keepAliveTimeout (72 s) if nothing ended it.
// Without a shutdown of the plugin's own, idle connections close at once, as Fastify closes them: no
// `idleCloseDelay`.
test('fastify.close() called by the app lets the request in flight finish and resolves right after it', async (t) => {
  const child = await startFixture(t, 'app')
  const { idleSocket, release } = await holdIdleAndBusySockets(t, child)

  child.send({ type: 'close' })
  await child.log('fixture preClose')
  await closed(idleSocket)
  t.pass('the idle keep-alive socket was closed')

  const responses = await release()
  t.equal(responses[0].status, 200)
  t.equal(responses[0].headers.connection, 'close', 'the response in flight was told to close')
  t.equal(responses[0].body, slowBody('1'))
  t.equal(responses[1].body, 'first\nlast\n', 'the stream, whose headers were out before close(), finished too')
  const lastResponseEndAt = Math.max(...responses.map((response) => response.endAt))

  const resolved = await child.log('close resolved')
  t.ok(resolved.at - lastResponseEndAt < PROMPT_MS, `close() resolved ${Math.round(resolved.at - lastResponseEndAt)} ms after the last response ended (limit ${PROMPT_MS} ms)`)
  t.equal(resolved.state, 'closed')
  const exit = await child.exited()
  t.equal(exit.code, 0, 'the process then ended by itself: nothing was left holding it open')
  const report = await child.report()
  t.match(report, { msg: 'shutdown complete', trigger: { type: 'manual', reason: 'fastify.close()' }, exitCode: 0 }, 'the direct close is reported')
  t.ok(report.at <= resolved.at, 'before close() resolved: a caller that exits right after still has it')
})
