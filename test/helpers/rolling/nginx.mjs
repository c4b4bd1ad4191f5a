// A real nginx in front of the replicas, configured the way ingress-nginx runs it. It runs in the foreground
// as a child of this process (`daemon off`, its master and workers), with its prefix, configuration, pid
// file, temporary paths and access log in the scenario's directory, and its error log on stderr (where
// ingress-nginx sends it too: its /var/log/nginx/error.log is a link to /dev/stderr). It listens on 127.0.0.1
// only. Endpoint changes reach it as they reach an nginx whose upstream block a controller rewrites: a new
// configuration, then SIGHUP to the master (what `nginx -s reload` sends).
import { spawn, spawnSync } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { freePort } from './haproxy.mjs'
import { countBy } from './load.mjs'

/** Debian's nginx-light installs /usr/sbin/nginx, which is not on every user's PATH. */
const BINARIES = ['nginx', '/usr/sbin/nginx']

/**
 * The settings that decide what a client sees during a rolling restart, with ingress-nginx's defaults
 * (its ConfigMap key in brackets) where the test does not need another value.
 */
export const NGINX_SETTINGS = Object.freeze({
  /** [worker-processes] ingress-nginx: one per CPU; two, as on this 2-core machine, whatever the machine. */
  workerProcesses: 2,
  /** [upstream-keepalive-connections] idle connections to the replicas cached per worker (ingress-nginx: 320). */
  upstreamKeepalive: 32,
  /** [upstream-keepalive-timeout] seconds an idle upstream connection stays cached: the app's keepAliveTimeout must be longer. */
  upstreamKeepaliveTimeoutS: 60,
  /** [upstream-keepalive-requests] */
  upstreamKeepaliveRequests: 10_000,
  /** [keep-alive] seconds a client's idle connection stays open. */
  keepaliveTimeoutS: 75,
  /** [keep-alive-requests] */
  keepaliveRequests: 1000,
  /** [proxy-connect-timeout] seconds */
  proxyConnectTimeoutS: 5,
  /** [proxy-read-timeout] and [proxy-send-timeout] seconds */
  proxyTimeoutS: 60,
  /**
   * [proxy-next-upstream] `off`: no request is tried on another replica. ingress-nginx's default,
   * `error timeout`, never retries a POST that was sent either (nginx retries no non-idempotent request
   * without `non_idempotent`), so this is what every POST gets, made true of every request: each failure the
   * replicas cause reaches the client and is counted.
   */
  proxyNextUpstream: 'off',
  /** [worker-shutdown-timeout] how long the workers a reload retires may finish what they serve. */
  workerShutdownTimeoutS: 240
})

/** Answered by nginx itself: how this process knows the server accepts requests. */
const ALIVE_PATH = '/nginx-alive'

/** Bound on a start, a reload and a stop: far above what they take, so a broken one fails instead of hanging. */
const LIMIT_MS = 10_000

/** The nginx binary and its version line, or null when there is none (the test skips then). */
export function findNginx () {
  for (const binary of BINARIES) {
    const probe = spawnSync(binary, ['-v'], { encoding: 'utf8' })
    // `nginx -v` prints to stderr.
    if (!probe.error && probe.status === 0) return { binary, version: probe.stderr.trim() }
  }
  return null
}

/** Version line of the installed nginx (`nginx version: nginx/1.22.1`), or null. */
export function nginxVersion () {
  return findNginx()?.version ?? null
}

/**
 * The configuration, with `servers` (ports on 127.0.0.1) in the upstream block. What matters for the proof:
 * - upstream keep-alive as ingress-nginx sets it up (`keepalive`, HTTP/1.1, `Connection ""` so that each
 *   request does not ask the replica to close): requests reuse pooled connections to the replicas, which is
 *   where a replica that shuts down badly resets them;
 * - `proxy_next_upstream off` (see NGINX_SETTINGS): every failure reaches the client;
 * - `max_fails=0`: a replica that fails stays in rotation until its endpoint goes, as with ingress-nginx's
 *   Lua balancer, which has no passive health checks (nginx's default, `max_fails=1`, would skip a failing
 *   replica for 10 s after its first error and hide what clients see behind ingress-nginx);
 * - every request in the access log (JSON, one line each): with its client port, worker pid and upstream,
 *   a failure at the client can be matched with what nginx did; the error log at `notice` (ingress-nginx's
 *   level) names each upstream error, and each worker a reload starts and retires.
 */
