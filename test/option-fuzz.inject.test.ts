import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import diagnostics from 'node:diagnostics_channel'
import http from 'node:http'
import type { ShutdownReport } from '../types'
import fastifyShutdown from './helpers/plugin'
import { faultTest } from './helpers/fault-matrix'
import { logCapture } from './helpers/log-capture'
import { fromTestRunner } from './helpers/warnings'
import { bounded } from './helpers/wait'

/**
 * Option fuzzing: seeded random option objects, built from hostile values mixed with valid ones. Each value
 * carries its own verdict (must the plugin accept it?), so the test knows, case by case, whether `register`
 * must resolve or reject, and which option a refusal must name. A case that registers must also shut down:
 * started (or forced, when its own timers are long), to a report, within its bound.
 *
 * OPTION_FUZZ_SEED and OPTION_FUZZ_CASES replay or widen a run; the seed is in the test's output.
 */
const SEED = Number(process.env.OPTION_FUZZ_SEED ?? 0x5eed_0006)
const CASES = Number(process.env.OPTION_FUZZ_CASES ?? 2_000)

/** Node keeps timer delays in a signed 32-bit integer; past it a timer fires after 1 ms. */
const LONGEST_TIMER_MS = 2 ** 31 - 1
/** A case whose own timers add up to more than this is forced rather than waited for. */
const SHORT_MS = 50
/** Slack on a shutdown's duration for a loaded machine. */
const SLACK_MS = 2_000

const ERROR_CODES = ['FST_SHUTDOWN_INVALID_OPTION', 'FST_SHUTDOWN_UNKNOWN_OPTION', 'FST_SHUTDOWN_BUDGET_EXCEEDED']
const GRACE_PERIOD_ENV = 'TERMINATION_GRACE_PERIOD_SECONDS'

/** mulberry32: small, fast and the same on every machine. */
class Random {
  private state: number
  constructor (seed: number) { this.state = seed >>> 0 }
  next (): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0
    let z = this.state
    z = Math.imul(z ^ (z >>> 15), z | 1)
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61)
    return ((z ^ (z >>> 14)) >>> 0) / 2 ** 32
  }

  chance (p: number): boolean { return this.next() < p }
  pick<T> (items: readonly T[]): T { return items[Math.floor(this.next() * items.length)]! }
}

type OptionName =
  | 'preStopDelay' | 'drainTimeout' | 'forceTimeout' | 'idleCloseDelay' | 'gracePeriod' | 'signals'
  | 'duplicateSignalWindow' | 'handleSignals' | 'exit' | 'retryAfter' | 'readiness' | 'liveness' | 'preStopRoute'
  | 'probeServer' | 'telemetry' | 'telemetryTimeout' | 'websocket'

const OPTION_NAMES: readonly OptionName[] = [
  'preStopDelay', 'drainTimeout', 'forceTimeout', 'idleCloseDelay', 'gracePeriod', 'signals',
  'duplicateSignalWindow', 'handleSignals', 'exit', 'retryAfter', 'readiness', 'liveness', 'preStopRoute',
  'probeServer', 'telemetry', 'telemetryTimeout', 'websocket'
]

/** How a telemetry target's `shutdown()` behaves. */
type TargetBehaviour = 'resolves' | 'rejects' | 'throws' | 'returns a number' | 'hangs'

/** One generated value, with what the plugin must make of it. */
interface Sample {
  /** Printable and reproducible: the value itself may be a Proxy or throw when touched. */
  readonly label: string
  readonly value: unknown
  readonly valid: boolean
  /** A valid number, as the budget counts it. */
  readonly ms?: number
  /** A valid route that is switched on. */
  readonly route?: { readonly path: string, readonly header?: { readonly name: string, readonly value: string }, readonly allowsLocal?: boolean }
  readonly targets?: readonly TargetBehaviour[]
  /** A valid probe server that is switched on: the routes are on it, not on the app. */
  readonly probeServer?: true
}

/** What a case's values need from the harness: counted reads, hanging targets to let go, exit calls. */
interface CaseContext {
  readonly random: Random
  /** How often each option's property was read, by its dotted name. */
  readonly reads: Map<string, number>
  readonly hanging: (() => void)[]
  readonly exits: number[]
}

const valid = (label: string, value: unknown, more: Partial<Sample> = {}): Sample => ({ label, value, valid: true, ...more })
const invalid = (label: string, value: unknown): Sample => ({ label, value, valid: false })

/** A plain object whose reads of `keys` are counted under `prefix`. */
function countingProxy (context: CaseContext, prefix: string, target: Record<string, unknown>): Record<string, unknown> {
  return new Proxy(target, {
    get (object, key, receiver) {
      if (typeof key === 'string' && Object.hasOwn(object, key)) {
        context.reads.set(prefix + key, (context.reads.get(prefix + key) ?? 0) + 1)
      }
      return Reflect.get(object, key, receiver)
    }
  })
}

/** The same settings with enumerable getters that count their reads. */
function countingGetters (context: CaseContext, prefix: string, target: Record<string, unknown>): Record<string, unknown> {
  const object: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(target)) {
    Object.defineProperty(object, key, {
      enumerable: true,
      get () {
        context.reads.set(prefix + key, (context.reads.get(prefix + key) ?? 0) + 1)
        return value
      }
    })
  }
  return object
}

/** A Proxy over valid settings whose `key` answers the valid value on the first read and `later` after. */
function flipFlop (target: Record<string, unknown>, key: string, later: unknown): Record<string, unknown> {
  let reads = 0
  return new Proxy(target, {
    get (object, property, receiver) {
      if (property === key && reads++ > 0) return later
      return Reflect.get(object, property, receiver)
    }
  })
}

const THROWING_TRAPS: ProxyHandler<object> = {
  get () { throw new Error('get trap') },
  ownKeys () { throw new Error('ownKeys trap') },
  getOwnPropertyDescriptor () { throw new Error('getOwnPropertyDescriptor trap') },
  getPrototypeOf () { throw new Error('getPrototypeOf trap') },
  has () { throw new Error('has trap') }
}

function revokedProxy (): object {
  const { proxy, revoke } = Proxy.revocable({}, {})
  revoke()
  return proxy
}

