import type { ExitFunction, FastifyShutdownOptions, ProbeLogLevel, ResolvedShutdownOptions, TelemetryTarget } from '../types'
import { isIP } from 'node:net'
import { constants } from 'node:os'
import { ERR_BUDGET_EXCEEDED, ERR_INVALID_OPTION, ERR_UNKNOWN_OPTION } from './errors'

const DEFAULTS: ResolvedShutdownOptions = Object.freeze({
  preStopDelay: 0,
  drainTimeout: 10_000,
  forceTimeout: 3_000,
  gracePeriod: 30_000,
  signals: Object.freeze(['SIGTERM', 'SIGINT'] as NodeJS.Signals[]),
  duplicateSignalWindow: 100,
  handleSignals: true,
  exit: (code: number) => process.exit(code),
  retryAfter: 5,
  readiness: false,
  liveness: false,
  preStopRoute: false,
  telemetry: Object.freeze([]),
  telemetryTimeout: 5_000,
  websocket: Object.freeze({ reason: 'server shutting down', closeTimeout: 1_000 })
})

/** Read when `gracePeriod` is not given: the pod spec can pass `terminationGracePeriodSeconds` down with it. */
export const GRACE_PERIOD_ENV = 'TERMINATION_GRACE_PERIOD_SECONDS'

const PROBE_LOG_LEVELS: readonly ProbeLogLevel[] = ['silent', 'fatal', 'error', 'warn', 'info', 'debug', 'trace']

const KNOWN_OPTIONS = Object.keys(DEFAULTS)

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

function nonNegativeMs (value: unknown, label: string, allowInfinity = false): number {
  if (typeof value === 'number' && value >= 0 && (Number.isFinite(value) || (allowInfinity && value === Infinity))) return value
  const expected = allowInfinity
    ? 'a non-negative number of milliseconds or Infinity'
    : 'a non-negative finite number of milliseconds'
  throw new ERR_INVALID_OPTION(label, expected, describe(value))
}

function milliseconds (options: Record<string, unknown>, name: keyof ResolvedShutdownOptions, allowInfinity = false): number {
  return nonNegativeMs(options[name] === undefined ? DEFAULTS[name] : options[name], name, allowInfinity)
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

function plainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Every key of `value` is one of `known`; `within` names the option they belong to, if any. */
function knownKeys (value: Record<string, unknown>, known: readonly string[], within?: string): void {
  const label = (key: string): string => within === undefined ? key : `${within}.${key}`
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new ERR_UNKNOWN_OPTION(label(key), known.map((option) => `\`${label(option)}\``).join(', '))
    }
  }
}

function routePath (value: unknown, name: string): string {
  if (typeof value === 'string' && value.startsWith('/')) return value
  throw new ERR_INVALID_OPTION(`${name}.path`, 'a URL path starting with "/"', describe(value))
}

function routeLogLevel (value: unknown, name: string): ProbeLogLevel {
  if (value === undefined) return 'silent'
  if (PROBE_LOG_LEVELS.includes(value as ProbeLogLevel)) return value as ProbeLogLevel
  throw new ERR_INVALID_OPTION(`${name}.logLevel`, `one of ${PROBE_LOG_LEVELS.map((level) => `"${level}"`).join(', ')}`, describe(value))
}

function probeRoute (value: unknown, name: 'readiness' | 'liveness'): ResolvedShutdownOptions['readiness'] {
  if (value === undefined || value === false) return false
  if (!plainObject(value)) throw new ERR_INVALID_OPTION(name, 'false or an object such as `{ path: \'/readyz\' }`', describe(value))
  knownKeys(value, ['path', 'logLevel'], name)
  return Object.freeze({ path: routePath(value.path, name), logLevel: routeLogLevel(value.logLevel, name) })
}

function preStopRoute (value: unknown): ResolvedShutdownOptions['preStopRoute'] {
  const name = 'preStopRoute'
  if (value === undefined || value === false) return false
  if (!plainObject(value)) throw new ERR_INVALID_OPTION(name, 'false or an object such as `{ path: \'/prestop\', header: { name, value } }`', describe(value))
  knownKeys(value, ['path', 'logLevel', 'header', 'allow'], name)
  const { header, allow } = value
  if (header !== undefined) {
    const valid = plainObject(header) && Object.keys(header).every((key) => key === 'name' || key === 'value') &&
      typeof header.name === 'string' && /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(header.name) &&
      typeof header.value === 'string' && header.value.length > 0
    if (!valid) throw new ERR_INVALID_OPTION(`${name}.header`, 'an object `{ name, value }` with a header name and a non-empty value', describe(header))
  }
  if (allow !== undefined) {
    const valid = Array.isArray(allow) && allow.length > 0 && allow.every((address) => typeof address === 'string' && isIP(address) !== 0)
    if (!valid) throw new ERR_INVALID_OPTION(`${name}.allow`, 'a non-empty array of IP addresses', describe(allow))
  }
  if (header === undefined && allow === undefined) {
    throw new ERR_INVALID_OPTION(name, 'an object naming a `header` or an `allow` list (an open endpoint would let any client stop the service)', describe(value))
  }
  return Object.freeze({
    path: routePath(value.path, name),
    logLevel: routeLogLevel(value.logLevel, name),
    ...(header === undefined ? {} : { header: Object.freeze({ name: (header as { name: string }).name.toLowerCase(), value: (header as { value: string }).value }) }),
    ...(allow === undefined ? {} : { allow: Object.freeze([...(allow as string[])]) })
  })
}

