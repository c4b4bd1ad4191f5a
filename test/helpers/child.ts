import { fork, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { bounded, WAIT_LIMIT_MS } from './wait'

/** A pino line from the child's stdout, with the moment this process read it. */
export interface LogLine {
  readonly msg: string
  readonly level: number
  readonly app?: string
  readonly at: number
  readonly [field: string]: unknown
}

/** An IPC message from the child, with the moment it arrived. */
export interface Message {
  readonly type: string
  readonly at: number
  readonly [field: string]: unknown
}

export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly at: number
}

/** The report fields of the 'shutdown complete' / 'shutdown forced' log line. */
export interface ReportLine extends LogLine {
  readonly trigger: { type: string, signal?: string, reason?: string, err?: unknown }
  readonly outcome: 'completed' | 'forced'
  readonly forcedBy?: string
  readonly exitCode: number
  readonly phases: { preStopMs?: number, drainMs?: number, closeMs?: number, forceMs?: number }
  readonly completedRequests: number
  readonly rejectedRequests: number
  readonly openRequests: { method: string, url: string, route?: string, ageMs: number }[]
  readonly errors: string[]
}

interface Waiter {
  readonly describe: string
  readonly check: () => boolean
  readonly fail: (err: Error) => void
}

/** What a test passes to tap's `t.teardown`; kept narrow so any tap Test fits. */
interface Teardown {
  teardown (fn: () => void | Promise<void>): void
}

const FIXTURES = path.join(__dirname, '..', 'fixtures')

/** `_TAPJS_PROCESSINFO_COVERAGE_` for a child: off, except in `npm run coverage` (test/coverage.mjs). */
export function childCoverage (): '0' | '1' {
  return process.env.FASTIFY_SHUTDOWN_CHILD_COVERAGE === '1' ? '1' : '0'
}

/** The runtime the fixture apps run under: Node (null), or the one test/lines.mjs names in the environment. */
export function appRuntime (): { name: 'bun' | 'deno', execPath: string, execArgv: string[] } | null {
  const name = process.env.FASTIFY_SHUTDOWN_RUNTIME
  const execPath = process.env.FASTIFY_SHUTDOWN_RUNTIME_PATH
  if (name === undefined || name === '') return null
  if ((name !== 'bun' && name !== 'deno') || execPath === undefined) {
    throw new Error(`FASTIFY_SHUTDOWN_RUNTIME=${name}: expected bun or deno, with FASTIFY_SHUTDOWN_RUNTIME_PATH`)
  }
  // Deno runs a script with `deno run`, and asks for each permission unless granted all.
  return { name, execPath, execArgv: name === 'deno' ? ['run', '-A'] : [] }
}

/**
 * A fixture process. Everything it says (log lines, IPC messages, its exit) is recorded with the time it
 * arrived, and every wait is on one of those events, bounded so a broken shutdown fails instead of hanging.
 */
export class Child {
  readonly logs: LogLine[] = []
  readonly messages: Message[] = []
  exit: Exit | null = null
  stderr = ''
  port = 0
  ports: Record<string, number> = {}

  /** True once the process has exited and everything it wrote has been read. */
  private gone = false
  private readonly waiters = new Set<Waiter>()
  private readonly closed: Promise<Exit>