function deepObject (levels: number): Record<string, unknown> {
  let object: Record<string, unknown> = {}
  for (let i = 0; i < levels; i++) object = { inner: object }
  return object
}

/** Wraps a valid settings object in one of the shapes that must still be read as the same settings. */
function dressed (context: CaseContext, prefix: string, settings: Record<string, unknown>): { label: string, value: unknown } {
  switch (context.random.pick(['plain', 'plain', 'null prototype', 'frozen', 'counting Proxy', 'counting getters'])) {
    case 'null prototype': return { label: 'null-prototype ', value: Object.assign(Object.create(null), settings) }
    case 'frozen': return { label: 'frozen ', value: Object.freeze({ ...settings }) }
    case 'counting Proxy': return { label: 'Proxy over ', value: countingProxy(context, prefix, settings) }
    case 'counting getters': return { label: 'getters for ', value: countingGetters(context, prefix, settings) }
    default: return { label: '', value: settings }
  }
}

function print (settings: Record<string, Sample>): string {
  return `{ ${Object.entries(settings).map(([key, sample]) => `${key}: ${sample.label}`).join(', ')} }`
}

/** Values hostile to most options; `validFor` names the options that must take them. */
const HOSTILE: readonly { label: string, make: () => unknown, validFor?: readonly OptionName[] }[] = [
  { label: 'null', make: () => null },
  { label: 'true', make: () => true, validFor: ['handleSignals'] },
  { label: 'false', make: () => false, validFor: ['handleSignals', 'exit', 'readiness', 'liveness', 'preStopRoute', 'probeServer', 'websocket'] },
  { label: '""', make: () => '' },
  { label: '" "', make: () => ' ' },
  { label: '"10"', make: () => '10' },
  { label: '"10s"', make: () => '10s' },
  { label: '"SIGTERM"', make: () => 'SIGTERM' },
  { label: '"/readyz"', make: () => '/readyz' },
  { label: 'a 100,000-character string', make: () => 'x'.repeat(100_000) },
  { label: 'Symbol(x)', make: () => Symbol('x') },
  { label: '10n', make: () => 10n },
  { label: 'a class', make: () => class {} },
  { label: 'an arrow function', make: () => () => {} },
  { label: '[]', make: () => [], validFor: ['telemetry'] },
  { label: '[1]', make: () => [1] },
  { label: '[null]', make: () => [null] },
  { label: '[, "SIGTERM"] (a hole)', make: () => [, 'SIGTERM'] },
  { label: 'an empty array of length 2**32-1', make: () => new Array(2 ** 32 - 1) },
  { label: '{}', make: () => ({}), validFor: ['websocket'] },
  { label: 'Object.create(null)', make: () => Object.create(null), validFor: ['websocket'] },
  { label: 'a frozen {}', make: () => Object.freeze({}), validFor: ['websocket'] },
  { label: 'an object inheriting its settings', make: () => Object.create({ path: '/readyz', shutdown: async () => {} }) },
  { label: 'new Map()', make: () => new Map() },
  { label: 'new Date(0)', make: () => new Date(0) },
  { label: '/regexp/', make: () => /regexp/ },
  { label: 'new Number(5)', make: () => new Number(5) },
  { label: 'new String("SIGTERM")', make: () => new String('SIGTERM') },
  { label: 'new Boolean(false)', make: () => new Boolean(false) },
  { label: 'a resolved promise', make: () => Promise.resolve(5) },
  { label: 'an Error', make: () => new Error('not an option') },
  { label: 'a cyclic object', make: () => { const object: Record<string, unknown> = {}; object.self = object; return object } },
  { label: 'an object 10,000 levels deep', make: () => deepObject(10_000) },
  { label: '{ valueOf: () => 5 }', make: () => ({ valueOf: () => 5 }) },
  { label: '{ [Symbol.toPrimitive]: () => 5 }', make: () => ({ [Symbol.toPrimitive]: () => 5 }) },
  { label: 'JSON {"__proto__":{"path":"/x"}}', make: () => JSON.parse('{"__proto__":{"path":"/x"}}') },
  { label: '{ constructor: 1 }', make: () => ({ constructor: 1 }) },
  { label: 'a Proxy whose every trap throws', make: () => new Proxy({}, THROWING_TRAPS) },
  { label: 'a revoked Proxy', make: revokedProxy },
  { label: 'a null-prototype object that cannot be printed', make: () => Object.assign(Object.create(null), { toJSON () { throw new Error('toJSON') } }) }
]

const NUMBERS: readonly number[] = [
  0, -0, 0.5, 1, 1.5, 5, 20, 100, 1_000, 3_000, 10_000, 30_000, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53,
  Number.MAX_VALUE, Number.MIN_VALUE, Number.EPSILON, -1, -0.5, -(2 ** 31), NaN, Infinity, -Infinity
]

const isTimer = (n: number): boolean => Number.isFinite(n) && n >= 0 && n <= LONGEST_TIMER_MS
const NUMBER_RULES: Partial<Record<OptionName, (n: number) => boolean>> = {
  preStopDelay: isTimer,
  drainTimeout: isTimer,
  forceTimeout: isTimer,
  idleCloseDelay: isTimer,
  telemetryTimeout: isTimer,
  gracePeriod: (n) => n >= 0,
  duplicateSignalWindow: (n) => Number.isFinite(n) && n >= 0,
  retryAfter: (n) => Number.isSafeInteger(n) && n >= 0
}

const printNumber = (n: number): string => Object.is(n, -0) ? '-0' : String(n)

/** A value from the shared pools, judged for `option`: mostly hostile to it. */
function shared (random: Random, option: OptionName): Sample {
  if (random.chance(0.4)) {
    const n = random.pick(NUMBERS)
    const ok = NUMBER_RULES[option]?.(n) ?? false
    return ok ? valid(printNumber(n), n, { ms: n }) : invalid(printNumber(n), n)
  }
  const entry = random.pick(HOSTILE)
  return { label: entry.label, value: entry.make(), valid: entry.validFor?.includes(option) ?? false }
}

function timer (random: Random): Sample {
  const n = random.chance(0.85) ? random.pick([0, -0, 0.5, 1, 5, 20]) : random.pick([100, 1_000, 10_000, LONGEST_TIMER_MS])
  return valid(printNumber(n), n, { ms: n })
}

