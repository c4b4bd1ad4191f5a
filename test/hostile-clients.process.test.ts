import { test, type Test } from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { startFixture, type LogLine } from './helpers/child'
import { faultTest } from './helpers/fault-matrix'
import { get, keepAliveAgent } from './helpers/http'
import { bounded } from './helpers/wait'

const FIXTURE = 'client-faults-app'
const DRAIN_MS = 500
const FORCE_MS = 1000
/** For tests that must end before any deadline: long enough never to be what ends them. */
const LONG_DRAIN_MS = 8000
/** Slack for a loaded machine on top of a deadline the plugin promises. */
const MARGIN_MS = 250
/** Timers run on the monotonic clock, log times are Date.now(): they can disagree by a few milliseconds. */
const EARLY_MS = 5
/** How soon the process must be gone once nothing holds it any more. */
const PROMPT_MS = 200
/** What `/big/:id` sends; mirrors BIG_BODY_SIZE in the fixture. */
const BIG_BODY_SIZE = 64 * 1024 * 1024
const UPLOAD_SIZE = 2 * 1024 * 1024
const HALF_SENT_IDLE_MS = 300
const UPLOAD_CHUNK_SIZE = 64 * 1024

interface Teardown {
  teardown (fn: () => void | Promise<void>): void
}

/** A client socket driven by hand, recording what the server did to it. */
class RawClient {
  /** Every byte that arrived, the response's head included. */
  received = 0
  /** The status line and headers of the first response, once they have arrived. */
  head = ''
  /** The server ended the connection cleanly (FIN). */
  ended = false
  error: NodeJS.ErrnoException | null = null
  private readonly closed: Promise<number>

  constructor (readonly socket: net.Socket) {
    socket.on('end', () => { this.ended = true })
    socket.on('error', (err) => { this.error = err })
    this.closed = new Promise((resolve) => socket.once('close', () => resolve(performance.now())))
  }

  /** Connects; `paused` reads not a byte until `readToEnd()`. */
  static async open (t: Teardown, port: number, { paused = false } = {}): Promise<RawClient> {
    const socket = new net.Socket()
    if (paused) socket.pause()
    const client = new RawClient(socket)
    t.teardown(() => { socket.destroy() })
    socket.connect({ host: '127.0.0.1', port })
    await bounded(new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject)), 'a raw connection')
    return client
  }

  /** The body bytes that arrived: everything after the head. */
  get bodyBytes (): number {
    return this.received - this.head.length
  }

  /** Reads whatever comes from now on; resolves with when the socket closed. */
  readToEnd (): Promise<number> {
    this.socket.on('data', (chunk: Buffer) => {
      // The head is far smaller than the first chunk: found there, or not at all.
      if (this.received === 0) this.head = chunk.subarray(0, chunk.indexOf('\r\n\r\n') + 4).toString('latin1')
      this.received += chunk.length
    })
    this.socket.resume()
    return bounded(this.closed, 'the server to close the connection')
  }
}

/** Milliseconds between two log lines, by the child's clock. */
function elapsedBetween (from: LogLine, to: LogLine): number {
  return (to.time as number) - (from.time as number)
}

test(faultTest('slowloris'), async (t) => {
  const child = await startFixture(t, FIXTURE, {
    shutdown: { drainTimeout: LONG_DRAIN_MS, forceTimeout: FORCE_MS },
    announceRequestStarts: true
  })
  const slowloris = await RawClient.open(t, child.port)
  slowloris.socket.write('GET /idle HTTP/1.1\r\nHost: 127.0.0.1\r\n')
  await child.message((m) => m.type === 'request begun', 'the server to read the half-sent headers')

  child.signal('SIGTERM')
  const listenerClosed = await child.log('listener closed, draining')
  t.match(listenerClosed, { connections: 1, inFlight: 0 }, 'the server knows the connection, and no request on it')

  const closedAt = await slowloris.readToEnd()
  t.ok(slowloris.ended, 'the server closed the connection')
  t.equal(slowloris.error, null)
  t.equal(slowloris.received, 0, 'and sent nothing on it: no request was accepted')

  const exit = await child.exited()
  t.equal(exit.code, 0)
  t.ok(exit.at - listenerClosed.at < PROMPT_MS,
    `exited ${Math.round(exit.at - listenerClosed.at)} ms after the listener closed (limit ${PROMPT_MS} ms; drainTimeout ${LONG_DRAIN_MS} ms)`)
  t.ok(closedAt <= exit.at, 'the connection closed before the process exited')

  const report = await child.report()
  t.match(report, {
    msg: 'shutdown complete',
    outcome: 'completed',
    exitCode: 0,
    completedRequests: 0,
    rejectedRequests: 0,
    openRequests: [],
    errors: []
  })
  t.notOk('forcedBy' in report, 'nothing was forced')
  t.same(await child.hits(), {}, 'no handler ran')
})

