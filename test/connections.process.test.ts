import { test } from 'tap'
import { faultTest } from './helpers/fault-matrix'
import { holdIdleAndBusySockets } from './helpers/sockets'
import { startFixture } from './helpers/child'
import { closed, get, keepAliveAgent, RawConnection, slowBody } from './helpers/http'
import type { Tally } from '../bench/lib-busy-clients.mjs'

/** How soon after the last response has ended the process must be gone. */
const PROMPT_MS = 100

test('in-flight requests on keep-alive sockets finish with whole bodies and Connection: close', async (t) => {
  const child = await startFixture(t, 'app')
  const agent = keepAliveAgent(t)
  const ids = ['1', '2', '3']
  const requests = ids.map((id) => get(agent, child.port, `/slow/${id}`))
  await Promise.all(ids.map((id) => child.message((m) => m.type === 'handling' && m.id === id, `the handler of /slow/${id}`)))
  const sockets = await Promise.all(requests.map((request) => request.socket))
  t.equal(new Set(sockets).size, ids.length, 'each request holds its own keep-alive socket')

  child.signal('SIGTERM')
  await child.log('listener closed, draining')
  for (const id of ids) child.send({ type: 'release', id })

  const responses = await Promise.all(requests.map((request) => request.response))
  responses.forEach((response, i) => {
    t.equal(response.status, 200, `/slow/${ids[i]} answered 200`)
    t.equal(response.headers.connection, 'close', `/slow/${ids[i]} told the client to close`)
    t.equal(response.body, slowBody(ids[i]!), `/slow/${ids[i]} sent its whole body`)
  })
  await Promise.all(sockets.map((socket) => closed(socket)))
  const lastResponseEndAt = Math.max(...responses.map((response) => response.endAt))

  const exit = await child.exited()
  t.equal(exit.code, 0)
  t.ok(exit.at - lastResponseEndAt < PROMPT_MS, `exited ${Math.round(exit.at - lastResponseEndAt)} ms after the last response ended (limit ${PROMPT_MS} ms)`)
  const report = await child.report()
  t.match(report, {
    msg: 'shutdown complete',
    outcome: 'completed',
    exitCode: 0,
    trigger: { type: 'signal', signal: 'SIGTERM' },
    phases: { preStopMs: Number, drainMs: Number, closeMs: Number },
    completedRequests: 3,
    rejectedRequests: 0,
    openRequests: [],
    errors: [],
    connections: { http: { closedAfterResponse: 3 } }
  })
  t.notOk('forcedBy' in report, 'nothing was forced')
})

// Once the listener closes, Node ends every idle connection, so a request can only reach a draining server
// on a connection that is busy: pipelined behind a response in flight. http.Agent never pipelines, hence a
// hand-driven connection here.
test(faultTest('pipelined'), async (t) => {
  const child = await startFixture(t, 'app', { shutdown: { retryAfter: 7 } })
  const connection = await RawConnection.open(t, child.port)

  // The connection is a used keep-alive one: a first request is served and counted.
  connection.get('/count')
  const served = await connection.response(0)
  t.equal(served.status, 200)
  t.same(JSON.parse(served.body), { hits: 1 }, 'the handler counts its runs')

  // A response whose headers are out before the shutdown keeps the connection open after it, so a
  // request pipelined behind it is read, and answered, while the server drains.
  connection.get('/stream/a')
  const streaming = await connection.head(1)
  t.equal(streaming.headers.connection, 'keep-alive')

  child.signal('SIGTERM')
  await child.log('listener closed, draining')
  connection.get('/count?late=1')
  await child.message((m) => m.type === 'request' && m.url === '/count?late=1', 'the late request to arrive')
  child.send({ type: 'release', id: 'a' })

  t.equal((await connection.response(1)).body, 'first\nlast\n', 'the in-flight stream finished')
  const rejected = await connection.response(2)
  t.equal(rejected.status, 503)
  t.equal(rejected.headers.connection, 'close')
  t.equal(rejected.headers['retry-after'], '7')
  t.match(rejected.headers['content-type'], /^application\/json/)
  const body = JSON.parse(rejected.body)
  t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'])
  t.match(body, { statusCode: 503, code: 'FST_SHUTDOWN_DRAINING', error: 'Service Unavailable', message: String })
  await connection.closed()

  const exit = await child.exited()
  t.equal(exit.code, 0)
  t.same(await child.hits(), { '/count': 1, '/stream/:id': 1 }, 'the late request never reached its handler')
  t.notOk(child.logs.some((line) => line.msg === 'handler ran' && line.url === '/count?late=1'))
  t.match(await child.report(), { outcome: 'completed', completedRequests: 1, rejectedRequests: 1 })
})

test('requests pipelined before the shutdown, whose handlers already ran, all get their responses', async (t) => {
  const child = await startFixture(t, 'app')
  const connection = await RawConnection.open(t, child.port)
  connection.get('/slow/1')
  connection.get('/count')
  // Node answers pipelined requests in order: /count's response waits behind /slow/1's, though its
  // handler has already run.
  await child.message((m) => m.type === 'handling' && m.route === '/count', 'the handler of /count')

  child.signal('SIGTERM')
  await child.log('listener closed, draining')
  child.send({ type: 'release', id: '1' })

  const first = await connection.response(0)
  t.equal(first.body, slowBody('1'))
  t.not(first.headers.connection, 'close', 'Connection: close belongs on the last response queued on the connection')
  const second = await connection.response(1).catch((err: Error) => err)
  t.notOk(second instanceof Error, 'the response of a handler that ran is not dropped')
  if (!(second instanceof Error)) {
    t.equal(second.status, 200)
    t.same(JSON.parse(second.body), { hits: 1 })
  }
  await connection.closed()
  t.equal((await child.exited()).code, 0)
  t.match(await child.report(), { outcome: 'completed', completedRequests: 2 })
})

