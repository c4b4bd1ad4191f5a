// Many HTTP/1.1 connections driven by hand, one request each: ten thousand of them cost the bench far less
// than http.Agent's machinery would, and nothing opens or reuses a socket behind the bench's back.
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { bounded } from './lib-child.mjs'

/** Connections opened at once: well under the server's listen backlog (511), so no SYN is dropped. */
export const CONNECT_BATCH = 250

/**
 * One connection to 127.0.0.1:`port`. `request()` sends one GET and resolves with the response once its
 * whole body (Content-Length) is in; `closedAt` is the moment the socket closed, null while it is open.
 */
export class Connection {
  closedAt = null
  error = null
  #buffer = ''
  #pending = null

  constructor (port) {
    this.socket = net.connect({ host: '127.0.0.1', port })
    this.socket.setNoDelay(true)
    this.socket.setEncoding('latin1')
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve)
      this.socket.once('error', reject)
    })
    // The server ending the process resets whatever it did not close: expected, and recorded.
    this.socket.on('error', (err) => { this.error = err.code ?? err.message })
    this.socket.on('data', (chunk) => this.#read(chunk))
    this.socket.once('close', () => {
      this.closedAt = performance.now()
      this.#pending?.reject(new Error(`the connection closed before the response ended${this.error === null ? '' : ` (${this.error})`}`))
    })
  }

  /** `close`: ask for `Connection: close`, so the server ends the connection after the response. */
  request (path, { close = false } = {}) {
    const sent = new Promise((resolve, reject) => { this.#pending = { resolve, reject } })
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${close ? 'Connection: close\r\n' : ''}\r\n`)
    return sent
  }

  destroy () {
    this.socket.destroy()
  }

  #read (chunk) {
    this.#buffer += chunk
    if (this.#pending === null) return
    const headEnd = this.#buffer.indexOf('\r\n\r\n')
    if (headEnd === -1) return
    const [statusLine, ...headerLines] = this.#buffer.slice(0, headEnd).split('\r\n')
    const headers = Object.fromEntries(headerLines.map((line) => {
      const colon = line.indexOf(':')
      return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]
    }))
    const length = Number(headers['content-length'])
    if (!Number.isInteger(length)) {
      this.#pending.reject(new Error(`a response without Content-Length: ${statusLine}`))
      this.#pending = null
      return
    }
    if (this.#buffer.length < headEnd + 4 + length) return
    const response = { status: Number(statusLine.split(' ')[1]), connection: headers.connection ?? null, endAt: performance.now() }
    this.#buffer = this.#buffer.slice(headEnd + 4 + length)
    const { resolve } = this.#pending
    this.#pending = null
    resolve(response)
  }
}

/**
 * Opens `count` connections in batches, each waiting for the one before to connect. With `path`, each sends
 * that request at once; with `awaitResponse`, each batch also waits for its responses (idle keep-alive
 * connections: they have served a request and stay open). Resolves with the connections, each with its
 * `pending` response promise when a request was sent.
 */
export async function openConnections (port, count, { path, close = false, awaitResponse = false } = {}) {
  const connections = []
  try {
    for (let start = 0; start < count; start += CONNECT_BATCH) {
      const batch = Array.from({ length: Math.min(CONNECT_BATCH, count - start) }, () => new Connection(port))
      connections.push(...batch)
      await bounded(Promise.all(batch.map((connection) => connection.connected)), `${batch.length} connections to open`)
      if (path === undefined) continue
      for (const connection of batch) {
        connection.pending = connection.request(path, { close })
        // A server that cuts a request is what some runs measure; the caller looks at `pending` itself.
        connection.pending.catch(() => {})
      }
      if (awaitResponse) await bounded(Promise.all(batch.map((connection) => connection.pending)), `${batch.length} responses to ${path}`)
    }
    return connections
  } catch (err) {
    destroyAll(connections)
    throw err
  }
}

export function destroyAll (connections) {
  for (const connection of connections) connection.destroy()
}
