import fs from 'node:fs'
import http2 from 'node:http2'
import net from 'node:net'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { bounded } from './wait'

interface Teardown {
  teardown (fn: () => void | Promise<void>): void
}

/** The certificate of test/fixtures/http2-app.js in TLS mode, self-signed for 127.0.0.1; trusted by the client. */
const CA = fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'tls', 'cert.pem'))

export interface Session {
  readonly session: http2.ClientHttp2Session
  /** The GOAWAY the server sent: its error code and the last stream it will process. */
  readonly goaway: Promise<{ code: number, lastStreamID: number, at: number }>
  /** When the session closed. */
  readonly closed: Promise<number>
}

/** An HTTP/2 session to 127.0.0.1:port, over TLS or cleartext; destroyed in teardown. */
export async function openSession (t: Teardown, port: number, tls: boolean): Promise<Session> {
  const session = http2.connect(`${tls ? 'https' : 'http'}://127.0.0.1:${port}`, tls ? { ca: CA } : {})
  t.teardown(() => { session.destroy() })
  const goaway = new Promise<{ code: number, lastStreamID: number, at: number }>((resolve) => {
    session.once('goaway', (code, lastStreamID) => resolve({ code, lastStreamID, at: performance.now() }))
  })
  const closed = new Promise<number>((resolve) => session.once('close', () => resolve(performance.now())))
  // A session the server ends may report it as an error; tests look at what they expect.
  session.on('error', () => {})
  await bounded(new Promise((resolve, reject) => session.once('connect', resolve).once('error', reject)), 'an HTTP/2 session')
  return {
    session,
    get goaway () { return bounded(goaway, 'a GOAWAY from the server') },
    get closed () { return bounded(closed, 'the HTTP/2 session to close') }
  }
}

export interface Http2Response {
  readonly status: number
  readonly body: string
  readonly endAt: number
}

export interface PendingStream {
  readonly stream: http2.ClientHttp2Stream
  /** The whole response; rejects with the stream's error when the server refuses or cuts it. */
  readonly response: Promise<Http2Response>
}

export function request (session: http2.ClientHttp2Session, urlPath: string): PendingStream {
  const stream = session.request({ ':path': urlPath })
  const response = new Promise<Http2Response>((resolve, reject) => {
    let status = 0
    let body = ''
    stream.setEncoding('utf8')
    stream.on('response', (headers) => { status = headers[':status'] as number })
    stream.on('data', (chunk: string) => { body += chunk })
    stream.on('end', () => {
      if (status !== 0) resolve({ status, body, endAt: performance.now() })
      else reject(Object.assign(new Error(`stream ended without a response, code ${stream.rstCode}`), { rstCode: stream.rstCode }))
    })
    stream.on('error', reject)
    // A stream closed without an error or an end, e.g. with RST_STREAM: say how.
    stream.on('close', () => reject(Object.assign(new Error(`stream closed with code ${stream.rstCode}`), { rstCode: stream.rstCode })))
  })
  response.catch(() => {})
  return {
    stream,
    get response () { return bounded(response, `the HTTP/2 response to ${urlPath}`) }
  }
}

/**
 * A TCP relay for one client connection that can hold back what the server sends: the client then cannot
 * know about a GOAWAY the server has already sent, and opens a stream the server must refuse. It never reads
 * the bytes, so it works the same over TLS.
 */
export class HoldingRelay {
  private client: net.Socket | null = null
  private upstream: net.Socket | null = null
  private held: Buffer[] | null = null
  private onHeld: (() => void) | null = null
  /** The server ended its side while bytes were held: the client gets the end after them. */
  private endHeld = false

  private constructor (private readonly server: net.Server, readonly port: number) {}

  static async open (t: Teardown, targetPort: number): Promise<HoldingRelay> {
    const server = net.createServer()
    server.listen(0, '127.0.0.1')
    await bounded(new Promise((resolve) => server.once('listening', resolve)), 'the relay to listen')
    const relay = new HoldingRelay(server, (server.address() as net.AddressInfo).port)
    server.once('connection', (client) => relay.relay(client, net.connect(targetPort, '127.0.0.1')))
    t.teardown(() => relay.close())
    return relay
  }

  /**
   * From now on, what the server sends is kept here. Resolves once some has arrived: on a session with no
   * response under way, that is the server's GOAWAY.
   */
  hold (): Promise<void> {
    this.held = []
    return bounded(new Promise<void>((resolve) => { this.onHeld = resolve }), 'bytes from the server to hold')
  }

  /** Sends the client what was held, and from now on everything as it comes. */
  release (): void {
    const held = this.held ?? []
    this.held = null
    for (const chunk of held) this.client?.write(chunk)
    if (this.endHeld) this.client?.end()
  }

  private relay (client: net.Socket, upstream: net.Socket): void {
    this.client = client
    this.upstream = upstream
    client.on('error', () => {})
    upstream.on('error', () => {})
    client.on('data', (chunk: Buffer) => upstream.write(chunk))
    client.on('end', () => upstream.end())
    client.on('close', () => upstream.destroy())
    upstream.on('data', (chunk: Buffer) => {
      if (this.held === null) {
        client.write(chunk)
        return
      }
      this.held.push(chunk)
      this.onHeld?.()
      this.onHeld = null
    })
    upstream.on('end', () => {
      if (this.held === null) client.end()
      else this.endHeld = true
    })
  }

  private close (): void {
    this.client?.destroy()
    this.upstream?.destroy()
    this.server.close()
  }
}
