import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2'
import type { FastifyBaseLogger } from 'fastify'
import { DRAINING_CODE } from './errors'
import { STATE, type ShutdownState } from './states'
import { lastResponseOwed, type NotedResponse, type NotedSocket, type RequestNotes } from './connections'
import { closesConnection, responseOwed } from './internals'
import type { RejectionTelemetry } from './shutdown-telemetry'
import { kArrivedAt, kLastRequestAt, kNotedContext, kNotedRequest, kPipelineTail, kRejected } from './symbols'

export interface DrainGate {
  /** True until a shutdown starts: the one thing the request path reads. */
  readonly serving: boolean
  readonly state: ShutdownState
  rejectedRequests: number
}

type RequestListener = (this: Server, request: IncomingMessage, response: ServerResponse) => void
type AnyResponse = ServerResponse | Http2ServerResponse

const DRAINING_BODY = JSON.stringify({
  statusCode: 503,
  code: DRAINING_CODE,
  error: 'Service Unavailable',
  message: 'The server is shutting down; retry on another connection'
})

/**
 * Stands in front of Fastify's request handler on each server it listens on, in the server's `request`
 * event, as Fastify's own `return503OnClosing` answers before any hook: while serving it only notes the
 * request's arrival and hands it on; once a shutdown has started it answers 503 itself, with
 * `Connection: close`, except the probe routes and, during the pre-stop delay, every request.
 *
 * Not being a Fastify hook, it is not wrapped by the OpenTelemetry instrumentations (they trace every
 * lifecycle hook added with `addHook`): a trace shows no span of the plugin's while serving, and a refused
 * request has only the HTTP server span, marked refused, or a span of the plugin's own. `fastify.inject()`
 * calls Fastify's handler without a server: an injected request is neither noted nor refused.
 */
export class RequestGate {
  private readonly detachers = new Map<Server, () => void>()
  private readonly retryAfterHeader: string
  private readonly noteArrival: (request: IncomingMessage | Http2ServerRequest, response: AnyResponse) => void

  constructor (
    private readonly gate: DrainGate,
    retryAfter: number,
    /** The paths of the plugin's probe routes, prefix included: they answer for themselves while draining. */
    private readonly probePaths: ReadonlySet<string>,
    private readonly log: FastifyBaseLogger,
    /** Told of each refused request, to mark its span; null without the OpenTelemetry API. */
    private readonly rejections: () => RejectionTelemetry | null,
    /** The active context, noted per request only when `telemetry` is configured. */
    activeContext: (() => RequestNotes[typeof kNotedContext]) | null,
    /** Each refused request is logged, as Fastify logs each request, unless the app turned that off. */
    private readonly logRefusals: boolean,
    /** Called with what the gate's own code throws inside Node's callback, which it never lets escape. */
    private readonly failed: (err: unknown, during: string) => void
  ) {
    this.retryAfterHeader = String(retryAfter)
    // Decided once here, so an app without telemetry pays nothing for it on each request, and each variant is
    // a function V8 sees one way only.
    this.noteArrival = activeContext === null
      ? noteArrival
      : (request, response) => {
          ((response as Http2ServerResponse).stream as RequestNotes | undefined ?? response as NotedResponse)[kNotedContext] = activeContext()
          noteArrival(request, response)
        }
  }

  /**
   * Puts the gate in front of the server's first `request` listener, in its place: Fastify's handler, which
   * Fastify adds as it creates the server (or the listener of the app's `serverFactory` that calls it).
   * Listeners added after it are the app's own, and hear every request, refused or not, as they did.
   */
  attach (server: Server): void {
    if (this.detachers.has(server)) return
    const handler = server.listeners('request')[0] as RequestListener | undefined
    if (handler === undefined) return
    const gated = this.gated(handler)
    server.removeListener('request', handler)
    server.prependListener('request', gated)
    this.detachers.set(server, () => {
      server.removeListener('request', gated)
      server.prependListener('request', handler)
    })
  }

  /** Gives each server its handler back. */
  detach (): void {
    for (const detach of this.detachers.values()) detach()
    this.detachers.clear()
  }

