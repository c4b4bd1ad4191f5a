import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { Server as NetServer, type Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'

/**
 * The only module that reads private state of Node's HTTP server or of Fastify. Each reading is
 * feature-detected and has a safe fallback; `test/internals.inject.test.ts` holds a canary per internal, run on
 * every Node line in CI, that fails with the internal's name when a release changes it.
 *
 * | internal | exists on | fallback when it is gone |
 * |---|---|---|
 * | `socket._httpMessage`: the response a connection owes | Node 20, 22, 24, 26 | the connection's state is unknown: it is never closed as idle, only by its own `Connection: close` response, the client or the force path |
 * | `socket.parser`: present while a connection speaks HTTP/1 | Node 20, 22, 24, 26 | as above |
 * | `response._last`: Node ends the connection after this response | Node 20, 22, 24, 26 | the response's own `Connection` header |
 * | `http.Server#close()` is `closeIdleConnections()` then `net.Server#close()`, so the latter alone stops the listener and reaps nothing | Node 20, 22, 24, 26 | a server that is no `net.Server` (another runtime's) is closed with its own `close()` |
 * | Bun's native server under `Symbol(::bunternal::)`, through whose `closeIdleConnections()` Bun's `http.Server#close()` reaps (Bun's server is no `net.Server`) | Bun 1.4 | Bun's `close()` closes idle connections at once, and the drain the rest |
 * | Fastify's `Symbol(fastify.serverBindings)`: the servers of the other addresses of a host name | Fastify 5 | a warning at listen that names the addresses left undrained |
 */

/** A connection of a server that speaks HTTP/1, as Node keeps it. */
export interface HttpSocket extends Socket {
  _httpMessage?: ServerResponse | null
  parser?: object | null
}

/** The response a connection is writing or owes next; `null` when it owes none; `undefined` when unknown. */
export function responseOwed (socket: Socket): ServerResponse | null | undefined {
  return (socket as HttpSocket)._httpMessage
}

/**
 * Node sets `_httpMessage` on a connection with its first response, so a connection that has carried a
 * request and still has none means the internal is gone.
 */
function knowsResponses (socket: Socket): boolean {
  return '_httpMessage' in socket
}

/**
 * What a connection is doing, in Go's `ConnState` terms:
 * - `responding`: it owes a response (which may be in the socket's buffers still);
 * - `idle`: HTTP/1 with nothing owed (a request may be arriving: the tracker tells from `bytesRead`);
 * - `other`: upgraded (a WebSocket), HTTP/2, or not yet known to be HTTP/1: another participant's, or nobody's
 *   to close as idle.
 */
export type ConnectionState = 'responding' | 'idle' | 'other'

export function connectionState (socket: Socket, carriedRequest: boolean): ConnectionState {
  const response = (socket as HttpSocket)._httpMessage
  if (response !== null && response !== undefined && !response.writableFinished) return 'responding'
  // Node gives every HTTP/1 connection a parser when it accepts it, and takes it away on upgrade and close.
  const parser = (socket as HttpSocket).parser
  if (parser === null || parser === undefined) return 'other'
  return carriedRequest && !knowsResponses(socket) ? 'other' : 'idle'
}

/** Headers stored with `Connection: close`: Node ends the connection after this response. */
export function closesConnection (response: ServerResponse): boolean {
  if (!response.headersSent) return false
  const last = (response as { _last?: boolean })._last
  if (typeof last === 'boolean') return last
  return /(?:^|,)\s*close\s*(?:,|$)/i.test(String(response.getHeader('connection') ?? ''))
}

/** The request a raw response answers (`response.req`, public since Node 15.7). */
export function requestOf (response: ServerResponse): IncomingMessage | undefined {
  return (response as { req?: IncomingMessage }).req
}

/**
 * Stops a server accepting connections and calls `closed` once its last connection has ended, without the
 * reaping that `http.Server#close()` adds (Node 19+ calls the instance's `closeIdleConnections()` first, which
 * destroys every connection that owes no response at once: a client sending its next request at that moment
 * sees a reset). The drain closes idle connections itself, each after its grace; the server's own
 * `closeIdleConnections()`, Node's or the app's, still runs when Fastify closes the server, once they are gone.
 */
export function stopListening (server: Server, closed: () => void): void {
  if (server instanceof NetServer) {
    NetServer.prototype.close.call(server, () => { closed() })
    return
  }
  // Bun's server is no net.Server, and its close() reaps through the native server it runs on: not this time.
  const native = bunNativeServer(server)
  const own = native === null ? undefined : Object.getOwnPropertyDescriptor(native, 'closeIdleConnections')
  if (native !== null) native.closeIdleConnections = () => {}
  try {
    (server as { close (callback: () => void): unknown }).close(closed)
  } finally {
    if (own !== undefined) Object.defineProperty(native, 'closeIdleConnections', own)
    else if (native !== null) delete (native as Partial<NativeServer>).closeIdleConnections
  }
}

/** Bun's native server, behind its `node:http` one. */
interface NativeServer {
  closeIdleConnections: () => unknown
}

/**
 * The native server Bun's `node:http` server runs on, made at listen and kept under a private symbol; null
 * where there is none (Node, Deno), or it is gone.
 */
export function bunNativeServer (server: Server): NativeServer | null {
  const symbol = Object.getOwnPropertySymbols(server).find((key) => key.description === '::bunternal::')
  const native: unknown = symbol === undefined ? undefined : (server as unknown as Record<symbol, unknown>)[symbol]
  if (typeof native !== 'object' || native === null || typeof (native as NativeServer).closeIdleConnections !== 'function') return null
  return native as NativeServer
}

/**
 * The servers Fastify opened besides `fastify.server`, one for each other address of the host name it listens
 * on (`localhost` → `::1` and `127.0.0.1`). Fastify keeps them under a private symbol (fastify/fastify#7043);
 * `null` when that symbol is gone.
 */
export function secondaryServers (fastify: FastifyInstance): Server[] | null {
  const symbol = Object.getOwnPropertySymbols(fastify).find((key) => key.description === 'fastify.serverBindings')
  const servers: unknown = symbol === undefined ? undefined : (fastify as unknown as Record<symbol, unknown>)[symbol]
  return Array.isArray(servers) ? servers as Server[] : null
}
