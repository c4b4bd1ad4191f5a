import type { ExitFunction, FastifyShutdownOptions, ResolvedShutdownOptions } from '../types'
import { constants } from 'node:os'
import { ERR_BUDGET_EXCEEDED, ERR_INVALID_OPTION, ERR_UNKNOWN_OPTION } from './errors'

const DEFAULTS: ResolvedShutdownOptions = Object.freeze({
  preStopDelay: 0,
  drainTimeout: 10_000,
  forceTimeout: 3_000,
  gracePeriod: 30_000,
  signals: Object.freeze(['SIGTERM', 'SIGINT'] as NodeJS.Signals[]),
  handleSignals: true,
  exit: (code: number) => process.exit(code),
  retryAfter: 5
})

const KNOWN_OPTIONS = Object.keys(DEFAULTS) as (keyof ResolvedShutdownOptions)[]

/** Signals a process can be sent and listen for; SIGKILL and SIGSTOP cannot be caught. */
const CATCHABLE_SIGNALS = new Set(
  Object.keys(constants.signals).filter((name) => name !== 'SIGKILL' && name !== 'SIGSTOP')
)

function describe (value: unknown): string {
  if (typeof value === 'function') return '`[Function]` (function)'
  let shown: string
  try {
    shown = typeof value === 'bigint' ? `${value}n` : JSON.stringify(value) ?? String(value)
  } catch {
    shown = String(value)
  }
  if (typeof value === 'number' && !Number.isFinite(value)) shown = String(value)
  const kind = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value
  return `\`${shown}\` (${kind})`
}

function milliseconds (options: Record<string, unknown>, name: keyof ResolvedShutdownOptions, allowInfinity = false): number {
  const value = options[name] === undefined ? DEFAULTS[name] : options[name]
  const valid = typeof value === 'number' && value >= 0 && (Number.isFinite(value) || (allowInfinity && value === Infinity))
  if (!valid) {
    const expected = allowInfinity
      ? 'a non-negative number of milliseconds or Infinity'
      : 'a non-negative finite number of milliseconds'
    throw new ERR_INVALID_OPTION(name, expected, describe(options[name]))
  }
  return value
}

function signalList (value: unknown): readonly NodeJS.Signals[] {
  if (value === undefined) return DEFAULTS.signals
  const valid = Array.isArray(value) && value.length > 0 &&
    value.every((signal) => typeof signal === 'string' && CATCHABLE_SIGNALS.has(signal)) &&
    new Set(value).size === value.length
  if (!valid) {
    throw new ERR_INVALID_OPTION('signals', 'a non-empty array of distinct catchable signal names such as "SIGTERM"', describe(value))
  }
  return Object.freeze([...value] as NodeJS.Signals[])
}

function exitFunction (value: unknown): ExitFunction | false {
  if (value === undefined) return DEFAULTS.exit
  if (value === false || typeof value === 'function') return value as ExitFunction | false
  throw new ERR_INVALID_OPTION('exit', 'a function that takes the exit code, or false', describe(value))
}

function flag (value: unknown, name: keyof ResolvedShutdownOptions): boolean {
  if (value === undefined) return DEFAULTS[name] as boolean
  if (typeof value === 'boolean') return value
  throw new ERR_INVALID_OPTION(name, 'a boolean', describe(value))
}

function retryAfterSeconds (value: unknown): number {
  if (value === undefined) return DEFAULTS.retryAfter
  if (Number.isSafeInteger(value) && (value as number) >= 0) return value as number
  throw new ERR_INVALID_OPTION('retryAfter', 'a non-negative whole number of seconds', describe(value))
}

/** Checks every option once, at register time, and returns the frozen, fully resolved set. */
export function resolveOptions (input: FastifyShutdownOptions | undefined): ResolvedShutdownOptions {
  if (input !== undefined && (input === null || typeof input !== 'object' || Array.isArray(input))) {
    throw new ERR_INVALID_OPTION('options', 'an object', describe(input))
  }
  const options = (input ?? {}) as Record<string, unknown>
  for (const name of Object.keys(options)) {
    if (!(KNOWN_OPTIONS as string[]).includes(name)) {
      throw new ERR_UNKNOWN_OPTION(name, KNOWN_OPTIONS.map((known) => `\`${known}\``).join(', '))
    }
  }

  const resolved: ResolvedShutdownOptions = Object.freeze({
    preStopDelay: milliseconds(options, 'preStopDelay'),
    drainTimeout: milliseconds(options, 'drainTimeout'),
    forceTimeout: milliseconds(options, 'forceTimeout'),
    gracePeriod: milliseconds(options, 'gracePeriod', true),
    signals: signalList(options.signals),
    handleSignals: flag(options.handleSignals, 'handleSignals'),
    exit: exitFunction(options.exit),
    retryAfter: retryAfterSeconds(options.retryAfter)
  })

  const worstCase = resolved.preStopDelay + resolved.drainTimeout + resolved.forceTimeout
  if (worstCase > resolved.gracePeriod) {
    const sum = `\`preStopDelay\` (${resolved.preStopDelay} ms) + \`drainTimeout\` (${resolved.drainTimeout} ms) + ` +
      `\`forceTimeout\` (${resolved.forceTimeout} ms) = ${worstCase} ms`
    throw new ERR_BUDGET_EXCEEDED(sum, resolved.gracePeriod)
  }
  return resolved
}
