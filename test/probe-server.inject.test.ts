import { test, type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import fastifyShutdown from './helpers/plugin'
import { logCapture, type LogCapture } from './helpers/log-capture'
import { bounded } from './helpers/wait'
import { appWithShutdown } from './helpers/app'
import type { FastifyShutdownOptions } from '../types'

const TOKEN = { name: 'x-prestop-token', value: 's3cret' }
const TOKEN_HEADERS = { [TOKEN.name]: TOKEN.value }
const routes = { readiness: { path: '/readyz' }, liveness: { path: '/livez' }, preStopRoute: { path: '/prestop', header: TOKEN } } as const
const probeServer = { port: 0, host: '127.0.0.1' }

interface Answer { status: number, headers: http.IncomingHttpHeaders, body: string }

function call (port: number, path: string, { method = 'GET', headers = {} }: { method?: string, headers?: Record<string, string> } = {}): Promise<Answer> {
  return bounded(new Promise((resolve, reject) => {
    http.request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }))
    }).on('error', reject).end()
  }), `${method} ${path} on port ${port}`)
}

/** A closed server's handle is released in the close phase of the next loop turn: let two turns pass. */
async function resources (): Promise<string[]> {
  await new Promise(setImmediate)
  await new Promise(setImmediate)
  return process.getActiveResourcesInfo().filter((name) => name !== 'Timeout').sort()
}

async function app (t: Test, options: FastifyShutdownOptions, logs: LogCapture = logCapture()): Promise<FastifyInstance> {
  const { app: fastify } = await appWithShutdown(t, options, { logger: { level: 'info', stream: logs.stream } })
  fastify.get('/work', async () => ({ ok: true }))
  return fastify
}

/** Listens, then waits for the probe server's own 'listening' line: it starts once the app listens. */
async function listening (fastify: FastifyInstance, logs: LogCapture): Promise<{ appPort: number, probePort: number }> {
  await fastify.listen({ port: 0, host: '127.0.0.1' })
  const line = await logs.line('probe server listening')
  const probePort = (line.address as AddressInfo).port
  return { appPort: (fastify.server.address() as AddressInfo).port, probePort }
}

test('the probe routes answer on the probe port and are absent from the app\'s', async (t) => {
  const logs = logCapture()
  const fastify = await app(t, { ...routes, probeServer }, logs)
  const { appPort, probePort } = await listening(fastify, logs)
  t.equal(fastify.shutdown.probeAddress?.port, probePort)
  t.not(probePort, appPort)

  const ready = await call(probePort, '/readyz')
  t.equal(ready.status, 200)
  t.equal(ready.headers['content-type'], 'application/json; charset=utf-8')
  t.same(JSON.parse(ready.body), { status: 'ready' })
  t.same(JSON.parse((await call(probePort, '/livez?verbose=1')).body), { status: 'alive' }, 'the query string is not part of the path')
  const head = await call(probePort, '/livez', { method: 'HEAD' })
  t.same([head.status, head.body], [200, ''])
  const post = await call(probePort, '/prestop', { method: 'POST', headers: TOKEN_HEADERS })
  t.same([post.status, post.headers.allow], [405, 'GET, HEAD'])
  t.equal((await call(probePort, '/work')).status, 404, 'the app\'s routes are not on the probe port')

  for (const path of ['/readyz', '/livez', '/prestop']) {
    t.equal((await call(appPort, path, { headers: TOKEN_HEADERS })).status, 404, `${path} is absent from the app's port`)
  }
  t.equal(fastify.shutdown.state, 'serving', 'nothing reached the preStop endpoint')
})

test('an app with its own routes on the probe paths registers: they no longer collide', async (t) => {
  const fastify = Fastify()
  fastify.get('/readyz', async () => 'the app\'s own')
  await fastify.register(fastifyShutdown, { handleSignals: false, exit: false, ...routes, probeServer })
  t.teardown(() => fastify.close())
  t.equal((await fastify.inject('/readyz')).body, 'the app\'s own')
})

