import diagnostics = require('node:diagnostics_channel')
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { kRejected } from './symbols'

const RESPONSE_FINISH = 'http.server.response.finish'

type WatchedResponse = ServerResponse & { [kRejected]?: true }

interface ResponseFinish {
  server: Server
  socket: Socket
  response: WatchedResponse
}

/**
 * Watches responses finish, but only once a shutdown has begun: Node publishes on this channel only while
 * someone subscribes, so serving pays nothing for it. It counts completions for the report and tells the
 * connection tracker which connections a finished response leaves idle.
 *
 * Where the runtime publishes nothing on the channel (Bun), the same is heard from each response's own
 * 'finish' event, listened to from the moment the shutdown begins: on the responses still owed then, and on
 * those of the requests that arrive after.
 */
export class ResponseWatcher {
  completed = 0
  private subscribed = false

  constructor (
    private readonly servers: ReadonlySet<Server>,
    private readonly responseFinished: (socket: Socket, response: ServerResponse) => void,
    /** Called with what this watcher's own code throws inside Node's publish, which it never lets escape. */
    private readonly failed: (err: unknown, during: string) => void,
    /** Null where the runtime publishes the channel; else where the responses owed when a shutdown begins are. */
    private readonly fallback: { readonly owed: () => Iterable<[Socket, ServerResponse]> } | null = null
  ) {}

  begin (): void {
    if (this.subscribed) return
    this.subscribed = true
    if (this.fallback === null) {
      diagnostics.subscribe(RESPONSE_FINISH, this.onFinish)
      return
    }
    for (const server of this.servers) server.on('request', this.onRequest)
    for (const [socket, response] of this.fallback.owed()) this.watch(socket, response)
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
    if (this.fallback === null) {
      diagnostics.unsubscribe(RESPONSE_FINISH, this.onFinish)
      return
    }
    for (const server of this.servers) server.removeListener('request', this.onRequest)
  }

  // A response pipelined behind another has no socket until its turn: the request has it from the start.
  private readonly onRequest = (request: IncomingMessage, response: ServerResponse): void => {
    this.watch(request.socket, response)
  }

  private watch (socket: Socket, response: WatchedResponse): void {
    response.once('finish', () => {
      if (this.subscribed) this.guarded(() => { this.finished(socket, response) })
    })
  }

  private readonly onFinish = (message: unknown): void => {
    this.guarded(() => {
      const { server, socket, response } = message as ResponseFinish
      if (this.servers.has(server)) this.finished(socket, response)
    })
  }

  private finished (socket: Socket, response: WatchedResponse): void {
    if (response[kRejected] !== true) this.completed++
    this.responseFinished(socket, response)
  }

  private guarded (work: () => void): void {
    try {
      work()
    } catch (err) {
      this.failed(err, 'a response finished')
    }
  }
}