const VALID_PATHS = ['/readyz', '/livez', '/prestop', '/health/ready', '/_health', "/a-b.c~d!$&'+,=@", '/', '/x/', '/v1/status', '/' + 'a'.repeat(5_000)]
const INVALID_PATHS: readonly unknown[] = [
  'readyz', '', ' ', '/:id', '/*', '/a*', '/a b', '/a?b', '/a#b', '//', '/a//b', '/./x', '/..', '/a/%20', '/é', '/a;b', '/a\nb',
  '/a\u0000', '/a(b)', 5, null, ['/readyz'], new String('/readyz')
]
const LOG_LEVELS = ['silent', 'fatal', 'error', 'warn', 'info', 'debug', 'trace']
const BAD_LOG_LEVELS: readonly unknown[] = ['loud', 'INFO', '', 30, null, ['info']]

/** A pool value, printed short. */
function label (value: unknown): string {
  if (Array.isArray(value) && value.length > 100) return `an array of length ${value.length}`
  const text = typeof value === 'string' || typeof value === 'object' ? JSON.stringify(value) : String(value)
  return text.length > 60 ? `${text.slice(0, 40)}…(${text.length} characters)` : text
}

/** A readiness or liveness route: `{ path, logLevel? }`, or false. */
function probeRoute (context: CaseContext, option: 'readiness' | 'liveness', wantValid: boolean): Sample {
  const { random } = context
  if (wantValid && random.chance(0.2)) return valid('false', false)
  const path = random.pick(VALID_PATHS)
  const settings: Record<string, unknown> = { path }
  if (random.chance(0.5)) settings.logLevel = random.pick(LOG_LEVELS)
  if (wantValid) {
    const { label: how, value } = dressed(context, `${option}.`, settings)
    return valid(`${how}{ path: ${label(path)}${settings.logLevel === undefined ? '' : `, logLevel: "${settings.logLevel as string}"`} }`, value, { route: { path } })
  }
  switch (random.pick(['shared', 'path', 'logLevel', 'unknown key', 'throwing getter', 'flip-flop'])) {
    case 'shared': return shared(random, option)
    case 'path': {
      const bad = random.pick(INVALID_PATHS)
      return invalid(`{ path: ${label(bad)} }`, { ...settings, path: bad })
    }
    case 'logLevel': {
      const bad = random.pick(BAD_LOG_LEVELS)
      return invalid(`{ path: ${label(path)}, logLevel: ${label(bad)} }`, { ...settings, logLevel: bad })
    }
    case 'unknown key': return invalid('{ path, method: "HEAD" }', { ...settings, method: 'HEAD' })
    case 'throwing getter': {
      const object = { ...settings }
      Object.defineProperty(object, 'path', { enumerable: true, get () { throw new Error('path getter') } })
      return invalid('{ get path () { throw } }', object)
    }
    default:
      // Read once, as the first read answers, it is valid; read twice it would slip a bad path past the check.
      return valid(`a Proxy answering ${label(path)} for path once, then "/:id"`, flipFlop(settings, 'path', '/:id'), { route: { path } })
  }
}

const VALID_HEADERS = [
  { name: 'x-prestop-token', value: 's3cret' }, { name: 'X-Token', value: 'a b' }, { name: 'a', value: 'x'.repeat(300) },
  { name: 'x-token', value: 'é' }, { name: "x!#$%&'*+.^_`|~", value: '"quoted"' }
]
const BAD_HEADERS: readonly unknown[] = [
  { name: 'x-token', value: '' }, { name: 'x-token', value: ' ' }, { name: 'x-token', value: ' lead' }, { name: 'x-token', value: 'trail ' },
  { name: 'x-token', value: 'a\nb' }, { name: 'x-token', value: 'a\u0000' }, { name: 'x-token', value: 'Ā' }, { name: 'x-token', value: 5 },
  { name: '', value: 'v' }, { name: 'x token', value: 'v' }, { name: 'x:y', value: 'v' }, { name: 'é', value: 'v' }, { name: 5, value: 'v' },
  { name: 'x-token' }, { name: 'x-token', value: 'v', extra: 1 }, 'x-token: v', null, []
]
const VALID_ALLOW = [['127.0.0.1'], ['::1'], ['10.0.0.1', '::ffff:10.0.0.2'], ['fe80::1%eth0'], ['10.0.0.1', '127.0.0.1']]
const BAD_ALLOW: readonly unknown[] = [
  [], ['localhost'], ['127.0.0.1/8'], [' 127.0.0.1'], ['127.0.0.1', null], [, '127.0.0.1'], new Array(2 ** 32 - 1), '127.0.0.1', [2130706433]
]

function preStopRoute (context: CaseContext, wantValid: boolean): Sample {
  const { random } = context
  if (wantValid && random.chance(0.2)) return valid('false', false)
  const path = random.pick(VALID_PATHS)
  const header = random.chance(0.7) ? random.pick(VALID_HEADERS) : undefined
  const allow = header === undefined || random.chance(0.3) ? random.pick(VALID_ALLOW) : undefined
  const settings: Record<string, unknown> = { path, ...(header ? { header: { ...header } } : {}), ...(allow ? { allow: [...allow] } : {}) }
  const printed = `{ path: ${label(path)}${header ? `, header: ${label(header)}` : ''}${allow ? `, allow: ${label(allow)}` : ''} }`
  if (wantValid) {
    const { label: how, value } = dressed(context, 'preStopRoute.', settings)
    return valid(how + printed, value, { route: { path, header, allowsLocal: allow?.includes('127.0.0.1') ?? false } })
  }
  switch (random.pick(['shared', 'open', 'header', 'allow', 'path', 'flip-flop header'])) {
    case 'shared': return shared(random, 'preStopRoute')
    case 'open': return invalid(`{ path: ${label(path)} } (open)`, { path })
    case 'header': {
      const bad = random.pick(BAD_HEADERS)
      return invalid(`{ path, header: ${label(bad)} }`, { path, header: bad })
    }
    case 'allow': {
      const bad = random.pick(BAD_ALLOW)
      return invalid(`{ path, allow: ${label(bad)} }`, { path, allow: bad })
    }
    case 'path': {
      const bad = random.pick(INVALID_PATHS)
      return invalid(`{ path: ${label(bad)}, allow: ["127.0.0.1"] }`, { path: bad, allow: ['127.0.0.1'] })
    }
    default: {
      // The header's name is read once: a second read would find a number, whose toLowerCase() throws.
      const good = random.pick(VALID_HEADERS)
      const value = { path, header: flipFlop({ ...good }, 'name', 42) }
      return valid(`{ path: ${label(path)}, header: a Proxy answering ${label(good.name)} for name once, then 42 }`, value, { route: { path, header: good } })
    }
  }
}

