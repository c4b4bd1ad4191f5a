// A real HAProxy in front of the replicas: the load balancer of the rolling-restart scenario. It runs in the
// foreground as a child of this process (`-db`), listens on 127.0.0.1 only, and is driven through its runtime
// API on a unix socket, the way kube-proxy's endpoint updates would reach it.
import { spawn, spawnSync } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { createInterface } from 'node:readline'
import { countBy } from './load.mjs'

/** The path HAProxy's active health check asks; `/readyz` once the plugin serves its own readiness route. */
export const READINESS_PATH = '/readyz'

/**
 * A path that answers 200 until the process exits (the plugin's liveness route in the example app). Checked
 * instead of readiness, HAProxy notices only a closed listener, like a load balancer without readiness
 * checks: the endpoint removal, after its propagation lag, is then what takes a replica out of rotation.
 */
export const LIVENESS_PATH = '/livez'

/** Interval of HAProxy's active health checks; `fall 1 rise 1`, so one check changes a server's state. */
export const CHECK_INTERVAL_MS = 500

/** Answered by HAProxy itself (`monitor-uri`): how this process knows the frontend accepts requests. */
const MONITOR_PATH = '/haproxy-alive'

/** How often the runtime API is asked while waiting for a state: it has no way to push one. */
const POLL_MS = 25

/** Version line of the installed haproxy, or null when there is none (the test skips then). */
export function haproxyVersion () {
  const probe = spawnSync('haproxy', ['-v'], { encoding: 'utf8' })
  if (probe.error || probe.status !== 0) return null
  return probe.stdout.split('\n')[0]
}

