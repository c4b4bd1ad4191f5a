import type { Http2ServerResponse } from 'node:http2'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction, onRequestHookHandler } from 'fastify'
import { DRAINING_CODE } from './errors'
import { STATE, type ShutdownState } from './states'
import { lastResponseOwed, type NotedResponse, type NotedSocket, type RequestNotes } from './connections'
import { closesConnection, responseOwed } from './internals'
import type { RequestTelemetry } from './shutdown-telemetry'
import { kArrivedAt, kLastRequestAt, kNotedContext, kNotedReply, kPipelineTail, kRejected } from './symbols'
import { isProbeRoute } from './probe-routes'

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
 * when an earlier one has already sent it, and this request's answer could never reach the client.
 */
function closeAfter (reply: FastifyReply, socket: NotedSocket): boolean {
  const ahead = responseOwed(socket) as NotedResponse | null | undefined
  if (ahead && ahead !== reply.raw) {
    const previous = lastResponseOwed(socket)
    if (closesConnection(ahead) || closesConnection(previous)) return false
    keepOpen(ahead)
    keepOpen(previous)
  }
  reply.header('connection', 'close')
  return true
}

/** Takes back a `Connection: close` not sent yet, set on the response or on its Fastify reply. */
function keepOpen (response: NotedResponse): void {
  if (response.headersSent) return
  response.removeHeader('connection')
  response[kNotedReply]?.removeHeader('connection')
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
        notes[kNotedReply] = reply
      }
    : (notes: RequestNotes, reply: FastifyReply): void => {
        notes[kNotedReply] = reply
        notes[kNotedContext] = activeContext()
      }
  // With HTTP/1 the notes go on the response: the socket would keep them, and the request with its body,
  // for as long as the connection idles. The socket keeps only a number, when its last request arrived,
  // which is also the age of the request a report names on it (its newest): the one clock read per request.
  // A response queued behind one still owed (pipelining) is out of the socket's sight until its turn comes,
  // so the socket keeps a weak pointer to the newest.
  const noteHttp1 = (socket: NotedSocket, reply: FastifyReply): void => {
    const response = reply.raw as NotedResponse
    noteOn(response, reply)
    socket[kLastRequestAt] = Date.now()
    if (responseOwed(socket) !== response) socket[kPipelineTail] = new WeakRef(response)
  }
  // With HTTP/2 the notes go on the request's stream (`request.raw.socket` is a proxy to the session's socket,
  // which every stream of the session shares), with the stream's own arrival time. An HTTP/1 request on the
  // same server (`allowHTTP1`) has no stream. Also decided once: an HTTP/1 server never looks.
  const noteArrival = http2
    ? (socket: NotedSocket, reply: FastifyReply): void => {
        const stream = (reply.raw as unknown as Http2ServerResponse).stream as RequestNotes | undefined
        if (stream === undefined) {
          noteHttp1(socket, reply)
          return
        }
        noteOn(stream, reply)
        stream[kArrivedAt] = Date.now()
      }
    : noteHttp1

  // Kept this small so that V8 inlines it into Fastify's hook runner, as it does a hook that only reads a flag:
  // with the shutdown path in the same function it stayed in baseline code on Node 20 and 22, and cost about
  // 700 instructions per request more on Node 22 (bench/instructions.mjs).
  return function shutdownOnRequest (request, reply, done) {
    if (gate.serving) {
      noteArrival(request.raw.socket as NotedSocket, reply)
      done()
      return
    }
    whileShuttingDown(request, reply, done)
  }

  function whileShuttingDown (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const socket = request.raw.socket as NotedSocket
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