function telemetryTargets (value: unknown): readonly TelemetryTarget[] {
  if (value === undefined) return DEFAULTS.telemetry
  const targets = Array.isArray(value) ? value : [value]
  const valid = targets.every((target) =>
    typeof target === 'object' && target !== null && typeof target.shutdown === 'function' &&
    (target.forceFlush === undefined || typeof target.forceFlush === 'function'))
  if (!valid) {
    throw new ERR_INVALID_OPTION('telemetry', 'a NodeSDK, a provider, or anything with an async `shutdown()` (or an array of them)', describe(value))
  }
  return Object.freeze([...targets])
}

function webSocketOptions (value: unknown): ResolvedShutdownOptions['websocket'] {
  const name = 'websocket'
  if (value === undefined) return DEFAULTS.websocket
  if (value === false) return false
  if (!plainObject(value)) throw new ERR_INVALID_OPTION(name, 'false or an object such as `{ reason, goodbye, closeTimeout }`', describe(value))
  knownKeys(value, ['reason', 'goodbye', 'closeTimeout'], name)
  const defaults = DEFAULTS.websocket as Exclude<ResolvedShutdownOptions['websocket'], false>
  const reason = value.reason === undefined ? defaults.reason : value.reason
  // A close frame's reason must fit in its 123-byte payload.
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) {
    throw new ERR_INVALID_OPTION(`${name}.reason`, 'a string of at most 123 bytes', describe(value.reason))
  }
  if (value.goodbye !== undefined && typeof value.goodbye !== 'string') {
    throw new ERR_INVALID_OPTION(`${name}.goodbye`, 'a string', describe(value.goodbye))
  }
  return Object.freeze({
    reason,
    closeTimeout: value.closeTimeout === undefined ? defaults.closeTimeout : nonNegativeMs(value.closeTimeout, `${name}.closeTimeout`),
    ...(value.goodbye === undefined ? {} : { goodbye: value.goodbye as string })
  })
}

function gracePeriodFromEnvironment (): number | undefined {
  const seconds = process.env[GRACE_PERIOD_ENV]
  if (seconds === undefined || seconds === '') return undefined
  const value = Number(seconds)
  if (!Number.isFinite(value) || value < 0) {
    throw new ERR_INVALID_OPTION(`process.env.${GRACE_PERIOD_ENV}`, 'a non-negative number of seconds', describe(seconds))
  }
  return value * 1000
}

/**
 * What the longest shutdown adds up to: the pre-stop window, a drain that runs to its deadline, the telemetry
 * flush (when there is telemetry), and a force path started by a signal at the last moment.
 */
export function budgetTerms (options: ResolvedShutdownOptions): [name: string, ms: number][] {
  return [
    ['preStopDelay', options.preStopDelay],
    ['drainTimeout', options.drainTimeout],
    ...(options.telemetry.length > 0 ? [['telemetryTimeout', options.telemetryTimeout] as [string, number]] : []),
    ['forceTimeout', options.forceTimeout]
  ]
}

export function worstCaseMs (options: ResolvedShutdownOptions): number {
  return budgetTerms(options).reduce((sum, [, ms]) => sum + ms, 0)
}

/** Checks every option once, at register time, and returns the frozen, fully resolved set. */
export function resolveOptions (input: FastifyShutdownOptions | undefined): ResolvedShutdownOptions {
  if (input !== undefined && !plainObject(input)) {
    throw new ERR_INVALID_OPTION('options', 'an object', describe(input))
  }
  const options = (input ?? {}) as Record<string, unknown>
  knownKeys(options, KNOWN_OPTIONS)

  const resolved: ResolvedShutdownOptions = Object.freeze({
    preStopDelay: milliseconds(options, 'preStopDelay'),
    drainTimeout: milliseconds(options, 'drainTimeout'),
    forceTimeout: milliseconds(options, 'forceTimeout'),
    gracePeriod: milliseconds({ gracePeriod: gracePeriodFromEnvironment(), ...options }, 'gracePeriod', true),
    signals: signalList(options.signals),
    duplicateSignalWindow: milliseconds(options, 'duplicateSignalWindow'),
    handleSignals: flag(options.handleSignals, 'handleSignals'),
    exit: exitFunction(options.exit),
    retryAfter: retryAfterSeconds(options.retryAfter),
    readiness: probeRoute(options.readiness, 'readiness'),
    liveness: probeRoute(options.liveness, 'liveness'),
    preStopRoute: preStopRoute(options.preStopRoute),
    telemetry: telemetryTargets(options.telemetry),
    telemetryTimeout: milliseconds(options, 'telemetryTimeout'),
    websocket: webSocketOptions(options.websocket)
  })

  const worstCase = worstCaseMs(resolved)
  if (worstCase > resolved.gracePeriod) {
    const terms = budgetTerms(resolved).map(([name, ms]) => `\`${name}\` (${ms} ms)`).join(' + ')
    throw new ERR_BUDGET_EXCEEDED(`${terms} = ${worstCase} ms`, resolved.gracePeriod)
  }
  return resolved
}