export function nginxConfig ({ dir, port, servers, settings = NGINX_SETTINGS }) {
  if (servers.length === 0) throw new TypeError('Expected at least one server: nginx refuses an empty upstream block')
  const file = (name) => JSON.stringify(path.join(dir, name))
  // Run by root, workers would drop to `nobody`, which cannot enter the 0700 temporary directory.
  const root = process.getuid?.() === 0
  return `${root ? 'user root;\n' : ''}daemon off;
worker_processes ${settings.workerProcesses};
worker_shutdown_timeout ${settings.workerShutdownTimeoutS}s;
pid ${file('nginx.pid')};
error_log stderr notice;

events {
  worker_connections 16384;
  multi_accept on;
}

http {
  log_format rolling escape=json '{"msec":$msec,"pid":$pid,"connection":$connection,"connectionRequests":$connection_requests,'
    '"clientPort":$remote_port,"status":$status,"request":"$request","upstream":"$upstream_addr","upstreamStatus":"$upstream_status",'
    '"requestTime":$request_time}';
  access_log ${file('access.log')} rolling;
  client_body_temp_path ${file('client_body')};
  proxy_temp_path ${file('proxy')};
  fastcgi_temp_path ${file('fastcgi')};
  uwsgi_temp_path ${file('uwsgi')};
  scgi_temp_path ${file('scgi')};
  keepalive_timeout ${settings.keepaliveTimeoutS}s;
  keepalive_requests ${settings.keepaliveRequests};

  upstream app {
${servers.map((p) => `    server 127.0.0.1:${p} max_fails=0;`).join('\n')}
    keepalive ${settings.upstreamKeepalive};
    keepalive_timeout ${settings.upstreamKeepaliveTimeoutS}s;
    keepalive_requests ${settings.upstreamKeepaliveRequests};
  }

  server {
    listen 127.0.0.1:${port} reuseport;
    location = ${ALIVE_PATH} {
      access_log off;
      return 200 "ok\\n";
    }
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream ${settings.proxyNextUpstream};
      proxy_connect_timeout ${settings.proxyConnectTimeoutS}s;
      proxy_read_timeout ${settings.proxyTimeoutS}s;
      proxy_send_timeout ${settings.proxyTimeoutS}s;
      proxy_buffering off;
    }
  }
}
`
}

/**
 * One line of nginx's error log: `2026/12/10 10:00:00 [error] 1234#1234: *56 upstream prematurely closed
 * connection while reading response header from upstream, client: 127.0.0.1, ..., upstream: "http://..."`.
 * `what` is the message without its context (what nginx was doing, the client, the request).
 */
export function parseErrorLine (line) {
  const match = /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[(\w+)\] (\d+)#\d+: (?:\*(\d+) )?(.*)$/.exec(line)
  if (match === null) return null
  const [, level, pid, connection, message] = match
  const what = message.split(/ while |, client: /)[0]
  const upstream = /, upstream: "http:\/\/([^/"]+)/.exec(message)?.[1] ?? null
  return { level, pid: Number(pid), connection: connection === undefined ? null : Number(connection), message, what, upstream }
}

/** Levels of nginx's error log that mean something failed (below them: notice, info, debug). */
const ERROR_LEVELS = new Set(['warn', 'error', 'crit', 'alert', 'emerg'])