test('the preStop endpoint on the probe port keeps its guard, and starts the shutdown for a caller with the header', async (t) => {
  const logs = logCapture()
  const fastify = await app(t, { ...routes, probeServer, preStopDelay: 500 }, logs)
  const { probePort } = await listening(fastify, logs)

  for (const headers of [{}, { [TOKEN.name]: 'wrong!' }, { [TOKEN.name]: 's3cre' }]) {
    const refused = await call(probePort, '/prestop', { headers })
    t.equal(refused.status, 403)
    t.match(JSON.parse(refused.body), { code: 'FST_SHUTDOWN_PRESTOP_FORBIDDEN' })
  }
  t.equal(logs.lines.filter((line) => line.msg === 'preStop route refused a caller').length, 3)
  t.equal(fastify.shutdown.state, 'serving')

  const answered = call(probePort, '/prestop', { headers: TOKEN_HEADERS })
  await logs.line('shutdown started')
  const unready = await call(probePort, '/readyz')
  t.same([unready.status, JSON.parse(unready.body)], [503, { status: 'pre-stop' }])
  const response = await answered
  t.equal(response.status, 200)
  t.not(JSON.parse(response.body).status, 'pre-stop', 'answered once the pre-stop window was over')
  const report = await fastify.shutdown.start()
  t.match(report, { trigger: { type: 'prestop-route' }, outcome: 'completed' })
  t.ok(report.phases.preStopMs! >= 500)
})

test('readiness turns 503 at the first moment of a shutdown; liveness answers past fastify.close() until the report', async (t) => {
  const logs = logCapture()
  let releaseTelemetry!: () => void
  let flushStarted!: () => void
  const flushing = new Promise<void>((resolve) => { flushStarted = resolve })
  const telemetry = {
    shutdown: () => {
      flushStarted()
      return new Promise<void>((resolve) => { releaseTelemetry = resolve })
    }
  }
  const fastify = await app(t, { ...routes, probeServer, telemetry }, logs)
  const { appPort, probePort } = await listening(fastify, logs)

  const report = fastify.shutdown.start()
  t.equal((await call(probePort, '/readyz')).status, 503)
  // The telemetry flush comes after fastify.close(): its onClose hooks have run, the app's listener is gone.
  await bounded(flushing, 'the telemetry flush')
  await t.rejects(call(appPort, '/work'), { code: 'ECONNREFUSED' }, 'the app\'s listener is closed')
  const live = await call(probePort, '/livez')
  t.same([live.status, JSON.parse(live.body)], [200, { status: 'alive' }])
  t.same(JSON.parse((await call(probePort, '/readyz')).body), { status: 'closing' })
  releaseTelemetry()
  t.match(await report, { outcome: 'completed' })
  await t.rejects(call(probePort, '/livez'), { code: 'ECONNREFUSED' }, 'closed once the report is out')
  t.equal(fastify.shutdown.probeAddress, null)
})

test('fastify.close() closes the probe server: no handle or listener is left', async (t) => {
  const before = await resources()
  const listeners = process.listenerCount('SIGTERM')
  const logs = logCapture()
  const fastify = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await fastify.register(fastifyShutdown, { exit: false, ...routes, probeServer })
  const { probePort } = await listening(fastify, logs)
  // A keep-alive client holding an idle connection to the probe server.
  const agent = new http.Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())
  await new Promise<void>((resolve, reject) => http.get({ host: '127.0.0.1', port: probePort, path: '/livez', agent }, (res) => { res.resume(); res.on('end', resolve) }).on('error', reject))
  t.equal(Object.values(agent.freeSockets).flat().length, 1)

  await fastify.close()
  t.equal(fastify.shutdown.probeAddress, null)
  t.equal(process.listenerCount('SIGTERM'), listeners)
  agent.destroy()
  t.same(await resources(), before, 'no handle outlives close()')
})

test('fastify.close() right after listen() waits for the probe server\'s bind under way, then closes it', async (t) => {
  const before = await resources()
  const fastify = Fastify()
  // A host name: the bind waits for its lookup, which outlasts the close's own steps.
  await fastify.register(fastifyShutdown, { exit: false, ...routes, probeServer: { port: 0, host: 'localhost' } })
  await fastify.listen({ port: 0, host: '127.0.0.1' })
  t.equal(fastify.shutdown.probeAddress, null, 'still binding')
  await fastify.close()
  t.same(await resources(), before)
})

test('a shutdown of the plugin\'s own leaves no handle either', async (t) => {
  const before = await resources()
  const logs = logCapture()
  const fastify = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await fastify.register(fastifyShutdown, { exit: false, ...routes, probeServer })
  await listening(fastify, logs)
  await fastify.shutdown.start()
  t.same(await resources(), before)
})

