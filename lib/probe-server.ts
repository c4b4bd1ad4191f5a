import type { FastifyBaseLogger } from 'fastify'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { performance } from 'node:perf_hooks'
import type { ProbeLogLevel, ResolvedShutdownOptions, ShutdownReport } from '../types'
import { ERR_PROBE_PORT_CONFLICT, ERR_PROBE_SERVER_LISTEN } from './errors'
import { ALIVE, preStopEndpoint, readinessAnswer, type ProbeAnswer, type ProbeCaller, type ProbedShutdown } from './probe-answers'

interface ProbeRoute {
  readonly logLevel: ProbeLogLevel
  answer (caller: ProbeCaller, log: FastifyBaseLogger): ProbeAnswer | Promise<ProbeAnswer>
}

const NOT_FOUND: ProbeAnswer = Object.freeze({ statusCode: 404, body: Object.freeze({ statusCode: 404, error: 'Not Found', message: 'No probe on this path' }) })
const METHOD_NOT_ALLOWED: ProbeAnswer = Object.freeze({ statusCode: 405, body: Object.freeze({ statusCode: 405, error: 'Method Not Allowed', message: 'Probes answer GET and HEAD' }) })

/**
 * The probes and the preStop endpoint on a port of their own (`probeServer`), one the Service does not
 * expose: only what reaches the pod directly, the kubelet, can call them. A plain `node:http` server, apart
 * from Fastify's, so the shutdown it reports on never drains it, refuses its requests or closes its
 * listener: it answers until the report is out.
 */
export class ProbeServer {
  private readonly server: http.Server
  private readonly routes = new Map<string, ProbeRoute>()
  private listening: Promise<void> | null = null
  private closed: Promise<void> | null = null

  constructor (
    private readonly options: Exclude<ResolvedShutdownOptions['probeServer'], false>,
    { readiness, liveness, preStopRoute }: ResolvedShutdownOptions,
    shutdown: ProbedShutdown,
    startFromPreStopRoute: () => Promise<ShutdownReport>,
    private readonly log: FastifyBaseLogger
  ) {
    if (readiness) this.routes.set(readiness.path, { logLevel: readiness.logLevel, answer: () => readinessAnswer(shutdown) })
    if (liveness) this.routes.set(liveness.path, { logLevel: liveness.logLevel, answer: () => ALIVE })
    if (preStopRoute) this.routes.set(preStopRoute.path, { logLevel: preStopRoute.logLevel, answer: preStopEndpoint(preStopRoute, shutdown, startFromPreStopRoute) })
    this.server = http.createServer(this.handle)
  }

  /** Null before it listens and once it has closed. */
  get address (): AddressInfo | null {
    const address = this.server.address()
    return typeof address === 'object' ? address : null
  }

  /**
   * Listens beside the app, whose addresses are known by now: a port the app has too (on another host) would
   * be reached through the app's Service, so it is refused, as is any port it cannot bind.
   */
  listen (appAddresses: readonly (AddressInfo | string)[]): Promise<void> {
    const { port, host } = this.options
    const shared = appAddresses.filter((address): address is AddressInfo => typeof address === 'object' && address.port === port)
    if (port !== 0 && shared.length > 0) {
      return Promise.reject(new ERR_PROBE_PORT_CONFLICT(port, shared.map(hostPort).join(', ')))
    }
    this.listening = new Promise((resolve, reject) => {
      const failed = (err: Error): void => {
        const where = host === undefined ? `port ${port} of every interface` : hostPort({ address: host, port })
        reject(new ERR_PROBE_SERVER_LISTEN(where, err.message, { cause: err }))
      }
      this.server.once('error', failed)
      this.server.listen({ port, host }, () => {
        this.server.removeListener('error', failed)
        this.server.on('error', (err) => this.log.error({ err }, 'probe server error'))
        resolve()
      })
    })
    return this.listening
  }

  /**
   * Stops listening and ends every connection; idempotent. Waits for a listen under way, so that a bind
   * finishing later cannot leave a handle open.
   */
  close (): Promise<void> {
    this.closed ??= (async () => {
      await this.listening?.catch(() => {})
      if (!this.server.listening) return
      await new Promise<void>((resolve) => {
        this.server.close(() => resolve())
        this.server.closeAllConnections()
      })
    })()
    return this.closed
  }

  private readonly handle = (request: http.IncomingMessage, response: http.ServerResponse): void => {
    const url = request.url ?? '/'
    const query = url.indexOf('?')
    const route = this.routes.get(query === -1 ? url : url.slice(0, query))
    if (route === undefined) return reply(response, NOT_FOUND, request.method === 'HEAD')
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('allow', 'GET, HEAD')
      return reply(response, METHOD_NOT_ALLOWED, false)
    }
    const start = performance.now()
    const caller: ProbeCaller = { remoteAddress: request.socket.remoteAddress, headers: request.headers }
    void Promise.resolve(route.answer(caller, this.log)).then((answer) => {
      reply(response, answer, request.method === 'HEAD')
      if (route.logLevel === 'silent') return
      this.log[route.logLevel]({
        method: request.method,
        url,
        remoteAddress: caller.remoteAddress,
        statusCode: answer.statusCode,
        responseTimeMs: performance.now() - start
      }, 'probe request completed')
    })
  }
}

function reply (response: http.ServerResponse, { statusCode, body }: ProbeAnswer, head: boolean): void {
  const json = JSON.stringify(body)
  response.writeHead(statusCode, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json) })
  response.end(head ? undefined : json)
}

function hostPort ({ address, port }: { address: string, port: number }): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`
}
