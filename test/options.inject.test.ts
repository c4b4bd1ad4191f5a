import { test } from 'tap'
import Fastify from 'fastify'
import fastifyShutdown from './helpers/plugin'
import { resolveOptions } from '../lib/options'

const quiet = { handleSignals: false, exit: false as const }

test('defaults fit a 30 s Kubernetes grace period and are frozen', async (t) => {
  const options = resolveOptions(undefined)
  t.same(
    { ...options, exit: typeof options.exit },
    {
      preStopDelay: 0,
      drainTimeout: 10_000,
      forceTimeout: 3_000,
      idleCloseDelay: 1_000,
      gracePeriod: 30_000,
      signals: ['SIGTERM', 'SIGINT'],
      duplicateSignalWindow: 100,
      handleSignals: true,
      exit: 'function',
      retryAfter: 5,
      readiness: false,
      liveness: false,
      preStopRoute: false,
      probeServer: false,
      telemetry: [],
      telemetryTimeout: 5_000,
      websocket: { reason: 'server shutting down', closeTimeout: 1_000 }
    }
  )
  t.ok(options.preStopDelay + options.drainTimeout + options.forceTimeout < options.gracePeriod)
  t.ok(Object.isFrozen(options))
  t.ok(Object.isFrozen(options.signals))
})

test('idleCloseDelay defaults to 1000 ms, or to a shorter drainTimeout', async (t) => {
  t.equal(resolveOptions({}).idleCloseDelay, 1_000)
  t.equal(resolveOptions({ drainTimeout: 400 }).idleCloseDelay, 400)
  t.equal(resolveOptions({ drainTimeout: 400, idleCloseDelay: 0 }).idleCloseDelay, 0)
})

