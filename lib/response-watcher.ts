import diagnostics = require('node:diagnostics_channel')
import type { Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { kRejected } from './symbols'

const RESPONSE_FINISH = 'http.server.response.finish'

interface ResponseFinish {
  server: Server
  socket: Socket
  response: ServerResponse & { [kRejected]?: true }
}

/**
 * Watches responses finish, but only once a shutdown has begun: Node publishes on this channel only while
 * someone subscribes, so serving pays nothing for it. It counts completions for the report and tells the
 * connection tracker which connections a finished response leaves idle.
 */
export class ResponseWatcher {
  completed = 0
  private subscribed = false

  constructor (
    private readonly servers: ReadonlySet<Server>,
    private readonly responseFinished: (socket: Socket, response: ServerResponse) => void,
    /** Called with what this watcher's own code throws inside Node's publish, which it never lets escape. */
    private readonly failed: (err: unknown, during: string) => void
  ) {}

  begin (): void {
    if (this.subscribed) return
    this.subscribed = true
    diagnostics.subscribe(RESPONSE_FINISH, this.onFinish)
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
    try {
      const { server, socket, response } = message as ResponseFinish
      if (!this.servers.has(server)) return
      if (response[kRejected] !== true) this.completed++
      this.responseFinished(socket, response)
    } catch (err) {
      this.failed(err, 'a response finished')
    }
  }
}
