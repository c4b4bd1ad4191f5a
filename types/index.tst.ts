// Type tests for the published declarations (types/index.d.ts), run by tstyche (`npm run test:types`).
// `fastify-shutdown` resolves through the package's own `exports` (see types/tsconfig.json), so these
// tests check what a TypeScript consumer gets, never the sources in lib/. This file is a CommonJS-mode
// module under `nodenext`; esm.tst.mts repeats the import checks from an ES module.
import Fastify, {
  type FastifyPluginAsync,
  type FastifyPluginCallback,
  type FastifyTypeProvider
} from 'fastify'
import { describe, expect, test } from 'tstyche'
import fastifyShutdown, {
  fastifyShutdown as named,
  STATE,
  type ExitFunction,
  type FastifyShutdownOptions,
  type OpenRequest,
  type ResolvedShutdownOptions,
  type ShutdownController,
  type ShutdownPhases,
  type ShutdownReport,
  type ShutdownState,
  type ShutdownTrigger,
  type ProbeRouteOptions,
  type PreStopRouteOptions,
  type ProbeServerOptions,
  type ConnectionsOutcome,
  type UnreadConnection
} from 'fastify-shutdown'
import type { AddressInfo } from 'node:net'
import fastifyShutdownRequired = require('fastify-shutdown')

const app = Fastify()

describe('exports', () => {
  test('the default and the named export are the same Fastify plugin', () => {
    expect(fastifyShutdown).type.toBe(named)
    expect(fastifyShutdown).type.toBe<FastifyPluginCallback<FastifyShutdownOptions>>()
  })

  test('`require` gives a callable plugin carrying `.default`, `.fastifyShutdown` and `.STATE`', () => {
    expect(fastifyShutdownRequired).type.toBeAssignableTo<FastifyPluginCallback<FastifyShutdownOptions>>()
    expect(fastifyShutdownRequired.default).type.toBe(named)
    expect(fastifyShutdownRequired.fastifyShutdown).type.toBe(named)
    expect(fastifyShutdownRequired.STATE).type.toBe(STATE)
    expect<fastifyShutdownRequired.ShutdownReport>().type.toBe<ShutdownReport>()
  })

  test('STATE maps each name to its literal value, read-only', () => {
    expect(STATE).type.toBe<{
      readonly SERVING: 'serving'
      readonly PRE_STOP: 'pre-stop'
      readonly DRAINING: 'draining'
      readonly CLOSING: 'closing'
      readonly FORCING: 'forcing'
      readonly CLOSED: 'closed'
    }>()
    expect(STATE.DRAINING).type.toBe<'draining'>()
    expect(STATE).type.not.toHaveProperty('STOPPED')

    // @ts-expect-error Cannot assign to 'DRAINING' because it is a read-only property
    STATE.DRAINING = 'closed'
  })

  test('ShutdownState is the union of the STATE values', () => {
    expect<ShutdownState>().type.toBe<'serving' | 'pre-stop' | 'draining' | 'closing' | 'forcing' | 'closed'>()
    expect<ShutdownState>().type.toBe<(typeof STATE)[keyof typeof STATE]>()
    expect<'stopped'>().type.not.toBeAssignableTo<ShutdownState>()
  })
})

