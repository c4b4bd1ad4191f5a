import http from 'node:http'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { bounded } from './wait'

interface Teardown {
  teardown (fn: () => void | Promise<void>): void
}

/**
 * A keep-alive agent like a real client's: it keeps every socket open between requests and never times
 * them out itself, so only the server can end them.
 */
export function keepAliveAgent (t: Teardown): http.Agent {
  const agent = new http.Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())
  return agent
}

export interface Response {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
  /** When the last byte of the body arrived. */
  readonly endAt: number
  readonly socket: net.Socket
}

export interface PendingRequest {
  /** The whole response; rejects with the socket error when the server cuts it off. */
  readonly response: Promise<Response>
  /** Once the status line and headers have arrived. */
  readonly headers: Promise<http.IncomingMessage>
  readonly socket: Promise<net.Socket>
}

export function get (agent: http.Agent | false, port: number, path: string, host = '127.0.0.1'): PendingRequest {
  let onSocket!: (socket: net.Socket) => void
  let onHeaders!: (res: http.IncomingMessage) => void
  let onError!: (err: Error) => void
  const socket = new Promise<net.Socket>((resolve) => { onSocket = resolve })
  const headers = new Promise<http.IncomingMessage>((resolve, reject) => { onHeaders = resolve; onError = reject })
  const response = new Promise<Response>((resolve, reject) => {
    // Taken when assigned: a keep-alive agent detaches the socket from the request once the response ends.
    let assigned: net.Socket
    const req = http.get({ host, port, path, agent }, (res) => {
      onHeaders(res)
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => {
        resolve({ status: res.statusCode!, headers: res.headers, body, endAt: performance.now(), socket: assigned })
      })
      res.on('error', reject)
    })
    req.on('socket', (socket) => {
      assigned = socket
      onSocket(socket)
    })
    req.on('error', (err) => { reject(err); onError(err) })
  })
  // Tests await what they expect; a request the server cuts must not become an unhandled rejection.
  response.catch(() => {})
  headers.catch(() => {})
  // Bounded when a test waits, so a wait never made leaves no timer behind.
  return {
    get response () { return bounded(response, `the response to GET ${path}`) },
    get headers () { return bounded(headers, `the response headers of GET ${path}`) },
    get socket () { return bounded(socket, `a socket for GET ${path}`) }
  }
}

/** Resolves with the moment the socket closed (at once if it already has). */
export function closed (socket: net.Socket): Promise<number> {
  if (socket.destroyed) return Promise.resolve(performance.now())
  return bounded(new Promise((resolve) => socket.once('close', () => resolve(performance.now()))), 'the socket to close')
}

export interface RawResponse {
  readonly status: number
  readonly headers: Record<string, string>
  body: string
  complete: boolean
  endAt: number
}

/**
 * One HTTP/1.1 connection driven by hand, for what `http.Agent` never does: pipelining a request behind
 * one still in flight. Parses the responses in order (Content-Length or chunked bodies).
 */
export class RawConnection {
  readonly responses: RawResponse[] = []
  closedAt: number | null = null
  private buffer = ''
  private current: { response: RawResponse, length: number | 'chunked' } | null = null
  private readonly listeners = new Set<() => void>()

  private constructor (readonly socket: net.Socket) {
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      this.buffer += chunk
      this.parse()
      this.notify()
    })
    socket.on('close', () => {
      this.closedAt = performance.now()
      this.notify()
    })
    socket.on('error', () => {})
  }

  static async open (t: Teardown, port: number): Promise<RawConnection> {
    const socket = net.connect({ host: '127.0.0.1', port })
    t.teardown(() => { socket.destroy() })
    await bounded(new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject)), 'a raw connection')
    return new RawConnection(socket)
  }

  get (path: string): void {
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
  }

  /** The index-th response on this connection once its headers are in. */
  head (index: number): Promise<RawResponse> {
    return this.until(`the headers of response ${index}`, () => this.responses[index])
  }

  /** The index-th response on this connection once its body is complete. */
  response (index: number): Promise<RawResponse> {
    return this.until(`response ${index}`, () => this.responses[index]?.complete ? this.responses[index] : undefined)
  }

  /** When the server closed the connection. */
  closed (): Promise<number> {
    return this.until('the connection to close', () => this.closedAt ?? undefined)
  }

  private until<T> (describe: string, find: () => T | undefined): Promise<T> {
    return bounded(new Promise<T>((resolve, reject) => {
      const check = (): void => {
        const found = find()
        if (found !== undefined) {
          this.listeners.delete(check)
          resolve(found)
        } else if (this.closedAt !== null) {
          this.listeners.delete(check)
          reject(new Error(`the connection closed before ${describe}; got ${JSON.stringify(this.responses)}`))
        }
      }
      this.listeners.add(check)
      check()
    }), describe)
  }

  private notify (): void {
    for (const listener of [...this.listeners]) listener()
  }

  private parse (): void {
    for (;;) {
      if (this.current === null) {
        const headEnd = this.buffer.indexOf('\r\n\r\n')
        if (headEnd === -1) return
        const [statusLine, ...fields] = this.buffer.slice(0, headEnd).split('\r\n')
        this.buffer = this.buffer.slice(headEnd + 4)
        const headers: Record<string, string> = {}
        for (const field of fields) {
          const colon = field.indexOf(':')
          headers[field.slice(0, colon).trim().toLowerCase()] = field.slice(colon + 1).trim()
        }
        const response: RawResponse = { status: Number(statusLine!.split(' ')[1]), headers, body: '', complete: false, endAt: 0 }
        this.responses.push(response)
        const length = headers['transfer-encoding'] === 'chunked' ? 'chunked' : Number(headers['content-length'] ?? 0)
        this.current = { response, length }
      }

      const { response, length } = this.current
      if (length === 'chunked') {
        const sizeEnd = this.buffer.indexOf('\r\n')
        if (sizeEnd === -1) return
        const size = parseInt(this.buffer.slice(0, sizeEnd), 16)
        if (this.buffer.length < sizeEnd + 2 + size + 2) return
        response.body += this.buffer.slice(sizeEnd + 2, sizeEnd + 2 + size)
        this.buffer = this.buffer.slice(sizeEnd + 2 + size + 2)
        if (size > 0) continue
      } else {
        if (this.buffer.length < length) return
        response.body = this.buffer.slice(0, length)
        this.buffer = this.buffer.slice(length)
      }
      response.complete = true
      response.endAt = performance.now()
      this.current = null
    }
  }
}

/** The body `/slow/:id` answers; mirrors `slowBody` in test/fixtures/build-app.js. */
export function slowBody (id: string): string {
  return `${id}:` + 'x'.repeat(256 * 1024) + ':end'
}
