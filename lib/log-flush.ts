import { once } from 'node:events'
import type { FastifyBaseLogger } from 'fastify'
import { withinDeadline } from './deadline'

/** Longest wait for the log destination before exiting anyway: a stuck stdout must not hold the exit. */
export const LOG_FLUSH_BOUND_MS = 100

interface AsyncDestination extends NodeJS.EventEmitter {
  _writing?: boolean
}

/** The destination behind a pino logger (child loggers inherit it), found by the description of pino's symbol. */
function destinationOf (log: FastifyBaseLogger): AsyncDestination | undefined {
  for (let level: object | null = log; level !== null; level = Object.getPrototypeOf(level)) {
    for (const symbol of Object.getOwnPropertySymbols(level)) {
      if (symbol.description === 'pino.stream') return (level as Record<symbol, AsyncDestination>)[symbol]
    }
  }
  return undefined
}

/**
 * pino's default stdout destination writes asynchronously. At `process.exit` it writes what is still
 * buffered synchronously, past a write under way in the thread pool, so the last lines come out of order or
 * not at all. Waiting for that write to drain keeps the report the last line out, and whole.
 */
export async function logWritesSettled (log: FastifyBaseLogger): Promise<void> {
  const destination = destinationOf(log)
  if (destination?._writing !== true) return
  const stop = new AbortController()
  try {
    await withinDeadline(once(destination, 'drain', { signal: stop.signal }), LOG_FLUSH_BOUND_MS)
  } finally {
    stop.abort()
  }
}