describe('register', () => {
  test('without options', () => {
    expect(app.register).type.toBeCallableWith(fastifyShutdown)
    expect(app.register).type.toBeCallableWith(named, {})
    expect(app.register).type.toBeCallableWith(fastifyShutdownRequired)
  })

  test('with each option', () => {
    expect(app.register).type.toBeCallableWith(fastifyShutdown, { preStopDelay: 5000 })
    expect(app.register).type.toBeCallableWith(fastifyShutdown, { drainTimeout: 10_000 })
    expect(app.register).type.toBeCallableWith(fastifyShutdown, { forceTimeout: 3000 })
    expect(app.register).type.toBeCallableWith(fastifyShutdown, { gracePeriod: 30_000 })
    expect(app.register).type.toBeCallableWith(fastifyShutdown, { gracePeriod: Infinity })
    expect(app.register).type.toBeCallableWith(fastifyShutdown, { signals: ['SIGTERM'] })
    expect(app.register).type.toBeCallableWith(fastifyShutdown, { signals: ['SIGTERM', 'SIGINT', 'SIGHUP'] as const })
    expect(app.register).type.toBeCallableWith(fastifyShutdown, { handleSignals: false })
    expect(app.register).type.toBeCallableWith(fastifyShutdown, { exit: false })
    expect(app.register).type.toBeCallableWith(fastifyShutdown, { exit: process.exit })
    expect(app.register).type.toBeCallableWith(fastifyShutdown, { exit: (code: number) => { process.exitCode = code } })
    expect(app.register).type.toBeCallableWith(fastifyShutdown, { retryAfter: 5 })
  })

  test('with every option at once, inline or from a typed variable', () => {
    expect(app.register).type.toBeCallableWith(fastifyShutdown, {
      preStopDelay: 5000,
      drainTimeout: 10_000,
      forceTimeout: 3000,
      gracePeriod: 30_000,
      signals: ['SIGTERM', 'SIGINT'],
      handleSignals: true,
      exit: process.exit,
      retryAfter: 5
    })

    const options: FastifyShutdownOptions = { handleSignals: false, exit: false }
    expect(app.register).type.toBeCallableWith(fastifyShutdown, options)
  })

  test('the exit callback receives the exit code as a number', () => {
    app.register(fastifyShutdown, {
      exit: (code) => {
        expect(code).type.toBe<number>()
      }
    })
  })

  test('rejects options of the wrong type', () => {
    expect(app.register).type.not.toBeCallableWith(fastifyShutdown, { preStopDelay: '5s' })
    expect(app.register).type.not.toBeCallableWith(fastifyShutdown, { drainTimeout: '10s' })
    expect(app.register).type.not.toBeCallableWith(fastifyShutdown, { forceTimeout: null })
    expect(app.register).type.not.toBeCallableWith(fastifyShutdown, { gracePeriod: '30s' })
    expect(app.register).type.not.toBeCallableWith(fastifyShutdown, { signals: 'SIGTERM' })
    expect(app.register).type.not.toBeCallableWith(fastifyShutdown, { signals: ['SIGNOPE'] })
    expect(app.register).type.not.toBeCallableWith(fastifyShutdown, { handleSignals: 'yes' })
    expect(app.register).type.not.toBeCallableWith(fastifyShutdown, { exit: 1 })
    expect(app.register).type.not.toBeCallableWith(fastifyShutdown, { exit: true })
    expect(app.register).type.not.toBeCallableWith(fastifyShutdown, { exit: (code: string) => { void code } })
    expect(app.register).type.not.toBeCallableWith(fastifyShutdown, { retryAfter: '5' })
  })

  test('rejects unknown option keys', () => {
    expect(app.register).type.not.toBeCallableWith(fastifyShutdown, { timeout: 1000 })
    expect(app.register).type.not.toBeCallableWith(fastifyShutdown, { drainTimeout: 1000, drainTimout: 1000 })
  })
})