const VALID_PORTS = [0, -0, 1, 80, 9000, 65535]
const BAD_PORTS: readonly unknown[] = [-1, 65536, 1.5, NaN, Infinity, 2 ** 53, '9000', '', null, 9000n, new Number(9000), [9000]]
const VALID_HOSTS = [
  '127.0.0.1', '0.0.0.0', '::', '::1', '::ffff:127.0.0.1', 'fe80::1%eth0', 'localhost', 'probe.svc.cluster.local', 'a-b.c0',
  'x'.repeat(63), Array(4).fill('a'.repeat(61)).join('.')
]
const BAD_HOSTS: readonly unknown[] = [
  '', ' ', 'local host', '-a', 'a-', 'a..b', '.a', 'a.', 'a_b', 'é.com', 'http://localhost', '127.0.0.1:9000', '[::1]',
  '0', '1.2.3', '999.999.999.999',
  'x'.repeat(64), Array(5).fill('a'.repeat(50)).join('.'), 'a\u0000', 5, null, ['127.0.0.1'], new String('localhost')
]

/**
 * `{ port, host? }`, or false. The cases never listen with one switched on, so its port is only checked at
 * register: a port the app has too, or one that cannot be bound, is refused at listen time.
 */
function probeServer (context: CaseContext, wantValid: boolean): Sample {
  const { random } = context
  if (wantValid && random.chance(0.2)) return valid('false', false)
  const port = random.pick(VALID_PORTS)
  const settings: Record<string, unknown> = { port }
  if (random.chance(0.5)) settings.host = random.chance(0.1) ? undefined : random.pick(VALID_HOSTS)
  const printed = `{ port: ${printNumber(port)}${'host' in settings ? `, host: ${settings.host === undefined ? 'undefined' : label(settings.host)}` : ''} }`
  if (wantValid) {
    if (random.chance(0.15)) {
      // Read once, as the first read answers, it is valid; read twice it would slip a bad port past the check.
      return valid(`a Proxy over ${printed} answering "9000" for port on a second read`, flipFlop(settings, 'port', '9000'), { probeServer: true })
    }
    const { label: how, value } = dressed(context, 'probeServer.', settings)
    return valid(how + printed, value, { probeServer: true })
  }
  switch (random.pick(['shared', 'port', 'no port', 'host', 'unknown key', 'throwing getter'])) {
    case 'shared': return shared(random, 'probeServer')
    case 'port': {
      const bad = random.pick(BAD_PORTS)
      return invalid(`{ port: ${label(bad)} }`, { ...settings, port: bad })
    }
    case 'no port': return invalid('{ host: "127.0.0.1" }', { host: '127.0.0.1' })
    case 'host': {
      const bad = random.pick(BAD_HOSTS)
      return invalid(`{ port: ${printNumber(port)}, host: ${label(bad)} }`, { port, host: bad })
    }
    case 'unknown key': return invalid(`{ port: ${printNumber(port)}, path: "/readyz" }`, { port, path: '/readyz' })
    default: {
      const object = { ...settings }
      Object.defineProperty(object, 'port', { enumerable: true, get () { throw new Error('port getter') } })
      return invalid('{ get port () { throw } }', object)
    }
  }
}

const VALID_SIGNALS = [['SIGTERM'], ['SIGINT'], ['SIGTERM', 'SIGINT'], ['SIGHUP', 'SIGUSR2'], ['SIGQUIT']]
const BAD_SIGNALS: readonly unknown[] = [
  [], ['SIGKILL'], ['SIGSTOP'], ['SIGTERM', 'SIGKILL'], ['sigterm'], ['TERM'], [15], ['SIGTERM', 'SIGTERM'], [, 'SIGTERM'],
  ['toString'], ['constructor'], ['__proto__'], [Symbol('SIGTERM')], ['SIGTERM', null], new Array(2 ** 32 - 1), ['SIGTERM ']
]

function signals (context: CaseContext, wantValid: boolean): Sample {
  const { random } = context
  if (wantValid) {
    const list = random.pick(VALID_SIGNALS)
    if (random.chance(0.2)) {
      // An array Proxy that answers a valid name once, then SIGKILL: listening for SIGKILL would throw.
      return valid(`a Proxy over ${label(list)} answering SIGKILL on a second read`, new Proxy([...list], {
        get (array, key, receiver) {
          if (key === '0') {
            const reads = (context.reads.get('signals.0') ?? 0) + 1
            context.reads.set('signals.0', reads)
            if (reads > 1) return 'SIGKILL'
          }
          return Reflect.get(array, key, receiver)
        }
      }))
    }
    return random.chance(0.2) ? valid(`frozen ${label(list)}`, Object.freeze([...list])) : valid(label(list), [...list])
  }
  if (random.chance(0.3)) return shared(random, 'signals')
  const bad = random.pick(BAD_SIGNALS)
  return invalid(label(bad), bad)
}

function target (context: CaseContext, behaviour: TargetBehaviour): Record<string, unknown> {
  switch (behaviour) {
    case 'rejects': return { shutdown: async () => { throw new Error('exporter down') } }
    case 'throws': return { shutdown: () => { throw new Error('thrown at once') } }
    case 'returns a number': return { shutdown: () => 42, forceFlush: async () => {} }
    case 'hangs': return { shutdown: () => new Promise<void>((resolve) => { context.hanging.push(resolve) }) }
    default: return { shutdown: async () => {} }
  }
}

class ProviderLike {
  async shutdown (): Promise<void> {}
  async forceFlush (): Promise<void> {}
}

