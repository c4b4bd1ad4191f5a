import { test } from 'tap'
import Fastify from 'fastify'
import fastifyShutdown from './helpers/plugin'
import { resolveOptions } from '../lib/options'

const quiet = { handleSignals: false, exit: false as const }

test('defaults fit a 30 s Kubernetes grace period and are frozen', async (t) => {
  const options = resolveOptions(undefined)
  t.same(
    { ...options, exit: typeof options.exit },
    { preStopDelay: 0, drainTimeout: 10_000, forceTimeout: 3_000, gracePeriod: 30_000, signals: ['SIGTERM', 'SIGINT'], duplicateSignalWindow: 100, handleSignals: true, exit: 'function', retryAfter: 5,
      readiness: false, liveness: false, preStopRoute: false, telemetry: [], telemetryTimeout: 5_000,
      websocket: { reason: 'server shutting down', closeTimeout: 1_000 } }
  )
  t.ok(options.preStopDelay + options.drainTimeout + options.forceTimeout < options.gracePeriod)
  t.ok(Object.isFrozen(options))
  t.ok(Object.isFrozen(options.signals))
})

const invalid: [string, Record<string, unknown>, string, RegExp][] = [
  ['a string timeout', { drainTimeout: '10s' }, 'FST_SHUTDOWN_INVALID_OPTION', /Expected `drainTimeout` to be a non-negative finite number of milliseconds, got `"10s"` \(string\)/],
  ['a negative delay', { preStopDelay: -1 }, 'FST_SHUTDOWN_INVALID_OPTION', /`preStopDelay`.*got `-1` \(number\)/],
  ['NaN', { forceTimeout: NaN }, 'FST_SHUTDOWN_INVALID_OPTION', /`forceTimeout`.*got `NaN` \(number\)/],
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
  ['a readiness route without a path', { readiness: {} }, 'FST_SHUTDOWN_INVALID_OPTION', /`readiness.path` to be a URL path starting with "\/", got `undefined` \(undefined\)/],
  ['a readiness route that is not an object', { readiness: '/readyz' }, 'FST_SHUTDOWN_INVALID_OPTION', /`readiness` to be false or an object/],
  ['a liveness route with a relative path', { liveness: { path: 'livez' } }, 'FST_SHUTDOWN_INVALID_OPTION', /`liveness.path`.*got `"livez"`/],
  ['a probe log level that does not exist', { liveness: { path: '/livez', logLevel: 'loud' } }, 'FST_SHUTDOWN_INVALID_OPTION', /`liveness.logLevel` to be one of "silent"/],
  ['an unknown key in a route', { readiness: { path: '/readyz', method: 'HEAD' } }, 'FST_SHUTDOWN_UNKNOWN_OPTION', /Unknown option `readiness.method`/],
  ['an open preStop route', { preStopRoute: { path: '/prestop' } }, 'FST_SHUTDOWN_INVALID_OPTION', /`preStopRoute` to be an object naming a `header` or an `allow` list \(an open endpoint would let any client stop the service\)/],
  ['a preStop header without a value', { preStopRoute: { path: '/prestop', header: { name: 'x-token', value: '' } } }, 'FST_SHUTDOWN_INVALID_OPTION', /`preStopRoute.header`/],
  ['a preStop allow-list of host names', { preStopRoute: { path: '/prestop', allow: ['localhost'] } }, 'FST_SHUTDOWN_INVALID_OPTION', /`preStopRoute.allow` to be a non-empty array of IP addresses, got `\["localhost"\]`/],
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
    /`preStopDelay` \(5000 ms\) \+ `drainTimeout` \(25000 ms\) \+ `forceTimeout` \(3000 ms\) = 33000 ms exceeds `gracePeriod` \(30000 ms\)/]
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
