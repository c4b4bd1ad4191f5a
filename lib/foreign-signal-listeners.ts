import type { FastifyBaseLogger } from 'fastify'

export interface ForeignListeners {
  signal: NodeJS.Signals
  /** Their function names, `anonymous` when they have none. */
  listeners: string[]
  /** One of them calls a `shutdown()` on something like an SDK: telemetry ended before the drain. */
  shutsDownTelemetry: boolean
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
