import type { FastifyBaseLogger } from 'fastify'
import { readFileSync } from 'node:fs'
import type { ResolvedShutdownOptions } from '../types'
import { closeWithGraceListeners } from './foreign-signal-listeners'
import { KILL_MARGIN_MS, worstCaseMs } from './shutdown-budget'

/** fastify-cli's own default for `--close-grace-delay`. */
const FASTIFY_CLI_DEFAULT_DELAY_MS = 500
const DELAY_FLAGS = new Set(['--close-grace-delay', '--closeGraceDelay', '-g'])

/**
 * `fastify start` wraps the app in close-with-grace: on SIGINT or SIGTERM it calls `fastify.close()` at once,
 * exits 0 when that resolves, and exits 1 after `--close-grace-delay` (500 ms by default) whatever is still
 * running. Its listeners are installed once the app has loaded; in a process fastify-cli started, those are
 * the close-with-grace listeners there are.
 */
export function fastifyCliListeners (isOurs: (listener: unknown) => boolean): Set<Function> {
  return runByFastifyCli() ? closeWithGraceListeners(isOurs) : new Set()
}

function runByFastifyCli (): boolean {
  return /[\\/]fastify-cli[\\/]/.test(require.main?.filename ?? '')
}

/**
 * fastify-cli's `cli.js` takes its arguments out of `process.argv` before it starts the app; Linux still has
 * them. Null where they are gone.
 */
function commandLine (): readonly string[] | null {
  if (process.argv.length > 2) return process.argv
  try {
    return readFileSync('/proc/self/cmdline', 'utf8').split('\0').slice(0, -1)
  } catch {
    return null
  }
}

/**
 * The delay fastify-cli was given, read as fastify-cli reads it: the command line first, then
 * `FASTIFY_CLOSE_GRACE_DELAY`, else its default. Null when it cannot be known (a `--config` file, or a
 * command line that is gone).
 */
export function fastifyCliCloseGraceDelay (argv: readonly string[] | null = commandLine(), env: NodeJS.ProcessEnv = process.env): number | null {
  if (argv === null) return env.FASTIFY_CLOSE_GRACE_DELAY === undefined ? null : finiteOrNull(env.FASTIFY_CLOSE_GRACE_DELAY)
  let value: string | undefined
  for (let i = 2; i < argv.length && argv[i] !== '--'; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2)
    if (DELAY_FLAGS.has(flag)) value = inline ?? argv[++i]
  }
  value ??= env.FASTIFY_CLOSE_GRACE_DELAY
  if (value === undefined) return argv.some((arg) => /^(-c|--config)(=|$)/.test(arg)) ? null : FASTIFY_CLI_DEFAULT_DELAY_MS
  return finiteOrNull(value)
}

function finiteOrNull (value: string): number | null {
  const ms = Number(value)
  return Number.isFinite(ms) ? ms : null
}

/** What `--close-grace-delay` needs: the whole shutdown, and the margin kept before any kill. */
export function fittingCloseGraceDelay (options: ResolvedShutdownOptions): number {
  return worstCaseMs(options) + KILL_MARGIN_MS
}

/** Warns, at listen, when fastify-cli would exit before the shutdown can end. */
export function warnAboutFastifyCli (log: FastifyBaseLogger, options: ResolvedShutdownOptions): void {
  const fits = fittingCloseGraceDelay(options)
  const delay = fastifyCliCloseGraceDelay()
  if (delay !== null && delay >= fits) return
  log.warn(
    { runner: 'fastify-cli', closeGraceDelayMs: delay, worstCaseMs: worstCaseMs(options), fittingCloseGraceDelayMs: fits },
    'fastify-cli exits %s after the signal, whatever is still running; the shutdown may need %d ms: start it with `--close-grace-delay %d` (or FASTIFY_CLOSE_GRACE_DELAY=%d)',
    delay === null ? '`--close-grace-delay` ms' : `${delay} ms`,
    worstCaseMs(options),
    fits,
    fits
  )
}