test('a request still arriving when the listener closes gets its 503 while other work drains', async (t) => {
  const child = await startFixture(t, FIXTURE, {
    shutdown: { drainTimeout: LONG_DRAIN_MS, forceTimeout: FORCE_MS },
    announceRequestStarts: true
  })
  const late = await RawClient.open(t, child.port)
  late.socket.write('GET /idle HTTP/1.1\r\nHost: 127.0.0.1\r\n')
  await child.message((m) => m.type === 'request begun', 'the server to read the first half of the headers')
  const slow = get(keepAliveAgent(t), child.port, '/slow/1')
  await child.message((m) => m.type === 'handling' && m.id === '1', 'the handler of /slow/1')

  child.signal('SIGTERM')
  await child.log('listener closed, draining')
  late.socket.write('\r\n')
  await late.readToEnd()
  t.match(late.head, /^HTTP\/1\.1 503 /, 'the request finished arriving after the listener closed, and was refused')
  t.match(late.head, /\r\nconnection: close\r\n/i)

  child.send({ type: 'release', id: '1' })
  t.equal((await slow.response).status, 200, 'the request in flight still finishes')
  t.equal((await child.exited()).code, 0)
  t.match(await child.report(), { outcome: 'completed', completedRequests: 1, rejectedRequests: 1 })
  t.notOk('/idle' in await child.hits(), 'the refused request never reached its handler')
})

// What a runtime can tell of a request still arriving differs: Node sees its first bytes and closes the
// connection once nothing else is left; Bun's native parser says nothing of it and its sockets count no
// bytesRead, so it looks like a connection just opened, kept for idleCloseDelay in case its first request is
// on its way. Either way it never holds the drain to drainTimeout, as it did on Bun when Bun's own
// server.close() waited for the request to arrive.
test('a connection that sent half its headers holds the drain no longer than idleCloseDelay', async (t) => {
  const child = await startFixture(t, FIXTURE, { shutdown: { drainTimeout: LONG_DRAIN_MS, forceTimeout: FORCE_MS, idleCloseDelay: HALF_SENT_IDLE_MS } })
  const half = await RawClient.open(t, child.port)
  half.socket.write('GET /idle HTTP/1.1\r\nHost: 127.0.0.1\r\n')
  const slow = get(keepAliveAgent(t), child.port, '/slow/1')
  await child.message((m) => m.type === 'handling' && m.id === '1', 'the handler of /slow/1')

  child.signal('SIGTERM')
  const listenerClosed = await child.log('listener closed, draining')
  child.send({ type: 'release', id: '1' })
  t.equal((await slow.response).status, 200, 'the request in flight finishes')
  const closedAt = await half.readToEnd()
  t.equal(half.received, 0, 'the half-sent request got nothing: it never arrived whole')

  const exit = await child.exited()
  t.equal(exit.code, 0)
  t.ok(exit.at - listenerClosed.at < HALF_SENT_IDLE_MS + PROMPT_MS,
    `exited ${Math.round(exit.at - listenerClosed.at)} ms after the listener closed (limit idleCloseDelay ${HALF_SENT_IDLE_MS} + ${PROMPT_MS} ms; drainTimeout ${LONG_DRAIN_MS} ms)`)
  t.ok(closedAt <= exit.at, 'the half-sent connection closed before the process exited')
  const report = await child.report()
  t.match(report, { outcome: 'completed', exitCode: 0, completedRequests: 1, rejectedRequests: 0, openRequests: [], errors: [] })
  t.notOk('forcedBy' in report, 'nothing was forced')
})