const invalid: [string, Record<string, unknown>, string, RegExp][] = [
  ['a string timeout', { drainTimeout: '10s' }, 'FST_SHUTDOWN_INVALID_OPTION', /Expected `drainTimeout` to be a non-negative finite number of milliseconds, got `"10s"` \(string\)/],
  ['a negative delay', { preStopDelay: -1 }, 'FST_SHUTDOWN_INVALID_OPTION', /`preStopDelay`.*got `-1` \(number\)/],
  ['NaN', { forceTimeout: NaN }, 'FST_SHUTDOWN_INVALID_OPTION', /`forceTimeout`.*got `NaN` \(number\)/],
  ['a string idle delay', { idleCloseDelay: '1s' }, 'FST_SHUTDOWN_INVALID_OPTION', /Expected `idleCloseDelay` to be a non-negative finite number of milliseconds, got `"1s"` \(string\)/],
  ['an idle delay longer than the drain', { drainTimeout: 500, idleCloseDelay: 501 }, 'FST_SHUTDOWN_INVALID_OPTION', /Expected `idleCloseDelay` to be at most `drainTimeout` \(500 ms\), since the grace is part of the drain, got `501` \(number\)/],
  ['Infinity where a bound is needed', { drainTimeout: Infinity }, 'FST_SHUTDOWN_INVALID_OPTION', /`drainTimeout`.*got `Infinity` \(number\)/],
  ['null', { forceTimeout: null }, 'FST_SHUTDOWN_INVALID_OPTION', /`forceTimeout`.*got `null` \(null\)/],
  ['a negative grace period', { gracePeriod: -5 }, 'FST_SHUTDOWN_INVALID_OPTION', /`gracePeriod` to be a non-negative number of milliseconds or Infinity, got `-5`/],
  ['a signal that is not a list', { signals: 'SIGTERM' }, 'FST_SHUTDOWN_INVALID_OPTION', /`signals`.*got `"SIGTERM"` \(string\)/],
  ['an uncatchable signal', { signals: ['SIGKILL'] }, 'FST_SHUTDOWN_INVALID_OPTION', /`signals`.*got `\["SIGKILL"\]` \(array\)/],
  ['an unknown signal', { signals: ['SIGTERN'] }, 'FST_SHUTDOWN_INVALID_OPTION', /`signals`/],
  ['repeated signals', { signals: ['SIGTERM', 'SIGTERM'] }, 'FST_SHUTDOWN_INVALID_OPTION', /`signals`/],
  ['no signals', { signals: [] }, 'FST_SHUTDOWN_INVALID_OPTION', /`signals`.*got `\[\]` \(array\)/],
  ['exit as a number', { exit: 1 }, 'FST_SHUTDOWN_INVALID_OPTION', /`exit` to be a function that takes the exit code, or false, got `1` \(number\)/],
  ['exit true', { exit: true }, 'FST_SHUTDOWN_INVALID_OPTION', /`exit`.*got `true` \(boolean\)/],
  ['handleSignals as a string', { handleSignals: 'no' }, 'FST_SHUTDOWN_INVALID_OPTION', /`handleSignals` to be a boolean, got `"no"` \(string\)/],
  ['a fractional retryAfter', { retryAfter: 1.5 }, 'FST_SHUTDOWN_INVALID_OPTION', /`retryAfter` to be a non-negative whole number of seconds, got `1.5`/],
  ['an unknown key', { drainTimout: 5 }, 'FST_SHUTDOWN_UNKNOWN_OPTION', /Unknown option `drainTimout`; the options are `preStopDelay`, `drainTimeout`/],
  ['a readiness route without a path', { readiness: {} }, 'FST_SHUTDOWN_INVALID_OPTION', /`readiness.path` to be a URL path starting with "\/", .*, got `undefined` \(undefined\)/],
  ['a readiness route that is not an object', { readiness: '/readyz' }, 'FST_SHUTDOWN_INVALID_OPTION', /`readiness` to be false or an object/],
  ['a liveness route with a relative path', { liveness: { path: 'livez' } }, 'FST_SHUTDOWN_INVALID_OPTION', /`liveness.path`.*got `"livez"`/],
  ['a probe log level that does not exist', { liveness: { path: '/livez', logLevel: 'loud' } }, 'FST_SHUTDOWN_INVALID_OPTION', /`liveness.logLevel` to be one of "silent"/],
  ['an unknown key in a route', { readiness: { path: '/readyz', method: 'HEAD' } }, 'FST_SHUTDOWN_UNKNOWN_OPTION', /Unknown option `readiness.method`/],
  ['an open preStop route', { preStopRoute: { path: '/prestop' } }, 'FST_SHUTDOWN_INVALID_OPTION', /`preStopRoute` to be an object naming a `header` or an `allow` list \(an open endpoint would let any client stop the service\)/],
  ['a preStop header without a value', { preStopRoute: { path: '/prestop', header: { name: 'x-token', value: '' } } }, 'FST_SHUTDOWN_INVALID_OPTION', /`preStopRoute.header`/],
  ['a preStop allow-list of host names', { preStopRoute: { path: '/prestop', allow: ['localhost'] } }, 'FST_SHUTDOWN_INVALID_OPTION', /`preStopRoute.allow` to be a non-empty array of IP addresses, got `\["localhost"\]`/],
  ['a probe server that is not an object', { readiness: { path: '/readyz' }, probeServer: 9000 }, 'FST_SHUTDOWN_INVALID_OPTION', /`probeServer` to be false or an object such as `\{ port: 9000 \}`, got `9000` \(number\)/],
  ['a probe server without a port', { readiness: { path: '/readyz' }, probeServer: {} }, 'FST_SHUTDOWN_INVALID_OPTION', /`probeServer.port` to be a whole number from 0 to 65535 \(0: any free port\), got `undefined`/],
  ['a probe port as a string', { readiness: { path: '/readyz' }, probeServer: { port: '9000' } }, 'FST_SHUTDOWN_INVALID_OPTION', /`probeServer.port`.*got `"9000"` \(string\)/],
  ['a probe port past 65535', { readiness: { path: '/readyz' }, probeServer: { port: 65536 } }, 'FST_SHUTDOWN_INVALID_OPTION', /`probeServer.port`.*got `65536`/],
  ['a fractional probe port', { readiness: { path: '/readyz' }, probeServer: { port: 90.5 } }, 'FST_SHUTDOWN_INVALID_OPTION', /`probeServer.port`.*got `90.5`/],
  ['a probe host that is neither an address nor a host name', { readiness: { path: '/readyz' }, probeServer: { port: 9000, host: 'http://0.0.0.0' } }, 'FST_SHUTDOWN_INVALID_OPTION',
    /`probeServer.host` to be an IP address or a host name \(leave it out to listen on every interface, where the kubelet reaches the pod\), got `"http:\/\/0.0.0.0"`/],
  ['a probe host of digits and dots that is no IP address', { readiness: { path: '/readyz' }, probeServer: { port: 9000, host: '999.999.999.999' } }, 'FST_SHUTDOWN_INVALID_OPTION',
    /`probeServer.host` to be an IP address or a host name .*, got `"999.999.999.999"`/],
  ['an unknown key in the probe server', { readiness: { path: '/readyz' }, probeServer: { port: 9000, path: '/readyz' } }, 'FST_SHUTDOWN_UNKNOWN_OPTION', /Unknown option `probeServer.path`; the options are `probeServer.port`, `probeServer.host`/],
  ['a probe server with no route to serve', { probeServer: { port: 9000 } }, 'FST_SHUTDOWN_INVALID_OPTION',
    /`probeServer` to be used with at least one of `readiness`, `liveness` or `preStopRoute`, the routes it serves, got `\{"port":9000\}` \(object\)/],
  ['telemetry without shutdown()', { telemetry: { forceFlush: async () => {} } }, 'FST_SHUTDOWN_INVALID_OPTION', /`telemetry` to be a NodeSDK, a provider, or anything with an async `shutdown\(\)`/],
  ['a telemetry list with a bad entry', { telemetry: [{ shutdown: async () => {} }, 'sdk'] }, 'FST_SHUTDOWN_INVALID_OPTION', /`telemetry`/],
  ['a negative telemetryTimeout', { telemetryTimeout: -1 }, 'FST_SHUTDOWN_INVALID_OPTION', /`telemetryTimeout`.*got `-1`/],
  ['a telemetry flush that does not fit', { telemetry: { shutdown: async () => {} }, drainTimeout: 20_000, telemetryTimeout: 8_000 }, 'FST_SHUTDOWN_BUDGET_EXCEEDED',
    /`preStopDelay` \(0 ms\) \+ `drainTimeout` \(20000 ms\) \+ `telemetryTimeout` \(8000 ms\) \+ `forceTimeout` \(3000 ms\) = 31000 ms exceeds `gracePeriod` \(30000 ms\)/],
  ['a websocket option that is not an object', { websocket: true }, 'FST_SHUTDOWN_INVALID_OPTION', /`websocket` to be false or an object/],
  ['a close reason too long for a close frame', { websocket: { reason: 'x'.repeat(124) } }, 'FST_SHUTDOWN_INVALID_OPTION', /`websocket.reason` to be a string of at most 123 bytes/],
  ['a negative websocket closeTimeout', { websocket: { closeTimeout: -1 } }, 'FST_SHUTDOWN_INVALID_OPTION', /`websocket.closeTimeout` to be a non-negative finite number of milliseconds, got `-1`/],
  ['an unknown websocket key', { websocket: { code: 1000 } }, 'FST_SHUTDOWN_UNKNOWN_OPTION', /Unknown option `websocket.code`/],
  ['a negative duplicateSignalWindow', { duplicateSignalWindow: -1 }, 'FST_SHUTDOWN_INVALID_OPTION', /`duplicateSignalWindow`.*got `-1`/],
  ['timeouts longer than the grace period', { preStopDelay: 5_000, drainTimeout: 25_000 }, 'FST_SHUTDOWN_BUDGET_EXCEEDED',
    /`preStopDelay` \(5000 ms\) \+ `drainTimeout` \(25000 ms\) \+ `forceTimeout` \(3000 ms\) = 33000 ms exceeds `gracePeriod` \(30000 ms\)/],
  // Regressions found by the option fuzzer (test/option-fuzz.inject.test.ts).
  ['a timeout past Node\'s longest timer, which would fire after 1 ms', { drainTimeout: 2 ** 31, gracePeriod: Infinity }, 'FST_SHUTDOWN_INVALID_OPTION',
    /`drainTimeout` to be at most 2147483647 milliseconds \(about 24.8 days, the longest timer Node keeps\), got `2147483648` \(number\)/],
  ['a preStopDelay past Node\'s longest timer', { preStopDelay: 2 ** 53, gracePeriod: Infinity }, 'FST_SHUTDOWN_INVALID_OPTION', /`preStopDelay` to be at most 2147483647 milliseconds/],
  ['a websocket closeTimeout past Node\'s longest timer', { websocket: { closeTimeout: 2 ** 31 } }, 'FST_SHUTDOWN_INVALID_OPTION', /`websocket.closeTimeout` to be at most 2147483647/],
  ['a signal list with a hole', { signals: [, 'SIGTERM'] }, 'FST_SHUTDOWN_INVALID_OPTION', /`signals` to be a non-empty array/],
  ['an allow-list with a hole (an uncaught TypeError that left register pending)', { preStopRoute: { path: '/prestop', allow: [, '127.0.0.1'] } }, 'FST_SHUTDOWN_INVALID_OPTION', /`preStopRoute.allow`/],
  ['a telemetry list with a hole', { telemetry: [, { shutdown: async () => {} }] }, 'FST_SHUTDOWN_INVALID_OPTION', /`telemetry`/],
  ['an empty array of length 2**32-1', { signals: new Array(2 ** 32 - 1) }, 'FST_SHUTDOWN_INVALID_OPTION', /`signals`.*got `\[…\]` \(array\)/],
  ['two routes on one path (an uncaught FST_ERR_DUPLICATED_ROUTE that left register pending)', { readiness: { path: '/health' }, liveness: { path: '/health' } }, 'FST_SHUTDOWN_INVALID_OPTION',
    /`liveness.path` to be a path of its own, not the path of `readiness`, got `"\/health"`/],
  ['a route parameter in a probe path, which would answer for every URL', { readiness: { path: '/:id' } }, 'FST_SHUTDOWN_INVALID_OPTION', /`readiness.path`.*got `"\/:id"`/],
  ['a wildcard inside a path (an uncaught router error that left register pending)', { liveness: { path: '/*/x' } }, 'FST_SHUTDOWN_INVALID_OPTION', /`liveness.path`/],
  ['a dot segment, which clients remove before sending', { liveness: { path: '/a/../livez' } }, 'FST_SHUTDOWN_INVALID_OPTION', /`liveness.path`/],
  ['a preStop header value with leading whitespace, which the server strips', { preStopRoute: { path: '/prestop', header: { name: 'x-token', value: ' s3cret' } } }, 'FST_SHUTDOWN_INVALID_OPTION', /`preStopRoute.header`/],
  ['a preStop header value no client can send', { preStopRoute: { path: '/prestop', header: { name: 'x-token', value: 'a\nb' } } }, 'FST_SHUTDOWN_INVALID_OPTION', /`preStopRoute.header`/],
  ['an unknown key 10,000 characters long, echoed cut short', { ['k'.repeat(10_000)]: 1 }, 'FST_SHUTDOWN_UNKNOWN_OPTION', /^Unknown option `k{200}…`; the options are/],
  ['a Map where an object is expected, whose settings would be ignored', { websocket: new Map([['reason', 'bye']]) }, 'FST_SHUTDOWN_INVALID_OPTION', /`websocket` to be false or an object.*got `\{\}` \(Map\)/]
]