/** A port free on 127.0.0.1 right now, for HAProxy's frontend (HAProxy cannot report a port 0 bind). */
export function freePort () {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/**
 * The configuration. What matters for the proof:
 * - `option http-keep-alive` on both sides: client connections and pooled server connections are reused,
 *   which is where a shutting-down server can reset a request;
 * - `retries 0` and no `option redispatch`: a request HAProxy cannot deliver is an error at the client, never
 *   silently retried elsewhere, so the count the client sees is every failure there was;
 * - active health checks, fast (`inter 500 fall 1 rise 1`), on the readiness path like a readiness probe
 *   (or on `checkPath`);
 * - `slots` server lines; the ones without a replica start in maintenance (`disabled`) and receive one
 *   through the runtime API, the way an endpoint is added to a Service;
 * - only abnormal requests are logged (`option dontlog-normal`), to stderr, as evidence of each failure.
 */
export function haproxyConfig ({ frontendPort, socketPath, servers, slots, checkPath = READINESS_PATH, checkIntervalMs = CHECK_INTERVAL_MS }) {
  const lines = [
    'global',
    `  stats socket ${socketPath} level admin mode 600`,
    '  maxconn 4096',
    '',
    'defaults',
    '  mode http',
    '  option http-keep-alive',
    '  retries 0',
    '  timeout connect 2s',
    '  timeout client 60s',
    '  timeout server 60s',
    '  timeout http-request 10s',
    '  timeout http-keep-alive 60s',
    '  log stderr format raw local0 info',
    '  option httplog',
    '  option dontlog-normal',
    '',
    'frontend fe',
    `  bind 127.0.0.1:${frontendPort}`,
    `  monitor-uri ${MONITOR_PATH}`,
    '  log global',
    '  default_backend be',
    '',
    'backend be',
    '  balance roundrobin',
    `  option httpchk GET ${checkPath}`,
    '  http-check expect status 200',
    `  default-server check inter ${checkIntervalMs} fall 1 rise 1`
  ]
  for (let i = 0; i < slots; i++) {
    const port = servers[i]
    // Port 1 is a placeholder: the slot is in maintenance until the runtime API gives it a replica.
    lines.push(port === undefined ? `  server ${slotName(i)} 127.0.0.1:1 disabled` : `  server ${slotName(i)} 127.0.0.1:${port}`)
  }
  return lines.join('\n') + '\n'
}

export function slotName (index) {
  return `srv${index + 1}`
}

/** One command over the runtime API; resolves with HAProxy's whole answer. */
export function runtimeCommand (socketPath, command) {
  return new Promise((resolve, reject) => {
    let answer = ''
    const socket = net.connect(socketPath)
    socket.setEncoding('utf8')
    socket.on('data', (chunk) => { answer += chunk })
    socket.on('error', reject)
    socket.on('close', () => resolve(answer))
    socket.end(`${command}\n`)
  })
}

/** The server rows of `show stat` as objects keyed by the CSV header. */
export function parseStat (csv) {
  const [header, ...rows] = csv.trim().split('\n')
  const fields = header.replace(/^# /, '').split(',')
  return rows.map((row) => Object.fromEntries(row.split(',').map((value, i) => [fields[i], value])))
}

export class Haproxy {
  /** HAProxy's stderr: its state-change warnings and the log lines of abnormal requests, with arrival times. */
  lines = []
  exit = null

  constructor (proc, { frontendPort, socketPath, configPath }) {
    this.proc = proc
    this.port = frontendPort
    this.socketPath = socketPath
    this.configPath = configPath
    createInterface({ input: proc.stderr }).on('line', (line) => this.lines.push({ at: performance.now(), line }))
    proc.stdout.resume()
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exit = { code, signal }
        resolve(this.exit)
      })
    })
  }

  command (command) {
    if (this.exit !== null) return Promise.reject(new Error(`haproxy exited (${JSON.stringify(this.exit)}) before "${command}"\n${this.tail()}`))
    return runtimeCommand(this.socketPath, command)
  }

  async servers () {
    return parseStat(await this.command('show stat -1 4 -1'))
  }

  /**
   * Resolves once `check(rows)` holds. The runtime API cannot push a state change, so this asks it every
   * POLL_MS; `limitMs` bounds the wait so a broken state fails with the rows instead of hanging.
   */
  async until (describe, check, limitMs = 10_000) {
    const deadline = performance.now() + limitMs
    for (;;) {
      const rows = await this.servers()
      if (check(rows)) return rows
      if (performance.now() > deadline) {
        throw new Error(`timed out after ${limitMs} ms waiting for ${describe}; haproxy servers:\n${JSON.stringify(rows.map(brief))}\n${this.tail()}`)
      }
      await sleep(POLL_MS)
    }
  }

  /**
   * Until the named slot is UP at `port` with a passed health check. Leaving maintenance, HAProxy counts a
   * checked server as UP at once and checks it right after; its `check_status` may still be the previous
   * occupant's last result then. The replica has answered a direct request before it is added (see
   * startReplica), so it is ready either way: this waits for HAProxy's view, not for the replica.
   */
  untilUp (slot, port) {
    return this.until(`${slot} UP at port ${port}`, (rows) => {
      const row = rows.find((r) => r.svname === slot)
      return row !== undefined && row.status === 'UP' && row.check_status === 'L7OK' && row.addr === `127.0.0.1:${port}`
    })
  }

  /** Puts a replica into rotation in a slot that is in maintenance; resolves once HAProxy has it UP. */
  async enable (slot, port) {
    await this.command(`set server be/${slot} addr 127.0.0.1 port ${port}`)
    await this.command(`set server be/${slot} state ready`)
    return this.untilUp(slot, port)
  }

  /** Takes a slot out of rotation whatever its health checks say (the endpoint removal). */
  async maintenance (slot) {
    const answer = await this.command(`set server be/${slot} state maint`)
    if (answer.trim() !== '') throw new Error(`set server be/${slot} state maint: ${answer}`)
  }

  /** The log lines of abnormal requests (HAProxy's httplog format), as written. */
  requestLogs () {
    return this.lines.filter(({ line }) => /^\S+:\d+ \[/.test(line))
  }

  tail (n = 20) {
    return `haproxy stderr (last ${n} lines):\n` + this.lines.slice(-n).map(({ line }) => line).join('\n')
  }

  async stop () {
    if (this.exit === null) this.proc.kill('SIGKILL')
    await this.exited
  }
}

function brief (row) {
  return { slot: row.svname, status: row.status, check: row.check_status, addr: row.addr }
}

/**
 * Writes the configuration into `dir`, runs HAProxy in the foreground and resolves once its frontend
 * accepts connections and every configured replica is UP with a passed health check.
 */
export async function startHaproxy ({ dir, servers, slots, checkPath, checkIntervalMs }) {
  const frontendPort = await freePort()
  const socketPath = path.join(dir, 'admin.sock')
  const configPath = path.join(dir, 'haproxy.cfg')
  await writeFile(configPath, haproxyConfig({ frontendPort, socketPath, servers, slots, checkPath, checkIntervalMs }))
  const proc = spawn('haproxy', ['-f', configPath, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] })
  const haproxy = new Haproxy(proc, { frontendPort, socketPath, configPath })
  try {
    // The runtime API answers once the configuration is loaded and every listener bound.
    const deadline = performance.now() + 10_000
    for (;;) {
      if (haproxy.exit !== null) throw new Error(`haproxy exited at start: ${JSON.stringify(haproxy.exit)}\n${haproxy.tail()}`)
      const answer = await haproxy.command('show info').catch(() => null)
      if (answer !== null && answer.includes('Pid:')) break
      if (performance.now() > deadline) throw new Error(`haproxy's runtime API did not answer\n${haproxy.tail()}`)
      await sleep(POLL_MS)
    }
    await new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: frontendPort, path: MONITOR_PATH, agent: false }, (res) => {
        res.resume()
        res.on('end', () => res.statusCode === 200 ? resolve() : reject(new Error(`haproxy's frontend answered ${res.statusCode} on ${MONITOR_PATH}`)))
      }).on('error', reject)
    })
    await haproxy.until('every replica UP', (rows) => servers.every((port, i) => {
      const row = rows.find((r) => r.svname === slotName(i))
      return row !== undefined && row.status === 'UP' && row.check_status === 'L7OK' && row.addr === `127.0.0.1:${port}`
    }))
  } catch (err) {
    await haproxy.stop()
    throw err
  }
  return haproxy
}