  constructor (readonly proc: ChildProcess) {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const at = performance.now()
      try {
        this.logs.push({ ...JSON.parse(line), at })
      } catch {
        this.stderr += `[stdout] ${line}\n`
      }
      this.settle()
    })
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => { this.stderr += chunk })
    proc.on('message', (message: { type: string }) => {
      this.messages.push({ ...message, at: performance.now() })
      this.settle()
    })
    // 'exit' is the moment the process ended; 'close' comes once its output has been read to the end.
    proc.once('exit', (code, signal) => {
      this.exit = { code, signal, at: performance.now() }
    })
    this.closed = new Promise((resolve) => {
      proc.once('close', () => {
        this.gone = true
        this.settle()
        resolve(this.exit!)
      })
    })
  }

  /** Sends a signal and returns when it was sent. */
  signal (signal: NodeJS.Signals): number {
    const at = performance.now()
    this.proc.kill(signal)
    return at
  }

  send (message: Record<string, unknown>): void {
    this.proc.send(message)
  }

  /** Resolves with the first log line (already seen or to come) that matches. */
  log (match: string | ((line: LogLine) => boolean), describe?: string): Promise<LogLine> {
    const test = typeof match === 'string' ? (line: LogLine) => line.msg === match : match
    return this.waitFor(describe ?? `log line ${JSON.stringify(match)}`, () => this.logs.find(test))
  }

  message (match: (message: Message) => boolean, describe: string): Promise<Message> {
    return this.waitFor(describe, () => this.messages.find(match))
  }

  /** The report the plugin logs when a shutdown ends. */
  async report (app?: string): Promise<ReportLine> {
    const line = await this.log(
      (l) => (l.msg === 'shutdown complete' || l.msg === 'shutdown forced') && (app === undefined || l.app === app),
      `shutdown report${app === undefined ? '' : ` of app ${app}`}`
    )
    return line as ReportLine
  }

  /** Resolves once the process has exited and all it wrote has been read; `at` is when it exited. */
  exited (): Promise<Exit> {
    return bounded(this.closed, 'the child to exit', () => this.describe())
  }

  /** The hit counts the fixture logs on exit. */
  async hits (app?: string): Promise<Record<string, number>> {
    const line = await this.log((l) => l.msg === 'fixture exit' && (app === undefined || l.app === app), 'fixture exit line')
    return line.hits as Record<string, number>
  }

  /** Kills the process if it is still running; resolves once it is gone. */
  async stop (): Promise<void> {
    if (this.exit === null) this.proc.kill('SIGKILL')
    await this.closed
  }

  /** For failure messages: what the child said last. */
  describe (): string {
    const tail = this.logs.slice(-8).map(({ at, ...line }) => JSON.stringify(line)).join('\n')
    return `exit: ${JSON.stringify(this.exit)}\nlast log lines:\n${tail}\nstderr:\n${this.stderr}`
  }

  private waitFor<T> (describe: string, find: () => T | undefined): Promise<T> {
    const found = find()
    if (found !== undefined) return Promise.resolve(found)
    if (this.gone) return Promise.reject(new Error(`the child exited before ${describe}\n${this.describe()}`))
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = {
        describe,
        check: () => {
          const value = find()
          if (value === undefined) return false
          done()
          resolve(value)
          return true
        },
        fail: (err) => { done(); reject(err) }
      }
      // The bound is a deadline for a failure message, never what the test waits for.
      const timer = setTimeout(() => waiter.fail(new Error(`timed out after ${WAIT_LIMIT_MS} ms waiting for ${describe}\n${this.describe()}`)), WAIT_LIMIT_MS)
      const done = (): void => { clearTimeout(timer); this.waiters.delete(waiter) }
      this.waiters.add(waiter)
    })
  }

  private settle (): void {
    for (const waiter of [...this.waiters]) {
      if (waiter.check()) continue
      // Once the process is gone and its output read, nothing more can arrive.
      if (this.gone) {
        waiter.fail(new Error(`the child exited before ${waiter.describe}\n${this.describe()}`))
      }
    }
  }
}

/**
 * Forks `test/fixtures/<fixture>.js`, waits for its 'ready' message and kills it in teardown whatever
 * happened. `config` reaches the fixture as JSON in argv[2]. The child runs the built package under plain
 * Node, without the TypeScript loader. `execPath`: a wrapper that runs node with the arguments it is given.
 */
export async function startFixture (t: Teardown, fixture: string, config: unknown = {}, { execPath }: { execPath?: string } = {}): Promise<Child> {
  // No loaders of ours in the child. tap puts its process-tracking one back into every child it sees
  // spawned, but its coverage can be turned off: writing coverage at exit takes the child 70-100 ms, which
  // would swamp the exit timings these tests measure. `npm run coverage` turns it on, for the figure only.
  const env: NodeJS.ProcessEnv = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: childCoverage() }
  delete env.NODE_OPTIONS
  const runtime = appRuntime()
  const proc = fork(path.join(FIXTURES, `${fixture}.js`), [JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    execArgv: runtime?.execArgv ?? [],
    ...(execPath === undefined ? runtime === null ? {} : { execPath: runtime.execPath } : { execPath }),
    env
  })
  const child = new Child(proc)
  t.teardown(() => child.stop())
  const ready = await child.message((m) => m.type === 'ready', 'the ready message')
  child.port = ready.port as number
  child.ports = ready.ports as Record<string, number>
  return child
}