for (const [name, options, code, message] of invalid) {
  test(`register rejects ${name} with ${code}`, async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    const error = await app.register(fastifyShutdown, { ...quiet, ...options } as never).ready().then(() => null, (err: unknown) => err)
    t.match(error, { code, message })
  })
}

test('register rejects options that are not an object', async (t) => {
  t.throws(() => resolveOptions([] as never), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /`options` to be an object, got `\[\]` \(array\)/ })
  t.throws(() => resolveOptions(null as never), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /got `null` \(null\)/ })
})

test('a longer budget is accepted once gracePeriod says the platform allows it', async (t) => {
  const options = resolveOptions({ drainTimeout: 60_000, gracePeriod: Infinity })
  t.equal(options.drainTimeout, 60_000)
  t.equal(options.gracePeriod, Infinity)
})

test('bad input never reaches a later step: no decorator, no hook, no listener', async (t) => {
  const before = process.listenerCount('SIGTERM')
  const app = Fastify()
  await t.rejects(async () => { await app.register(fastifyShutdown, { drainTimeout: -1 }) }, { code: 'FST_SHUTDOWN_INVALID_OPTION' })
  t.notOk(app.hasDecorator('shutdown'))
  t.equal(process.listenerCount('SIGTERM'), before)
})

test('options that are a Map or a class instance are refused, not silently ignored', async (t) => {
  class Settings { drainTimeout = 5 }
  for (const options of [new Map([['drainTimeout', 5]]), new Settings(), new Date(0)]) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(fastifyShutdown, options as never) }, { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /`options` to be an object/ })
  }
})

