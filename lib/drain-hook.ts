import type { onRequestHookHandler } from 'fastify'
import { DRAINING_CODE } from './errors'
import { STATE, type ShutdownState } from './states'
import { kArrivedAt, kFastifyRequest, kRejected } from './symbols'
import type { TrackedRequest } from './connections'
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
 * The `onRequest` hook. While serving it only notes the request's arrival, so a report can name a request
 * that held the drain; the rest runs only once a shutdown has started.
 */
export function createDrainHook (gate: DrainGate, retryAfter: number): onRequestHookHandler {
  const retryAfterHeader = String(retryAfter)

  return function shutdownOnRequest (request, reply, done) {
    const raw = request.raw as TrackedRequest
    if (gate.serving) {
      raw[kFastifyRequest] = request
      raw[kArrivedAt] = Date.now()
      done()
      return
    }

    const http1 = raw.httpVersionMajor === 1
    if (gate.state === STATE.PRE_STOP) {
      raw[kFastifyRequest] = request
      raw[kArrivedAt] = Date.now()
      if (http1) reply.header('connection', 'close')
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
