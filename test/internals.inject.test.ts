// Canaries: one test per private internal of Node or Fastify that lib/internals.ts reads, run on every Node
// line CI runs. Each fails with the internal's name when a release changes it, so CI catches the change
// before a user's deploy does. The fallbacks each internal has are tested below them.
import { test } from 'tap'
import dns from 'node:dns'
import http from 'node:http'
import net from 'node:net'
import Fastify from 'fastify'
import { bunNativeServer, closesConnection, connectionState, secondaryServers, stopListening } from '../lib/internals'
import { bounded } from './helpers/wait'

/** One request on a keep-alive connection; the handler's view of its socket and response, then the idle socket. */
async function exchange (headers: Record<string, string> = {}): Promise<{ during: { owed: unknown, state: string, response: http.ServerResponse }, idle: net.Socket, server: http.Server }> {
  let during!: { owed: unknown, state: string, response: http.ServerResponse }
  const server = http.createServer((req, res) => {
    const socket = req.socket as net.Socket & { _httpMessage?: unknown }
    during = { owed: socket._httpMessage, state: connectionState(socket, true), response: res }
    res.end('ok')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const agent = new http.Agent({ keepAlive: true })
  const idle = await bounded(new Promise<net.Socket>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, agent, headers }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.socket))
    }).on('error', reject)
  }), 'the response')
  agent.destroy()
  return { during, idle, server }
}

test('socket._httpMessage: the response a connection owes, null once it is done', async (t) => {
  let serverSocket!: net.Socket & { _httpMessage?: unknown }
  const server = http.createServer((req, res) => {
    serverSocket = req.socket
    t.equal(serverSocket._httpMessage, res, 'socket._httpMessage is the response being written (internal changed: socket._httpMessage)')
    res.end('ok')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const agent = new http.Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())
  await bounded(new Promise<void>((resolve) => {
    http.get({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, agent }, (res) => { res.resume(); res.on('end', resolve) })
  }), 'the response')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(serverSocket._httpMessage, null, 'socket._httpMessage is null on an idle keep-alive connection (internal changed: socket._httpMessage)')
  t.equal(connectionState(serverSocket, true), 'idle')
})

test('socket.parser: there while the connection speaks HTTP/1', async (t) => {
  const { during, server } = await exchange()
  t.teardown(() => { server.closeAllConnections(); server.close() })
  t.equal(during.state, 'responding', 'a connection writing its response is responding (internal changed: socket.parser or socket._httpMessage)')
  let upgraded!: net.Socket & { parser?: unknown }
  server.on('upgrade', (_req, socket) => { upgraded = socket as net.Socket; socket.end('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n') })
  await bounded(new Promise<void>((resolve) => {
    http.get({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, headers: { connection: 'upgrade', upgrade: 'test' } }).on('upgrade', (_res, socket) => { socket.destroy(); resolve() })
  }), 'the upgrade')
  t.notOk(upgraded.parser, 'an upgraded connection has no parser (internal changed: socket.parser)')
  t.equal(connectionState(upgraded, true), 'other', 'an upgraded connection is never closed as idle')
})

test('response._last: Node ends the connection after this response', async (t) => {
  const keptAlive = await exchange()
  t.teardown(() => { keptAlive.server.closeAllConnections(); keptAlive.server.close() })
  t.equal((keptAlive.during.response as { _last?: unknown })._last, false, 'a keep-alive response has _last false (internal changed: response._last)')
  t.equal(closesConnection(keptAlive.during.response), false)
  const closing = await exchange({ connection: 'close' })
  t.teardown(() => { closing.server.close() })
  t.equal((closing.during.response as { _last?: unknown })._last, true, 'a response to Connection: close has _last true (internal changed: response._last)')
  t.equal(closesConnection(closing.during.response), true)
})

/** A server with one keep-alive connection that has had its response and is idle: the server's side of it. */
async function idleConnection (): Promise<{ server: http.Server, idle: net.Socket, client: net.Socket }> {
  const server = http.createServer((_req, res) => { res.end('ok') })
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  client.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  await bounded(new Promise((resolve) => client.once('data', resolve)), 'the response')
  return { server, idle: await accepted, client }
}

test('http.Server#close() reaps idle connections through closeIdleConnections(); net.Server#close() alone does not', async (t) => {
  const closing = await idleConnection()
  t.teardown(() => closing.client.destroy())
  let calls = 0
  closing.server.closeIdleConnections = () => { calls++ }
  const closingDone = new Promise<void>((resolve) => { closing.server.close(() => resolve()) })
  t.equal(calls, 1, 'server.close() calls the instance\'s closeIdleConnections() (internal changed: http.Server#close())')
  closing.client.destroy()
  await bounded(closingDone, 'the server to close')

  const kept = await idleConnection()
  t.teardown(() => kept.client.destroy())
  let reaped = 0
  kept.server.closeIdleConnections = () => { reaped++ }
  let listenerClosed = false
  const closed = new Promise<void>((resolve) => { stopListening(kept.server, () => { listenerClosed = true; resolve() }) })
  t.equal(kept.server.listening, false, 'stopListening() stops the listener at once')
  t.equal(reaped, 0, 'and reaps nothing')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(kept.idle.destroyed, false, 'the idle keep-alive connection is still open')
  t.equal(listenerClosed, false, 'and the server has not closed while it is')
  kept.client.destroy()
  await bounded(closed, 'the server to close once its last connection ends')
  t.equal(reaped, 0, 'closeIdleConnections() was never called')
})

test('Fastify keeps the servers of the other addresses under Symbol(fastify.serverBindings)', async (t) => {
  // Fastify asks dns.lookup for every address of the host: answer as Docker's /etc/hosts would.
  const lookup = dns.lookup
  t.teardown(() => { dns.lookup = lookup })
  dns.lookup = ((hostname: string, options: unknown, callback: (...args: unknown[]) => void) => {
    if (hostname !== 'localhost') return (lookup as (...args: unknown[]) => void)(hostname, options, callback)
    const addresses = [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }]
    const all = typeof options === 'object' && options !== null && (options as { all?: boolean }).all === true
    const cb = typeof options === 'function' ? options as (...args: unknown[]) => void : callback
    if (all) cb(null, addresses)
    else cb(null, addresses[0].address, addresses[0].family)
  }) as typeof dns.lookup
  const app = Fastify()
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: 'localhost' })
  t.equal(app.addresses().length, 2, 'Fastify listens on both addresses')
  const secondary = secondaryServers(app)
  t.ok(Array.isArray(secondary), 'Symbol(fastify.serverBindings) holds an array (internal changed: fastify.serverBindings)')
  t.equal(secondary?.length, 1, 'with the server of the other address (internal changed: fastify.serverBindings)')
  t.ok(secondary?.[0] instanceof http.Server)
})

