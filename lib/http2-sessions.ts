import type { Http2SecureServer, Http2Server, ServerHttp2Session, ServerHttp2Stream } from 'node:http2'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { OpenRequest } from '../types'
import type { ResponseWatcher } from './response-watcher'
import { openRequestOf, requestTelemetryOf, type RequestNotes, type StreamRequests } from './connections'
import type { RequestTelemetry } from './shutdown-telemetry'
import type { DrainParticipant, ReportPart } from './drain-participant'
import type { RouteNames } from './route-names'
import { kArrivedAt, kRejected } from './symbols'

/** A stream with what the plugin noted about its request, marked when the gate refused it. */
type NotedStream = ServerHttp2Stream & RequestNotes & { [kRejected]?: true }

export type Http2Outcome = {
  /** Sessions that ended while draining: after the GOAWAY, once their last stream was done. */
  readonly closed: number
  /** Sessions the force path destroyed, streams and all. */
  readonly destroyed: number
}

/**
 * The HTTP/2 sessions of a server and the streams open on them. Node's `server.close()` (before Node 24)
 * leaves sessions alone, and an idle one holds the drain until `http2SessionTimeout` (72 s); so when draining
 * starts every session is closed: a GOAWAY that lets the streams in flight finish and refuses new ones, and
 * the connection ends once its last stream is done, at once when it has none.
 *
 * The streams are tracked here because one connection carries many requests at once, so the connection
 * cannot say how many are in flight, or which.
 */
export class Http2Sessions implements DrainParticipant, StreamRequests {
  readonly name = 'http2'
  private readonly sessions = new Set<ServerHttp2Session>()
  private readonly streams = new Set<NotedStream>()
  private draining = false
  private forcing = false
  private closed = 0
  private destroyed = 0
  private readonly untrackStream: (this: NotedStream) => void

  constructor (
    private readonly server: Http2Server | Http2SecureServer,
    private readonly log: FastifyBaseLogger,
    responses: Pick<ResponseWatcher, 'streamCompleted'> | null,
    private readonly routes: Pick<RouteNames, 'of'>
  ) {
    const streams = this.streams
    // One listener for every stream, which it gets as `this`: nothing is allocated per request for it.
    this.untrackStream = function untrackStream () {
      streams.delete(this)
      // Bun marks a stream the force path cut as finished, and aborted; Node aborts only one not finished.
      if (responses === null || !this.writableFinished || this.aborted) return
      if (this[kRejected] !== true) responses.streamCompleted()
    }
  }

  attach (): void {
    this.server.on('session', this.trackSession)
    this.server.on('stream', this.trackStream)
  }

  detach (): void {
    this.server.removeListener('session', this.trackSession)
    this.server.removeListener('stream', this.trackStream)
  }

  get inFlight (): number {
    return this.streams.size
  }

  openRequests (now: number): OpenRequest[] {
    return [...this.streams].map((stream) => openRequestOf(stream, stream[kArrivedAt], now, this.routes))
  }

  openRequestTelemetry (): RequestTelemetry[] {
    return [...this.streams].map(requestTelemetryOf)
  }

  /** How the sessions ended. */
  reportPart (): ReportPart & { connections: Http2Outcome } {
    return { connections: { closed: this.closed, destroyed: this.destroyed } }
  }

  drainStarted (): void {
    if (this.draining) return
    this.draining = true
    if (this.sessions.size === 0) return
    this.log.info({ sessions: this.sessions.size, openStreams: this.streams.size }, 'closing http2 sessions')
    for (const session of this.sessions) session.close()
  }

  forced (): void {
    this.draining = true
    this.forcing = true
    if (this.sessions.size === 0) return
    this.log.warn({ sessions: this.sessions.size, openStreams: this.streams.size }, 'destroying http2 sessions')
    this.destroyed += this.sessions.size
    for (const session of this.sessions) session.destroy()
  }

  /**
   * `fastify.close()` has ended. The server closes once every connection has ended, and tells so before the
   * sessions' own 'close' events: sessions still here have closed.
   */
  dispose (): void {
    this.detach()
    if (this.sessions.size === 0) return
    const ended = this.sessions.size
    this.sessions.clear()
    if (this.draining && !this.forcing) this.sessionsClosed(ended)
  }

  private sessionsClosed (count: number): void {
    this.closed += count
    if (this.sessions.size === 0) this.log.info({ closed: this.closed }, 'http2 sessions closed')
  }

  private readonly trackSession = (session: ServerHttp2Session): void => {
    this.sessions.add(session)
    session.once('close', () => {
      if (!this.sessions.delete(session)) return
      if (this.draining && !this.forcing) this.sessionsClosed(1)
    })
    // A TLS handshake that was under way when the listener closed ends in a session after draining began.
    if (this.forcing) session.destroy()
    else if (this.draining) session.close()
  }

  private readonly trackStream = (stream: NotedStream): void => {
    this.streams.add(stream)
    stream.on('close', this.untrackStream)
  }
}

/**
 * The HTTP/2 sessions of `fastify.server`, tracked from now until `fastify.close()`; null unless Fastify was
 * created with `http2: true`.
 */
export function http2Sessions (
  fastify: FastifyInstance,
  log: FastifyBaseLogger,
  responses: Pick<ResponseWatcher, 'streamCompleted'> | null,
  routes: Pick<RouteNames, 'of'>
): Http2Sessions | null {
  if (fastify.initialConfig.http2 !== true) return null
  const sessions = new Http2Sessions(fastify.server as unknown as Http2Server | Http2SecureServer, log, responses, routes)
  sessions.attach()
  fastify.addHook('onClose', (_instance, done) => {
    sessions.dispose()
    done()
  })
  return sessions
}