test('a getter or Proxy trap that throws is refused with FST_SHUTDOWN_INVALID_OPTION naming the option', async (t) => {
  const throwing = { exit: false, get drainTimeout (): number { throw new Error('no timeout today') } }
  t.throws(() => resolveOptions(throwing as never), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: 'Expected `drainTimeout` to be readable, got `no timeout today` thrown while reading it' })
  const nested = { readiness: { get path (): string { throw new Error('no path') } } }
  t.throws(() => resolveOptions(nested as never), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /`readiness.path` to be readable/ })
  const traps = new Proxy({}, { ownKeys () { throw new Error('ownKeys trap') } })
  t.throws(() => resolveOptions(traps as never), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /`options` to be readable, got `ownKeys trap`/ })
  const target = { get shutdown (): never { throw new Error('no shutdown') } }
  t.throws(() => resolveOptions({ telemetry: target } as never), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /`telemetry` to be readable/ })
})

test('each option is read once: a getter or Proxy that answers differently later cannot slip past the checks', async (t) => {
  let nameReads = 0
  const header = new Proxy({ name: 'X-Token', value: 's3cret' }, {
    get (object, key, receiver) {
      // A second read of the name would find a number, whose toLowerCase() threw a TypeError.
      if (key === 'name' && nameReads++ > 0) return 42
      return Reflect.get(object, key, receiver)
    }
  })
  const signalReads = { count: 0 }
  const signals = new Proxy(['SIGTERM'], {
    get (array, key, receiver) {
      // A second read would find SIGKILL, which process.on() refuses with an uncaught EINVAL.
      if (key === '0' && signalReads.count++ > 0) return 'SIGKILL'
      return Reflect.get(array, key, receiver)
    }
  })
  const before = process.listenerCount('SIGTERM')
  const app = Fastify()
  await app.register(fastifyShutdown, { exit: false, signals, preStopRoute: { path: '/prestop', header } } as never)
  t.teardown(() => app.close())
  t.same({ nameReads, signalReads: signalReads.count }, { nameReads: 1, signalReads: 1 })
  t.same(app.shutdown.state, 'serving')
  t.equal(process.listenerCount('SIGTERM'), before + 1, 'listens for the signal it was given once')
  const response = await app.inject({ url: '/prestop', headers: { 'x-token': 's3cret' } })
  t.equal(response.statusCode, 200, 'the header, lower-cased once, is the one the route checks')
})

