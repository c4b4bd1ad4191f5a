// One replica of the app under test: a real child process, like a pod's container. It writes its pino log
// to a file (cheaper for this busy machine than piping every request line back), says where it listens over
// IPC, and is stopped the way the kubelet stops a container: SIGTERM, then SIGKILL at the grace period.
import { fork } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..')

/** The two apps the scenario runs: ours (the example app with the plugin) and what users do today. */
export const APPS = {
  plugin: path.join(ROOT, 'example-app', 'server.mjs'),
  baseline: path.join(ROOT, 'test', 'helpers', 'rolling', 'baseline-app.mjs')
}

/** Bound on a replica's start: far above a normal start, so a broken one fails instead of hanging. */
const START_LIMIT_MS = 15_000

let sequence = 0

export class Replica {
  exit = null
  /** When SIGTERM was sent, and whether the grace period ran out and SIGKILL followed. */
  sigtermAt = null
  killed = false

  constructor ({ name, proc, logPath, errPath }) {
    this.name = name
    this.proc = proc
    this.logPath = logPath
    this.errPath = errPath
    this.port = 0
    this.startedAt = performance.now()
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exit = { code, signal, at: performance.now() }
        resolve(this.exit)
      })
    })
  }

  /**
   * What the kubelet does to a terminating pod: SIGTERM now, SIGKILL if it is still running after
   * `gracePeriodMs`. Resolves with the exit; `killed` tells whether SIGKILL was needed.
   */
  terminate (gracePeriodMs) {
    this.sigtermAt = performance.now()
    this.proc.kill('SIGTERM')
    const deadline = setTimeout(() => {
      if (this.exit !== null) return
      this.killed = true
      this.proc.kill('SIGKILL')
    }, gracePeriodMs)
    return this.exited.finally(() => clearTimeout(deadline))
  }

  /** The replica's pino log lines (after it has exited, all of them). */
  async logLines () {
    const text = await readFile(this.logPath, 'utf8').catch(() => '')
    const lines = []
    for (const line of text.split('\n')) {
      // Request log lines are most of the file and never needed: skip them before parsing.
      if (line === '' || line.includes('"reqId"')) continue
      try {
        lines.push(JSON.parse(line))
      } catch {
        lines.push({ msg: line })
      }
    }
    return lines
  }

  async stderr () {
    return readFile(this.errPath, 'utf8').catch(() => '')
  }

  async stop () {
    if (this.exit === null) this.proc.kill('SIGKILL')
    await this.exited
  }
}

/**
 * Forks a replica on port 0 and resolves once it has said over IPC where it listens and has been seeded.
 * `script` runs another app than `app`'s (same contract: the example app's routes, env and IPC message).
 */
export async function startReplica ({ app, dir, env = {}, script = APPS[app] }) {
  if (script === undefined) throw new TypeError(`Expected \`app\` to be one of ${Object.keys(APPS).join(', ')}, got ${JSON.stringify(app)}`)
  const name = `${app}-${++sequence}`
  const logPath = path.join(dir, `${name}.log`)
  const errPath = path.join(dir, `${name}.err`)
  // Under tap, its process-tracking loader comes back into every child it sees spawned; its coverage at
  // least can be turned off, which would otherwise add its own work to every exit time measured here.
  const childEnv = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0', PORT: '0', HOST: '127.0.0.1', ...env }
  delete childEnv.NODE_OPTIONS
  const out = openSync(logPath, 'a')
  const err = openSync(errPath, 'a')
  let proc
  try {
    proc = fork(script, [], { stdio: ['ignore', out, err, 'ipc'], execArgv: [], env: childEnv })
  } finally {
    closeSync(out)
    closeSync(err)
  }
  const replica = new Replica({ name, proc, logPath, errPath })
  try {
    const ready = await new Promise((resolve, reject) => {
      const limit = setTimeout(() => reject(new Error(`${name} sent no ready message within ${START_LIMIT_MS} ms`)), START_LIMIT_MS)
      proc.on('message', (message) => {
        if (message?.type === 'ready') { clearTimeout(limit); resolve(message) }
      })
      proc.once('exit', (code, signal) => { clearTimeout(limit); reject(new Error(`${name} exited before ready: ${code ?? signal}`)) })
    })
    replica.port = ready.port
    replica.readyAt = performance.now()
    // The orders the load asks for exist on every replica (each has its own in-memory database): asked
    // directly, not through HAProxy, like an init step, and a readiness probe of our own before rotation.
    await seed(replica.port)
  } catch (err) {
    await replica.stop()
    const stderr = await replica.stderr()
    throw new Error(`${err.message}${stderr === '' ? '' : `\nstderr:\n${stderr}`}`, { cause: err })
  }
  return replica
}

/** Seeding gives up after this many 503s from under-pressure. */
const SEED_ATTEMPTS = 10

/**
 * A replica just started on a loaded machine can still be compiling its code: under-pressure then answers 503
 * (its 1 s event-loop limit), and the seed is sent again after its Retry-After, at most a second: the delay
 * under-pressure measured is over by then.
 */
async function seed (port) {
  for (let attempt = 1; ; attempt++) {
    const { status, retryAfter } = await postSeed(port)
    if (status === 201) return
    if (status !== 503 || attempt === SEED_ATTEMPTS) throw new Error(`seeding port ${port} answered ${status} (attempt ${attempt})`)
    await new Promise((resolve) => setTimeout(resolve, Math.min(retryAfter, 1) * 1000))
  }
}

function postSeed (port) {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ item: 'seed', quantity: 1 })
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/orders',
      agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
    }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode, retryAfter: Number(res.headers['retry-after'] ?? 1) }))
    })
    req.setTimeout(5_000, () => req.destroy(new Error(`seeding port ${port} timed out`)))
    req.on('error', reject)
    req.end(body)
  })
}