/**
 * HAProxy as the scenario's ingress: `slots` = the first replicas + one free slot, into which each
 * replacement goes, while the replica it replaces leaves its own slot for the next one. `explain(record)`
 * finds HAProxy's log line of a failed request and the replica that answered it.
 */
export async function startHaproxyIngress ({ dir, replicas, checkPath = READINESS_PATH, checkIntervalMs = CHECK_INTERVAL_MS }) {
  const haproxy = await startHaproxy({ dir, servers: replicas.map((r) => r.port), slots: replicas.length + 1, checkPath, checkIntervalMs })
  const slotOf = new Map(replicas.map((replica, i) => [replica, slotName(i)]))
  // Which replica went into which slot when: a failure HAProxy logged against a slot names its replica.
  const occupancy = replicas.map((replica, i) => ({ slot: slotName(i), replica, from: 0 }))
  const free = [slotName(replicas.length)]
  return {
    name: 'haproxy',
    version: haproxyVersion(),
    port: haproxy.port,
    describe: `haproxy on 127.0.0.1:${haproxy.port} (health check GET ${checkPath})`,
    where: (replica) => slotOf.get(replica),
    async add (replica) {
      const slot = free.shift()
      slotOf.set(replica, slot)
      occupancy.push({ slot, replica, from: performance.now() })
      await haproxy.enable(slot, replica.port)
    },
    async remove (replica) {
      const slot = slotOf.get(replica)
      await haproxy.maintenance(slot)
      free.push(slot)
    },
    async collect () {
      // HAProxy logs nothing when it resets a keep-alive client connection because the reused server
      // connection it sent the request on failed before any response (its `abort_keep_alive` path, meant to
      // make the client retry): such a failure has no line.
      const logged = haproxy.requestLogs()
      const lines = logged.map(parseRequestLog).filter((line) => line !== null)
      return {
        explain (record) {
          const lb = lines
            .filter((line) => line.clientPort === record.localPort && Math.abs(line.at - record.end) < 100 &&
              (record.status === 0 ? line.status <= 0 : line.status === record.status))
            .sort((a, b) => Math.abs(a.at - record.end) - Math.abs(b.at - record.end))[0]
          if (lb === undefined) return { proxy: null, replica: null, reload: null }
          const occupant = occupancy.filter((o) => o.slot === lb.slot && o.from <= record.start).at(-1)
          return { proxy: { server: lb.server, timers: lb.timers, termination: lb.termination }, replica: occupant?.replica ?? null, reload: null }
        },
        log: logged.map(({ at, line }) => ({ at, line })),
        reloads: [],
        report: { name: 'haproxy', version: haproxyVersion(), proxyErrors: countBy(lines, (line) => `${line.status} ${line.termination}`) }
      }
    },
    stop: () => haproxy.stop(),
    kill: () => { if (haproxy.exit === null) haproxy.proc.kill('SIGKILL') }
  }
}

/**
 * One line of HAProxy's httplog, e.g.
 * `127.0.0.1:54856 [22/Nov/2026:01:00:23.226] fe be/srv1 0/0/0/4/4 503 265 - - ---- 8/8/7/0/0 0/0 "GET /orders/1 HTTP/1.1"`:
 * client port, backend/server, timers (TR/Tw/Tc/Tr/Ta), status, termination state (`SC--`: the server
 * refused the connection, `SH--`: it closed before sending headers, ...).
 */
function parseRequestLog ({ at, line }) {
  const match = /^\S+:(\d+) \[[^\]]+\] \S+ (\S+)\/(\S+) (\S+) (-?\d+) \S+ \S+ \S+ (\S{4}) /.exec(line)
  if (match === null) return null
  const [, clientPort, , slot, timers, status, termination] = match
  return { at, clientPort: Number(clientPort), server: `${match[2]}/${slot}`, slot, timers, status: Number(status), termination }
}
