import http from 'node:http'
import autocannon from 'autocannon'
import { Pool } from 'undici'

/**
 * Keep-alive clients that talk straight to one process as fast as they can, the way an in-cluster client
 * pool, a sidecar or a load generator does: each client has one connection and sends its next request the
 * moment the previous response has ended. They stop by themselves once the server refuses a new connection
 * (its listener has closed), or at `until`.
 */
export type ClientKind = 'node-agent' | 'undici-pool' | 'autocannon'
export const CLIENT_KINDS: readonly ClientKind[] = ['node-agent', 'undici-pool', 'autocannon']

export interface Tally {
  /** Answers by status code. */
  readonly statuses: Record<string, number>
  /** Failed requests by error code: ECONNREFUSED is the only one a shutdown may cause. */
  readonly errors: Record<string, number>
}

export interface BusyLoad {
  /** Paths, one client each, e.g. six on a fast route and six on a slow one. */
  readonly paths: readonly string[]
  readonly port: number
  /** `performance.now()` after which no client starts a new request. */
  readonly until: number
  /** Called on every answer, whatever its status. */
  readonly answered?: () => void
}

function count (record: Record<string, number>, key: string): void {
  record[key] = (record[key] ?? 0) + 1
}

function countAnswer (tally: Tally, status: string, load: BusyLoad): void {
  count(tally.statuses, status)
  load.answered?.()
}

function codeOf (err: unknown): string {
  const error = err as { code?: string, cause?: { code?: string }, message?: string }
  return error.cause?.code ?? error.code ?? error.message ?? String(err)
}

export async function runBusyClients (kind: ClientKind, load: BusyLoad): Promise<Tally> {
  const tally: Tally = { statuses: {}, errors: {} }
  if (kind === 'autocannon') await autocannonClients(load, tally)
  else await Promise.all(load.paths.map((path) => (kind === 'node-agent' ? agentClient : undiciClient)(path, load, tally)))
  return tally
}

async function agentClient (path: string, load: BusyLoad, tally: Tally): Promise<void> {
  const { port, until } = load
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  try {
    while (performance.now() < until) {
      const outcome = await new Promise<string>((resolve) => {
        http.get({ host: '127.0.0.1', port, path, agent }, (response) => {
          response.resume()
          response.on('end', () => resolve(String(response.statusCode)))
          response.on('error', (err) => resolve(`error:${codeOf(err)}`))
        }).on('error', (err) => resolve(`error:${codeOf(err)}`))
      })
      if (outcome.startsWith('error:')) {
        count(tally.errors, outcome.slice(6))
        if (outcome === 'error:ECONNREFUSED') return
      } else countAnswer(tally, outcome, load)
    }
  } finally {
    agent.destroy()
  }
}

async function undiciClient (path: string, load: BusyLoad, tally: Tally): Promise<void> {
  const { port, until } = load
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 1, pipelining: 1 })
  try {
    while (performance.now() < until) {
      try {
        const response = await pool.request({ path, method: 'GET' })
        await response.body.dump()
        countAnswer(tally, String(response.statusCode), load)
      } catch (err) {
        const code = codeOf(err)
        count(tally.errors, code)
        if (code === 'ECONNREFUSED') return
      }
    }
  } finally {
    await pool.destroy()
  }
}

/** One autocannon run per path, each with one connection; it counts request errors by code through `reqError`. */
async function autocannonClients ({ paths, port, until, answered }: BusyLoad, tally: Tally): Promise<void> {
  const runs = paths.map((path) => new Promise<void>((resolve, reject) => {
    const instance = autocannon({
      url: `http://127.0.0.1:${port}${path}`,
      connections: 1,
      pipelining: 1,
      duration: Math.max(1, (until - performance.now()) / 1000),
      timeout: 5
    }, (err, result) => {
      if (err) {
        reject(err)
        return
      }
      for (const [status, n] of Object.entries(result.statusCodeStats ?? {})) {
        tally.statuses[status] = (tally.statuses[status] ?? 0) + (n as { count: number }).count
      }
      if (result.timeouts > 0) tally.errors.timeout = (tally.errors.timeout ?? 0) + result.timeouts
      resolve()
    })
    if (answered !== undefined) instance.on('response', answered)
    instance.on('reqError', (err: unknown) => {
      const code = codeOf(err)
      count(tally.errors, code)
      // Nothing listens any more: stop instead of retrying until the duration ends.
      if (code === 'ECONNREFUSED') instance.stop()
    })
  }))
  await Promise.all(runs)
}

/** Errors other than a refused connection after the listener closed. */
export function unexpectedErrors (tally: Tally): Record<string, number> {
  return Object.fromEntries(Object.entries(tally.errors).filter(([code]) => code !== 'ECONNREFUSED'))
}
