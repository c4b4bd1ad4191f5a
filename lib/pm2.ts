import type { FastifyBaseLogger } from 'fastify'
import type { ResolvedShutdownOptions } from '../types'
import { withinDeadline } from './deadline'
import { LOG_FLUSH_BOUND_MS } from './log-flush'
import { budgetFields, KILL_MARGIN_MS, worstCaseMs } from './shutdown-budget'

/** PM2's own default (`KILL_TIMEOUT` in its constants.js): SIGKILL this long after the stop signal. */
export const PM2_DEFAULT_KILL_TIMEOUT_MS = 1_600

/** What PM2 tells the processes it starts, through the environment (pm2 7: ForkMode.js, ProcessContainer.js). */
export interface Pm2Process {
  readonly mode: 'fork' | 'cluster'
  /** SIGKILL after the stop signal, in ms. */
  readonly killTimeoutMs: number
  /** `kill_timeout` when the app's configuration sets it (PM2 passes it on then), else PM2's default. */
  readonly killTimeoutFrom: 'kill_timeout' | 'PM2_KILL_TIMEOUT' | 'default'
  /** PM2 waits for the message `'ready'` before it counts the process as started (`wait_ready`). */
  readonly waitReady: boolean
}

const MODES: Record<string, Pm2Process['mode']> = { fork_mode: 'fork', cluster_mode: 'cluster' }

const WHOLE_MS = /^\d+$/

/**
 * PM2 copies every scalar field of an app's configuration into its environment: `pm_id` and `exec_mode`
 * always, `kill_timeout` and `wait_ready` when they are set.
 */
export function pm2Process (env: NodeJS.ProcessEnv = process.env): Pm2Process | null {
  const mode = MODES[env.exec_mode ?? '']
  if (env.pm_id === undefined || mode === undefined) return null
  let killTimeoutMs = PM2_DEFAULT_KILL_TIMEOUT_MS
  let killTimeoutFrom: Pm2Process['killTimeoutFrom'] = 'default'
  for (const name of ['kill_timeout', 'PM2_KILL_TIMEOUT'] as const) {
    const value = env[name]
    if (value !== undefined && WHOLE_MS.test(value) && Number(value) > 0) {
      killTimeoutMs = Number(value)
      killTimeoutFrom = name
      break
    }
  }
  return { mode, killTimeoutMs, killTimeoutFrom, waitReady: env.wait_ready === 'true' }
}

/**
 * PM2 stops a process with SIGINT and SIGKILLs it `kill_timeout` later (1.6 s by default), on every stop,
 * restart and reload: far inside the default budget, and PM2 does not say so.
 */
export function warnIfPm2KillsFirst (log: FastifyBaseLogger, options: ResolvedShutdownOptions, pm2: Pm2Process): void {
  const worstCase = worstCaseMs(options)
  if (worstCase + KILL_MARGIN_MS <= pm2.killTimeoutMs) return
  const needed = worstCase + KILL_MARGIN_MS
  log.warn(
    { ...budgetFields(options), worstCaseMs: worstCase, marginMs: KILL_MARGIN_MS, pm2KillTimeoutMs: pm2.killTimeoutMs, pm2KillTimeoutFrom: pm2.killTimeoutFrom },
    'PM2 SIGKILLs this process %d ms after its stop signal (%s), inside the shutdown budget of %d ms + %d ms margin; set `kill_timeout: %d` in the ecosystem file (or `--kill-timeout %d`), or shorten the timeouts',
    pm2.killTimeoutMs,
    pm2.killTimeoutFrom === 'default' ? 'PM2\'s default: no kill_timeout set' : pm2.killTimeoutFrom,
    worstCase,
    KILL_MARGIN_MS,
    needed,
    needed
  )
}

/**
 * With `shutdown_with_message` (or `PM2_KILL_USE_MESSAGE` on the daemon, as on Windows) PM2 stops a process by
 * sending it the IPC message `'shutdown'` instead of SIGINT, then SIGKILLs it `kill_timeout` later all the
 * same. Returns what stops listening: a `message` listener keeps the IPC channel, and so the process, alive.
 */
export function onPm2ShutdownMessage (shutDown: () => void): () => void {
  if (!process.connected) return () => {}
  const listener = (message: unknown): void => {
    if (message === 'shutdown') shutDown()
  }
  process.on('message', listener)
  return () => { process.removeListener('message', listener) }
}

/** With `wait_ready`, PM2 counts the process as started (and, on a reload, stops the old one) once it says so. */
export function tellPm2Ready (pm2: Pm2Process): void {
  if (pm2.waitReady && process.connected) process.send!('ready')
}

/**
 * In cluster mode PM2 replaces `process.stdout.write` with one that appends to its log file through an
 * `fs.WriteStream`, so pino writes there, and `process.exit` drops whatever that stream still holds: the
 * report, usually. The stream runs its writes in order, so the callback of an empty write comes once
 * everything before it is in the file. PM2 prefixes even an empty write with `log_date_format`'s
 * timestamp, so then a newline keeps the next line whole.
 */
export async function pm2LogWritten (
  pm2: Pm2Process | null,
  env: NodeJS.ProcessEnv = process.env,
  stdout: Pick<NodeJS.WriteStream, 'write'> = process.stdout
): Promise<void> {
  if (pm2?.mode !== 'cluster' || env.pm_out_log_path === undefined) return
  const written = new Promise<void>((resolve) => { stdout.write(env.log_date_format ? '\n' : '', 'utf8', () => resolve()) })
  await withinDeadline(written, LOG_FLUSH_BOUND_MS)
}
