import { test, type Test } from 'tap'
import { appWithShutdown } from './helpers/app'
import type { FastifyShutdownOptions, TelemetryTarget } from '../types'

/** A telemetry target that says when it was shut down, and settles as told. */
function target (settle: 'resolve' | 'reject' | 'never' = 'resolve'): TelemetryTarget & { calls: string[] } {
  const calls: string[] = []
  return {
    calls,
    shutdown () {
      calls.push('shutdown')
      if (settle === 'reject') return Promise.reject(new Error('exporter refused'))
      if (settle === 'never') return new Promise(() => {})
      return Promise.resolve()
    },
    forceFlush () {
      calls.push('forceFlush')
      return Promise.resolve()
    }
  }
}

async function app (t: Test, options: FastifyShutdownOptions, order: string[] = []) {
  const { app: fastify, exits } = await appWithShutdown(t, options)
  fastify.addHook('onClose', async () => { order.push('onClose') })
  await fastify.ready()
  return { fastify, exits }
}

test('telemetry is shut down after fastify.close(), and the report confirms it', async (t) => {
  const order: string[] = []
  const sdk = target()
  const provider = target()
  const wrapped = { shutdown: async () => { order.push('telemetry'); await sdk.shutdown() } }
  const { fastify, exits } = await app(t, { telemetry: [wrapped, provider] }, order)
  const report = await fastify.shutdown.start()
  t.same(order, ['onClose', 'telemetry'])
  t.same(provider.calls, ['shutdown'], 'shutdown(), which waits for an export under way; never forceFlush()')
  t.same(report.telemetry, { confirmed: true, targets: 2, failed: [], timedOut: false, cutSpans: 0 })
  t.type(report.phases.telemetryMs, 'number')
  t.same(exits, [0])
})

test('a target that rejects is reported, the others still shut down, the exit code stays 0', async (t) => {
  const healthy = target()
  const { fastify, exits } = await app(t, { telemetry: [target('reject'), healthy] })
  const report = await fastify.shutdown.start()
  t.same(healthy.calls, ['shutdown'])
  t.match(report.telemetry, { confirmed: false, timedOut: false, failed: ['target 0: exporter refused'] })
  t.same(exits, [0])
})

test('a target that never settles is cut off at telemetryTimeout and reported unconfirmed', async (t) => {
  const { fastify, exits } = await app(t, { telemetry: target('never'), telemetryTimeout: 150 })
  const report = await fastify.shutdown.start()
  t.match(report.telemetry, { confirmed: false, timedOut: true, failed: ['1 of 1 did not confirm within 150 ms'] })
  t.ok(report.phases.telemetryMs! >= 140, `waited ${report.phases.telemetryMs} ms`)
  t.same(exits, [0])
})

test('the force path shuts telemetry down too, within forceTimeout', async (t) => {
  const hanging = target('never')
  const { fastify, exits } = await app(t, { telemetry: hanging, forceTimeout: 150 })
  const report = await fastify.shutdown.force('test')
  t.same(hanging.calls, ['shutdown'])
  t.match(report, { outcome: 'forced', telemetry: { confirmed: false } })
  t.same(exits, [1])
})

test('a second force during a telemetry flush joins it instead of shutting down twice', async (t) => {
  let release!: () => void
  let flushStarted!: () => void
  const flushing = new Promise<void>((resolve) => { flushStarted = resolve })
  const calls: string[] = []
  const slow: TelemetryTarget = {
    shutdown: () => {
      calls.push('shutdown')
      flushStarted()
      return new Promise((resolve) => { release = () => resolve(undefined) })
    }
  }
  const { fastify } = await app(t, { telemetry: slow, forceTimeout: 2_000 })
  const report = fastify.shutdown.start()
  await flushing
  const forced = fastify.shutdown.force('second signal during the flush')
  release()
  t.equal(await forced, await report)
  t.same(calls, ['shutdown'])
  t.match(await report, { outcome: 'forced', telemetry: { confirmed: true } })
})

test('without telemetry the report has no telemetry section', async (t) => {
  const { fastify } = await app(t, {})
  t.notOk('telemetry' in await fastify.shutdown.start())
})

test('a direct fastify.close(), as a test runner or fastify-cli calls it, resolves only after the telemetry flush and the report', async (t) => {
  const order: string[] = []
  const { app: fastify, exits } = await appWithShutdown(t, {
    telemetry: { shutdown: () => new Promise<void>((resolve) => setImmediate(() => { order.push('telemetry'); resolve() })) }
  })
  fastify.addHook('onClose', async () => { order.push('onClose') })
  await fastify.ready()
  await fastify.close()
  order.push('close() resolved')
  t.same(order, ['onClose', 'telemetry', 'close() resolved'])
  t.match(fastify.shutdown.report, { outcome: 'completed', exitCode: 0, trigger: { type: 'manual', reason: 'fastify.close()' }, telemetry: { confirmed: true } })
  t.same(exits, [], 'the caller of close() decides the exit')
})

test('a fastify.close() called while the shutdown\'s own close runs resolves only after the report', async (t) => {
  const order: string[] = []
  const { app: fastify } = await appWithShutdown(t, {
    telemetry: { shutdown: () => new Promise<void>((resolve) => setImmediate(() => { order.push('telemetry'); resolve() })) }
  })
  let theirs: Promise<void> | null = null
  fastify.addHook('onClose', async () => {
    order.push('onClose')
    theirs = fastify.close().then(() => { order.push('their close() resolved') })
  })
  await fastify.ready()
  const report = await fastify.shutdown.start()
  await theirs
  t.same(order, ['onClose', 'telemetry', 'their close() resolved'])
  t.match(report, { outcome: 'completed', trigger: { type: 'manual' } })
})