const BAD_TARGETS: readonly { label: string, make: () => unknown }[] = [
  { label: '{}', make: () => ({}) },
  { label: '{ shutdown: "now" }', make: () => ({ shutdown: 'now' }) },
  { label: '{ shutdown, forceFlush: 5 }', make: () => ({ shutdown: async () => {}, forceFlush: 5 }) },
  { label: 'a function with a shutdown() method', make: () => Object.assign(() => {}, { shutdown: async () => {} }) },
  { label: '{ get shutdown () { throw } }', make: () => ({ get shutdown () { throw new Error('shutdown getter') } }) },
  { label: 'a Proxy whose every trap throws', make: () => new Proxy({}, THROWING_TRAPS) },
  { label: 'null', make: () => null },
  { label: '"sdk"', make: () => 'sdk' }
]

function telemetry (context: CaseContext, wantValid: boolean): Sample {
  const { random } = context
  const behaviours = (): TargetBehaviour[] => Array.from({ length: random.pick([1, 1, 2, 3]) }, () =>
    random.pick<TargetBehaviour>(['resolves', 'resolves', 'rejects', 'throws', 'returns a number', 'hangs']))
  if (wantValid) {
    if (random.chance(0.1)) return valid('[]', [], { targets: [] })
    if (random.chance(0.1)) return valid('a class instance', new ProviderLike(), { targets: ['resolves'] })
    const kinds = behaviours()
    const targets = kinds.map((kind) => target(context, kind))
    if (kinds.length === 1 && random.chance(0.5)) {
      return valid(`a target that ${kinds[0]!}`, random.chance(0.3) ? Object.freeze(targets[0]) : targets[0], { targets: kinds })
    }
    return valid(`[${kinds.map((kind) => `a target that ${kind}`).join(', ')}]`, targets, { targets: kinds })
  }
  if (random.chance(0.3)) return shared(random, 'telemetry')
  const bad = random.pick(BAD_TARGETS)
  switch (random.pick(['alone', 'in a list', 'after a hole'])) {
    case 'alone': return invalid(bad.label, bad.make())
    case 'in a list': return invalid(`[a target that resolves, ${bad.label}]`, [target(context, 'resolves'), bad.make()])
    default: return invalid('[, a target that resolves] (a hole)', [, target(context, 'resolves')])
  }
}

function websocket (context: CaseContext, wantValid: boolean): Sample {
  const { random } = context
  if (wantValid) {
    if (random.chance(0.2)) return valid('false', false)
    const settings: Record<string, unknown> = {}
    if (random.chance(0.5)) settings.reason = random.pick(['bye', '', 'x'.repeat(123), 'é'.repeat(61), '\uD800'])
    if (random.chance(0.3)) settings.goodbye = random.pick(['see you', '', 'x'.repeat(100_000)])
    if (random.chance(0.3)) settings.closeTimeout = timer(random).value
    const { label: how, value } = dressed(context, 'websocket.', settings)
    return valid(`${how}{ ${Object.entries(settings).map(([key, value]) => `${key}: ${typeof value === 'number' ? printNumber(value) : label(value)}`).join(', ')} }`, value)
  }
  switch (random.pick(['shared', 'reason', 'goodbye', 'closeTimeout', 'unknown key'])) {
    case 'shared': return shared(random, 'websocket')
    case 'reason': {
      const bad = random.pick(['x'.repeat(124), 'é'.repeat(62), 5, null, ['bye']])
      return invalid(`{ reason: ${label(bad)} }`, { reason: bad })
    }
    case 'goodbye': {
      const bad = random.pick([5, null, Buffer.from('bye'), ['bye']])
      return invalid(`{ goodbye: ${label(bad)} }`, { goodbye: bad })
    }
    case 'closeTimeout': {
      const bad = random.pick([-1, NaN, Infinity, 2 ** 31, '1000', null])
      return invalid(`{ closeTimeout: ${label(bad)} }`, { closeTimeout: bad })
    }
    default: return invalid('{ code: 1000 }', { code: 1000 })
  }
}

function exitOption (context: CaseContext, wantValid: boolean): Sample {
  const { random } = context
  if (wantValid) {
    if (random.chance(0.3)) return valid('false', false)
    const record = (code: number): void => { context.exits.push(code) }
    return random.chance(0.5)
      ? valid('a function recording the code', record)
      : valid('an async function recording the code', async (code: number) => { record(code) })
  }
  let sample: Sample
  do sample = shared(random, 'exit')
  while (sample.valid || typeof sample.value === 'function')
  return sample
}

function option (context: CaseContext, name: OptionName, wantValid: boolean): Sample {
  const { random } = context
  switch (name) {
    case 'readiness':
    case 'liveness': return probeRoute(context, name, wantValid)
    case 'preStopRoute': return preStopRoute(context, wantValid)
    case 'probeServer': return probeServer(context, wantValid)
    case 'signals': return signals(context, wantValid)
    case 'telemetry': return telemetry(context, wantValid)
    case 'websocket': return websocket(context, wantValid)
    case 'exit': return exitOption(context, wantValid)
    case 'handleSignals': {
      if (!wantValid) return shared(random, name)
      const handle = random.chance(0.5)
      return valid(String(handle), handle)
    }
    default: {
      if (!wantValid) return shared(random, name)
      switch (name) {
        case 'gracePeriod': {
          const n = random.pick([Infinity, Infinity, 30_000, 60_000, 2 ** 53, 100, 0, -0])
          return valid(printNumber(n), n, { ms: n })
        }
        case 'duplicateSignalWindow': {
          const n = random.pick([0, 100, 0.5, 2 ** 53])
          return valid(printNumber(n), n, { ms: n })
        }
        case 'retryAfter': {
          const n = random.pick([0, -0, 5, 2 ** 53 - 1])
          return valid(printNumber(n), n, { ms: n })
        }
        default: return timer(random)
      }
    }
  }
}

/** What a generated case must do, by its samples. */
interface Expectation {
  readonly outcome: 'registers' | 'rejects'
  /** Names a refusal may give: the options (or the keys) that are wrong. */
  readonly blame: ReadonlySet<string>
  readonly code?: string
}

interface Case {
  readonly index: number
  readonly description: string
  readonly options: unknown
  readonly settings: Record<string, Sample>
  readonly expectation: Expectation
  /** False for options that leave the default `exit`: process.exit must never run here. */
  readonly startable: boolean
  readonly gracePeriodEnv?: string
}

