import createError = require('@fastify/error')

export const ERR_INVALID_OPTION = createError<[name: string, expected: string, got: string]>(
  'FST_SHUTDOWN_INVALID_OPTION',
  'Expected `%s` to be %s, got %s',
  500,
  TypeError
)

export const ERR_UNKNOWN_OPTION = createError<[name: string, known: string]>(
  'FST_SHUTDOWN_UNKNOWN_OPTION',
  'Unknown option `%s`; the options are %s',
  500,
  TypeError
)

export const ERR_BUDGET_EXCEEDED = createError<[sum: string, gracePeriod: number]>(
  'FST_SHUTDOWN_BUDGET_EXCEEDED',
  '%s exceeds `gracePeriod` (%d ms): the platform would kill the process before the shutdown could end. ' +
    'Shorten the timeouts, or set `gracePeriod` to what the platform really allows',
  500,
  RangeError
)

export const ERR_ALREADY_REGISTERED = createError(
  'FST_SHUTDOWN_ALREADY_REGISTERED',
  'fastify-shutdown is already registered on this instance: one instance has one shutdown',
  500
)

export const ERR_PROBE_PORT_CONFLICT = createError<[port: number, appAddresses: string]>(
  'FST_SHUTDOWN_PROBE_PORT_CONFLICT',
  'Expected `probeServer.port` to be a port the app does not listen on, got `%d`, where the app listens (%s): ' +
    'the probes and the preStop endpoint need a port of their own, one the Service does not expose',
  500
)

export const ERR_PROBE_SERVER_LISTEN = createError<[where: string, reason: string, options: { cause: Error }]>(
  'FST_SHUTDOWN_PROBE_SERVER_LISTEN',
  'The probe server could not listen on %s (`probeServer`): %s',
  500
)

/** The reason a request's `shutdownSignal` aborts with: the force path cut it off. */
export const ERR_ABORTED = createError('FST_SHUTDOWN_ABORTED', 'The request was cut off by the shutdown\'s force path', 503)

/** The reason a request's `wrapUpSignal` aborts with: draining has started. */
export const ERR_WRAP_UP = createError('FST_SHUTDOWN_WRAP_UP', 'The server is draining: finish up and answer', 503)

export const ERR_TASK_TIMEOUT = createError<[name: string, ms: number]>('FST_SHUTDOWN_TASK_TIMEOUT', 'Shutdown task `%s` ran past its timeout of %d ms')

export const ERR_TASK_CUT = createError<[name: string]>('FST_SHUTDOWN_TASK_CUT', 'Shutdown task `%s` was cut off by the force path')

export const ERR_TASK_TOO_LATE = createError<[name: string]>('FST_SHUTDOWN_TASK_TOO_LATE', 'Shutdown task `%s` was added after the shutdown had started')

/** `fastify-shutdown check`: arguments it cannot act on, or an options file it cannot use (exit code 2). */
export const ERR_CHECK_USAGE = createError<[problem: string]>('FST_SHUTDOWN_CHECK_USAGE', '%s')

/** `fastify-shutdown check`: an input file it cannot read or parse, named with the line (exit code 2). */
export const ERR_CHECK_INPUT = createError<[where: string, problem: string]>('FST_SHUTDOWN_CHECK_INPUT', '%s: %s')

/** An error's message for the report, whatever was thrown. */
export function messageOf (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** The code in the body of the 503 answered to requests that arrive while draining. */
export const DRAINING_CODE = 'FST_SHUTDOWN_DRAINING'

/** The code in the body of the 403 answered to a caller of the preStop route it does not allow. */
export const PRESTOP_FORBIDDEN_CODE = 'FST_SHUTDOWN_PRESTOP_FORBIDDEN'
