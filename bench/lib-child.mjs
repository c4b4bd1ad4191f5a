// A bench server in a child process: what it says (IPC messages, JSON lines on stdout) is kept with the
// moment it arrived, every wait is on one of those events or its exit and is bounded, and stop() kills it
// whatever state it is in.
import { fork } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'

/** Bound on one wait: far above anything a working run waits for, so a broken one fails instead of hanging. */
export const WAIT_LIMIT_MS = 60_000

/**
 * Milliseconds since the epoch with performance.now()'s resolution: the same clock in every process on the
 * machine, so a moment the server noted can be set against one the bench noted.
 */
export const wallClock = () => performance.timeOrigin + performance.now()

/** The line a bench server writes from its 'exit' listener: the last moment its JavaScript ran. */
export const EXIT_STAMP = 'benchExitAt'

/** Starts `script` with `config` as JSON in argv[2] and waits for its `{ type: 'ready', port }` message. */
export async function startServer (script, config) {
  const server = new ServerProcess(fork(script, [JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] }))
  try {
    server.port = (await server.message((m) => m.type === 'ready', 'the server to be ready')).port
    return server
  } catch (err) {
    await server.stop()
    throw err
  }
}

class ServerProcess {
  port = 0
  messages = []
  lines = []
  stderr = ''
  exit = null
  #waiters = new Set()

  constructor (child) {
    this.child = child
    child.on('message', (message) => this.#record(this.messages, { ...message, at: performance.now() }))
    createInterface({ input: child.stdout }).on('line', (text) => this.#record(this.lines, { ...parseLine(text), at: performance.now() }))
    // Kept short: only the tail says why a server failed.
    child.stderr.setEncoding('utf8').on('data', (chunk) => { this.stderr = (this.stderr + chunk).slice(-4000) })
    // A message sent as the child exits fails here rather than as an unhandled 'error'.
    child.on('error', (err) => { this.stderr += `\n[bench] ${err.message}` })
    child.once('exit', (code, signal) => {
      this.exit = { code, signal, at: performance.now() }
      this.#wake()
    })
    // 'close' comes once stdout has been read to its end: the exit stamp is in `lines` by then.
    this.closed = new Promise((resolve) => child.once('close', resolve))
  }

  /** Sends `signal` and returns the moment it was sent, on this process's clock and on the wall clock. */
  kill (signal) {
    const at = performance.now()
    const wallAt = performance.timeOrigin + at
    this.child.kill(signal)
    return { at, wallAt }
  }

  send (message) {
    this.child.send(message)
  }

  message (predicate, describe) {
    return this.#waitFor(() => this.messages.find(predicate), describe, true)
  }

  line (predicate, describe) {
    return this.#waitFor(() => this.lines.find(predicate), describe, true)
  }

  /** Resolves with `{ code, signal, at }` and the exit stamp once stdout has been read to its end. */
  async ended () {
    const exit = await this.#waitFor(() => this.exit ?? undefined, 'the server to exit', false)
    await bounded(this.closed, 'the server\'s stdout to close')
    return { ...exit, stampAt: this.lines.find((line) => line[EXIT_STAMP] !== undefined)?.[EXIT_STAMP] ?? null }
  }

  async stop () {
    if (this.exit === null) this.child.kill('SIGKILL')
    await bounded(this.closed, 'the killed server to close')
  }

  #record (list, entry) {
    list.push(entry)
    this.#wake()
  }

  #wake () {
    for (const waiter of this.#waiters) waiter()
  }

  #waitFor (find, describe, failOnExit) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = find()
        if (found !== undefined) return settle(resolve, found)
        if (failOnExit && this.exit !== null) settle(reject, new Error(`the server exited (${this.exit.code ?? this.exit.signal}) before ${describe}\n${this.stderr}`))
      }
      const timer = setTimeout(() => settle(reject, new Error(`timed out after ${WAIT_LIMIT_MS} ms waiting for ${describe}\n${this.stderr}`)), WAIT_LIMIT_MS)
      const settle = (fn, value) => {
        clearTimeout(timer)
        this.#waiters.delete(check)
        fn(value)
      }
      this.#waiters.add(check)
      check()
    })
  }
}

/** Bounds a wait on an event, so a broken run fails with a message instead of hanging. */
export function bounded (promise, describe, limitMs = WAIT_LIMIT_MS) {
  let timer
  const limit = new Promise((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${limitMs} ms waiting for ${describe}`)), limitMs)
  })
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer))
}

function parseLine (text) {
  try {
    const value = JSON.parse(text)
    return value !== null && typeof value === 'object' ? value : { text }
  } catch {
    return { text }
  }
}