describe('fastify.shutdown', () => {
  test('is the ShutdownController', () => {
    expect(app.shutdown).type.toBe<ShutdownController>()
  })

  test('state, ready, inFlight and report', () => {
    expect(app.shutdown.state).type.toBe<ShutdownState>()
    expect(app.shutdown.ready).type.toBe<boolean>()
    expect(app.shutdown.inFlight).type.toBe<number>()
    expect(app.shutdown.report).type.toBe<ShutdownReport | null>()
  })

  test('start and force take an optional reason and resolve with the report', () => {
    expect(app.shutdown.start()).type.toBe<Promise<ShutdownReport>>()
    expect(app.shutdown.start('deploy')).type.toBe<Promise<ShutdownReport>>()
    expect(app.shutdown.force()).type.toBe<Promise<ShutdownReport>>()
    expect(app.shutdown.force('stuck')).type.toBe<Promise<ShutdownReport>>()

    expect(app.shutdown.start).type.not.toBeCallableWith(42)
    expect(app.shutdown.start).type.not.toBeCallableWith({ reason: 'deploy' })
    expect(app.shutdown.force).type.not.toBeCallableWith(42)
  })

  test('its fields are read-only', () => {
    // @ts-expect-error Cannot assign to 'state' because it is a read-only property
    app.shutdown.state = STATE.CLOSED
    // @ts-expect-error Cannot assign to 'ready' because it is a read-only property
    app.shutdown.ready = false
    // @ts-expect-error Cannot assign to 'inFlight' because it is a read-only property
    app.shutdown.inFlight = 0
    // @ts-expect-error Cannot assign to 'report' because it is a read-only property
    app.shutdown.report = null
  })

  test('is there on instances with other generics and inside plugins', () => {
    const typed = Fastify().withTypeProvider<FastifyTypeProvider>()
    expect(typed.shutdown).type.toBe<ShutdownController>()
    expect(typed.register).type.toBeCallableWith(fastifyShutdown, { exit: false })

    const plugin: FastifyPluginAsync = async (instance) => {
      expect(instance.shutdown.state).type.toBe<ShutdownState>()
    }
    expect(app.register).type.toBeCallableWith(plugin)
  })
})

