import type { Http2ServerResponse } from 'node:http2'
import type { FastifyReply, onRequestHookHandler } from 'fastify'
import { DRAINING_CODE } from './errors'
import { STATE, type ShutdownState } from './states'
import type { HttpSocket, RequestNotes } from './connections'
import type { RequestTelemetry } from './observability'
import { kLatestArrivedAt, kLatestContext, kLatestReply, kRejected } from './symbols'
import { isProbeRoute } from './health'

export interface DrainGate {
  /** True until a shutdown starts: the one thing the request path reads. */
  readonly serving: boolean
  readonly state: ShutdownState
  rejectedRequests: number
}

const DRAINING_BODY = JSON.stringify({
  statusCode: 503,
  code: DRAINING_CODE,
  error: 'Service Unavailable',
  message: 'The server is shutting down; retry on another connection'
})

/**
 * Makes this reply the one that closes its connection. A request pipelined behind one still in flight takes
 * the `Connection: close` over from it, since Node drops any response queued behind such a response; false
 * when the earlier one has already sent it, and this request's answer could never reach the client.
 */
function closeAfter (reply: FastifyReply, socket: HttpSocket): boolean {
  const ahead = socket._httpMessage
  if (ahead && ahead !== reply.raw) {
    // `_last`: Node's own mark on a response after which it ends the socket.
    if (ahead.headersSent && (ahead as { _last?: boolean })._last === true) return false
    socket[kLatestReply]?.removeHeader('connection')
    ahead.removeHeader('connection')
  }
  reply.header('connection', 'close')
  return true
}

/**
 * The `onRequest` hook. While serving it only notes the request's arrival, so a report can name a request
 * that held the drain; the rest runs only once a shutdown has started.
 */
export function createDrainHook (
  gate: DrainGate,
  retryAfter: number,
  activeContext: (() => RequestTelemetry['context']) | null,
  http2 = false
): onRequestHookHandler {
  const retryAfterHeader = String(retryAfter)
  // Decided once here, so an app without telemetry pays nothing for it on each request.
  const noteOn = activeContext === null
    ? (notes: RequestNotes, reply: FastifyReply): void => {
        notes[kLatestReply] = reply
        notes[kLatestArrivedAt] = Date.now()
      }
    : (notes: RequestNotes, reply: FastifyReply): void => {
        notes[kLatestReply] = reply
        notes[kLatestArrivedAt] = Date.now()
        notes[kLatestContext] = activeContext()
      }
  // With HTTP/2 the notes go on the request's stream: `request.raw.socket` is a proxy that stores them on the
  // session's socket, which every stream of the session shares. An HTTP/1 request on the same server
  // (`allowHTTP1`) has no stream and keeps its socket. Also decided once: an HTTP/1 server never looks.
  const noteArrival = http2
    ? (socket: HttpSocket, reply: FastifyReply): void => {
        noteOn((reply.raw as unknown as Http2ServerResponse).stream as RequestNotes | undefined ?? socket, reply)
      }
    : noteOn

  return function shutdownOnRequest (request, reply, done) {
    const socket = request.raw.socket as HttpSocket
    if (gate.serving) {
      noteArrival(socket, reply)
      done()
      return
    }

    const http1 = request.raw.httpVersionMajor === 1
    if (gate.state === STATE.PRE_STOP && (!http1 || closeAfter(reply, socket))) {
      noteArrival(socket, reply)
      done()
      return
    }

    if (isProbeRoute(request)) {
      if (http1) reply.header('connection', 'close')
      done()
      return
    }

    gate.rejectedRequests++
    ;(reply.raw as { [kRejected]?: true })[kRejected] = true
    if (http1) reply.header('connection', 'close')
    reply
      .code(503)
      .header('retry-after', retryAfterHeader)
      .type('application/json; charset=utf-8')
      .send(DRAINING_BODY)
  }
}
