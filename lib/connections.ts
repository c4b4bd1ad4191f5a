import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { Server as TlsServer } from 'node:tls'
import type { FastifyReply } from 'fastify'
import type { OpenRequest } from '../types'
import type { RequestTelemetry } from './observability'
import { kArrivedAt, kNotedContext, kNotedReply, kPipelineTail } from './symbols'

/** What the drain hook notes about a request on arrival: on its response with HTTP/1, its stream with HTTP/2. */
export interface RequestNotes {
  [kNotedReply]?: FastifyReply
  [kArrivedAt]?: number
  [kNotedContext]?: RequestTelemetry['context']
}

/** An HTTP/1 response, with what the drain hook noted about its request. */
export type NotedResponse = ServerResponse & RequestNotes & { req?: IncomingMessage, _last?: boolean }

export interface HttpSocket extends Socket {
  /**
   * Node's http server keeps the response being written here, and drops it once it has finished; responses
   * pipelined behind it wait in a queue of Node's own. http-terminator relies on it too.
   */
  _httpMessage?: NotedResponse | null
  /**
   * Node's HTTP/1 parser, there while the connection speaks HTTP/1: an upgraded or HTTP/2 one has none.
   * `duration()` is how long its current request has been arriving, 0 between requests; a new connection
   * counts from when it opened (Node's `headersTimeout` works from the same clock).
   */
  parser?: { duration (): number } | null
  [kPipelineTail]?: WeakRef<NotedResponse>
}

/** Requests in flight that a connection cannot show by itself: HTTP/2 streams, many to a connection. */
export interface StreamRequests {
  readonly inFlight: number
  openRequests (now: number): OpenRequest[]
  openRequestTelemetry (): RequestTelemetry[]
}

/**
 * Knows every open connection of one server. Tracking connections rather than requests keeps the cost off
 * the request path: a keep-alive connection carries many requests for one `close` listener.
 */
export class ConnectionTracker {
  private readonly sockets = new Set<HttpSocket>()
  /** Spared by `closeIdle` because a request may still be arriving on them; closed once nothing else is left. */
  private readonly awaitingRequest = new Set<HttpSocket>()
  private closing = false
  private readonly connectionEvent: 'connection' | 'secureConnection'

  constructor (private readonly server: Server, private readonly streams: StreamRequests | null = null) {
    this.connectionEvent = server instanceof TlsServer ? 'secureConnection' : 'connection'
  }

  attach (): void {
    this.server.on(this.connectionEvent, this.track)
    // Servers that speak HTTP/1 have one (HTTP/2 ones with `allowHTTP1`); HTTP/2 sessions are the http2 drain's.
    if (typeof this.server.closeIdleConnections === 'function') this.server.closeIdleConnections = this.closeIdle
  }

  detach (): void {
    this.server.removeListener(this.connectionEvent, this.track)
    if (this.server.closeIdleConnections === this.closeIdle) delete (this.server as Partial<Server>).closeIdleConnections
  }

  get size (): number {
    return this.sockets.size
  }

  get inFlight (): number {
    let busy = this.streams === null ? 0 : this.streams.inFlight
    for (const _socket of this.busySockets()) busy++
    return busy
  }

  /**
   * Asks the last response each busy socket owes to carry `Connection: close`, so the socket ends after it.
   * The last, not the current one: Node drops responses queued behind a `Connection: close` response, and
   * requests pipelined behind the current one have run their handlers already.
   */
  closeAfterCurrentResponses (): void {
    this.closing = true
    for (const socket of this.busySockets()) {
      const last = lastResponseOwed(socket)
      if (!last.headersSent && !last.writableEnded && last.req?.httpVersionMajor === 1) {
        last.setHeader('connection', 'close')
      }
    }
  }