test('new connections are refused once the listener has closed', async (t) => {
  const child = await startFixture(t, 'app')
  const agent = keepAliveAgent(t)
  t.equal((await get(false, child.port, '/fast').response).status, 200, 'a new connection is served before')

  const held = get(agent, child.port, '/slow/1')
  await child.message((m) => m.type === 'handling' && m.id === '1', 'the handler of /slow/1')
  child.signal('SIGTERM')
  await child.log('listener closed, draining')

  await t.rejects(get(false, child.port, '/fast').response, { code: 'ECONNREFUSED' })
  await t.rejects(get(keepAliveAgent(t), child.port, '/fast').response, { code: 'ECONNREFUSED' })

  child.send({ type: 'release', id: '1' })
  t.equal((await held.response).status, 200, 'the request in flight still finishes')
  t.equal((await child.exited()).code, 0)
  t.same(await child.hits(), { '/fast': 1, '/slow/:id': 1 }, 'no refused request reached a handler')
})

// Fastify 5 alone would wait here for keepAliveTimeout (72 s): nothing closes the stream's socket, whose
// response said `keep-alive` before the shutdown began, once that response has ended. Its client may be
// sending the next request already, so the socket is kept for `idleCloseDelay` (its request would get a 503
// with `Connection: close`), then closed.
test('a response that said keep-alive before the shutdown leaves its socket idleCloseDelay, then the process exits 0', async (t) => {
  const idleCloseDelay = 300
  const child = await startFixture(t, 'app', { shutdown: { idleCloseDelay } })
  const { idleSocket, release } = await holdIdleAndBusySockets(t, child)

  child.signal('SIGTERM')
  await child.log('listener closed, draining')
  await closed(idleSocket)
  t.pass('the idle keep-alive socket was closed by the server')

  const responses = await release()
  t.equal(responses[0].headers.connection, 'close', 'the busy response was told to close')
  t.equal(responses[1].headers.connection, 'keep-alive', 'the stream had sent its headers before the shutdown')
  t.equal(responses[1].body, 'first\nlast\n')
  const lastResponseEndAt = Math.max(...responses.map((response) => response.endAt))

  const exit = await child.exited()
  t.equal(exit.code, 0)
  const afterLast = exit.at - lastResponseEndAt
  t.ok(afterLast < idleCloseDelay + PROMPT_MS, `exited ${Math.round(afterLast)} ms after the last response ended (limit ${idleCloseDelay + PROMPT_MS} ms)`)
  const report = await child.report()
  t.match(report, { outcome: 'completed', completedRequests: 2 })
  // The idle socket is closed at once or after its own grace, depending on how long ago its request came.
  const http = (report.connections as { http: { closedIdle: number, closedAfterGrace: number } }).http
  t.ok(http.closedAfterGrace >= 1 && http.closedIdle + http.closedAfterGrace === 2, `the stream's socket closed after the grace (${JSON.stringify(http)})`)
})

// The benchmark's clients: an ES module, which this CommonJS test can only import dynamically.
const busyClients = import('../bench/lib-busy-clients.mjs')
const ROUNDS = 3
/** Answers the clients get before the SIGTERM: every connection is busy by then. */
const WARM_ANSWERS = 300
/** No client starts a request after this long: the rounds end by themselves. */
const LOAD_LIMIT_MS = 8_000
const PATHS = [...Array(6).fill('/fast'), ...Array(6).fill('/sleep/300')]

function add (into: Tally, from: Tally): void {
  for (const key of ['statuses', 'errors'] as const) {
    for (const [code, n] of Object.entries(from[key])) into[key][code] = (into[key][code] ?? 0) + n
  }
}

// Six connections on a fast route, six on a 300 ms one, each sending its next request the moment its last
// response ends: a connection that owes no response when draining starts is one whose next request is on
// its way. It must be answered (503, Connection: close), never reset.
test(faultTest('busy-keep-alive'), async (t) => {
  const { CLIENT_KINDS, clientVisibleErrorsByCode, runBusyClients } = await busyClients
  for (const kind of CLIENT_KINDS) {
    await t.test(kind, async (t) => {
      const total: Tally = { statuses: {}, errors: {} }
      for (let round = 1; round <= ROUNDS; round++) {
        const child = await startFixture(t, 'app')
        let answers = 0
        let warm!: () => void
        const warmedUp = new Promise<void>((resolve) => { warm = resolve })
        const load = runBusyClients(kind, {
          paths: PATHS,
          port: child.port,
          until: performance.now() + LOAD_LIMIT_MS,
          answered: () => { if (++answers === WARM_ANSWERS) warm() }
        })
        await warmedUp
        child.signal('SIGTERM')
        const tally = await load
        const exit = await child.exited()
        t.equal(exit.code, 0, `${kind}, round ${round}: exit 0`)
        const report = await child.report()
        t.match(report, { outcome: 'completed', openRequests: [], unreadConnections: [] }, `${kind}, round ${round}: completed`)
        t.equal(report.rejectedRequests, tally.statuses['503'] ?? 0, `${kind}, round ${round}: every 503 the server sent was received`)
        add(total, tally)
      }
      t.same(clientVisibleErrorsByCode(total), {}, `${kind}: no ECONNRESET, EPIPE, hang-up or timeout in ${ROUNDS} rounds; only refused connections after the listener closed`)
      t.same(Object.keys(total.statuses).sort(), ['200', '503'], `${kind}: every request sent was answered, 200 or 503`)
      t.comment(`${kind}: ${JSON.stringify(total)}`)
    })
  }
})
