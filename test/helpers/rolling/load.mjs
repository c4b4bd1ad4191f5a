// Constant load through the load balancer, like the clients of a service during a rollout: closed loops,
// each sending its next request as soon as the previous one has ended, over keep-alive connections. Every
// request is recorded (times on this process's performance clock, the one the scenario stamps its signals
// with), so each failure can be placed on the timeline of the restarts. Bounded: the loops stop when told,
// and by themselves after `maxMs` or `maxRequests`, whichever comes first.
import http from 'node:http'
import { performance } from 'node:perf_hooks'

/** Bound on one request: past it the request is recorded as a `timeout` error and its socket destroyed. */
const REQUEST_TIMEOUT_MS = 15_000

/** Every `POST_EVERY`-th request of a fast loop creates an order instead of reading one. */
const POST_EVERY = 10

/**
 * @param {object} options
 * @param {number} options.port the load balancer's port on 127.0.0.1
 * @param {number} [options.fastLoops] loops of fast requests (`GET /orders/1`, some `POST /orders`)
 * @param {number} [options.slowLoops] loops of slow requests (`GET /reports/slow?ms=N`)
 * @param {[number, number]} [options.slowMs] range of N for the slow requests
 * @param {number} [options.longLoops] loops of long requests, the same route, meant to outlast the pre-stop
 *   delay so that some are still in flight when a replica's listener closes
 * @param {[number, number]} [options.longMs] range of N for the long requests
 * @param {number} [options.maxMs] the loops stop by themselves after this long
 * @param {number} [options.maxRequests] ...or after this many requests in all
 * @param {string} [options.fastPath] what the fast loops GET: `/orders/1` needs the order seeded on every
 *   replica, which a test cannot do behind a process manager's own balancing
 */
export function startLoad ({ port, fastPath = '/orders/1', fastLoops = 6, slowLoops = 2, slowMs = [300, 800], longLoops = 0, longMs = [2000, 3000], maxMs = 150_000, maxRequests = 1_000_000 }) {
  // One agent, like one client service's pool: its sockets stay open between requests and are never timed
  // out on this side, so only the load balancer ends them.
  const agent = new http.Agent({ keepAlive: true })
  const records = []
  const startedAt = performance.now()
  let stopping = false
  let stoppedBy = null
  let random = 42
  const waiters = new Set()

  const note = (record) => {
    records.push(record)
    for (const waiter of waiters) waiter()
  }

  // A fixed sequence of durations, so runs are comparable.
  const between = ([min, max]) => {
    random = (Math.imul(random, 1103515245) + 12345) >>> 0
    return min + (random % (max - min + 1))
  }

  const shouldStop = () => {
    if (stopping) return true
    if (performance.now() - startedAt > maxMs) stoppedBy = 'maxMs'
    else if (records.length >= maxRequests) stoppedBy = 'maxRequests'
    return stoppedBy !== null
  }

  async function loop (kind) {
    for (let n = 0; !shouldStop(); n++) {
      if (kind === 'slow') note(await send(agent, port, 'slow', 'GET', `/reports/slow?ms=${between(slowMs)}`))
      else if (kind === 'long') note(await send(agent, port, 'long', 'GET', `/reports/slow?ms=${between(longMs)}`))
      else if (n % POST_EVERY === POST_EVERY - 1) note(await send(agent, port, 'fast', 'POST', '/orders', JSON.stringify({ item: 'load', quantity: 1 })))
      else note(await send(agent, port, 'fast', 'GET', fastPath))
    }
  }

  const loops = [
    ...Array.from({ length: fastLoops }, () => loop('fast')),
    ...Array.from({ length: slowLoops }, () => loop('slow')),
    ...Array.from({ length: longLoops }, () => loop('long'))
  ]
  const done = Promise.all(loops).then(() => {
    agent.destroy()
    for (const waiter of waiters) waiter()
    return { records, stoppedBy: stoppedBy ?? 'stop', startedAt, endedAt: performance.now() }
  })

  return {
    records,
    /** Resolves once `count` requests have completed in all (the load is flowing), or the loops have ended. */
    warm (count) {
      return new Promise((resolve) => {
        const check = () => {
          if (records.length < count && !shouldStop()) return
          waiters.delete(check)
          resolve()
        }
        waiters.add(check)
        check()
      })
    },
    /** Lets every loop finish the request it is on, then resolves with everything recorded. */
    stop () {
      stopping = true
      return done
    },
    done
  }
}

/**
 * Requests sent on each connection so far: a record's `onConnection` is its rank there, 1 for the first,
 * which is what a proxy's log counts too (nginx's `$connection_requests`).
 */
const requestsOn = new WeakMap()

function send (agent, port, kind, method, path, body) {
  return new Promise((resolve) => {
    const start = performance.now()
    const record = { kind, method, path, start, end: 0, status: 0, error: null, body: null, reused: false, localPort: 0, onConnection: 0 }
    const finish = (fields) => {
      if (record.end !== 0) return
      Object.assign(record, fields, { end: performance.now() })
      resolve(record)
    }
    const headers = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      const ok = res.statusCode >= 200 && res.statusCode < 300
      let text = ''
      res.setEncoding('utf8')
      // Bodies of failures are kept (a few hundred bytes): they tell HAProxy's 503 from the plugin's.
      res.on('data', (chunk) => { if (!ok && text.length < 512) text += chunk })
      res.on('end', () => finish({ status: res.statusCode, body: ok ? null : text }))
      res.on('error', (err) => finish({ status: res.statusCode, error: err.code ?? err.message }))
    })
    req.on('socket', (socket) => {
      record.reused = req.reusedSocket
      record.onConnection = (requestsOn.get(socket) ?? 0) + 1
      requestsOn.set(socket, record.onConnection)
      if (socket.localPort !== undefined) record.localPort = socket.localPort
      else socket.once('connect', () => { record.localPort = socket.localPort })
    })
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(Object.assign(new Error('request timed out'), { code: 'timeout' })))
    req.on('error', (err) => finish({ error: err.code ?? err.message }))
    req.end(body)
  })
}

/** The q-quantile (0..1) of sorted numbers, nearest rank. */
export function quantile (sorted, q) {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]
}

/** How many of `items` there are for each value of `key(item)`. */
export function countBy (items, key) {
  const counts = {}
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1
  return counts
}