test(faultTest('slow-upload'), async (t) => {
  const child = await startFixture(t, FIXTURE, { shutdown: { drainTimeout: LONG_DRAIN_MS, forceTimeout: FORCE_MS } })
  const upload = randomBytes(UPLOAD_SIZE)
  const chunks = Array.from({ length: UPLOAD_SIZE / UPLOAD_CHUNK_SIZE }, (_, i) => upload.subarray(i * UPLOAD_CHUNK_SIZE, (i + 1) * UPLOAD_CHUNK_SIZE))
  const request = http.request({
    host: '127.0.0.1',
    port: child.port,
    method: 'POST',
    path: '/upload/1',
    agent: keepAliveAgent(t),
    headers: { 'content-type': 'application/octet-stream', 'content-length': upload.length }
  })
  const response = new Promise<{ res: http.IncomingMessage, body: string, endAt: number }>((resolve, reject) => {
    request.on('response', (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ res, body, endAt: performance.now() }))
    })
    request.on('error', reject)
  })
  response.catch(() => {})
  // Each chunk once the previous one has left for the socket: the server reads at its own pace.
  const send = (chunk: Buffer): Promise<void> => new Promise((resolve, reject) => request.write(chunk, (err) => err ? reject(err) : resolve()))

  const half = chunks.length / 2
  for (const chunk of chunks.slice(0, half)) await send(chunk)
  await child.message((m) => m.type === 'handling' && m.id === '1', 'the handler of /upload/1')

  child.signal('SIGTERM')
  const listenerClosed = await child.log('listener closed, draining')
  t.match(listenerClosed, { inFlight: 1 }, 'the upload is in flight when draining starts')
  for (const chunk of chunks.slice(half)) await send(chunk)
  request.end()

  const { res, body, endAt } = await bounded(response, 'the response to the upload')
  t.equal(res.statusCode, 200)
  t.equal(res.headers.connection, 'close', 'the response tells the client to close')
  t.same(JSON.parse(body), { bytes: upload.length, sha256: createHash('sha256').update(upload).digest('hex') },
    'the server read every byte of the upload')

  const exit = await child.exited()
  t.equal(exit.code, 0)
  t.ok(exit.at - endAt < PROMPT_MS, `exited ${Math.round(exit.at - endAt)} ms after the response ended (limit ${PROMPT_MS} ms)`)
  const report = await child.report()
  t.match(report, { outcome: 'completed', exitCode: 0, completedRequests: 1, rejectedRequests: 0, openRequests: [], errors: [] })
  t.notOk('forcedBy' in report, 'nothing was forced')
})

/**
 * A client asks for `path` and never reads, so most of the response can never leave the server and the drain
 * deadline has to force the shutdown. Checks the exit and its timing, what the client got, and the report.
 */
async function neverReads (t: Test, path: string): Promise<void> {
  const child = await startFixture(t, FIXTURE, { shutdown: { drainTimeout: DRAIN_MS, forceTimeout: FORCE_MS } })
  const client = await RawClient.open(t, child.port, { paused: true })
  client.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
  await child.message((m) => m.type === 'handling' && m.id === '1', `the handler of ${path}`)

  const sentAt = child.signal('SIGTERM')
  const started = await child.log('shutdown started')
  const listenerClosed = await child.log('listener closed, draining')
  t.match(listenerClosed, { inFlight: 1 }, 'the unread response counts as in flight')
  const forcing = await child.log('forcing shutdown')
  t.ok(elapsedBetween(started, forcing) >= DRAIN_MS - EARLY_MS && elapsedBetween(listenerClosed, forcing) < DRAIN_MS + MARGIN_MS,
    `forced ${elapsedBetween(listenerClosed, forcing)} ms after the drain began (drainTimeout ${DRAIN_MS} ms)`)

  const exit = await child.exited()
  t.equal(exit.code, 1)
  t.ok(exit.at - sentAt < DRAIN_MS + FORCE_MS + MARGIN_MS,
    `exited ${Math.round(exit.at - sentAt)} ms after SIGTERM (drainTimeout + forceTimeout = ${DRAIN_MS + FORCE_MS} ms)`)

  // What the kernel had already taken still arrives; the rest died with the process.
  await client.readToEnd()
  t.match(client.head, /^HTTP\/1\.1 200 /)
  t.ok(client.bodyBytes < BIG_BODY_SIZE, `the response was cut off: ${client.bodyBytes} of ${BIG_BODY_SIZE} body bytes arrived`)

  const report = await child.report()
  t.match(report, {
    msg: 'shutdown forced',
    outcome: 'forced',
    forcedBy: 'drain-timeout',
    exitCode: 1,
    completedRequests: 0,
    errors: []
  })
  t.equal(report.openRequests.length, 1)
  t.match(report.openRequests[0], { method: 'GET', url: path, route: '/big/:id' })
  t.ok(report.openRequests[0]!.ageMs >= DRAIN_MS - EARLY_MS, `the open request was ${report.openRequests[0]!.ageMs} ms old`)
}

