import { test } from 'tap'
import { EventEmitter } from 'node:events'
import Fastify from 'fastify'
import type { Timers } from '../lib/deadline'
import { GOING_AWAY, WebSocketDrain, webSocketParticipant } from '../lib/websocket-drain'
import { logCapture } from './helpers/log-capture'

const OPTIONS = Object.freeze({ reason: 'bye', closeTimeout: 50, goodbye: 'so long' })

/** Just enough of a `ws` socket: records what it was asked, closes when the test says so. */
class FakeSocket extends EventEmitter {
  readyState = 1
  readonly sent: string[] = []
  closeFrame: [number, string] | null = null
  terminated = false

  send (data: string): void { this.sent.push(data) }
  close (code: number, reason: string): void {
    this.closeFrame = [code, reason]
    this.readyState = 2
  }

  terminate (): void {
    this.terminated = true
    this.finish()
  }

  /** The connection has ended: `ws` emits 'close' then. */
  finish (): void {
    if (this.readyState === 3) return
    this.readyState = 3
    this.emit('close', 1006, Buffer.alloc(0))
  }
}

/** Timers the test runs by hand. */
class FakeTimers implements Timers {
  readonly pending = new Map<number, { fn: () => void, ms: number }>()
  private next = 0

  setTimeout (fn: () => void, ms: number): number {
    this.pending.set(++this.next, { fn, ms })
    return this.next
  }

  clearTimeout (handle: unknown): void {
    this.pending.delete(handle as number)
  }

  /** Runs every pending timer, as if their time had come. */
  fire (): void {
    for (const [handle, { fn }] of [...this.pending]) {
      this.pending.delete(handle)
      fn()
    }
  }
}

/** An app decorated like @fastify/websocket does; `clients` null stands for `clientTracking: false`. */
function setup (clients: FakeSocket[] | null = []) {
  const server = Object.assign(new EventEmitter(), { clients: clients === null ? undefined : new Set(clients) })
  const { stream, lines } = logCapture()
  const app = Fastify({ logger: { stream } })
  app.decorate('websocketServer', server)
  const timers = new FakeTimers()
  const drain = webSocketParticipant(app, OPTIONS, app.log, timers)!
  return { app, server, drain, lines, timers }
}

test('without @fastify/websocket, draining and forcing do nothing', async (t) => {
  const app = Fastify()
  const drain = webSocketParticipant(app, OPTIONS, app.log)!
  t.ok(drain instanceof WebSocketDrain)
  drain.drainStarted()
  drain.forced()
  t.same(drain.reportPart().connections, { closed: 0, terminated: 0 })
  await app.close()
})

test('websocket: false adds no participant', async (t) => {
  t.equal(webSocketParticipant(Fastify(), false, Fastify().log), null)
})

test('with clientTracking: false it warns and leaves the sockets alone', async (t) => {
  const { drain, lines } = setup(null)
  drain.drainStarted()
  t.match(lines, [{ level: 40, msg: /clientTracking: false/ }])
})

test('each open socket gets the goodbye then 1001 with the reason; the timer ends with the last close', async (t) => {
  const sockets = [new FakeSocket(), new FakeSocket()]
  const { drain, lines, timers } = setup(sockets)
  drain.drainStarted()
  for (const socket of sockets) {
    t.same(socket.sent, ['so long'])
    t.same(socket.closeFrame, [GOING_AWAY, 'bye'])
  }
  t.same([...timers.pending.values()].map(({ ms }) => ms), [OPTIONS.closeTimeout], 'one closeTimeout timer for all of them')
  t.match(lines.at(-1), { msg: 'closing websockets', webSockets: 2, closeTimeoutMs: OPTIONS.closeTimeout })
  sockets[0]!.finish()
  t.equal(timers.pending.size, 1, 'still waiting for the second')
  sockets[1]!.finish()
  t.equal(timers.pending.size, 0, 'the timer is cleared by the last close event')
  t.same(drain.reportPart().connections, { closed: 2, terminated: 0 })
  t.match(lines.at(-1), { msg: 'websockets closed', closed: 2, terminated: 0 })
  drain.drainStarted()
  t.same(sockets[0]!.sent, ['so long'], 'a second drainStarted changes nothing')
})

test('a socket already closing gets the deadline but no second close frame', async (t) => {
  const closing = new FakeSocket()
  closing.readyState = 2
  const { drain, lines, timers } = setup([closing])
  drain.drainStarted()
  t.same(closing.sent, [])
  t.equal(closing.closeFrame, null)
  timers.fire()
  t.ok(closing.terminated, 'terminated at closeTimeout')
  t.same(drain.reportPart().connections, { closed: 0, terminated: 1 })
  t.match(lines.at(-1), { level: 40, msg: 'websockets terminated', terminated: 1, terminatedBy: 'close-timeout' })
})

test('a socket that opens while draining is closed as it opens', async (t) => {
  const { server, drain } = setup([])
  drain.drainStarted()
  const late = new FakeSocket()
  server.emit('connection', late, {})
  t.same(late.closeFrame, [GOING_AWAY, 'bye'])
  late.finish()
  t.same(drain.reportPart().connections, { closed: 1, terminated: 0 })
})

test('forced before draining began: every open socket is terminated at once, and later ones are left to the force path', async (t) => {
  const sockets = [new FakeSocket(), new FakeSocket()]
  const { server, drain, lines } = setup(sockets)
  drain.forced()
  t.ok(sockets.every((socket) => socket.terminated))
  t.ok(sockets.every((socket) => socket.closeFrame === null), 'no close frame: no time for a handshake')
  t.same(drain.reportPart().connections, { closed: 0, terminated: 2 })
  t.match(lines.at(-1), { level: 40, msg: 'websockets terminated', terminated: 2, terminatedBy: 'forced' })
  t.equal(server.listenerCount('connection'), 0)
})

test('forced while sockets are closing: those still waiting are terminated, the timer is gone', async (t) => {
  const sockets = [new FakeSocket(), new FakeSocket()]
  const { server, drain, timers } = setup(sockets)
  drain.drainStarted()
  sockets[0]!.finish()
  drain.forced()
  t.equal(timers.pending.size, 0)
  t.ok(sockets[1]!.terminated)
  t.same(drain.reportPart().connections, { closed: 1, terminated: 1 })
  t.equal(server.listenerCount('connection'), 0)
})

test('fastify.close() leaves nothing behind; sockets it still waited for count as closed', async (t) => {
  const sockets = [new FakeSocket()]
  const { server, app, drain, timers } = setup(sockets)
  drain.drainStarted()
  t.equal(timers.pending.size, 1)
  await app.close()
  t.equal(timers.pending.size, 0, 'no timer outlives fastify.close()')
  t.equal(server.listenerCount('connection'), 0, 'no listener either')
  t.same(drain.reportPart().connections, { closed: 1, terminated: 0 })
})
