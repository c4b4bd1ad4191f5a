import type { FastifyBaseLogger } from 'fastify'

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const

/**
 * The plugin's logger: the app's, except that a line it cannot write (to a destination the app closed before
 * `fastify.close()`, say) goes to `failed` instead of being thrown into the shutdown, which goes on without
 * it. The app's logger is its prototype, so everything else, the destination included, is the app's.
 */
export function logThatNeverThrows (log: FastifyBaseLogger, failed: (err: unknown) => void): FastifyBaseLogger {
  const safe = Object.create(log) as FastifyBaseLogger
  for (const level of LEVELS) {
    const write = log[level] as (...args: unknown[]) => void
    safe[level] = ((...args: unknown[]): void => {
      try {
        write.apply(log, args)
      } catch (err) {
        failed(err)
      }
    }) as FastifyBaseLogger[typeof level]
  }
  safe.child = (bindings, options) => logThatNeverThrows(log.child(bindings, options), failed)
  return safe
}