export class Nginx {
  /** nginx's stderr (its error log), each line with its arrival time on this process's performance clock. */
  lines = []
  exit = null
  /** Pids of the workers serving the current configuration. */
  workers = []
  /** Pids of the workers that have said they were shutting down gracefully. */
  retired = new Set()
  /** Each reload: SIGHUP sent, when every old worker had stopped accepting, and which workers it retired. */
  reloads = []
  /** Workers started and not yet reported gone by the master. */
  #live = new Set()
  #waiters = new Set()

  constructor (proc, { version, port, dir, configPath, settings }) {
    this.proc = proc
    this.version = version
    this.port = port
    this.dir = dir
    this.configPath = configPath
    this.settings = settings
    createInterface({ input: proc.stderr }).on('line', (line) => {
      const entry = { at: performance.now(), line, parsed: parseErrorLine(line) }
      this.lines.push(entry)
      const message = entry.parsed?.message ?? ''
      if (message === 'gracefully shutting down') this.retired.add(entry.parsed.pid)
      const started = /^start worker process (\d+)$/.exec(message)?.[1]
      if (started !== undefined) this.#live.add(Number(started))
      const gone = /^worker process (\d+) exited/.exec(message)?.[1]
      if (gone !== undefined) this.#live.delete(Number(gone))
      for (const waiter of this.#waiters) waiter()
    })
    proc.stdout.resume()
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exit = { code, signal, at: performance.now() }
        for (const waiter of this.#waiters) waiter()
        resolve(this.exit)
      })
    })
  }

  /**
   * Resolves with `check()`'s value once it is not undefined, checked on every line nginx logs; rejects
   * when nginx exits first or after LIMIT_MS, with the tail of its log.
   */
  #until (describe, check) {
    return new Promise((resolve, reject) => {
      const done = (fn) => {
        clearTimeout(limit)
        this.#waiters.delete(waiter)
        fn()
      }
      const waiter = () => {
        let value
        try {
          value = check()
        } catch (err) {
          return done(() => reject(err))
        }
        if (value !== undefined) done(() => resolve(value))
        else if (this.exit !== null) done(() => reject(new Error(`nginx exited (${JSON.stringify(this.exit)}) while waiting for ${describe}\n${this.tail()}`)))
      }
      const limit = setTimeout(() => done(() => reject(new Error(`timed out after ${LIMIT_MS} ms waiting for ${describe}\n${this.tail()}`))), LIMIT_MS)
      this.#waiters.add(waiter)
      waiter()
    })
  }

  /** The pids of the workers the master started after line `from`, once there are all of them. */
  #workersStartedAfter (from) {
    const started = []
    for (const { parsed } of this.lines.slice(from)) {
      if (parsed === null) continue
      // A configuration the master cannot load leaves the old one in place; nothing more would come.
      if (parsed.level === 'emerg') throw new Error(`nginx refused its configuration: ${parsed.message}\n${this.tail()}`)
      const pid = /^start worker process (\d+)$/.exec(parsed.message)?.[1]
      if (pid !== undefined) started.push(Number(pid))
    }
    return started.length >= this.settings.workerProcesses ? started : undefined
  }

  async started () {
    this.workers = await this.#until('its workers', () => this.#workersStartedAfter(0))
  }

  /**
   * Rewrites the upstream block with `servers` and reloads, as a controller does; resolves once the new
   * workers run and every old worker has logged `gracefully shutting down` (from then on it accepts no
   * connection and no request on a kept-alive one: each in flight is answered with `Connection: close`).
   */
  async reload (servers) {
    await writeFile(this.configPath, nginxConfig({ dir: this.dir, port: this.port, servers, settings: this.settings }))
    const from = this.lines.length
    const old = this.workers
    const at = performance.now()
    this.proc.kill('SIGHUP')
    const workers = await this.#until('the reload', () => {
      const started = this.#workersStartedAfter(from)
      return started !== undefined && old.every((pid) => this.retired.has(pid)) ? started : undefined
    })
    this.workers = workers
    this.reloads.push({ at, doneAt: performance.now(), retired: old })
  }

  /** The access log: one object per request nginx proxied, `at` its end on this process's performance clock. */
  async requests () {
    const text = await readFile(path.join(this.dir, 'access.log'), 'utf8').catch(() => '')
    return text.split('\n').filter(Boolean).map((line) => {
      const request = JSON.parse(line)
      return { ...request, at: request.msec * 1000 - performance.timeOrigin }
    })
  }

  /** Error-log lines at `warn` or above, parsed, with arrival times. */
  errors () {
    return this.lines.filter(({ parsed }) => parsed !== null && ERROR_LEVELS.has(parsed.level))
  }

  tail (n = 20) {
    return `nginx stderr (last ${n} lines):\n` + this.lines.slice(-n).map(({ line }) => line).join('\n')
  }

  /**
   * A graceful stop (SIGQUIT): the workers finish what they serve and write the last access-log lines;
   * SIGKILL if that takes more than LIMIT_MS.
   */
  async stop () {
    if (this.exit === null) {
      this.proc.kill('SIGQUIT')
      const limit = setTimeout(() => this.kill(), LIMIT_MS)
      await this.exited
      clearTimeout(limit)
    }
  }

  /**
   * SIGKILL to the master and to every worker still running: a worker outlives a killed master (and goes on
   * serving), so each is named. Synchronous, for an abrupt end of this process too.
   */
  kill () {
    if (this.exit !== null) return
    this.proc.kill('SIGKILL')
    for (const pid of this.#live) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // Gone already.
      }
    }
  }
}

