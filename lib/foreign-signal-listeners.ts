import type { FastifyBaseLogger } from 'fastify'
import type closeWithGrace = require('close-with-grace')

export interface ForeignListeners {
  signal: NodeJS.Signals
  /** Their function names, `anonymous` when they have none. */
  listeners: string[]
  /** One of them calls a `shutdown()` on something like an SDK: telemetry ended before the drain. */
  shutsDownTelemetry: boolean
}

/** The signals close-with-grace's README lists: each instance listens on every one of them. */
export const CLOSE_WITH_GRACE_SIGNALS: Array<NodeJS.Signals & closeWithGrace.AllEvents> = [
  'SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGSEGV', 'SIGUSR2', 'SIGTERM'
]

/**
 * Listeners of another close-with-grace (fastify-cli's, an app's own): functions on every signal its README
 * lists. Before its first signal they start its shutdown; after it, they exit at once on the next one.
 */
export function closeWithGraceListeners (isOurs: (listener: unknown) => boolean): Set<Function> {
  const [first, ...rest] = CLOSE_WITH_GRACE_SIGNALS.map((signal) => new Set(process.listeners(signal)))
  return new Set([...first].filter((listener) => !isOurs(listener) && rest.every((listeners) => listeners.has(listener))))
}

/** `sdk.shutdown()`, `provider.shutdown()`: how OpenTelemetry's auto-instrumentation `register` script ends it. */
const TELEMETRY_SHUTDOWN = /\b(sdk|provider|otel|telemetry|tracer\w*|meter\w*)\??\.shutdown\s*\(/i

/**
 * Other listeners on our signals: fastify-cli's close-with-grace (500 ms by default) or OpenTelemetry's
 * auto-instrumentation `register` script, say. Either can end the process, or the telemetry, before the
 * drain has finished.
 */
export function foreignSignalListeners (
  signals: readonly NodeJS.Signals[],
  isOurs: (listener: unknown) => boolean
): ForeignListeners[] {
  const found: ForeignListeners[] = []
  for (const signal of signals) {
    const others = process.listeners(signal).filter((listener) => !isOurs(listener))
    if (others.length === 0) continue
    found.push({
      signal,
      listeners: others.map((listener) => listener.name || 'anonymous'),
      shutsDownTelemetry: others.some((listener) => TELEMETRY_SHUTDOWN.test(Function.prototype.toString.call(listener)))
    })
  }
  return found
}

export function warnAboutForeignListeners (
  log: FastifyBaseLogger,
  signals: readonly NodeJS.Signals[],
  isOurs: (listener: unknown) => boolean
): void {
  for (const { signal, listeners, shutsDownTelemetry } of foreignSignalListeners(signals, isOurs)) {
    if (shutsDownTelemetry) {
      log.warn(
        { signal, listeners },
        'another %s listener shuts telemetry down at once, before the last requests\' spans are exported; pass the SDK as the `telemetry` option instead (see "Other signal handlers" in the fastify-shutdown README)',
        signal
      )
    } else {
      log.warn(
        { signal, listeners },
        'another %s listener is installed and may end the process before the drain finishes; see "Other signal handlers" in the fastify-shutdown README',
        signal
      )
    }
  }
}
