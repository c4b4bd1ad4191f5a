import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import { bounded } from './wait'

interface Teardown {
  teardown (fn: () => void | Promise<void>): void
}

export interface Closed {
  readonly code: number
  readonly reason: string
  readonly at: number
}

export interface Client {
  readonly ws: WebSocket
  /** Every text message received, in order. */
  readonly messages: string[]
  readonly opened: Promise<void>
  /** The close the client saw: the code and reason of the server's close frame, or 1006 when there was none. */
  readonly closed: Promise<Closed>
  /** Resolves with the first message (already received or to come) equal to `text`. */
  message (text: string): Promise<string>
}

/** A `ws` client, as a browser would use it; terminated in teardown. */
export function connect (t: Teardown, port: number, path: string): Client {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`)
  t.teardown(() => { ws.terminate() })
  const messages: string[] = []
  const waiters = new Set<() => void>()
  ws.on('message', (data) => {
    messages.push(data.toString())
    for (const waiter of [...waiters]) waiter()
  })
  // An abnormal close (1006) comes with an error event; the close event says all the tests need.
  ws.on('error', () => {})
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('close', () => reject(new Error(`${path} closed before it opened`)))
  })
  opened.catch(() => {})
  const closed = new Promise<Closed>((resolve) => {
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), at: performance.now() }))
  })
  return {
    ws,
    messages,
    get opened () { return bounded(opened, `${path} to open`) },
    get closed () { return bounded(closed, `${path} to close`) },
    message (text) {
      return bounded(new Promise<string>((resolve) => {
        const check = (): void => {
          if (!messages.includes(text)) return
          waiters.delete(check)
          resolve(text)
        }
        waiters.add(check)
        check()
      }), `the message ${JSON.stringify(text)} on ${path}`)
    }
  }
}