test('an app that is only injected (ready(), no listen) opens no port', async (t) => {
  const before = await resources()
  const fastify = await app(t, { ...routes, probeServer: { port: 1 } })
  await fastify.ready()
  t.equal(fastify.shutdown.probeAddress, null)
  t.same(await resources(), before)
  t.equal((await fastify.inject('/work')).statusCode, 200)
})

test('without a host the probe server listens on every interface, where the kubelet reaches the pod IP', async (t) => {
  const logs = logCapture()
  const fastify = await app(t, { readiness: { path: '/readyz' }, probeServer: { port: 0 } }, logs)
  const { probePort } = await listening(fastify, logs)
  t.match(fastify.shutdown.probeAddress!.address, /^(::|0\.0\.0\.0)$/)
  t.equal((await call(probePort, '/readyz')).status, 200, 'reached on loopback too')
})

/** A port free on 127.0.0.1 right now. */
function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

test('a probe port the app listens on is refused when the app listens, with a coded error, and shuts the app down', async (t) => {
  const port = await freePort()
  const logs = logCapture()
  const fastify = await app(t, { ...routes, probeServer: { port, host: '127.0.0.1' } }, logs)
  await fastify.listen({ port, host: '127.0.0.1' })
  const failed = await logs.line('the probe server could not start: shutting down')
  t.match(failed, {
    level: 50,
    err: { code: 'FST_SHUTDOWN_PROBE_PORT_CONFLICT', message: new RegExp(`^Expected \`probeServer.port\` to be a port the app does not listen on, got \`${port}\`, where the app listens \\(127.0.0.1:${port}\\)`) }
  })
  t.match(await fastify.shutdown.start(), { trigger: { type: 'error' }, exitCode: 1 }, 'the shutdown it started')
})

test('a probe port another server holds is a coded error naming the port, with the cause', async (t) => {
  const blocker = net.createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())))
  const port = (blocker.address() as AddressInfo).port
  const logs = logCapture()
  const fastify = await app(t, { ...routes, probeServer: { port, host: '127.0.0.1' } }, logs)
  await fastify.listen({ port: 0, host: '127.0.0.1' })
  const failed = await logs.line('the probe server could not start: shutting down')
  t.match(failed.err, { code: 'FST_SHUTDOWN_PROBE_SERVER_LISTEN', message: new RegExp(`^The probe server could not listen on 127.0.0.1:${port} \\(\`probeServer\`\\): listen EADDRINUSE`) })
  t.match(await fastify.shutdown.start(), { trigger: { type: 'error' }, exitCode: 1 }, 'the shutdown it started')
})

test('probe requests are logged at the route\'s logLevel, silent by default', async (t) => {
  const logs = logCapture()
  const fastify = await app(t, { readiness: { path: '/readyz', logLevel: 'info' }, liveness: { path: '/livez' }, probeServer }, logs)
  const { probePort } = await listening(fastify, logs)
  await call(probePort, '/livez')
  await call(probePort, '/readyz')
  const completed = logs.lines.filter((line) => line.msg === 'probe request completed')
  t.equal(completed.length, 1)
  t.match(completed[0], { level: 30, method: 'GET', url: '/readyz', statusCode: 200, remoteAddress: '127.0.0.1' })
})

test('register warns when the preStop route on the app\'s port is guarded by allow alone, with the reason and the fix', async (t) => {
  const allowOnly = logCapture()
  await app(t, { preStopRoute: { path: '/prestop', allow: ['10.0.0.1'] } }, allowOnly)
  const warning = allowOnly.lines.find((line) => line.level === 40)
  t.match(warning, { plugin: 'fastify-shutdown', path: '/prestop', allow: ['10.0.0.1'] })
  t.match(warning?.msg, /externalTrafficPolicy Cluster/)
  t.match(warning?.msg, /node's or the proxy's address, as the kubelet's does/)
  t.match(warning?.msg, /add `preStopRoute.header`, or serve the route with `probeServer` on a port the Service does not expose/)

  for (const options of [
    { preStopRoute: { path: '/prestop', allow: ['10.0.0.1'], header: TOKEN } },
    { preStopRoute: { path: '/prestop', header: TOKEN } },
    { preStopRoute: { path: '/prestop', allow: ['10.0.0.1'] }, probeServer }
  ]) {
    const quiet = logCapture()
    await app(t, options, quiet)
    t.same(quiet.lines.filter((line) => line.level === 40), [], JSON.stringify(options))
  }
})