// The handler has sent the whole body in one write and returned: Node counts the response ended, not
// finished, while the body waits in the socket's buffers. It holds the socket, so it is in flight.
test(faultTest('never-reads'), (t) => neverReads(t, '/big/1'))

test('a client that never reads a streamed response is cut off at drainTimeout too', (t) => neverReads(t, '/big/1?stream=1'))

// Node's own closeIdleConnections() takes this response for done once the handler has ended it, and would
// destroy its socket when the listener closes: a truncated body, and a drain that reports nothing wrong.
test('a large response ended by its handler but still flushing when draining starts is delivered whole', async (t) => {
  const child = await startFixture(t, FIXTURE, { shutdown: { drainTimeout: LONG_DRAIN_MS, forceTimeout: FORCE_MS } })
  const client = await RawClient.open(t, child.port, { paused: true })
  client.socket.write('GET /big/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  await child.message((m) => m.type === 'handling' && m.id === '1', 'the handler of /big/1')

  child.signal('SIGTERM')
  const listenerClosed = await child.log('listener closed, draining')
  t.match(listenerClosed, { inFlight: 1 }, 'the response still flushing counts as in flight')
  const closedAt = await client.readToEnd()

  t.match(client.head, /^HTTP\/1\.1 200 /)
  t.match(client.head, new RegExp(`\r\ncontent-length: ${BIG_BODY_SIZE}\r\n`, 'i'))
  t.equal(client.bodyBytes, BIG_BODY_SIZE, 'the whole body arrived')
  t.ok(client.ended, 'then the server closed the connection')
  const exit = await child.exited()
  t.equal(exit.code, 0)
  t.ok(exit.at - closedAt < PROMPT_MS, `exited ${Math.round(exit.at - closedAt)} ms after the connection closed (limit ${PROMPT_MS} ms)`)
  t.match(await child.report(), { outcome: 'completed', exitCode: 0, completedRequests: 1, openRequests: [], errors: [] })
})

// server.close() stops the headersTimeout check, so a plain Fastify app would wait for this client forever.
test('a direct fastify.close() does not wait for a slowloris connection either', async (t) => {
  const child = await startFixture(t, FIXTURE, { announceRequestStarts: true })
  const slowloris = await RawClient.open(t, child.port)
  slowloris.socket.write('GET /idle HTTP/1.1\r\nHost: 127.0.0.1\r\n')
  await child.message((m) => m.type === 'request begun', 'the server to read the half-sent headers')

  child.send({ type: 'close' })
  const closedAt = await slowloris.readToEnd()
  t.ok(slowloris.ended, 'the server closed the connection')
  t.equal(slowloris.received, 0, 'and sent nothing on it')
  await child.log('close resolved')
  const exit = await child.exited()
  t.equal(exit.code, 0, 'nothing is left to hold the process')
  t.ok(exit.at - closedAt < PROMPT_MS, `exited ${Math.round(exit.at - closedAt)} ms after the connection closed (limit ${PROMPT_MS} ms)`)
})

const IDLE_CONNECTIONS = 10_000
/** Connections opened at a time: quick, yet well inside the listen backlog on a loaded machine. */
const OPEN_BATCH = 250
/** A generous bound on the exit: the promise is a few hundred milliseconds. */
const IDLE_EXIT_MS = 3000
const IDLE_REQUEST = 'GET /idle HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'

/** Keep-alive connections that have each had one request answered; counts what the server does to them later. */
class IdleConnections {
  readonly sockets: net.Socket[] = []
  ended = 0
  closed = 0
  errors = 0
  /** Bytes that arrived after the one response each connection asked for: none are expected. */
  bytesAfterResponse = 0
  private allClosed: () => void = () => {}
  private readonly allClosedAt = new Promise<number>((resolve) => { this.allClosed = () => resolve(performance.now()) })

  constructor (private readonly port: number) {}

  async open (count: number): Promise<void> {
    for (let opened = 0; opened < count; opened += OPEN_BATCH) {
      const batch = Array.from({ length: Math.min(OPEN_BATCH, count - opened) }, () => this.openOne())
      await bounded(Promise.all(batch), `connections ${opened} to ${opened + batch.length}`)
    }
  }

  /** Resolves when every connection has closed, with when the last one did. */
  everyClosed (): Promise<number> {
    return bounded(this.allClosedAt, `all ${this.sockets.length} connections to close (${this.closed} closed so far)`)
  }

  destroy (): void {
    for (const socket of this.sockets) socket.destroy()
  }

  /** Resolves once the response to one request has arrived whole, with status 200 and keep-alive. */
  private openOne (): Promise<void> {
    const socket = net.connect({ host: '127.0.0.1', port: this.port }, () => socket.write(IDLE_REQUEST))
    this.sockets.push(socket)
    socket.setEncoding('latin1')
    return new Promise((resolve, reject) => {
      let response = ''
      const onResponseData = (chunk: string): void => {
        response += chunk
        const headEnd = response.indexOf('\r\n\r\n')
        if (headEnd === -1) return
        const length = Number(/\r\ncontent-length: (\d+)/i.exec(response)?.[1])
        if (response.length < headEnd + 4 + length) return
        socket.off('data', onResponseData).on('data', (late: string) => { this.bytesAfterResponse += late.length })
        if (!response.startsWith('HTTP/1.1 200 ') || !/\r\nconnection: keep-alive\r\n/i.test(response)) {
          reject(new Error(`expected a 200 keep-alive response, got ${JSON.stringify(response)}`))
        }
        resolve()
      }
      socket.on('data', onResponseData)
      socket.once('error', reject)
      socket.on('error', () => { this.errors++ })
      socket.on('end', () => { this.ended++ })
      socket.on('close', () => {
        reject(new Error('the connection closed before its response'))
        if (++this.closed === this.sockets.length) this.allClosed()
      })
    })
  }
}

test(faultTest('idle-10k'), async (t) => {
  const child = await startFixture(t, FIXTURE, { shutdown: { drainTimeout: LONG_DRAIN_MS, forceTimeout: FORCE_MS } })
  const idle = new IdleConnections(child.port)
  t.teardown(() => idle.destroy())
  await idle.open(IDLE_CONNECTIONS)
  t.equal(idle.closed, 0, `${IDLE_CONNECTIONS} keep-alive connections are open, each after one request`)

  // Timed by the child's own log lines: this process takes a while to see 10,000 connections end, and the
  // child's exit queues behind them.
  const signalledAt = Date.now()
  const sentAt = child.signal('SIGTERM')
  const allClosedAt = await idle.everyClosed()
  const exit = await child.exited()
  t.equal(exit.code, 0)
  const exitedAfter = ((await child.log('fixture exit')).time as number) - signalledAt
  t.ok(exitedAfter < IDLE_EXIT_MS, `exited ${exitedAfter} ms after SIGTERM (limit ${IDLE_EXIT_MS} ms); this process saw every connection closed ${Math.round(allClosedAt - sentAt)} ms after it`)
  t.equal(idle.ended, IDLE_CONNECTIONS, 'the server ended every connection (FIN)')
  t.equal(idle.errors, 0, 'none was reset')
  t.equal(idle.bytesAfterResponse, 0, 'nothing more was sent on any: no request was on them')

  const report = await child.report()
  t.match(report, { outcome: 'completed', exitCode: 0, completedRequests: 0, rejectedRequests: 0, openRequests: [], errors: [] })
  t.notOk('forcedBy' in report, 'nothing was forced')
  t.same(await child.hits(), { '/idle': IDLE_CONNECTIONS }, 'every request was answered, once')
})

const NOT_IN_USE_MS = 200
const IDLE_1K_EXIT_MS = 300

test(`1,000 idle keep-alive connections no longer in use: exit 0 within ${IDLE_1K_EXIT_MS} ms of SIGTERM`, async (t) => {
  const child = await startFixture(t, FIXTURE, { shutdown: { idleCloseDelay: NOT_IN_USE_MS } })
  const idle = new IdleConnections(child.port)
  t.teardown(() => idle.destroy())
  await idle.open(1_000)
  // The condition under test, not a wait for its outcome: the last connection's request is older than
  // idleCloseDelay, so none is in use any more.
  await sleep(NOT_IN_USE_MS)

  const signalledAt = Date.now()
  child.signal('SIGTERM')
  await idle.everyClosed()
  const exit = await child.exited()
  t.equal(exit.code, 0)
  const exitedAfter = ((await child.log('fixture exit')).time as number) - signalledAt
  t.ok(exitedAfter < IDLE_1K_EXIT_MS, `exited ${exitedAfter} ms after SIGTERM (limit ${IDLE_1K_EXIT_MS} ms)`)
  t.equal(idle.errors, 0, 'none was reset')
  t.match(await child.report(), { outcome: 'completed', connections: { http: { closedIdle: 1_000, closedAfterGrace: 0 } } })
})