const ms = (settings: Record<string, Sample>, name: OptionName, fallback: number): number => settings[name]?.ms ?? fallback

function expectationOf (settings: Record<string, Sample>, containerBlame: readonly string[], env: string | undefined): Expectation {
  const blame = new Set<string>(containerBlame)
  for (const [name, sample] of Object.entries(settings)) if (!sample.valid) blame.add(name)
  // The grace is part of the drain; checked once `drainTimeout` itself has passed (an absent one is 10 s).
  const idleCloseDelay = settings.idleCloseDelay
  if (idleCloseDelay?.valid === true && settings.drainTimeout?.valid !== false && idleCloseDelay.ms! > ms(settings, 'drainTimeout', 10_000)) {
    blame.add('idleCloseDelay')
  }
  const decimalSeconds = /^\s*\d+(?:\.\d+)?\s*$/
  if (settings.gracePeriod === undefined && env !== undefined && env !== '' && !decimalSeconds.test(env)) {
    blame.add(`process.env.${GRACE_PERIOD_ENV}`)
  }
  if (blame.size > 0) return { outcome: 'rejects', blame }

  const paths = new Map<string, string>()
  for (const name of ['readiness', 'liveness', 'preStopRoute'] as const) {
    const path = settings[name]?.route?.path
    if (path === undefined) continue
    if (paths.has(path)) return { outcome: 'rejects', blame: new Set([name]), code: 'FST_SHUTDOWN_INVALID_OPTION' }
    paths.set(path, name)
  }
  if (settings.probeServer?.probeServer === true && paths.size === 0) {
    return { outcome: 'rejects', blame: new Set(['probeServer']), code: 'FST_SHUTDOWN_INVALID_OPTION' }
  }

  const withTelemetry = (settings.telemetry?.targets?.length ?? 0) > 0
  const worstCase = ms(settings, 'preStopDelay', 0) + ms(settings, 'drainTimeout', 10_000) +
    (withTelemetry ? ms(settings, 'telemetryTimeout', 5_000) : 0) + ms(settings, 'forceTimeout', 3_000)
  const gracePeriod = settings.gracePeriod?.ms ?? (env !== undefined && env !== '' ? Number(env) * 1000 : 30_000)
  if (worstCase > gracePeriod) return { outcome: 'rejects', blame: new Set(['gracePeriod']), code: 'FST_SHUTDOWN_BUDGET_EXCEEDED' }
  return { outcome: 'registers', blame }
}

const UNKNOWN_KEYS = ['drainTimout', 'DrainTimeout', '__proto__', 'constructor', 'toString', 'then', 'prefix', 'logLevel', '', 'k'.repeat(10_000)]
const ENV_VALUES = ['60', '2.5', ' 45 ', '', ' ', 'thirty', '0x10', '1e3', '-1', 'Infinity']

function generate (context: CaseContext, index: number): Case {
  const { random } = context
  const allValid = random.chance(0.45)
  const settings: Record<string, Sample> = {}
  for (const name of OPTION_NAMES) {
    if (name !== 'exit' && !random.chance(0.35)) continue
    settings[name] = option(context, name, allValid || !random.chance(0.3))
  }
  if (!allValid && Object.values(settings).every((sample) => sample.valid)) {
    const name = random.pick(OPTION_NAMES)
    settings[name] = option(context, name, false)
  }
  const gracePeriodEnv = random.chance(0.05) ? random.pick(ENV_VALUES) : undefined

  const fields = Object.fromEntries(Object.entries(settings).map(([key, sample]) => [key, sample.value]))
  const containerBlame: string[] = []
  let options: unknown
  let shape: string
  let startable = true
  const kind = random.pick([
    'plain', 'plain', 'plain', 'plain', 'null prototype', 'frozen', 'counting Proxy', 'counting getters', 'unknown key',
    'non-enumerable', 'symbol key', 'throwing getter', 'function returning it', 'not an object', 'defaults'
  ])
  switch (kind) {
    case 'unknown key': {
      const key = random.pick(UNKNOWN_KEYS)
      options = { ...fields, [key]: 1 }
      shape = `with unknown key ${label(key)}`
      containerBlame.push(key)
      break
    }
    case 'non-enumerable': {
      options = { ...fields }
      const name = Object.keys(fields)[0]!
      Object.defineProperty(options, name, { enumerable: false, value: fields[name] })
      shape = `with ${name} non-enumerable`
      break
    }
    case 'symbol key':
      options = { ...fields, [Symbol('drainTimeout')]: 'ignored' }
      shape = 'with a symbol key'
      break
    case 'throwing getter': {
      const name = random.pick(OPTION_NAMES)
      options = { ...fields }
      Object.defineProperty(options, name, { enumerable: true, get () { throw new Error(`${name} getter`) } })
      shape = `with a throwing getter for ${name}`
      containerBlame.push(name)
      break
    }
    case 'function returning it':
      // avvio calls an options function with the instance and registers with what it returns.
      options = () => fields
      shape = 'a function returning'
      break
    case 'not an object': {
      const whole = random.pick([
        { label: '"drainTimeout=5"', make: (): unknown => 'drainTimeout=5' },
        { label: '42', make: () => 42 },
        { label: 'an array of the options', make: () => [fields] },
        { label: 'a Map of the options', make: () => new Map(Object.entries(fields)) },
        { label: 'a class instance holding them', make: () => Object.assign(new (class Options {})(), fields) },
        { label: 'a function returning 42', make: () => () => 42 },
        { label: 'a revoked Proxy', make: revokedProxy },
        { label: 'a Proxy whose every trap throws', make: () => new Proxy({}, THROWING_TRAPS) },
        { label: 'new String("{}")', make: () => new String('{}') }
      ])
      options = whole.make()
      shape = whole.label
      containerBlame.push('options')
      break
    }
    case 'defaults':
      // Fastify hands the plugin `{}` for null or undefined: every default, process.exit included.
      options = random.pick([null, undefined])
      shape = String(options)
      startable = false
      for (const key of Object.keys(settings)) delete settings[key]
      break
    default: {
      const { label: how, value } = dressed(context, '', fields)
      options = value
      shape = how.trim()
    }
  }
  const description = `#${index} ${shape} ${kind === 'defaults' ? '' : print(settings)}${gracePeriodEnv === undefined ? '' : ` with ${GRACE_PERIOD_ENV}=${JSON.stringify(gracePeriodEnv)}`}`
  return {
    index,
    description,
    options,
    settings,
    expectation: expectationOf(settings, containerBlame, gracePeriodEnv),
    startable,
    ...(gracePeriodEnv === undefined ? {} : { gracePeriodEnv })
  }
}

