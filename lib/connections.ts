import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { Server as TlsServer } from 'node:tls'
import type { FastifyRequest } from 'fastify'
import type { OpenRequest } from '../types'
import { kArrivedAt, kFastifyRequest } from './symbols'

export interface TrackedRequest extends IncomingMessage {
  [kFastifyRequest]?: FastifyRequest
  [kArrivedAt]?: number
}

/** Node's http server keeps the response being written on the socket; http-terminator relies on it too. */
export interface HttpSocket extends Socket {
  _httpMessage?: (ServerResponse & { req?: TrackedRequest }) | null
}

/**
 * Knows every open connection of one server. Tracking connections rather than requests keeps the cost off
 * the request path: a keep-alive connection carries many requests for one `close` listener.
 */
export class ConnectionTracker {
  private readonly sockets = new Set<HttpSocket>()
  private readonly connectionEvent: 'connection' | 'secureConnection'

  constructor (private readonly server: Server) {
    this.connectionEvent = server instanceof TlsServer ? 'secureConnection' : 'connection'
  }

  attach (): void {
    this.server.on(this.connectionEvent, this.track)
  }

  detach (): void {
    this.server.removeListener(this.connectionEvent, this.track)
  }

  get size (): number {
    return this.sockets.size
  }

  get inFlight (): number {
    let busy = 0
    for (const socket of this.sockets) {
      if (isBusy(socket)) busy++
    }
    return busy
  }

  /** Asks every response not yet started to carry `Connection: close`, so its socket ends after it. */
  closeAfterCurrentResponses (): void {
    for (const socket of this.sockets) {
      const response = socket._httpMessage
      if (response && !response.headersSent && response.req?.httpVersionMajor === 1) {
        response.setHeader('connection', 'close')
      }
    }
  }

  destroyAll (): void {
    for (const socket of this.sockets) socket.destroy()
  }

  openRequests (now: number): OpenRequest[] {
    const open: OpenRequest[] = []
    for (const socket of this.sockets) {
      if (!isBusy(socket)) continue
      const raw = socket._httpMessage!.req
      if (!raw) continue
      const arrivedAt = raw[kArrivedAt]
      open.push({
        method: raw.method ?? '',
        url: raw.url ?? '',
        route: raw[kFastifyRequest]?.routeOptions.url,
        ageMs: arrivedAt === undefined ? -1 : now - arrivedAt
      })
    }
    return open
  }

  private readonly track = (socket: HttpSocket): void => {
    this.sockets.add(socket)
    socket.once('close', () => this.sockets.delete(socket))
  }
}

export function isBusy (socket: HttpSocket): boolean {
  const response = socket._httpMessage
  return response !== null && response !== undefined && !response.writableFinished
}