test('fallbacks: a connection whose internals are gone is never closed as idle; _last falls back to the header', async (t) => {
  const bare = new net.Socket() as net.Socket & { parser?: object }
  bare.parser = {}
  t.equal(connectionState(bare, false), 'idle', 'a new connection with a parser, before its first response')
  t.equal(connectionState(bare, true), 'other', 'one that carried a request and has no _httpMessage: unknown, left alone')
  delete bare.parser
  t.equal(connectionState(bare, false), 'other', 'no parser: not HTTP/1, left alone')
  bare.destroy()

  const headerOnly = (value: string | undefined): http.ServerResponse => ({ headersSent: true, getHeader: () => value }) as unknown as http.ServerResponse
  t.equal(closesConnection(headerOnly('close')), true)
  t.equal(closesConnection(headerOnly('keep-alive')), false)
  t.equal(closesConnection(headerOnly(undefined)), false)
  t.equal(closesConnection({ headersSent: false, _last: true } as unknown as http.ServerResponse), false, 'nothing is decided before the headers are')
  t.same(secondaryServers(Fastify()), [], 'an instance that has not listened has none')
  const hidden = Object.create(null)
  t.equal(secondaryServers(hidden), null, 'no such symbol: null, and the plugin warns at listen')
})

test('a server that is no net.Server, with a native one behind it as Bun has: stopListening() closes it without the native reaping', async (t) => {
  t.equal(bunNativeServer(http.createServer()), null, 'Node has none (test/internals.process.test.ts checks Bun\'s under Bun)')
  let reaped = 0
  class Native { closeIdleConnections (): void { reaped++ } }
  const native = new Native()
  const bunLike = {
    [Symbol('::bunternal::')]: native,
    close (callback: () => void): void {
      native.closeIdleConnections()
      callback()
    }
  } as unknown as http.Server
  t.equal(bunNativeServer(bunLike), native)
  let closed = false
  stopListening(bunLike, () => { closed = true })
  t.ok(closed, 'closed through its own close()')
  t.equal(reaped, 0, 'which reaped nothing')
  native.closeIdleConnections()
  t.equal(reaped, 1, 'and the native method is back')
  t.equal(bunNativeServer({ [Symbol('::bunternal::')]: {} } as unknown as http.Server), null, 'a native server without the method: none')
})
