import { test } from 'tap'
import type { ClientHttp2Session } from 'node:http2'
import { startFixture } from './helpers/child'
import { slowBody } from './helpers/http'
import { HoldingRelay, openSession, request } from './helpers/http2'

/** How soon after the last response has ended the process must be gone. */
const PROMPT_MS = 100
/** From SIGTERM to exit with nothing in flight: far below `http2SessionTimeout` (72 s) and `drainTimeout` (10 s). */
const IDLE_EXIT_MS = 500
const DRAIN_MS = 300
/** Timers run on the monotonic clock, ages on Date.now(): they can disagree by a few milliseconds. */
const EARLY_MS = 5
/** HTTP/2 error codes (RFC 9113, section 7). */
const NO_ERROR = 0
const REFUSED_STREAM = 7

/**
 * The code a client session gives a new stream after a GOAWAY: Node before 24 throws it from `request()`,
 * Node 24 and later emit it on the stream.
 */
function newStreamError (session: ClientHttp2Session): Promise<string | undefined> {
  try {
    const stream = session.request({ ':path': '/fast' })
    return new Promise((resolve) => stream.once('error', (err: NodeJS.ErrnoException) => resolve(err.code)))
  } catch (err) {
    return Promise.resolve((err as NodeJS.ErrnoException).code)
  }
}

for (const tls of [true, false]) {
  const mode = tls ? 'h2 over TLS' : 'h2c'

  test(`${mode}: a request in flight finishes after the GOAWAY, a new stream is refused, exit 0 at once`, async (t) => {
    const child = await startFixture(t, 'http2-app', { tls })
    // The server's bytes can be held here, so the client opens a stream after the server has sent its GOAWAY.
    const relay = await HoldingRelay.open(t, child.port)
    const client = await openSession(t, relay.port, tls)
    const slow = request(client.session, '/slow/1')
    await child.message((m) => m.type === 'handling' && m.id === '1', 'the handler of /slow/1')

    const held = relay.hold()
    child.signal('SIGTERM')
    t.match(await child.log('shutdown started'), { inFlight: 1 }, 'the stream counts as in flight')
    t.match(await child.log('closing http2 sessions'), { sessions: 1, openStreams: 1 })
    await held
    const late = request(client.session, '/fast')
    relay.release()

    const goaway = await client.goaway
    t.equal(goaway.code, NO_ERROR, 'the GOAWAY is a graceful one')
    t.equal(goaway.lastStreamID, 1, 'it promises to finish stream 1, the request in flight')
    const refused = await late.response.then(() => null, (err: NodeJS.ErrnoException) => err)
    t.ok(refused, 'the stream opened after the GOAWAY gets no response')
    t.equal(late.stream.rstCode, REFUSED_STREAM, 'it is refused (REFUSED_STREAM): safe to retry elsewhere')
    t.equal(await newStreamError(client.session), 'ERR_HTTP2_GOAWAY_SESSION', 'no new stream once the client knows')

    child.send({ type: 'release', id: '1' })
    const response = await slow.response
    t.equal(response.status, 200)
    t.equal(response.body, slowBody('1'), 'the whole body')
    await client.closed

    const exit = await child.exited()
    t.equal(exit.code, 0)
    t.ok(exit.at - response.endAt < PROMPT_MS, `exited ${Math.round(exit.at - response.endAt)} ms after the response ended (limit ${PROMPT_MS} ms)`)
    t.same(await child.hits(), { '/slow/:id': 1 }, 'the refused stream never reached a handler')
    t.match(await child.log('http2 sessions closed'), { closed: 1 })
    t.match(await child.report(), {
      outcome: 'completed',
      exitCode: 0,
      completedRequests: 1,
      rejectedRequests: 0,
      openRequests: [],
      errors: [],
      connections: { http2: { destroyed: 0 } }
    })
  })

  test(`${mode}: an idle session does not hold the process`, async (t) => {
    const child = await startFixture(t, 'http2-app', { tls })
    const client = await openSession(t, child.port, tls)
    t.equal((await request(client.session, '/fast').response).status, 200)

    const signalAt = child.signal('SIGTERM')
    t.equal((await client.goaway).code, NO_ERROR)
    await client.closed
    t.pass('the server ended the idle session')
    const exit = await child.exited()
    t.equal(exit.code, 0)
    t.ok(exit.at - signalAt < IDLE_EXIT_MS, `exited ${Math.round(exit.at - signalAt)} ms after SIGTERM (limit ${IDLE_EXIT_MS} ms)`)
    t.match(await child.report(), { outcome: 'completed', completedRequests: 0, openRequests: [] })
  })

  test(`${mode}: the force path names every stream it cuts, several on one session`, async (t) => {
    const child = await startFixture(t, 'http2-app', { tls, shutdown: { drainTimeout: DRAIN_MS, forceTimeout: 1000 } })
    const client = await openSession(t, child.port, tls)
    const stuck = ['1', '2'].map((id) => request(client.session, `/stuck/${id}?n=${id}`))
    const fast = request(client.session, '/fast')
    await Promise.all(['1', '2'].map((id) => child.message((m) => m.type === 'handling' && m.id === id, `the handler of /stuck/${id}`)))
    t.equal((await fast.response).status, 200, 'a request on the same session was answered meanwhile')

    child.signal('SIGTERM')
    t.match(await child.log('shutdown started'), { inFlight: 2 }, 'both streams count as in flight, the finished one not')
    t.match(await child.log('destroying http2 sessions'), { sessions: 1, openStreams: 2 })
    for (const pending of stuck) await t.rejects(pending.response, 'the stuck stream is cut')
    t.equal((await child.exited()).code, 1)

    const report = await child.report()
    t.match(report, { outcome: 'forced', forcedBy: 'drain-timeout', exitCode: 1, completedRequests: 0 })
    const open = [...report.openRequests].sort((a, b) => a.url.localeCompare(b.url))
    t.match(open, [
      { method: 'GET', url: '/stuck/1?n=1', route: '/stuck/:id' },
      { method: 'GET', url: '/stuck/2?n=2', route: '/stuck/:id' }
    ])
    t.ok(open.every((request) => request.ageMs >= DRAIN_MS - EARLY_MS), `the cut requests were ${open.map((request) => request.ageMs).join(' and ')} ms old`)
  })
}