  private gated (handler: RequestListener): RequestListener {
    const gate = this.gate
    const noteArrival = this.noteArrival
    const whileShuttingDown = this.whileShuttingDown
    // Kept this small so that V8 inlines it into the server's emit, as it would a bare listener.
    return function fastifyShutdownGate (request, response) {
      if (gate.serving) {
        noteArrival(request, response)
        handler.call(this, request, response)
        return
      }
      whileShuttingDown(this, handler, request, response)
    }
  }

  /**
   * Once a shutdown has started: the gate answers, or hands the request to Fastify. What its own code throws is
   * reported, and the request still goes to Fastify unless an answer has begun.
   */
  private readonly whileShuttingDown = (server: Server, handler: RequestListener, request: IncomingMessage, response: ServerResponse): void => {
    let handled = false
    try {
      handled = this.refuseOrLetThrough(request, response)
    } catch (err) {
      this.failed(err, 'answering a request while shutting down')
    }
    if (!handled && !response.headersSent) handler.call(server, request, response)
  }

  /** True when the gate answered the request; false when Fastify is to. */
  private refuseOrLetThrough (request: IncomingMessage, response: ServerResponse): boolean {
    const http1 = request.httpVersionMajor === 1
    if (this.gate.state === STATE.PRE_STOP && (!http1 || this.closeAfter(response, request.socket as NotedSocket))) {
      this.noteArrival(request, response)
      return false
    }
    const path = pathOf(request.url)
    if (this.probePaths.has(path)) {
      if (http1) response.setHeader('connection', 'close')
      this.noteArrival(request, response)
      return false
    }
    this.refuse(request, response, path, http1)
    return true
  }

  /**
   * Makes this response the one that closes its connection. A request pipelined behind one still in flight
   * takes the `Connection: close` over from it, since Node drops any response queued behind such a response;
   * false when an earlier one has already sent it, and this request's answer could never reach the client.
   */
  private closeAfter (response: ServerResponse, socket: NotedSocket): boolean {
    const ahead = responseOwed(socket) as NotedResponse | null | undefined
    if (ahead && ahead !== response) {
      const previous = lastResponseOwed(socket)
      if (closesConnection(ahead) || closesConnection(previous)) return false
      keepOpen(ahead)
      keepOpen(previous)
    }
    response.setHeader('connection', 'close')
    return true
  }

  private refuse (request: IncomingMessage, response: ServerResponse, path: string, http1: boolean): void {
    const state = this.gate.state
    this.gate.rejectedRequests++
    ;(response as { [kRejected]?: true })[kRejected] = true
    const stream = (response as unknown as Http2ServerResponse).stream as { [kRejected]?: true } | undefined
    if (stream !== undefined) stream[kRejected] = true
    response.writeHead(503, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(DRAINING_BODY),
      'retry-after': this.retryAfterHeader,
      ...(http1 ? { connection: 'close' } : {})
    })
    response.end(DRAINING_BODY)
    if (this.logRefusals) {
      this.log.info({ req: { method: request.method, url: request.url }, res: { statusCode: 503 }, state }, 'request refused: the server is shutting down')
    }
    this.rejections()?.refused(request, path, state)
  }
}

/**
 * With HTTP/1 the notes go on the response, and the socket keeps only when its last request arrived, which is
 * also the age of the request a report names on it (its newest): the one clock read per request. A response
 * queued behind one still owed (pipelining) is out of the socket's sight until its turn comes, so the socket
 * keeps a weak pointer to the newest. With HTTP/2 the notes go on the request's stream, with the stream's own
 * arrival time and its request (a stream keeps no headers of its own).
 */
function noteArrival (request: IncomingMessage | Http2ServerRequest, response: AnyResponse): void {
  const stream = (response as Http2ServerResponse).stream as (RequestNotes & object) | undefined
  if (stream === undefined) {
    const socket = request.socket as NotedSocket
    socket[kLastRequestAt] = Date.now()
    if (responseOwed(socket) !== response) socket[kPipelineTail] = new WeakRef(response as NotedResponse)
    return
  }
  stream[kArrivedAt] = Date.now()
  stream[kNotedRequest] = request
}

/** Takes back a `Connection: close` not sent yet. */
function keepOpen (response: NotedResponse): void {
  if (!response.headersSent) response.removeHeader('connection')
}

function pathOf (url: string | undefined): string {
  if (url === undefined) return ''
  const query = url.indexOf('?')
  return query === -1 ? url : url.slice(0, query)
}
