import { test } from 'tap'
import http from 'node:http'
import { startFixture } from './helpers/child'
import { bounded } from './helpers/wait'
import { connect } from './helpers/websocket'

/** An event stream read to its end: the events as sent, and whether it ended between two of them. */
interface EventStream {
  readonly events: Promise<{ events: Record<string, string>[], trailing: string }>
  /** Resolves once an event of this type has arrived. */
  event (type: string): Promise<void>
}

function readEvents (port: number, path: string): EventStream {
  let raw = ''
  const waiters = new Set<() => void>()
  const parse = (text: string): Record<string, string>[] => text.split('\n\n').slice(0, -1).map((block) =>
    Object.fromEntries(block.split('\n').map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()])))
  const events = new Promise<{ events: Record<string, string>[], trailing: string }>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path }, (res) => {
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        raw += chunk
        for (const waiter of [...waiters]) waiter()
      })
      res.on('end', () => resolve({ events: parse(raw), trailing: raw.slice(raw.lastIndexOf('\n\n') + 2) }))
      res.on('error', reject)
    }).on('error', reject)
  })
  events.catch(() => {})
  return {
    get events () { return bounded(events, `the end of ${path}`) },
    event (type) {
      return bounded(new Promise<void>((resolve) => {
        const check = (): void => {
          if (!parse(raw).some((event) => event.event === type)) return
          waiters.delete(check)
          resolve()
        }
        waiters.add(check)
        check()
      }), `a ${type} event on ${path}`)
    }
  }
}

test('example app: when draining starts an event stream ends with a bye event, a WebSocket gets the goodbye and 1001', async (t) => {
  const child = await startFixture(t, 'example-app')
  const stream = readEvents(child.port, '/events?everyMs=20')
  const socket = connect(t, child.port, '/echo')
  await socket.opened
  socket.ws.send('hello')
  await socket.message('hello')
  await stream.event('tick')

  child.signal('SIGTERM')
  const { events, trailing } = await stream.events
  t.equal(trailing, '', 'the stream ended between two events')
  t.ok(events.length >= 2, `${events.length} events`)
  t.ok(events.slice(0, -1).every((event) => event.event === 'tick'))
  t.match(events.at(-1), { event: 'bye', retry: '1000', data: '{"reason":"server shutting down"}' })
  t.same(events.map((event) => Number(event.id)), events.map((_, i) => i + 1), 'no event lost or cut')

  const closed = await socket.closed
  t.same(socket.messages.slice(1).map((message) => JSON.parse(message)), [{ type: 'bye', reason: 'server shutting down' }])
  t.match(closed, { code: 1001, reason: 'server shutting down' })

  t.equal((await child.exited()).code, 0)
  t.match(await child.report(), { outcome: 'completed', openRequests: [], errors: [] })
})
