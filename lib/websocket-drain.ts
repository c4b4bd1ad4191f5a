import type { EventEmitter } from 'node:events'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { ResolvedShutdownOptions } from '../types'
import type { Timers } from './deadline'
import type { DrainParticipant, ReportPart } from './drain-participant'

/** The WebSocket standard's `readyState` values, which `ws` uses. */
const OPEN = 1
const CLOSED = 3

/** Close code 1001, Going Away: "a server going down" (RFC 6455, section 7.4.1). */
export const GOING_AWAY = 1001

/** The part of a `ws` WebSocket the drain uses, typed here so that the plugin does not depend on `ws`. */
interface WebSocketLike extends EventEmitter {
  readonly readyState: number
  send (data: string): void
  close (code: number, reason: string): void
  terminate (): void
}

/** `fastify.websocketServer`, which `@fastify/websocket` decorates with: a `ws` WebSocketServer. */
interface WebSocketServerLike extends EventEmitter {
  /** Every open socket; undefined with `ws`'s `clientTracking: false`. */
  readonly clients?: Set<WebSocketLike>
}

type WebSocketOptions = Exclude<ResolvedShutdownOptions['websocket'], false>

/**
 * Unreferenced: the sockets the timer would terminate keep the process alive by themselves, so the timer
 * never has to.
 */
const NODE_TIMERS: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout)
}

export type WebSocketOutcome = {
  /** Sockets that finished the closing handshake (or closed by themselves) within `closeTimeout`. */
  readonly closed: number
  /** Sockets terminated: past `closeTimeout`, or on the force path. */
  readonly terminated: number
}

/**
 * The WebSockets of `@fastify/websocket`. Node's `server.close()` waits for upgraded sockets like any other,
 * and nothing asks them to end, so when draining starts each gets the goodbye message (if any) and a close
 * frame 1001, and whichever has not finished the closing handshake within `closeTimeout` is terminated.
 */
export class WebSocketDrain implements DrainParticipant {
  readonly name = 'websocket'
  /** Sockets told to close that have not closed yet. */
  private readonly closing = new Set<WebSocketLike>()
  private server: WebSocketServerLike | null = null
  private lookedUp = false
  private timer: unknown = null
  private draining = false
  private closed = 0
  private terminated = 0

  constructor (
    private readonly fastify: FastifyInstance,
    private readonly options: WebSocketOptions,
    private readonly log: FastifyBaseLogger,
    private readonly timers: Timers = NODE_TIMERS
  ) {}

  reportPart (): ReportPart & { connections: WebSocketOutcome } {
    return { connections: { closed: this.closed, terminated: this.terminated } }
  }

  drainStarted (): void {
    if (this.draining) return
    this.draining = true
    const server = this.lookUpServer()
    if (server === null) return
    // A handshake under way when draining started completes later: that socket is closed as it opens.
    server.on('connection', this.close)
    for (const socket of server.clients!) this.close(socket)
    if (this.closing.size > 0) {
      this.log.info({ webSockets: this.closing.size, closeTimeoutMs: this.options.closeTimeout }, 'closing websockets')
    }
  }

  forced (): void {
    this.draining = true
    for (const socket of this.lookUpServer()?.clients ?? []) {
      if (socket.readyState !== CLOSED) this.closing.add(socket)
    }
    this.terminateAll('forced')
    this.release()
  }

  /**
   * `fastify.close()` has ended: nothing of ours may outlive it. The server closes once every connection has
   * ended, and tells so before the sockets' own 'close' events, so sockets still waited for here have
   * closed: they count as such.
   */
  dispose (): void {
    this.clearTimer()
    this.release()
    if (this.closing.size === 0) return
    const sockets = this.settle()
    this.closed += sockets.length
    // Does nothing to a socket whose connection has ended; ends one that was never the server's (`injectWS`).
    for (const socket of sockets) socket.terminate()
    this.log.info({ closed: this.closed, terminated: this.terminated }, 'websockets closed')
  }

  /** Looked up once the shutdown needs it, not at register: @fastify/websocket may be registered after this plugin. */
  private lookUpServer (): WebSocketServerLike | null {
    if (this.lookedUp) return this.server
    this.lookedUp = true
    const server = (this.fastify as FastifyInstance & { websocketServer?: WebSocketServerLike }).websocketServer
    if (server === undefined) return null
    if (server.clients === undefined) {
      this.log.warn('@fastify/websocket runs with clientTracking: false, so its sockets cannot be closed when draining')
      return null
    }
    this.server = server
    return server
  }

  private readonly close = (socket: WebSocketLike): void => {
    if (socket.readyState === CLOSED || this.closing.has(socket)) return
    this.closing.add(socket)
    socket.once('close', () => this.closedBySelf(socket))
    // A socket already closing (closed by the app, or by @fastify/websocket's preClose) just gets the deadline.
    if (socket.readyState === OPEN) {
      if (this.options.goodbye !== undefined) socket.send(this.options.goodbye)
      socket.close(GOING_AWAY, this.options.reason)
    }
    this.timer ??= this.timers.setTimeout(() => {
      this.timer = null
      this.terminateAll('close-timeout')
    }, this.options.closeTimeout)
  }

  private closedBySelf (socket: WebSocketLike): void {
    // A terminated socket closes later; it has been counted already.
    if (!this.closing.delete(socket)) return
    this.closed++
    if (this.closing.size > 0) return
    this.clearTimer()
    this.log.info({ closed: this.closed, terminated: this.terminated }, 'websockets closed')
  }

  private terminateAll (by: 'close-timeout' | 'forced'): void {
    this.clearTimer()
    if (this.closing.size === 0) return
    const sockets = this.settle()
    this.terminated += sockets.length
    for (const socket of sockets) socket.terminate()
    this.log.warn({ terminated: sockets.length, closed: this.closed, terminatedBy: by, closeTimeoutMs: this.options.closeTimeout }, 'websockets terminated')
  }

  /** Takes the sockets still waited for out of the count first: their 'close' events are theirs no more. */
  private settle (): WebSocketLike[] {
    const sockets = [...this.closing]
    this.closing.clear()
    return sockets
  }

  private clearTimer (): void {
    if (this.timer === null) return
    this.timers.clearTimeout(this.timer)
    this.timer = null
  }

  private release (): void {
    this.server?.removeListener('connection', this.close)
  }
}

/** The drain of `@fastify/websocket`'s sockets; null when the `websocket` option is false. */
export function webSocketParticipant (
  fastify: FastifyInstance,
  options: ResolvedShutdownOptions['websocket'],
  log: FastifyBaseLogger,
  timers?: Timers
): WebSocketDrain | null {
  if (options === false) return null
  const drain = new WebSocketDrain(fastify, options, log, timers)
  fastify.addHook('onClose', (_instance, done) => {
    drain.dispose()
    done()
  })
  return drain
}
