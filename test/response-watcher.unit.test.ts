// The response watcher where the runtime publishes no `http.server.response.finish` (Bun): completions heard from
// each response's own 'finish' event, from the moment a shutdown begins. A real server on 127.0.0.1; Node's
// channel stays unsubscribed throughout, so what is counted here came through the fallback.
import { test } from 'tap'
import diagnostics from 'node:diagnostics_channel'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { ConnectionTracker, type NotedResponse, type NotedSocket } from '../lib/connections'
import { ResponseWatcher } from '../lib/response-watcher'
import { kPipelineTail, kRejected } from '../lib/symbols'
import { RawConnection } from './helpers/http'
import { bounded } from './helpers/wait'

test('without the diagnostics channel: responses owed when the shutdown begins, and those of requests after it, are counted as they finish', async (t) => {
  const held = new Map<string, http.ServerResponse>()
  const arrived = new Map<string, () => void>()
  const server = http.createServer((req, res) => {
    const url = req.url!
    if (url === '/after/rejected') (res as { [kRejected]?: true })[kRejected] = true
    // What the request gate notes: the newest response pipelined behind the one being written.
    if ((req.socket as { _httpMessage?: unknown })._httpMessage !== res) (req.socket as NotedSocket)[kPipelineTail] = new WeakRef(res as NotedResponse)
    held.set(url, res)
    arrived.get(url)?.()
  })
  const servers = new Set<http.Server>()
  const failed = (err: unknown): void => { throw err }
  const connections = new ConnectionTracker(servers, 0, failed, { of: () => undefined })
  connections.addServer(server)
  const finished: { socket: Socket, url: string }[] = []
  let fiveFinished!: () => void
  const allFinished = bounded(new Promise<void>((resolve) => { fiveFinished = resolve }), 'five finished responses')
  const responses = new ResponseWatcher(servers, (socket, response) => {
    finished.push({ socket, url: (response as { req: http.IncomingMessage }).req.url! })
    if (finished.length === 5) fiveFinished()
  }, failed, { owed: () => connections.responsesOwed() })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { connections.detach(); server.closeAllConnections(); server.close() })
  const port = (server.address() as AddressInfo).port
  const handled = (url: string): Promise<void> => held.has(url)
    ? Promise.resolve()
    : bounded(new Promise<void>((resolve) => arrived.set(url, resolve)), `the handler of ${url}`)

  // Before the shutdown: finished, and not counted.
  const early = await RawConnection.open(t, port)
  early.get('/before')
  await handled('/before')
  held.get('/before')!.end('ok')
  await early.response(0)

  // In flight when it begins: one being written and one pipelined behind it on a second connection.
  const first = await RawConnection.open(t, port)
  first.get('/owed')
  await handled('/owed')
  const second = await RawConnection.open(t, port)
  second.get('/current')
  second.get('/pipelined')
  await Promise.all([handled('/current'), handled('/pipelined')])

  responses.begin()
  t.notOk(diagnostics.hasSubscribers('http.server.response.finish'), 'the channel is left alone')
  const late = await RawConnection.open(t, port)
  late.get('/after')
  late.get('/after/rejected')
  await Promise.all([handled('/after'), handled('/after/rejected')])

  for (const url of ['/owed', '/current', '/pipelined', '/after', '/after/rejected']) held.get(url)!.end('ok')
  await Promise.all([first.response(0), second.response(1), late.response(1), allFinished])
  t.same(finished.map(({ url }) => url).sort(), ['/after', '/after/rejected', '/current', '/owed', '/pipelined'], 'each response the shutdown saw finish, told once')
  t.ok(finished.every(({ socket, url }) => socket === held.get(url)!.req.socket), 'with the connection it was written on')
  t.equal(responses.completed, 4, 'a 503 of the drain is no completion')

  late.get('/during')
  await handled('/during')
  responses.end()
  t.equal(server.listenerCount('request'), 1, 'the request listener goes with the shutdown')
  late.get('/after/end')
  await handled('/after/end')
  held.get('/during')!.end('ok')
  held.get('/after/end')!.end('ok')
  await late.response(3)
  t.equal(responses.completed, 4, 'nothing finishing once it has ended is counted, watched before or not')
  t.equal(finished.length, 5)
})
