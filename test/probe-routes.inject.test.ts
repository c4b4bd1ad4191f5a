import { test, type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import underPressure from '@fastify/under-pressure'
import fastifyShutdown from './helpers/plugin'
import type { Writable } from 'node:stream'
import { logCapture } from './helpers/log-capture'
import type { FastifyShutdownOptions } from '../types'
import { get } from './helpers/http'
import { appWithShutdown, listenLocally } from './helpers/app'

async function app (t: Test, options: FastifyShutdownOptions, logger: Writable | false = false): Promise<FastifyInstance> {
  const { app: fastify } = await appWithShutdown(t, options, { logger: logger === false ? false : { level: 'info', stream: logger } })
  fastify.get('/work', async () => ({ ok: true }))
  return fastify
}

const probes = { readiness: { path: '/readyz' }, liveness: { path: '/livez' } } as const

test('readiness is 200 while serving and 503 from the first moment of a shutdown; liveness stays 200', async (t) => {
  const fastify = await app(t, { ...probes, preStopDelay: 60_000, gracePeriod: Infinity })
  t.same((await fastify.inject('/readyz')).json(), { status: 'ready' })
  t.equal((await fastify.inject('/readyz')).statusCode, 200)

  const report = fastify.shutdown.start()
  const ready = await fastify.inject('/readyz')
  t.equal(ready.statusCode, 503)
  t.same(ready.json(), { status: 'pre-stop' })
  const live = await fastify.inject('/livez')
  t.equal(live.statusCode, 200)
  t.same(live.json(), { status: 'alive' })
  t.equal((await fastify.inject('/work')).statusCode, 200, 'every route still serves in the pre-stop window')
  void fastify.shutdown.force()
  await report
})

test('probe requests log nothing unless asked', async (t) => {
  const quiet = logCapture()
  const fastify = await app(t, probes, quiet.stream)
  await fastify.inject('/readyz')
  await fastify.inject('/livez')
  t.same(quiet.lines.filter((line) => line.reqId !== undefined), [])

  const loud = logCapture()
  const verbose = await app(t, { readiness: { path: '/readyz', logLevel: 'info' } }, loud.stream)
  await verbose.inject('/readyz')
  t.ok(loud.lines.some((line) => line.msg === 'request completed'))
})

test('the preStop route refuses a caller without the secret header and changes nothing', async (t) => {
  const fastify = await app(t, { preStopRoute: { path: '/prestop', header: { name: 'X-PreStop-Token', value: 's3cret' } } })
  for (const headers of [{}, { 'x-prestop-token': 'wrong!' }, { 'x-prestop-token': 's3cre' }]) {
    const response = await fastify.inject({ url: '/prestop', headers })
    t.equal(response.statusCode, 403)
    t.match(response.json(), { code: 'FST_SHUTDOWN_PRESTOP_FORBIDDEN' })
  }
  t.equal(fastify.shutdown.state, 'serving')
  t.equal(fastify.shutdown.ready, true)
})

test('the preStop route with the secret fails readiness, waits out preStopDelay, then answers', async (t) => {
  const fastify = await app(t, { ...probes, preStopDelay: 300, preStopRoute: { path: '/prestop', header: { name: 'x-prestop-token', value: 's3cret' } } })
  const answered = fastify.inject({ url: '/prestop', headers: { 'x-prestop-token': 's3cret' } })
  await new Promise(setImmediate)
  t.equal(fastify.shutdown.state, 'pre-stop')
  t.equal((await fastify.inject('/readyz')).statusCode, 503)
  const response = await answered
  t.equal(response.statusCode, 200)
  t.not(response.json().status, 'pre-stop', 'answered once the pre-stop window was over')
  const report = await fastify.shutdown.start('SIGTERM after the hook')
  t.match(report, { trigger: { type: 'prestop-route' }, outcome: 'completed' })
  t.ok(report.phases.preStopMs! >= 300)
})

test('the preStop route accepts a caller from the allow-list', async (t) => {
  const fastify = await app(t, { preStopRoute: { path: '/prestop', allow: ['127.0.0.1'] } })
  const response = await get(false, await listenLocally(fastify), '/prestop').response
  t.equal(response.status, 200)
  t.match(await fastify.shutdown.start(), { trigger: { type: 'prestop-route' } })
})

test('a budget with less than 2 s to spare before SIGKILL is a warning with the numbers', async (t) => {
  const tight = logCapture()
  await app(t, { preStopDelay: 5_000, drainTimeout: 20_000, forceTimeout: 4_000 }, tight.stream)
  t.match(tight.lines.find((line) => line.level === 40), {
    worstCaseMs: 29_000, marginMs: 2_000, gracePeriodMs: 30_000, msg: /leaves less than 2000 ms before SIGKILL/
  })
  const roomy = logCapture()
  await app(t, {}, roomy.stream)
  t.same(roomy.lines.filter((line) => line.level === 40), [])
})

test('the grace period comes from TERMINATION_GRACE_PERIOD_SECONDS when not given', async (t) => {
  process.env.TERMINATION_GRACE_PERIOD_SECONDS = '60'
  t.teardown(() => { delete process.env.TERMINATION_GRACE_PERIOD_SECONDS })
  const fastify = await app(t, { drainTimeout: 50_000 })
  t.equal(fastify.shutdown.state, 'serving', 'a 53 s budget fits in 60 s')
  process.env.TERMINATION_GRACE_PERIOD_SECONDS = 'thirty'
  await t.rejects(async () => { await Fastify().register(fastifyShutdown, { exit: false, handleSignals: false }) }, {
    code: 'FST_SHUTDOWN_INVALID_OPTION',
    message: /`process.env.TERMINATION_GRACE_PERIOD_SECONDS` to be a non-negative number of seconds, got `"thirty"`/
  })
})

test('@fastify/under-pressure reports unhealthy once a shutdown starts, while every other route still serves', async (t) => {
  const { app: fastify } = await appWithShutdown(t, { preStopDelay: 60_000, gracePeriod: Infinity })
  await fastify.register(underPressure, {
    exposeStatusRoute: '/status',
    healthCheck: async () => fastify.shutdown.ready
  })
  fastify.get('/work', async () => ({ ok: true }))
  t.equal((await fastify.inject('/status')).statusCode, 200)
  const report = fastify.shutdown.start()
  t.equal((await fastify.inject('/status')).statusCode, 503)
  t.equal((await fastify.inject('/work')).statusCode, 200, 'the pre-stop window keeps serving')
  t.equal((await fastify.inject('/status')).statusCode, 503)
  t.equal((await fastify.inject('/work')).statusCode, 200, 'a failed health check does not shed every route')
  void fastify.shutdown.force()
  await report
})
