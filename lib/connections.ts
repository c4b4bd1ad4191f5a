import type { Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { Server as TlsServer } from 'node:tls'
import type { FastifyBaseLogger, FastifyInstance, FastifyReply } from 'fastify'
import type { ConnectionsOutcome, OpenRequest, UnreadConnection } from '../types'
import { closesConnection, connectionState, requestOf, responseOwed, secondaryServers, stopListening } from './internals'
import type { RequestTelemetry } from './shutdown-telemetry'
import type { RouteNames } from './route-names'
import { kArrivedAt, kLastRequestAt, kNotedContext, kNotedReply, kNotedRequest, kPipelineTail } from './symbols'

/** What the plugin notes about a request: on its response with HTTP/1, its stream with HTTP/2. */
export interface RequestNotes {
  [kNotedReply]?: FastifyReply
  [kNotedRequest]?: { readonly method?: string, readonly url?: string }
  [kArrivedAt]?: number
  [kNotedContext]?: RequestTelemetry['context']
}

/** An HTTP/1 response, with what the plugin noted about its request. */
export type NotedResponse = ServerResponse & RequestNotes

/** A connection, with what the request gate noted about it. */
export interface NotedSocket extends Socket {
  /** When its last request arrived, in `Date.now()` milliseconds. */
  [kLastRequestAt]?: number
  /** The newest response pipelined behind the one being written, held weakly. */
  [kPipelineTail]?: WeakRef<NotedResponse>
}

/** Requests in flight that a connection cannot show by itself: HTTP/2 streams, many to a connection. */
export interface StreamRequests {
  readonly inFlight: number
  openRequests (now: number): OpenRequest[]
  openRequestTelemetry (): RequestTelemetry[]
}

/** How a connection the tracker closes ends; anything else ended by a response, its client or a participant. */
type Closing = 'closedIdle' | 'closedAfterGrace' | 'destroyed'

interface Connection {
  readonly connectedAt: number
  /** When a response left it idle after the shutdown began, in `Date.now()` milliseconds. */
  idleSince?: number
  /** Set once the drain decides how this connection ends. */
  closing?: Closing
  inGrace?: true
}

interface Grace {
  readonly socket: NotedSocket
  /** Closed at this time (`Date.now()`) unless a request arrives first. */
  readonly endsAt: number
  /** `bytesRead` when the grace began: more since means a request is arriving. */
  readonly bytesWhenIdle: number
}

/**
 * Knows every open connection of the servers Fastify listens on, and closes the idle HTTP/1 ones when draining
 * starts without racing a client's next request:
 * - a connection whose last response carried `Connection: close` closes by itself;
 * - one not in use for `idleCloseDelay` is closed at once;
 * - one in use more recently is kept for the rest of that time (the grace): a request it sends gets the drain
 *   hook's 503 with `Connection: close`, and the connection is closed when the grace ends;
 * - one with a request arriving is kept while other work drains, so that request still gets its answer, and
 *   is closed once nothing else is left.
 * Before closing, it lets the event loop read what the kernel already holds: a request already received is
 * answered, never reset.
 *
 * Tracking connections rather than requests keeps the cost off the request path: a keep-alive connection
 * carries many requests for one `close` listener.
 */
export class ConnectionTracker {
  private readonly connections = new Map<NotedSocket, Connection>()
  private readonly untrackers: (() => void)[] = []
  /** In the grace, by the time it ends. */
  private readonly grace: Grace[] = []
  private graceTimer: NodeJS.Timeout | null = null
  /** To be closed on the event loop's next turn, if nothing has arrived on them by then. */
  private readonly quietCheck = new Map<NotedSocket, number>()
  private quietCheckScheduled = false
  /** Spared because a request is arriving on them; closed once nothing else is left. */
  private readonly awaitingRequest = new Set<NotedSocket>()
  private closing = false
  private draining = false
  /** Set by `closeIdleWithoutGrace()`: a direct `fastify.close()`. */
  private graceful = true
  private readonly ended: { -readonly [K in keyof ConnectionsOutcome]: ConnectionsOutcome[K] } = {
    closedIdle: 0, closedAfterGrace: 0, closedAfterResponse: 0, destroyed: 0
  }

  readonly unread: UnreadConnection[] = []

  constructor (
    /** Shared with the completion watcher, which hears of responses only from these. */
    private readonly servers: Set<Server>,
    private readonly idleCloseDelay: number,
    /** Called with what the tracker's own code throws inside a Node callback, which it never lets escape. */
    private readonly failed: (err: unknown, during: string) => void,
    private readonly routes: Pick<RouteNames, 'of'>,
    private readonly streams: StreamRequests | null = null
  ) {}

  /** Tracks the connections this server accepts from now on. */
  addServer (server: Server): void {
    if (this.servers.has(server)) return
    this.servers.add(server)
    const event = server instanceof TlsServer ? 'secureConnection' : 'connection'
    server.on(event, this.track)
    this.untrackers.push(() => { server.removeListener(event, this.track) })
  }

  /**
   * `onListen`: the servers Fastify opened for the other addresses of the host name it listens on drain like
   * the first.
   */
  addSecondaryServers (fastify: FastifyInstance, log: FastifyBaseLogger): void {
    const secondary = secondaryServers(fastify)
    if (secondary !== null) {
      for (const server of secondary) this.addServer(server)
      return
    }
    const addresses = fastify.addresses()
    if (addresses.length > 1) {
      log.warn({ addresses }, 'fastify listens on several addresses and this version hides their servers: only fastify.server drains; listen on one host')
    }
  }

  detach (): void {
    for (const untrack of this.untrackers.splice(0)) untrack()
    this.clearGraceTimer()
  }

  get size (): number {
    return this.connections.size
  }

  get inFlight (): number {
    let busy = this.streams === null ? 0 : this.streams.inFlight
    for (const _socket of this.busySockets()) busy++
    return busy
  }

  outcome (): ConnectionsOutcome {
    const ended = { ...this.ended }
    // A listener closes as soon as its last connection is destroyed, a turn before that connection's 'close'.
    for (const [socket, connection] of this.connections) {
      if (this.closing && socket.destroyed) ended[connection.closing ?? 'closedAfterResponse']++
    }
    return ended
  }

  /**
   * Stops every listener and closes the idle connections; resolves once each listener has closed, which it
   * does when its last connection has ended.
   */
  closeListeners (): Promise<void> {
    const closed = Promise.all([...this.servers].map((server) => new Promise<void>((resolve) => {
      stopListening(server, resolve)
    })))
    this.closeIdleConnections()
    return closed.then(() => {})
  }

  /**
   * The responses the busy connections owe: each one's current response and the newest pipelined behind it
   * (one between the two is out of sight).
   */
  * responsesOwed (): Generator<[Socket, ServerResponse]> {
    for (const socket of this.busySockets()) {
      const current = responseOwed(socket)!
      yield [socket, current]
      const last = lastResponseOwed(socket)
      if (last !== current) yield [socket, last]
    }
  }

  /**
   * Asks the last response each busy connection owes to carry `Connection: close`, so that it ends after it.
   * The last, not the current one: Node drops responses queued behind a `Connection: close` response, and
   * requests pipelined behind the current one have run their handlers already.
   */
  closeAfterCurrentResponses (): void {
    this.closing = true
    for (const socket of this.busySockets()) {
      const last = lastResponseOwed(socket)
      if (!last.headersSent && !last.writableEnded && requestOf(last)?.httpVersionMajor === 1) {
        last.setHeader('connection', 'close')
      }
    }
  }

  /**
   * For a `fastify.close()` the app (or its test) calls without a shutdown of the plugin's own: idle
   * connections close at once, as Fastify closes them, and a test's `await app.close()` does not wait out a
   * grace for a client that is the test itself.
   */
  closeIdleWithoutGrace (): void {
    this.graceful = false
    this.closeIdleConnections()
  }

  /**
   * A response finished while draining. One that carried `Connection: close` ends its connection; one whose
   * headers went out before the shutdown began could not, and its client may be sending the next request
   * already: the connection gets the grace.
   */
  responseFinished (socket: Socket, response: ServerResponse): void {
    if (closesConnection(response)) return
    const connection = this.connections.get(socket)
    if (connection === undefined) return
    connection.idleSince = Date.now()
    if (!this.draining) return
    // Node detaches the finished response from the connection after this: look once that has happened.
    process.nextTick(() => {
      this.guarded('a response finished', () => {
        if (connection.closing !== undefined || connection.inGrace === true || !this.connections.has(socket)) return
        if (connectionState(socket, true) !== 'idle') return
        if (this.graceful) this.enterGrace(socket, connection, Date.now() + this.idleCloseDelay)
        else this.closeIfQuiet(socket, 'closedIdle', socket.bytesRead)
      })
    })
  }

  destroyAll (): void {
    for (const [socket, connection] of this.connections) {
      connection.closing ??= 'destroyed'
      if (this.awaitingRequest.has(socket)) this.noteUnread(socket)
      socket.destroy()
    }
  }

  openRequests (now: number): OpenRequest[] {
    const open = this.streams === null ? [] : this.streams.openRequests(now)
    // The newest request names the route that holds the connection; with pipelining it is the last in line.
    for (const socket of this.busySockets()) {
      const last = lastResponseOwed(socket)
      open.push(openRequestOf(last, socket[kLastRequestAt], now, this.routes, requestOf(last)))
    }
    return open
  }

  /** For the force path: where the spans of the requests still open can be found. */
  openRequestTelemetry (): RequestTelemetry[] {
    const open = this.streams === null ? [] : this.streams.openRequestTelemetry()
    for (const socket of this.busySockets()) open.push(requestTelemetryOf(lastResponseOwed(socket)))
    return open
  }

  /**
   * Closes the connections that owe no response, as the servers' own `closeIdleConnections()` would, without
   * its races. Node's destroys every such connection at once, so a client sending its next request at that
   * moment sees a reset; it counts a response as done once `end()` ran and destroys its connection while most
   * of a large body may still wait in the buffers; and it spares a connection whose request is still arriving,
   * while `server.close()` stops the `headersTimeout` check that would have ended it. From here on, a
   * connection a response leaves idle is closed too.
   */
  private closeIdleConnections (): void {
    this.draining = true
    const now = Date.now()
    // A connection that cannot be read is closed once nothing else is left, like one with a request arriving.
    for (const [socket, connection] of this.connections) {
      this.guarded('closing an idle connection', () => { this.closeIdle(socket, connection, now) }, () => { this.awaitingRequest.add(socket) })
    }
    this.guarded('closing connections with a request arriving', () => { this.closeAwaitingIfAlone() })
  }

  private closeIdle (socket: NotedSocket, connection: Connection, now: number): void {
    // Ending already: after a response with `Connection: close`, or closed by its client.
    if (connection.closing !== undefined || connection.inGrace === true || socket.writableEnded || socket.destroyed) return
    const lastRequestAt = socket[kLastRequestAt]
    if (connectionState(socket, lastRequestAt !== undefined) !== 'idle') return
    if (lastRequestAt === undefined && socket.bytesRead > 0) {
      // The first request is arriving.
      this.awaitingRequest.add(socket)
      return
    }
    const inUseUntil = Math.max(lastRequestAt ?? connection.connectedAt, connection.idleSince ?? 0) + this.idleCloseDelay
    if (inUseUntil <= now || !this.graceful) this.closeIfQuiet(socket, 'closedIdle', socket.bytesRead)
    else this.enterGrace(socket, connection, inUseUntil)
  }

  private enterGrace (socket: NotedSocket, connection: Connection, endsAt: number): void {
    connection.inGrace = true
    // Those a finished response leaves idle come last, in order; those from `closeIdleConnections()` at once.
    let index = this.grace.length
    while (index > 0 && this.grace[index - 1].endsAt > endsAt) index--
    this.grace.splice(index, 0, { socket, endsAt, bytesWhenIdle: socket.bytesRead })
    if (index === 0) this.scheduleGraceEnd()
  }

  private scheduleGraceEnd (): void {
    this.clearGraceTimer()
    const next = this.grace[0]
    if (next === undefined) return
    this.graceTimer = setTimeout(this.endGrace, Math.max(0, next.endsAt - Date.now()))
    // The connections themselves hold the event loop: the timer need not.
    this.graceTimer.unref()
  }

  private readonly endGrace = (): void => {
    this.graceTimer = null
    this.guarded('ending the grace of idle connections', () => {
      const now = Date.now()
      while (this.grace.length > 0 && this.grace[0].endsAt <= now) {
        const { socket, bytesWhenIdle } = this.grace.shift()!
        const connection = this.connections.get(socket)
        if (connection === undefined || connection.closing !== undefined) continue
        connection.inGrace = undefined
        this.closeIfQuiet(socket, 'closedAfterGrace', bytesWhenIdle)
      }
      this.scheduleGraceEnd()
    })
  }

  /**
   * Closes an idle connection on the event loop's next turn, once it has read what the kernel holds, unless
   * something arrived since `bytesRead` was `bytesWhenIdle`: a whole request is answered (503 with
   * `Connection: close`), the start of one is awaited.
   */
  private closeIfQuiet (socket: NotedSocket, closing: Closing, bytesWhenIdle: number): void {
    this.quietCheck.set(socket, bytesWhenIdle)
    this.connections.get(socket)!.closing = closing
    if (this.quietCheckScheduled) return
    this.quietCheckScheduled = true
    setImmediate(this.closeQuiet)
  }

  private readonly closeQuiet = (): void => {
    this.quietCheckScheduled = false
    for (const [socket, bytesWhenIdle] of this.quietCheck) {
      this.quietCheck.delete(socket)
      this.guarded('closing a quiet connection', () => { this.closeQuietOne(socket, bytesWhenIdle) })
    }
    this.guarded('closing connections with a request arriving', () => { this.closeAwaitingIfAlone() })
  }

  private closeQuietOne (socket: NotedSocket, bytesWhenIdle: number): void {
    const connection = this.connections.get(socket)
    if (connection === undefined) return
    const state = connectionState(socket, socket[kLastRequestAt] !== undefined)
    if (state === 'idle' && socket.bytesRead === bytesWhenIdle) {
      socket.destroy()
      return
    }
    connection.closing = undefined
    if (state === 'idle') this.awaitingRequest.add(socket)
  }

  /** Connections with a request arriving are closed once they are all that is left. */
  private closeAwaitingIfAlone (): void {
    if (this.awaitingRequest.size === 0 || this.awaitingRequest.size < this.connections.size) return
    for (const socket of this.awaitingRequest) {
      if (responseOwed(socket)) continue
      this.connections.get(socket)!.closing = 'destroyed'
      this.noteUnread(socket)
      socket.destroy()
    }
  }

  private noteUnread (socket: Socket): void {
    let bytesRead = -1
    this.guarded('counting the bytes of a connection', () => { bytesRead = socket.bytesRead })
    this.unread.push({ remoteAddress: socket.remoteAddress ?? '', remotePort: socket.remotePort ?? 0, bytesRead })
  }

  private * busySockets (): Generator<NotedSocket> {
    for (const socket of this.connections.keys()) {
      if (connectionState(socket, true) === 'responding') yield socket
    }
  }

  private readonly track = (socket: NotedSocket): void => {
    this.connections.set(socket, { connectedAt: Date.now() })
    socket.once('close', () => {
      this.guarded('a connection closed', () => { this.untrack(socket) })
    })
  }

  private untrack (socket: NotedSocket): void {
    const connection = this.connections.get(socket)
    this.connections.delete(socket)
    this.awaitingRequest.delete(socket)
    if (this.closing && connection !== undefined) this.ended[connection.closing ?? 'closedAfterResponse']++
    this.closeAwaitingIfAlone()
  }

  private clearGraceTimer (): void {
    if (this.graceTimer === null) return
    clearTimeout(this.graceTimer)
    this.graceTimer = null
  }

  /** What the tracker runs inside Node's callbacks: an error is reported, never thrown into Node. */
  private guarded (during: string, work: () => void, instead?: () => void): void {
    try {
      work()
    } catch (err) {
      this.failed(err, during)
      instead?.()
    }
  }
}

/**
 * The last response a busy connection owes: the newest pipelined behind the one being written, else that one.
 * Responses finish in order, so a pipelined response not yet finished is still owed, and the newest one.
 */
export function lastResponseOwed (socket: NotedSocket): NotedResponse {
  const tail = socket[kPipelineTail]?.deref()
  return tail !== undefined && !tail.writableFinished ? tail : responseOwed(socket) as NotedResponse
}

/**
 * A request still open, from what the plugin noted about it and when it arrived (its age is unknown without
 * that). Its route is the one its Fastify request names, when noted, else the one its URL matches.
 */
export function openRequestOf (
  notes: RequestNotes,
  arrivedAt: number | undefined,
  now: number,
  routes: Pick<RouteNames, 'of'>,
  raw: { readonly method?: string, readonly url?: string } | undefined = notes[kNotedRequest]
): OpenRequest {
  return {
    method: raw?.method ?? '',
    url: raw?.url ?? '',
    route: notes[kNotedReply]?.request.routeOptions.url ?? routes.of(raw?.method, raw?.url),
    ageMs: arrivedAt === undefined ? -1 : now - arrivedAt
  }
}

/** Where the spans of a request still open can be found, from what the plugin noted about it. */
export function requestTelemetryOf (notes: RequestNotes): RequestTelemetry {
  return { context: notes[kNotedContext], request: notes[kNotedReply]?.request }
}