/**
 * Writes the configuration into `dir`, runs nginx in the foreground and resolves once its workers run and
 * it answers on its port.
 */
export async function startNginx ({ dir, servers, settings = NGINX_SETTINGS }) {
  const found = findNginx()
  if (found === null) throw new Error('nginx is not installed: apt-get install -y nginx-light')
  const port = await freePort()
  const configPath = path.join(dir, 'nginx.conf')
  await writeFile(configPath, nginxConfig({ dir, port, servers, settings }))
  const proc = spawn(found.binary, ['-p', dir, '-c', configPath, '-e', 'stderr'], { stdio: ['ignore', 'pipe', 'pipe'] })
  const nginx = new Nginx(proc, { version: found.version, port, dir, configPath, settings })
  try {
    await nginx.started()
    await new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: ALIVE_PATH, agent: false }, (res) => {
        res.resume()
        res.on('end', () => res.statusCode === 200 ? resolve() : reject(new Error(`nginx answered ${res.statusCode} on ${ALIVE_PATH}`)))
      }).on('error', reject)
    })
  } catch (err) {
    nginx.kill()
    await nginx.exited
    throw err
  }
  return nginx
}

/** How far apart a request's end at the client and its access-log line may be: two clocks, ms resolution. */
const MATCH_MS = 1000

/**
 * nginx as the scenario's ingress: the upstream block lists the replicas in rotation; each change is a
 * reload, so adding and removing a replica each start new workers and retire the old ones.
 * `collect()` stops nginx (so that its access log is complete) and returns `explain(record)`, which names
 * what nginx did with a failed request:
 * - one nginx answered or passed on (a status): its access-log line, matched by client port and rank on
 *   the connection, names the replica (`$upstream_addr`) and the error-log line of that request;
 * - a connection error at the client that nginx never logged, on a kept-alive connection whose previous
 *   request a worker served that a reload had retired by then: a reload reset. A retired worker closes its
 *   idle client connections at once (nginx's graceful shutdown of a worker), and a client that is sending
 *   its next request on one at that moment gets a reset. nginx's doing, not the replica's: the request never
 *   left nginx.
 */