test('values that cannot be printed are still refused with a coded error', async (t) => {
  const { proxy, revoke } = Proxy.revocable({}, {})
  revoke()
  t.throws(() => resolveOptions(proxy as never), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /`options` to be an object, got `\{…\}` \(object\)/ })
  const unprintable = Object.assign(Object.create(null), { toJSON () { throw new Error('toJSON') } })
  t.throws(() => resolveOptions({ drainTimeout: unprintable } as never), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /`drainTimeout`.*got `\{…\}` \(object\)/ })
  t.throws(() => resolveOptions({ forceTimeout: 'x'.repeat(100_000) } as never), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /^.{0,400}$/s })
})

test('TERMINATION_GRACE_PERIOD_SECONDS must be decimal seconds, and is read only when gracePeriod is not given', async (t) => {
  const saved = process.env.TERMINATION_GRACE_PERIOD_SECONDS
  t.teardown(() => { if (saved === undefined) delete process.env.TERMINATION_GRACE_PERIOD_SECONDS; else process.env.TERMINATION_GRACE_PERIOD_SECONDS = saved })
  for (const blank of [' ', '0x1e', '1e3', 'Infinity', '-30']) {
    process.env.TERMINATION_GRACE_PERIOD_SECONDS = blank
    // Number(' ') is 0 and Number('0x1e') is 30: neither is what a pod spec means.
    t.throws(() => resolveOptions({}), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /`process.env.TERMINATION_GRACE_PERIOD_SECONDS`/ }, JSON.stringify(blank))
    t.equal(resolveOptions({ gracePeriod: 60_000 }).gracePeriod, 60_000, `ignored beside gracePeriod: ${JSON.stringify(blank)}`)
  }
  process.env.TERMINATION_GRACE_PERIOD_SECONDS = ' 45.5 '
  t.equal(resolveOptions({}).gracePeriod, 45_500)
})