describe('exported types', () => {
  test('FastifyShutdownOptions: every option optional, times and seconds are numbers', () => {
    expect<FastifyShutdownOptions>().type.toBeAssignableFrom({})
    expect<FastifyShutdownOptions['drainTimeout']>().type.toBe<number | undefined>()
    expect<FastifyShutdownOptions['signals']>().type.toBe<readonly NodeJS.Signals[] | undefined>()
    expect<FastifyShutdownOptions['exit']>().type.toBe<ExitFunction | false | undefined>()
    expect<ExitFunction>().type.toBe<(code: number) => void>()
  })

  test('ResolvedShutdownOptions: every option present and read-only', () => {
    expect<keyof ResolvedShutdownOptions>().type.toBe<keyof FastifyShutdownOptions>()
    expect<ResolvedShutdownOptions['drainTimeout']>().type.toBe<number>()
    expect<ResolvedShutdownOptions['readiness']>().type.toBe<Readonly<Required<ProbeRouteOptions>> | false>()
    expect<ResolvedShutdownOptions>().type.toBeAssignableTo<Readonly<Required<FastifyShutdownOptions>>>()
  })

  test('probe and preStop routes', () => {
    expect<FastifyShutdownOptions>().type.toBeAssignableFrom({ readiness: { path: '/readyz' }, liveness: { path: '/livez', logLevel: 'info' as const } })
    expect<FastifyShutdownOptions>().type.toBeAssignableFrom({ preStopRoute: { path: '/prestop', header: { name: 'x-token', value: 's' }, allow: ['10.0.0.1'] } })
    expect<FastifyShutdownOptions>().type.not.toBeAssignableFrom({ readiness: '/readyz' })
    expect<FastifyShutdownOptions>().type.not.toBeAssignableFrom({ liveness: { path: '/livez', logLevel: 'loud' } })
    expect<PreStopRouteOptions>().type.not.toBeAssignableFrom({ path: '/prestop', header: 'x-token' })
  })

  test('probeServer: a port, and a host or not', () => {
    expect(app.register).type.toBeCallableWith(fastifyShutdown, { readiness: { path: '/readyz' }, probeServer: { port: 9000 } })
    expect(app.register).type.toBeCallableWith(fastifyShutdown, { liveness: { path: '/livez' }, probeServer: { port: 9000, host: '::' } })
    expect(app.register).type.toBeCallableWith(fastifyShutdown, { probeServer: false })
    expect(app.register).type.not.toBeCallableWith(fastifyShutdown, { probeServer: 9000 })
    expect(app.register).type.not.toBeCallableWith(fastifyShutdown, { probeServer: { host: '0.0.0.0' } })
    expect(app.register).type.not.toBeCallableWith(fastifyShutdown, { probeServer: { port: '9000' } })
    expect(app.register).type.not.toBeCallableWith(fastifyShutdown, { probeServer: { port: 9000, path: '/readyz' } })
    expect<ProbeServerOptions['host']>().type.toBe<string | undefined>()
    expect<ResolvedShutdownOptions['probeServer']>().type.toBe<Readonly<ProbeServerOptions> | false>()
    expect(app.shutdown.probeAddress).type.toBe<AddressInfo | null>()

    // @ts-expect-error Cannot assign to 'probeAddress' because it is a read-only property
    app.shutdown.probeAddress = null
    // @ts-expect-error Type 'string' is not assignable to type 'number'
    app.register(fastifyShutdown, { readiness: { path: '/readyz' }, probeServer: { port: 'http' } })
  })

  test('ShutdownTrigger narrows on `type`', () => {
    const trigger = {} as ShutdownTrigger
    expect(trigger.type).type.toBe<'signal' | 'error' | 'manual' | 'prestop-route'>()
    if (trigger.type === 'signal') expect(trigger.signal).type.toBe<NodeJS.Signals>()
    if (trigger.type === 'error') expect(trigger.error).type.toBe<unknown>()
    if (trigger.type === 'manual') expect(trigger.reason).type.toBe<string | undefined>()
    expect(trigger).type.not.toHaveProperty('signal')
  })

  test('ShutdownReport', () => {
    const report = {} as ShutdownReport
    expect(report.trigger).type.toBe<ShutdownTrigger>()
    expect(report.outcome).type.toBe<'completed' | 'forced'>()
    expect(report.forcedBy).type.toBe<'second-signal' | 'drain-timeout' | 'fatal-error' | 'manual' | 'internal-error' | undefined>()
    expect(report.connections.http).type.toBe<ConnectionsOutcome>()
    expect(report.unreadConnections).type.toBe<readonly UnreadConnection[]>()
    expect(report.exitCode).type.toBe<number>()
    expect(report.startedAt).type.toBe<string>()
    expect(report.durationMs).type.toBe<number>()
    expect(report.phases).type.toBe<ShutdownPhases>()
    expect(report.phases.drainMs).type.toBe<number | undefined>()
    expect(report.completedRequests).type.toBe<number>()
    expect(report.rejectedRequests).type.toBe<number>()
    expect(report.openRequests).type.toBe<readonly OpenRequest[]>()
    expect(report.openRequests[0]!.route).type.toBe<string | undefined>()
    expect(report.errors).type.toBe<readonly string[]>()

    // @ts-expect-error Cannot assign to 'outcome' because it is a read-only property
    report.outcome = 'forced'
    // @ts-expect-error Property 'push' does not exist on type 'readonly string[]'
    report.errors.push('late')
  })
})

describe('request signals and shutdown tasks', () => {
  test('request.shutdownSignal and request.wrapUpSignal are read-only AbortSignals', () => {
    const app = Fastify()
    app.get('/', async (request) => {
      expect(request.shutdownSignal).type.toBe<AbortSignal>()
      expect(request.wrapUpSignal).type.toBe<AbortSignal>()
      // @ts-expect-error Cannot assign to 'shutdownSignal' because it is a read-only property.
      request.shutdownSignal = new AbortController().signal
      return 'ok'
    })
  })

  test('addTask takes a named task and the report lists outcomes', () => {
    const app = Fastify()
    expect(app.shutdown.addTask({ name: 'flush', run: async (signal: AbortSignal) => { signal.throwIfAborted() }, phase: 1, timeout: 500 })).type.toBe<void>()
    expect(app.shutdown.addTask).type.not.toBeCallableWith({ run: () => {} })
    expect(app.shutdown.addTask).type.not.toBeCallableWith({ name: 'x', run: () => {}, phase: '1' })
    const report = {} as ShutdownReport
    expect(report.tasks[0]!.outcome).type.toBe<'completed' | 'failed' | 'timed-out' | 'cut'>()
    expect(report.abortedRequests).type.toBe<number>()
  })
})
