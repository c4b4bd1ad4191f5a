import type { FastifyBaseLogger } from 'fastify'

/**
 * Other listeners on our signals: fastify-cli's close-with-grace (500 ms by default) or OpenTelemetry's
 * auto-instrumentation `register` script, say. Either can end the process before the drain has finished.
 */
export function foreignSignalListeners (
  signals: readonly NodeJS.Signals[],
  isOurs: (listener: unknown) => boolean
): { signal: NodeJS.Signals, listeners: string[] }[] {
  const found: { signal: NodeJS.Signals, listeners: string[] }[] = []
  for (const signal of signals) {
    const listeners = process.listeners(signal)
      .filter((listener) => !isOurs(listener))
      .map((listener) => listener.name || 'anonymous')
    if (listeners.length > 0) found.push({ signal, listeners })
  }
  return found
}

export function warnAboutForeignListeners (
  log: FastifyBaseLogger,
  signals: readonly NodeJS.Signals[],
  isOurs: (listener: unknown) => boolean
): void {
  for (const { signal, listeners } of foreignSignalListeners(signals, isOurs)) {
    log.warn(
      { signal, listeners },
      'another %s listener is installed and may end the process before the drain finishes; see "Other signal handlers" in the fastify-shutdown README',
      signal
    )
  }
}