  /**
   * Takes the place of the server's own `closeIdleConnections()`, which `server.close()` and `fastify.close()`
   * call, and which gets a drain wrong both ways:
   * - it counts a response as done once `end()` has been called, and destroys its socket while most of a
   *   large body may still wait in the socket's buffers: a truncated body, and a drain that reports nothing;
   * - it spares a connection whose request is still arriving (a new one, a slow client's, a slowloris
   *   client's), and `server.close()` stops the `headersTimeout` check that would have ended it: the drain
   *   waits to the end.
   * Here a connection that owes no response is closed at once when nothing is arriving on it. One with a
   * request arriving is spared while other work drains, so that request still gets its 503 and
   * `Connection: close`, and is closed once nothing else is left. Only HTTP/1 connections: an upgraded
   * WebSocket is the websocket drain's, HTTP/2 sessions the http2 drain's.
   */
  private readonly closeIdle = (): void => {
    for (const socket of this.sockets) {
      if (!socket.parser || socket._httpMessage) continue
      if (socket.parser.duration() === 0) socket.destroy()
      else if (this.closing) this.awaitingRequest.add(socket)
    }
    this.closeAwaitingIfAlone()
  }

  private closeAwaitingIfAlone (): void {
    if (this.awaitingRequest.size === 0 || this.awaitingRequest.size < this.sockets.size) return
    for (const socket of this.awaitingRequest) {
      if (!socket._httpMessage) socket.destroy()
    }
  }

  destroyAll (): void {
    for (const socket of this.sockets) socket.destroy()
  }

  openRequests (now: number): OpenRequest[] {
    const open = this.streams === null ? [] : this.streams.openRequests(now)
    // The newest request names the route that holds the socket; with pipelining it is the last in line.
    for (const socket of this.busySockets()) {
      const last = lastResponseOwed(socket)
      open.push(openRequestOf(last, now, last.req))
    }
    return open
  }

  /** For the force path: where the spans of the requests still open can be found. */
  openRequestTelemetry (): RequestTelemetry[] {
    const open = this.streams === null ? [] : this.streams.openRequestTelemetry()
    for (const socket of this.busySockets()) open.push(requestTelemetryOf(lastResponseOwed(socket)))
    return open
  }

  private * busySockets (): Generator<HttpSocket> {
    for (const socket of this.sockets) {
      if (isBusy(socket)) yield socket
    }
  }

  private readonly track = (socket: HttpSocket): void => {
    this.sockets.add(socket)
    socket.once('close', () => { this.untrack(socket) })
  }

  private untrack (socket: HttpSocket): void {
    this.sockets.delete(socket)
    this.awaitingRequest.delete(socket)
    this.closeAwaitingIfAlone()
  }
}

export function isBusy (socket: HttpSocket): boolean {
  const response = socket._httpMessage
  return response !== null && response !== undefined && !response.writableFinished
}

/**
 * The last response a busy socket owes: the newest pipelined behind the one being written, else that one.
 * Responses finish in order, so a pipelined response not yet finished is still owed, and the newest one.
 */
export function lastResponseOwed (socket: HttpSocket): NotedResponse {
  const tail = socket[kPipelineTail]?.deref()
  return tail !== undefined && !tail.writableFinished ? tail : socket._httpMessage!
}

/** A request still open, from what the drain hook noted about it; `raw` stands in when nothing was noted. */
export function openRequestOf (notes: RequestNotes, now: number, raw?: IncomingMessage): OpenRequest {
  const request = notes[kNotedReply]?.request
  const arrivedAt = notes[kArrivedAt]
  const message = request?.raw ?? raw
  return {
    method: message?.method ?? '',
    url: message?.url ?? '',
    route: request?.routeOptions.url,
    ageMs: arrivedAt === undefined ? -1 : now - arrivedAt
  }
}

/** Where the spans of a request still open can be found, from what the drain hook noted about it. */
export function requestTelemetryOf (notes: RequestNotes): RequestTelemetry {
  return { context: notes[kNotedContext], request: notes[kNotedReply]?.request }
}
