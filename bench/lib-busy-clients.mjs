// Keep-alive clients that talk straight to one process as fast as they can, the way an in-cluster client
// pool, a sidecar or a load generator does: each client has one connection and sends its next request the
// moment the previous response has ended. They stop by themselves once the server refuses a new connection
// (its listener has closed), or at `until`. The benchmark's, and test/connections.process.test.ts's (types in
// lib-busy-clients.d.mts).
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import autocannon from 'autocannon'
import { Pool } from 'undici'

export const CLIENT_KINDS = ['node-agent', 'undici-pool', 'autocannon']

/** A refused connection once the listener has closed: the one error a shutdown may cause, nothing listens there. */
export const REFUSED = 'ECONNREFUSED'

function add (record, key, n = 1) {
  record[key] = (record[key] ?? 0) + n
}

function codeOf (err) {
  return err?.cause?.code ?? err?.code ?? err?.message ?? String(err)
}

/**
 * Runs one client per path until `until` (`performance.now()`) or until the server refuses; resolves with
 * `{ statuses, errors }`, answers by status code and failed requests by error code. `answered` is called on
 * every answer.
 */
export async function runBusyClients (kind, { paths, port, until, answered = () => {} }) {
  const tally = { statuses: {}, errors: {} }
  const load = { port, until, answered, tally }
  if (kind === 'autocannon') await autocannonClients(paths, load)
  else if (kind === 'node-agent') await Promise.all(paths.map((path) => agentClient(path, load)))
  else if (kind === 'undici-pool') await Promise.all(paths.map((path) => undiciClient(path, load)))
  else throw new TypeError(`Expected a client kind among ${CLIENT_KINDS.join(', ')}, got "${kind}"`)
  return tally
}

async function agentClient (path, { port, until, answered, tally }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  try {
    while (performance.now() < until) {
      const outcome = await new Promise((resolve) => {
        http.get({ host: '127.0.0.1', port, path, agent }, (response) => {
          response.resume()
          response.on('end', () => resolve({ status: String(response.statusCode) }))
          response.on('error', (err) => resolve({ error: codeOf(err) }))
        }).on('error', (err) => resolve({ error: codeOf(err) }))
      })
      if (outcome.error === undefined) {
        add(tally.statuses, outcome.status)
        answered()
        continue
      }
      add(tally.errors, outcome.error)
      if (outcome.error === REFUSED) return
    }
  } finally {
    agent.destroy()
  }
}

async function undiciClient (path, { port, until, answered, tally }) {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 1, pipelining: 1 })
  try {
    while (performance.now() < until) {
      try {
        const response = await pool.request({ path, method: 'GET' })
        await response.body.dump()
        add(tally.statuses, String(response.statusCode))
        answered()
      } catch (err) {
        const code = codeOf(err)
        add(tally.errors, code)
        if (code === REFUSED) return
      }
    }
  } finally {
    await pool.destroy()
  }
}

/** One autocannon run per path, each with one connection; request errors counted by code through `reqError`. */
async function autocannonClients (paths, { port, until, answered, tally }) {
  await Promise.all(paths.map((path) => new Promise((resolve, reject) => {
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
      for (const [status, { count }] of Object.entries(result.statusCodeStats ?? {})) add(tally.statuses, status, count)
      if (result.timeouts > 0) add(tally.errors, 'timeout', result.timeouts)
      resolve()
    })
    instance.on('response', answered)
    instance.on('reqError', (err) => {
      const code = codeOf(err)
      add(tally.errors, code)
      // Nothing listens any more: stop instead of retrying until the duration ends.
      if (code === REFUSED) instance.stop()
    })
  })))
}

/** Failed requests other than a refused connection after the listener closed, by code: what a client sees as a loss. */
export function clientVisibleErrorsByCode (tally) {
  return Object.fromEntries(Object.entries(tally.errors).filter(([code]) => code !== REFUSED))
}

/** How many requests a client lost: the failed requests other than a refused connection. */
export function clientVisibleErrors (tally) {
  return Object.values(clientVisibleErrorsByCode(tally)).reduce((sum, n) => sum + n, 0)
}
