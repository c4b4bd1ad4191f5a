import { test, type Test } from 'tap'
import http from 'node:http'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import fastifyShutdown from './helpers/plugin'
import v8 from 'node:v8'
import vm from 'node:vm'
import { appWithShutdown, listenLocally } from './helpers/app'
import { RawConnection, keepAliveAgent } from './helpers/http'
import { bounded } from './helpers/wait'

v8.setFlagsFromString('--expose-gc')
const collectGarbage = vm.runInNewContext('gc') as () => void

/** Resolves once Node has detached the response from its socket: it emits 'close' on the next tick after. */
function detached (raw: http.ServerResponse): Promise<void> {
  return bounded(new Promise((resolve) => raw.once('close', resolve)), 'the response to close')
}

function post (agent: http.Agent, port: number, path: string, body: string): Promise<{ status: number, socket: import('node:net').Socket }> {
  return bounded(new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (response) => {
      response.resume()
      response.on('end', () => resolve({ status: response.statusCode!, socket: request.socket! }))
    })
    request.on('error', reject)
    request.end(body)
  }), `POST ${path}`)
}

test('an idle keep-alive connection holds neither its last request nor that request\'s body', async (t) => {
  const { app } = await appWithShutdown(t, {}, { bodyLimit: 8 * 1024 * 1024 })
  const held: { request?: WeakRef<object>, body?: WeakRef<object>, answered?: Promise<void> } = {}
  app.post('/upload', async (request, reply) => {
    held.request = new WeakRef(request)
    held.body = new WeakRef(request.body as object)
    held.answered = detached(reply.raw)
    return { items: (request.body as unknown[]).length }
  })
  const port = await listenLocally(app)

  const body = JSON.stringify(Array.from({ length: 50_000 }, (_, i) => ({ i, text: 'x'.repeat(16) })))
  const { status, socket } = await post(keepAliveAgent(t), port, '/upload', body)
  t.equal(status, 200)
  await held.answered
  collectGarbage()
  collectGarbage()

  t.notOk(socket.destroyed, 'the connection is still open, idle')
  // Compared as booleans: a failure would otherwise print the whole request.
  t.ok(held.request!.deref() === undefined, 'the request was collected')
  t.ok(held.body!.deref() === undefined, 'its body was collected')
})

test('after a pipelined burst, the idle connection holds none of its requests', async (t) => {
  const { app } = await appWithShutdown(t)
  const requests: WeakRef<object>[] = []
  const answered: Promise<void>[] = []
  let secondArrived!: () => void
  const second = new Promise<void>((resolve) => { secondArrived = resolve })
  app.get('/first', async (request, reply) => {
    requests.push(new WeakRef(request))
    answered.push(detached(reply.raw))
    // Answered only once the request pipelined behind it has run: it is queued behind this response.
    await second
    return 'first'
  })
  app.get('/second', async (request, reply) => {
    requests.push(new WeakRef(request))
    answered.push(detached(reply.raw))
    secondArrived()
    return 'second'
  })
  const port = await listenLocally(app)

  const connection = await RawConnection.open(t, port)
  connection.get('/first')
  connection.get('/second')
  t.same([(await connection.response(0)).body, (await connection.response(1)).body], ['first', 'second'])
  await Promise.all(answered)
  collectGarbage()
  collectGarbage()

  t.equal(connection.closedAt, null, 'the connection is still open, idle')
  t.same(requests.map((request) => request.deref() === undefined), [true, true], 'both requests were collected')
})

// A response whose headers went out before the shutdown cannot take back `Connection: close`: there is none
// to take back. The request pipelined behind it is served, and closes the connection; one pipelined behind
// that, once it has ended, could never be answered and never reaches its handler.
test('in the pre-stop window, a request pipelined behind a response already streaming is served and closes the connection', async (t) => {
  const { app } = await appWithShutdown(t, { preStopDelay: 60_000, gracePeriod: Infinity })
  let streaming!: http.ServerResponse
  let headersOut!: () => void
  const headersSent = new Promise<void>((resolve) => { headersOut = resolve })
  let afterEnded!: () => void
  const afterSent = new Promise<void>((resolve) => { afterEnded = resolve })
  const handled: string[] = []
  app.get('/stream', (_request, reply) => {
    streaming = reply.raw
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/plain' })
    reply.raw.write('first\n', () => headersOut())
  })
  app.get('/after', (_request, reply) => {
    handled.push('/after')
    // With no onSend hook, Fastify stores the headers and ends the response before send() returns.
    reply.send('after')
    afterEnded()
  })
  app.get('/behind', async () => {
    handled.push('/behind')
    return 'behind'
  })
  const port = await listenLocally(app)

  const connection = await RawConnection.open(t, port)
  connection.get('/stream')
  await headersSent
  t.equal((await connection.head(0)).headers.connection, 'keep-alive')
  const report = app.shutdown.start()
  t.equal(app.shutdown.state, 'pre-stop')
  connection.get('/after')
  await bounded(afterSent, 'the response to /after to end, queued behind /stream')
  connection.get('/behind')
  await bounded(new Promise((resolve) => app.server.once('request', resolve)), 'the request to /behind to arrive')
  streaming.end('last\n')

  t.equal((await connection.response(0)).body, 'first\nlast\n')
  const after = await connection.response(1)
  t.equal(after.status, 200)
  t.equal(after.body, 'after')
  t.equal(after.headers.connection, 'close')
  await connection.closed()
  t.equal(connection.responses.length, 2, 'nothing is sent after the response that closes the connection')
  t.same(handled, ['/after'], 'the request behind it never reached its handler')
  void app.shutdown.force()
  await report
})

