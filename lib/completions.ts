import diagnostics = require('node:diagnostics_channel')
import type { Server, ServerResponse } from 'node:http'
import type { HttpSocket } from './connections'
import { kRejected } from './symbols'

const RESPONSE_FINISH = 'http.server.response.finish'

interface ResponseFinish {
  server: Server
  socket: HttpSocket
  response: ServerResponse & { [kRejected]?: true }
}

/**
 * Watches responses finish, but only once a shutdown has begun: Node publishes on this channel only while
 * someone subscribes, so serving pays nothing for it. It counts completions for the report and, once the
 * listener has closed, ends keep-alive sockets that a finished response leaves idle (a response whose
 * headers went out before the shutdown began could not be told to send `Connection: close`).
 */
export class CompletionWatcher {
  completed = 0
  private reapIdle = false
  private subscribed = false

  constructor (private readonly server: Server) {}

  begin (): void {
    if (this.subscribed) return
    this.subscribed = true
    diagnostics.subscribe(RESPONSE_FINISH, this.onFinish)
  }

  /** From now on a socket left idle by a finished response is ended. */
  reapIdleSockets (): void {
    this.reapIdle = true
  }

  /**
   * A response that finished where Node publishes nothing: an HTTP/2 stream (the channel above is HTTP/1's).
   * Counted, like the others, only while a shutdown is under way.
   */
  streamCompleted (): void {
    if (this.subscribed) this.completed++
  }

  end (): void {
    if (!this.subscribed) return
    this.subscribed = false
    diagnostics.unsubscribe(RESPONSE_FINISH, this.onFinish)
  }

  private readonly onFinish = (message: unknown): void => {
    const { server, socket, response } = message as ResponseFinish
    if (server !== this.server) return
    if (response[kRejected] !== true) this.completed++
    // Published before Node detaches the response from the socket: look once that has happened.
    if (this.reapIdle) process.nextTick(endIfIdle, socket)
  }
}

function endIfIdle (socket: HttpSocket): void {
  if (socket.writable && !socket._httpMessage) socket.destroySoon()
}
