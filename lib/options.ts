import type { ExitFunction, FastifyShutdownOptions, ProbeLogLevel, ResolvedShutdownOptions, TelemetryTarget } from '../types'
import { isIP } from 'node:net'
import { constants } from 'node:os'
import { ERR_INVALID_OPTION, ERR_UNKNOWN_OPTION } from './errors'
import { assertBudgetFits } from './shutdown-budget'

const DEFAULTS: ResolvedShutdownOptions = Object.freeze({
  preStopDelay: 0,
  drainTimeout: 10_000,
  forceTimeout: 3_000,
  idleCloseDelay: 1_000,
  gracePeriod: 30_000,
  signals: Object.freeze(['SIGTERM', 'SIGINT'] as NodeJS.Signals[]),
  duplicateSignalWindow: 100,
  handleSignals: true,
  exit: (code: number) => process.exit(code),
  retryAfter: 5,
  readiness: false,
  liveness: false,
  preStopRoute: false,
  probeServer: false,
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

/** Node keeps a timer's delay in a signed 32-bit integer: a longer one fires after 1 ms, with a warning. */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** Longest echo of a bad value in an error message. */
const SHOWN_LENGTH = 200

/** Values visited while echoing one bad value: a huge or sparse array is summed up, not walked. */
const SHOWN_VISITS = 100

/** Echoes a bad value for an error message; never throws, whatever getters, Proxies or cycles it holds. */
export function describe (value: unknown): string {
  return `\`${shown(value)}\` (${kindOf(value)})`
}

function shown (value: unknown): string {
  switch (typeof value) {
    case 'function': return '[Function]'
    case 'bigint': return `${value}n`
    case 'symbol': return value.toString()
    case 'number': return String(value)
    case 'undefined': return 'undefined'
  }
  let visits = 0
  let text: string | undefined
  try {
    text = JSON.stringify(value, (_key, inner: unknown) => {
      if (++visits > SHOWN_VISITS) throw new RangeError('too large to show')
      return inner
    })
  } catch {}
  return clipped(text ?? (kindOf(value) === 'array' ? '[…]' : '{…}'))
}

function clipped (text: string): string {
  return text.length > SHOWN_LENGTH ? `${text.slice(0, SHOWN_LENGTH)}…` : text
}

/** `array`, `object` for a plain object, else the constructor's name: `{}` (Map) says why it was refused. */
function kindOf (value: unknown): string {
  if (value === null) return 'null'
  if (typeof value !== 'object') return typeof value
  try {
    if (Array.isArray(value)) return 'array'
    if (isPlainObject(value)) return 'object'
    const name: unknown = Object.getPrototypeOf(value).constructor.name
    return typeof name === 'string' && name !== '' ? name : 'object'
  } catch {
    return 'object'
  }
}

/**
 * An object literal, from this realm or another, or a null-prototype object. A Map, a Date or a class
 * instance would have its settings silently ignored, so they are refused.
 */
function isPlainObject (value: unknown): value is Record<string, unknown> {
  try {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
    const prototype = Object.getPrototypeOf(value)
    return prototype === null || Object.getPrototypeOf(prototype) === null
  } catch {
    // A revoked Proxy.
    return false
  }
}

/**
 * Reading an option can run user code (a getter, a Proxy trap): one that throws becomes a coded error
 * naming the option instead of escaping from `register`.
 */
function read<T> (label: string, reading: () => T): T {
  try {
    return reading()
  } catch (err) {
    throw new ERR_INVALID_OPTION(label, 'readable', `\`${err instanceof Error ? err.message : shown(err)}\` thrown while reading it`)
  }
}

/**
 * The own properties of a plain object, each read exactly once into a null-prototype copy, once every key
 * is known to be one of `known`. Everything after checks and uses the copy, so a getter or Proxy that would
 * answer differently on a second read cannot slip an unchecked value past the checks; and only own
 * properties count, so a polluted `Object.prototype` adds no option.
 */
function fieldsOf (value: Record<string, unknown>, known: readonly string[], within?: string): Record<string, unknown> {
  const label = (key: string): string => within === undefined ? key : `${within}.${key}`
  const keys = read(within ?? 'options', () => Object.getOwnPropertyNames(value))
  for (const key of keys) {
    if (!known.includes(key)) {
      throw new ERR_UNKNOWN_OPTION(clipped(label(key)), known.map((option) => `\`${label(option)}\``).join(', '))
    }
  }
  const fields: Record<string, unknown> = Object.create(null)
  for (const key of keys) fields[key] = read(label(key), () => value[key])
  return fields
}

/**
 * The items of an array, each read once, if every one is `valid`. Holes count as `undefined`, and the
 * first bad item ends the walk, so a sparse array of length 2³² − 1 costs nothing.
 */
function itemsOf (value: unknown, name: string, valid: (item: unknown) => boolean): unknown[] | null {
  return read(name, () => {
    if (!Array.isArray(value)) return null
    const items: unknown[] = []
    const length = value.length
    for (let index = 0; index < length; index++) {
      const item: unknown = value[index]
      if (!valid(item)) return null
      items.push(item)
    }
    return items
  })
}

function nonNegativeMs (value: unknown, label: string, { infinity = false, timer = true } = {}): number {
  if (typeof value === 'number' && value >= 0 && (Number.isFinite(value) || (infinity && value === Infinity))) {
    if (timer && value > MAX_TIMER_MS) {
      throw new ERR_INVALID_OPTION(label, `at most ${MAX_TIMER_MS} milliseconds (about 24.8 days, the longest timer Node keeps)`, describe(value))
    }
    return value
  }
  const expected = infinity
    ? 'a non-negative number of milliseconds or Infinity'
    : 'a non-negative finite number of milliseconds'
  throw new ERR_INVALID_OPTION(label, expected, describe(value))
}

/** A timer's delay: `preStopDelay`, the timeouts. */
function delay (value: unknown, name: string, fallback: number): number {
  return value === undefined ? fallback : nonNegativeMs(value, name)
}

/** The grace is part of the drain: the default shrinks to a shorter `drainTimeout`, a value given may not exceed it. */
function idleCloseDelayWithin (value: unknown, drainTimeoutInput: unknown): number {
  const drainTimeout = delay(drainTimeoutInput, 'drainTimeout', DEFAULTS.drainTimeout)
  if (value === undefined) return Math.min(DEFAULTS.idleCloseDelay, drainTimeout)
  const idleCloseDelay = nonNegativeMs(value, 'idleCloseDelay')
  if (idleCloseDelay > drainTimeout) {
    throw new ERR_INVALID_OPTION('idleCloseDelay', `at most \`drainTimeout\` (${drainTimeout} ms), since the grace is part of the drain`, describe(value))
  }
  return idleCloseDelay
}

function signalList (value: unknown): readonly NodeJS.Signals[] {
  if (value === undefined) return DEFAULTS.signals
  const signals = itemsOf(value, 'signals', (signal) => typeof signal === 'string' && CATCHABLE_SIGNALS.has(signal))
  if (signals === null || signals.length === 0 || new Set(signals).size !== signals.length) {
    throw new ERR_INVALID_OPTION('signals', 'a non-empty array of distinct catchable signal names such as "SIGTERM"', describe(value))
  }
  return Object.freeze(signals as NodeJS.Signals[])
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

/**
 * Characters a path segment may hold and still mean the same to every client and to Fastify's router:
 * no `:` or `*` (route syntax), `?` or `#`, `%` (decoded before matching), `;` (a delimiter when
 * `useSemicolonDelimiter` is on), spaces or controls.
 */
const SEGMENT = "[A-Za-z0-9\\-._~!$&'+,=@]+"
const LITERAL_PATH = new RegExp(`^/(?:${SEGMENT}(?:/${SEGMENT})*/?)?$`)

/** A literal URL path a probe can call, without `.` or `..` segments, which clients remove before sending. */
function routePath (value: unknown, name: string): string {
  if (typeof value === 'string' && LITERAL_PATH.test(value) && !value.split('/').some((segment) => segment === '.' || segment === '..')) {
    return value
  }
  throw new ERR_INVALID_OPTION(`${name}.path`, 'a URL path starting with "/", of letters, digits and -._~!$&\'+,=@ between single slashes (no route parameters, wildcards, query or dot segments)', describe(value))
}

function routeLogLevel (value: unknown, name: string): ProbeLogLevel {
  if (value === undefined) return 'silent'
  if (PROBE_LOG_LEVELS.includes(value as ProbeLogLevel)) return value as ProbeLogLevel
  throw new ERR_INVALID_OPTION(`${name}.logLevel`, `one of ${PROBE_LOG_LEVELS.map((level) => `"${level}"`).join(', ')}`, describe(value))
}

function probeRoute (value: unknown, name: 'readiness' | 'liveness'): ResolvedShutdownOptions['readiness'] {
  if (value === undefined || value === false) return false
  if (!isPlainObject(value)) throw new ERR_INVALID_OPTION(name, 'false or an object such as `{ path: \'/readyz\' }`', describe(value))
  const fields = fieldsOf(value, ['path', 'logLevel'], name)
  return Object.freeze({ path: routePath(fields.path, name), logLevel: routeLogLevel(fields.logLevel, name) })
}

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/**
 * A header value a client can send as it is: no control characters (Node refuses them) and no surrounding
 * whitespace (the server's parser strips it, so the secret would never match).
 */
const HEADER_VALUE = /^[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?$/

function preStopHeader (value: unknown, name: string): { name: string, value: string } {
  const label = `${name}.header`
  const expected = 'an object `{ name, value }` with a header name and a non-empty value without control characters or surrounding whitespace'
  if (!isPlainObject(value)) throw new ERR_INVALID_OPTION(label, expected, describe(value))
  const fields = fieldsOf(value, ['name', 'value'], label)
  if (typeof fields.name !== 'string' || !HEADER_NAME.test(fields.name) || typeof fields.value !== 'string' || !HEADER_VALUE.test(fields.value)) {
    throw new ERR_INVALID_OPTION(label, expected, describe(fields))
  }
  return Object.freeze({ name: fields.name.toLowerCase(), value: fields.value })
}

function preStopRoute (value: unknown): ResolvedShutdownOptions['preStopRoute'] {
  const name = 'preStopRoute'
  if (value === undefined || value === false) return false
  if (!isPlainObject(value)) throw new ERR_INVALID_OPTION(name, 'false or an object such as `{ path: \'/prestop\', header: { name, value } }`', describe(value))
  const fields = fieldsOf(value, ['path', 'logLevel', 'header', 'allow'], name)
  const header = fields.header === undefined ? undefined : preStopHeader(fields.header, name)
  let allow: readonly string[] | undefined
  if (fields.allow !== undefined) {
    const addresses = itemsOf(fields.allow, `${name}.allow`, (address) => typeof address === 'string' && isIP(address) !== 0)
    if (addresses === null || addresses.length === 0) throw new ERR_INVALID_OPTION(`${name}.allow`, 'a non-empty array of IP addresses', describe(fields.allow))
    allow = Object.freeze(addresses as string[])
  }
  if (header === undefined && allow === undefined) {
    throw new ERR_INVALID_OPTION(name, 'an object naming a `header` or an `allow` list (an open endpoint would let any client stop the service)', describe(value))
  }
  return Object.freeze({
    path: routePath(fields.path, name),
    logLevel: routeLogLevel(fields.logLevel, name),
    ...(header === undefined ? {} : { header }),
    ...(allow === undefined ? {} : { allow })
  })
}

/**
 * A host name as `dns.lookup()` takes it: letters, digits and hyphens in dot-separated labels, not digits and
 * dots alone (no top-level domain is all digits), so that `1.2.3` or `999.999.999.999`, no IP address either,
 * are refused here rather than when the probe server listens.
 */
const HOST_NAME = /^(?=.{1,253}$)(?![\d.]+$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/

function probeServer (value: unknown): ResolvedShutdownOptions['probeServer'] {
  const name = 'probeServer'
  if (value === undefined || value === false) return false
  if (!isPlainObject(value)) throw new ERR_INVALID_OPTION(name, 'false or an object such as `{ port: 9000 }`', describe(value))
  const fields = fieldsOf(value, ['port', 'host'], name)
  const { port, host } = fields
  if (!Number.isInteger(port) || (port as number) < 0 || (port as number) > 65535) {
    throw new ERR_INVALID_OPTION(`${name}.port`, 'a whole number from 0 to 65535 (0: any free port)', describe(port))
  }
  if (host !== undefined && (typeof host !== 'string' || (isIP(host) === 0 && !HOST_NAME.test(host)))) {
    throw new ERR_INVALID_OPTION(`${name}.host`, 'an IP address or a host name (leave it out to listen on every interface, where the kubelet reaches the pod)', describe(host))
  }
  // `-0` is a valid port that would print as 0 anyway; normalised so equality checks hold.
  return Object.freeze({ port: (port as number) + 0, ...(host === undefined ? {} : { host: host as string }) })
}

/** A probe server with no route would listen for nothing; the routes it takes are absent from the app's port. */
function probeServerHasRoutes (options: Pick<ResolvedShutdownOptions, 'readiness' | 'liveness' | 'preStopRoute' | 'probeServer'>): void {
  const { probeServer } = options
  if (probeServer === false || options.readiness !== false || options.liveness !== false || options.preStopRoute !== false) return
  throw new ERR_INVALID_OPTION('probeServer', 'used with at least one of `readiness`, `liveness` or `preStopRoute`, the routes it serves', describe(probeServer))
}

/** Each route the plugin adds needs a path of its own: Fastify refuses a second route on one path. */
function distinctRoutePaths (options: Pick<ResolvedShutdownOptions, 'readiness' | 'liveness' | 'preStopRoute'>): void {
  const seen = new Map<string, string>()
  for (const name of ['readiness', 'liveness', 'preStopRoute'] as const) {
    const route = options[name]
    if (route === false) continue
    const taken = seen.get(route.path)
    if (taken !== undefined) throw new ERR_INVALID_OPTION(`${name}.path`, `a path of its own, not the path of \`${taken}\``, describe(route.path))
    seen.set(route.path, name)
  }
}

function isTelemetryTarget (target: unknown): boolean {
  if (typeof target !== 'object' || target === null) return false
  const { shutdown, forceFlush } = target as Record<string, unknown>
  return typeof shutdown === 'function' && (forceFlush === undefined || typeof forceFlush === 'function')
}

function telemetryTargets (value: unknown): readonly TelemetryTarget[] {
  if (value === undefined) return DEFAULTS.telemetry
  const targets = read('telemetry', () => Array.isArray(value))
    ? itemsOf(value, 'telemetry', isTelemetryTarget)
    : read('telemetry', () => isTelemetryTarget(value)) ? [value] : null
  if (targets === null) {
    throw new ERR_INVALID_OPTION('telemetry', 'a NodeSDK, a provider, or anything with an async `shutdown()` (or an array of them)', describe(value))
  }
  return Object.freeze(targets as TelemetryTarget[])
}

function webSocketOptions (value: unknown): ResolvedShutdownOptions['websocket'] {
  const name = 'websocket'
  if (value === undefined) return DEFAULTS.websocket
  if (value === false) return false
  if (!isPlainObject(value)) throw new ERR_INVALID_OPTION(name, 'false or an object such as `{ reason, goodbye, closeTimeout }`', describe(value))
  const fields = fieldsOf(value, ['reason', 'goodbye', 'closeTimeout'], name)
  const defaults = DEFAULTS.websocket as Exclude<ResolvedShutdownOptions['websocket'], false>
  const reason = fields.reason === undefined ? defaults.reason : fields.reason
  // A close frame's reason must fit in its 123-byte payload.
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) {
    throw new ERR_INVALID_OPTION(`${name}.reason`, 'a string of at most 123 bytes', describe(fields.reason))
  }
  const { goodbye } = fields
  if (goodbye !== undefined && typeof goodbye !== 'string') {
    throw new ERR_INVALID_OPTION(`${name}.goodbye`, 'a string', describe(goodbye))
  }
  return Object.freeze({
    reason,
    closeTimeout: delay(fields.closeTimeout, `${name}.closeTimeout`, defaults.closeTimeout),
    ...(goodbye === undefined ? {} : { goodbye })
  })
}

/** Decimal seconds, as a pod spec writes them: `Number()` would also take " " (0), "0x1e" or "1e3". */
const DECIMAL_SECONDS = /^\s*\d+(?:\.\d+)?\s*$/

/** Read only when `gracePeriod` is not given. */
function gracePeriodFromEnvironment (): number {
  const seconds = process.env[GRACE_PERIOD_ENV]
  if (seconds === undefined || seconds === '') return DEFAULTS.gracePeriod
  if (!DECIMAL_SECONDS.test(seconds)) {
    throw new ERR_INVALID_OPTION(`process.env.${GRACE_PERIOD_ENV}`, 'a non-negative number of seconds', describe(seconds))
  }
  return Number(seconds) * 1000
}

/** Checks every option once, at register time, and returns the frozen, fully resolved set. */
export function resolveOptions (input: FastifyShutdownOptions | undefined): ResolvedShutdownOptions {
  if (input !== undefined && !isPlainObject(input)) {
    throw new ERR_INVALID_OPTION('options', 'an object', describe(input))
  }
  const options = input === undefined ? {} : fieldsOf(input, KNOWN_OPTIONS)

  const resolved: ResolvedShutdownOptions = Object.freeze({
    preStopDelay: delay(options.preStopDelay, 'preStopDelay', DEFAULTS.preStopDelay),
    drainTimeout: delay(options.drainTimeout, 'drainTimeout', DEFAULTS.drainTimeout),
    forceTimeout: delay(options.forceTimeout, 'forceTimeout', DEFAULTS.forceTimeout),
    idleCloseDelay: idleCloseDelayWithin(options.idleCloseDelay, options.drainTimeout),
    gracePeriod: options.gracePeriod === undefined
      ? gracePeriodFromEnvironment()
      : nonNegativeMs(options.gracePeriod, 'gracePeriod', { infinity: true, timer: false }),
    signals: signalList(options.signals),
    duplicateSignalWindow: options.duplicateSignalWindow === undefined
      ? DEFAULTS.duplicateSignalWindow
      : nonNegativeMs(options.duplicateSignalWindow, 'duplicateSignalWindow', { timer: false }),
    handleSignals: flag(options.handleSignals, 'handleSignals'),
    exit: exitFunction(options.exit),
    retryAfter: retryAfterSeconds(options.retryAfter),
    readiness: probeRoute(options.readiness, 'readiness'),
    liveness: probeRoute(options.liveness, 'liveness'),
    preStopRoute: preStopRoute(options.preStopRoute),
    probeServer: probeServer(options.probeServer),
    telemetry: telemetryTargets(options.telemetry),
    telemetryTimeout: delay(options.telemetryTimeout, 'telemetryTimeout', DEFAULTS.telemetryTimeout),
    websocket: webSocketOptions(options.websocket)
  })
  distinctRoutePaths(resolved)
  probeServerHasRoutes(resolved)

  assertBudgetFits(resolved)
  return resolved
}