export async function startNginxIngress ({ dir, replicas, settings = NGINX_SETTINGS }) {
  const members = [...replicas]
  const ever = [...replicas]
  const nginx = await startNginx({ dir, servers: members.map((r) => r.port), settings })
  const changes = []
  const reloadWith = async (change) => {
    await nginx.reload(members.map((r) => r.port))
    changes.push(change)
  }
  return {
    name: 'nginx',
    version: nginx.version,
    port: nginx.port,
    describe: `nginx on 127.0.0.1:${nginx.port} (upstream keepalive ${settings.upstreamKeepalive}, proxy_next_upstream ${settings.proxyNextUpstream}, ` +
      `${settings.workerProcesses} workers; endpoint changes by reload)`,
    where: (replica) => `127.0.0.1:${replica.port}`,
    async add (replica) {
      members.push(replica)
      ever.push(replica)
      await reloadWith(`add ${replica.name}`)
    },
    async remove (replica) {
      members.splice(members.indexOf(replica), 1)
      await reloadWith(`remove ${replica.name}`)
    },
    async collect () {
      await nginx.stop()
      const requests = await nginx.requests()
      const byClientPort = new Map()
      for (const request of requests) {
        const list = byClientPort.get(request.clientPort) ?? []
        list.push(request)
        byClientPort.set(request.clientPort, list)
      }
      const errors = nginx.errors()
      const upstreamErrors = errors.filter(({ parsed }) => parsed.upstream !== null || /upstream/.test(parsed.what))
      // The error-log lines of each client connection (`*N`, numbered across workers), by worker and number.
      const errorsOf = new Map()
      for (const error of upstreamErrors) {
        const key = `${error.parsed.pid}*${error.parsed.connection}`
        errorsOf.set(key, [...(errorsOf.get(key) ?? []), error])
      }
      // Each request as nginx logged it: this client port, this rank on its connection, ending near `at`.
      const logged = (port, rank, at) => (byClientPort.get(port) ?? [])
        .filter((r) => r.connectionRequests === rank && Math.abs(r.at - at) < MATCH_MS)
        .sort((a, b) => Math.abs(a.at - at) - Math.abs(b.at - at))[0]
      const replicaAt = (upstream, at) => ever.filter((r) => upstream === `127.0.0.1:${r.port}` && r.startedAt <= at).at(-1) ?? null

      return {
        explain (record) {
          const line = logged(record.localPort, record.onConnection, record.end)
          if (line !== undefined) {
            const error = (errorsOf.get(`${line.pid}*${line.connection}`) ?? [])
              .sort((a, b) => Math.abs(a.at - line.at) - Math.abs(b.at - line.at))[0]
            return {
              proxy: { worker: line.pid, upstream: line.upstream, upstreamStatus: line.upstreamStatus, requestTime: line.requestTime, error: error?.parsed.what ?? null },
              replica: replicaAt(line.upstream, record.start),
              reload: null
            }
          }
          const previous = record.reused ? logged(record.localPort, record.onConnection - 1, record.start) : undefined
          const reload = previous === undefined ? -1 : nginx.reloads.findIndex((r) => r.retired.includes(previous.pid) && r.at <= record.end)
          return {
            proxy: previous === undefined ? null : { worker: previous.pid, notLogged: true },
            replica: null,
            reload: record.error !== null && reload !== -1 ? reload : null
          }
        },
        log: errors.map(({ at, line }) => ({ at, line })),
        reloads: nginx.reloads.map((reload, i) => ({ change: changes[i], at: reload.at, tookMs: Math.round(reload.doneAt - reload.at) })),
        report: {
          name: 'nginx',
          version: nginx.version,
          /** Error-log lines about the replicas, by what went wrong (`connect() failed (111: Connection refused)`, ...). */
          proxyErrors: countBy(upstreamErrors, ({ parsed }) => parsed.what),
          /** Every other error-log line at warn or above. */
          otherErrors: errors.filter((e) => !upstreamErrors.includes(e)).map(({ line }) => line),
          /** Requests in the access log, by status. */
          statuses: countBy(requests, (r) => String(r.status))
        }
      }
    },
    stop: () => nginx.stop(),
    kill: () => nginx.kill()
  }
}