/** Whether a refusal's message names one of `blame` first (a long name is cut short with "…"). */
function blames (message: string, blame: ReadonlySet<string>): boolean {
  const named = /`([^`]*)`/.exec(message)?.[1] ?? ''
  const option = named.startsWith('process.env.') ? named : named.split('.')[0]!
  return [...blame].some((name) => name === named || name === option || (named.endsWith('…') && name.startsWith(named.slice(0, -1))))
}

/** Listening TCP servers in this process: a probe server left open would add one. */
function listeningServers (): number {
  return process.getActiveResourcesInfo().filter((resource) => resource === 'TCPServerWrap').length
}

function request (port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number, body: string }> {
  return bounded(new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode!, body }))
    }).on('error', reject)
  }), `GET ${path.slice(0, 40)}`)
}

/** A registered case's own timers: what a scheduled shutdown with nothing in flight waits for. */
function scheduledMs (settings: Record<string, Sample>): number {
  const hangs = settings.telemetry?.targets?.includes('hangs') ?? false
  return ms(settings, 'preStopDelay', 0) + (hangs ? ms(settings, 'telemetryTimeout', 5_000) : 0)
}

/** Serves, then shuts down; returns what went wrong, if anything. */
async function exercise (app: FastifyInstance, fuzzCase: Case, context: CaseContext, listen: boolean): Promise<string[]> {
  const problems: string[] = []
  const { settings } = fuzzCase
  let port = 0
  if (listen) {
    await app.listen({ port: 0, host: '127.0.0.1' })
    port = (app.server.address() as { port: number }).port
  }
  const call = async (path: string, headers?: Record<string, string>): Promise<{ status: number, body: string }> => {
    if (listen) return await request(port, path, headers)
    const response = await app.inject({ method: 'GET', url: path, ...(headers ? { headers } : {}) })
    return { status: response.statusCode, body: response.body }
  }
  const onProbeServer = settings.probeServer?.probeServer === true
  for (const [name, status] of [['readiness', 'ready'], ['liveness', 'alive'], ['preStopRoute', null]] as const) {
    const route = settings[name]?.route
    if (route === undefined || (status === null && !onProbeServer)) continue
    const response = await call(route.path)
    if (onProbeServer) {
      // The probe server takes the routes: they are absent from the app, and it never listens here.
      if (response.status !== 404) problems.push(`${name} route ${route.path.slice(0, 40)} on the app answered ${response.status}, not 404`)
    } else if (response.status !== 200 || JSON.parse(response.body).status !== status) {
      problems.push(`${name} route ${route.path.slice(0, 40)} answered ${response.status} ${response.body.slice(0, 80)}`)
    }
  }

  const expectedMs = scheduledMs(settings)
  const short = expectedMs <= SHORT_MS
  const preStop = onProbeServer ? undefined : settings.preStopRoute?.route
  let report: ShutdownReport
  if (short && preStop !== undefined && (preStop.header !== undefined || preStop.allowsLocal === true)) {
    // The preStop endpoint starts the shutdown and answers once the pre-stop window is over.
    const response = await call(preStop.path, preStop.header ? { [preStop.header.name]: preStop.header.value } : {})
    if (response.status !== 200) problems.push(`preStop route answered ${response.status} ${response.body.slice(0, 80)}`)
    report = await bounded(app.shutdown.start('fuzz'), `the report of ${fuzzCase.description}`)
    if (report.trigger.type !== 'prestop-route') problems.push(`trigger ${report.trigger.type}, not prestop-route`)
  } else {
    const started = app.shutdown.start('fuzz')
    if (!short) {
      // Its own timers are long: force it, and let hanging telemetry go unless forceTimeout is short too.
      void app.shutdown.force('fuzz: long timers')
      if (ms(settings, 'forceTimeout', 3_000) > SHORT_MS) for (const release of context.hanging) release()
    }
    report = await bounded(started, `the report of ${fuzzCase.description}`)
  }

  const forced = !short
  if (report.outcome !== (forced ? 'forced' : 'completed')) problems.push(`outcome ${report.outcome}, forcedBy ${report.forcedBy}`)
  if (report.exitCode !== (forced ? 1 : 0)) problems.push(`exit code ${report.exitCode}`)
  const boundMs = (forced ? ms(settings, 'forceTimeout', 3_000) : expectedMs) + SLACK_MS
  if (report.durationMs > boundMs) problems.push(`took ${report.durationMs} ms, more than ${boundMs} ms`)
  if (!forced && report.phases.preStopMs! < Math.floor(ms(settings, 'preStopDelay', 0)) - 1) {
    problems.push(`pre-stop lasted ${report.phases.preStopMs} ms of preStopDelay ${ms(settings, 'preStopDelay', 0)}`)
  }
  const targets = settings.telemetry?.targets ?? []
  if ((report.telemetry !== undefined) !== (targets.length > 0)) problems.push(`telemetry outcome ${JSON.stringify(report.telemetry)} for ${targets.length} targets`)
  if (!forced && report.telemetry !== undefined) {
    const confirmed = targets.every((kind) => kind === 'resolves' || kind === 'returns a number')
    if (report.telemetry.confirmed !== confirmed || report.telemetry.timedOut !== targets.includes('hangs')) {
      problems.push(`telemetry ${JSON.stringify(report.telemetry)} for targets that ${targets.join(', ')}`)
    }
  }
  if (!forced && report.errors.length > 0) problems.push(`errors ${JSON.stringify(report.errors)}`)
  if (typeof settings.exit?.value === 'function' && (context.exits.length !== 1 || context.exits[0] !== report.exitCode)) {
    problems.push(`exit called with ${JSON.stringify(context.exits)}, report says ${report.exitCode}`)
  }
  for (const [key, count] of context.reads) if (count > 1) problems.push(`${key} read ${count} times`)
  for (const release of context.hanging) release()
  if (app.shutdown.probeAddress !== null) problems.push(`a probe server listens on ${JSON.stringify(app.shutdown.probeAddress)}`)
  return problems
}

test(faultTest('option-fuzz'), async (t) => {
  const events = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR2', 'SIGQUIT', 'uncaughtException', 'unhandledRejection', 'beforeExit', 'warning'] as const
  const random = new Random(SEED)
  t.comment(`seed ${SEED} (replay with OPTION_FUZZ_SEED=${SEED}), ${CASES} cases`)

  let current = 'before the first case'
  const escaped: string[] = []
  const onWarning = (warning: Error): void => {
    if (!fromTestRunner(warning)) escaped.push(`warning ${warning.name}: ${warning.message} during ${current}`)
  }
  const onUncaught = (err: Error): void => { escaped.push(`uncaught ${err?.message} during ${current}`) }
  const onUnhandled = (reason: unknown): void => { escaped.push(`unhandled rejection ${String(reason)} during ${current}`) }
  process.on('warning', onWarning)
  process.on('uncaughtException', onUncaught)
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => {
    process.removeListener('warning', onWarning)
    process.removeListener('uncaughtException', onUncaught)
    process.removeListener('unhandledRejection', onUnhandled)
  })
  const listenersBefore = events.map((event) => process.listenerCount(event))
  const serversBefore = listeningServers()
  const savedEnv = process.env[GRACE_PERIOD_ENV]
  t.teardown(() => { if (savedEnv === undefined) delete process.env[GRACE_PERIOD_ENV]; else process.env[GRACE_PERIOD_ENV] = savedEnv })

  const failures: string[] = []
  const tally = { registered: 0, started: 0, forced: 0, listened: 0, probeServer: 0, refused: new Map<string, number>() }
  const startedAt = performance.now()
  for (let index = 0; index < CASES; index++) {
    const context: CaseContext = { random, reads: new Map(), hanging: [], exits: [] }
    const fuzzCase = generate(context, index)
    current = fuzzCase.description
    if (fuzzCase.gracePeriodEnv === undefined) delete process.env[GRACE_PERIOD_ENV]
    else process.env[GRACE_PERIOD_ENV] = fuzzCase.gracePeriodEnv
    const logs = random.chance(0.2) ? logCapture() : null
    // A probe server would start with the app's listener, on a port checked only then: such cases inject.
    const listen = random.chance(0.25) && fuzzCase.settings.probeServer?.probeServer !== true
    const app = Fastify(logs ? { logger: { level: 'info', stream: logs.stream } } : {})
    const problems: string[] = []
    // Ready, as an app is before it serves: a shutdown while Fastify still boots skips the pre-stop wait.
    const registering = (async () => { await app.register(fastifyShutdown, fuzzCase.options as never).ready() })()
    const registered = await bounded(registering, `register of ${current}`).then(() => null, (err: unknown) => err)
    const { expectation } = fuzzCase
    if (registered === null) {
      tally.registered++
      if (expectation.outcome === 'rejects') problems.push(`registered, but must be refused naming one of ${[...expectation.blame].join(', ')}`)
      else if (fuzzCase.startable) {
        tally.started++
        if (listen) tally.listened++
        if (fuzzCase.settings.probeServer?.probeServer === true) tally.probeServer++
        if (scheduledMs(fuzzCase.settings) > SHORT_MS) tally.forced++
        problems.push(...await exercise(app, fuzzCase, context, listen))
      }
      const errorLines = logs?.lines.filter((line) => (line.level as number) >= 50) ?? []
      if (errorLines.length > 0 && problems.length === 0) problems.push(`logged ${JSON.stringify(errorLines).slice(0, 300)}`)
    } else {
      const err = registered as { code?: unknown, message?: unknown }
      const code = String(err?.code)
      const message = String(err?.message)
      tally.refused.set(code, (tally.refused.get(code) ?? 0) + 1)
      if (!(registered instanceof Error) || !ERROR_CODES.includes(code)) problems.push(`refused with ${code}: ${message.slice(0, 300)}`)
      else if (expectation.outcome === 'registers') problems.push(`refused with ${code} (${message.slice(0, 300)}), but every option is valid`)
      else if (expectation.code !== undefined && code !== expectation.code) problems.push(`refused with ${code} (${message.slice(0, 300)}), not ${expectation.code}`)
      else if (code !== 'FST_SHUTDOWN_BUDGET_EXCEEDED' && !blames(message, expectation.blame)) {
        problems.push(`refused without naming one of ${[...expectation.blame].map((name) => name.slice(0, 60)).join(', ')}: ${message.slice(0, 300)}`)
      }
      if (message.length > 1_000) problems.push(`an error message of ${message.length} characters`)
    }
    await bounded(app.close().catch(() => {}), `close of ${current}`)
    const listenersNow = events.map((event) => process.listenerCount(event))
    if (listenersNow.some((count, i) => count !== listenersBefore[i])) problems.push(`listeners ${JSON.stringify(listenersNow)}, before ${JSON.stringify(listenersBefore)}`)
    if (problems.length > 0) failures.push(`${fuzzCase.description}\n    ${problems.join('\n    ')}`)
    if (failures.length >= 20) break
  }
  current = 'after the last case'
  await new Promise(setImmediate)
  await new Promise(setImmediate)

  const elapsedMs = Math.round(performance.now() - startedAt)
  t.comment(`${CASES} cases in ${elapsedMs} ms: ${tally.registered} registered, ${tally.started} shut down (${tally.forced} forced, ${tally.listened} on a listener, ${tally.probeServer} with a probe server), refused ${JSON.stringify(Object.fromEntries(tally.refused))}`)
  for (const failure of failures) t.comment(failure)
  t.same(failures, [], `every case is refused with a coded error naming the option, or registers and shuts down (seed ${SEED})`)
  t.same(escaped, [], 'no warning, uncaught exception or unhandled rejection')
  t.ok(tally.started > CASES / 5 && tally.probeServer > 0 && tally.refused.size === ERROR_CODES.length, 'the cases cover starts, probe servers and every refusal')
  t.notOk(diagnostics.hasSubscribers('http.server.response.finish'), 'no diagnostics subscriber left')
  t.equal(listeningServers(), serversBefore, 'no server left listening: neither an app\'s nor a probe server')
})