type CloseIdleCounter = { calls: number }
interface OwnCloseIdle {
  server: (counter: CloseIdleCounter) => FastifyServerOptions
  beforeRegister?: (app: FastifyInstance, counter: CloseIdleCounter) => void
  afterRegister?: (app: FastifyInstance, counter: CloseIdleCounter) => void
}

function countCloseIdle (app: FastifyInstance, counter: CloseIdleCounter): void {
  const own = app.server.closeIdleConnections.bind(app.server)
  app.server.closeIdleConnections = () => { counter.calls++; own() }
}

/** An app's own closeIdleConnections(), put on the server each way an app or a platform does it. */
const OWN_CLOSE_IDLE: Record<string, OwnCloseIdle> = {
  // Fastify's own test of this: it calls the method itself for a serverFactory, and server.close() again.
  'a serverFactory that wraps it': {
    server: (counter) => ({
      serverFactory (handler) {
        const server = http.createServer(handler)
        const own = server.closeIdleConnections.bind(server)
        server.closeIdleConnections = () => { counter.calls++; own() }
        return server
      }
    })
  },
  'a subclass': {
    server: (counter) => ({
      serverFactory (handler) {
        class CountingServer extends http.Server {
          override closeIdleConnections (): void {
            counter.calls++
            super.closeIdleConnections()
          }
        }
        return new CountingServer(handler)
      }
    })
  },
  'an instance property set before register': { server: () => ({}), beforeRegister: countCloseIdle },
  'an instance property set after register': { server: () => ({}), afterRegister: countCloseIdle }
}

/** How often bare Fastify calls it when it closes after one keep-alive request. */
async function callsWithoutThePlugin (t: Test, own: OwnCloseIdle): Promise<number> {
  const counter = { calls: 0 }
  const app = Fastify(own.server(counter))
  own.beforeRegister?.(app, counter)
  own.afterRegister?.(app, counter)
  app.get('/', async () => 'ok')
  const connection = await RawConnection.open(t, await listenLocally(app))
  connection.get('/')
  await connection.response(0)
  await app.close()
  return counter.calls
}

for (const [way, own] of Object.entries(OWN_CLOSE_IDLE)) {
  test(`an app's own closeIdleConnections() (${way}) is called as Fastify calls it, and the idle grace still holds`, async (t) => {
    const fastifyCalls = await callsWithoutThePlugin(t, own)
    t.ok(fastifyCalls >= 1, `bare Fastify calls it ${fastifyCalls} times`)

    const counter = { calls: 0 }
    const app = Fastify(own.server(counter))
    t.teardown(() => app.close())
    own.beforeRegister?.(app, counter)
    await app.register(fastifyShutdown, { handleSignals: false, exit: false, idleCloseDelay: 60_000, drainTimeout: 60_000, gracePeriod: Infinity })
    own.afterRegister?.(app, counter)
    app.get('/', async () => 'ok')
    const connection = await RawConnection.open(t, await listenLocally(app))
    connection.get('/')
    t.equal((await connection.response(0)).status, 200)

    // With no pre-stop window, the listener closes in this turn, and the connection, used just now, is in its grace.
    const report = app.shutdown.start('deploy')
    t.equal(app.server.listening, false, 'the listener is closed')
    t.equal(counter.calls, 0, 'the drain has not called it')
    connection.get('/')
    const rejected = await connection.response(1)
    t.match(rejected, { status: 503, headers: { connection: 'close' } }, 'a request in the grace gets the 503, not a reset')
    await connection.closed()
    t.match(await bounded(report, 'the report'), { outcome: 'completed', exitCode: 0, connections: { http: { closedAfterResponse: 1 } } })
    t.equal(counter.calls, fastifyCalls, 'fastify.close() called it as often as bare Fastify does')
  })
}
