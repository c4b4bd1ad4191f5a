// Who can reach the preStop endpoint, in real processes. HAProxy on 127.0.0.1 in front of the app plays the
// Service's SNAT: what it forwards arrives from 127.0.0.1, a "node" address, exactly as a direct call (the
// kubelet's) does. The allow list cannot tell them apart; a port the proxy does not forward to can.
import { test, type Test } from 'tap'
import http from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { AddressInfo } from 'node:net'
import { startFixture, type Child } from './helpers/child'
import { bounded } from './helpers/wait'

// The only way to load ESM from this CommonJS test; the import is kept as import() under NodeNext.
const harness = import('./helpers/rolling/index.mjs')

const TOKEN = { name: 'x-prestop-token', value: 'kubelet-only' }
const probes = { readiness: { path: '/readyz' }, liveness: { path: '/livez' } }

const ALLOW_ALONE = /guarded by `allow` alone/

interface Answer { status: number, body: string }

function call (port: number, urlPath: string, headers: Record<string, string> = {}): Promise<Answer> {
  return bounded(new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: urlPath, headers, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode!, body }))
    }).on('error', reject)
  }), `GET ${urlPath} on port ${port}`)
}

async function probePort (child: Child): Promise<number> {
  return ((await child.log('probe server listening')).address as AddressInfo).port
}

/** HAProxy in front of the child's app port, health-checking `checkPath` there; skips when haproxy is missing. */
async function behindHaproxy (t: Test, child: Child, checkPath: string): Promise<number | null> {
  const { haproxyVersion, startHaproxy } = await harness
  const dir = await mkdtemp(path.join(tmpdir(), 'probe-haproxy-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const haproxy = await startHaproxy({ dir, servers: [child.port], slots: 1, checkPath })
  t.teardown(() => haproxy.stop())
  t.comment(haproxyVersion())
  return haproxy.port
}

async function haproxyMissing (): Promise<string | false> {
  const { haproxyVersion } = await harness
  return haproxyVersion() === null ? 'haproxy is not installed: `apt-get install -y haproxy` (CI installs it)' : false
}

test('same port, allow list only: a request through the proxy reaches the preStop route, and register warned', async (t) => {
  const missing = await haproxyMissing()
  if (missing) return t.plan(0, missing)
  const child = await startFixture(t, 'probe-app', { shutdown: { ...probes, preStopRoute: { path: '/prestop', allow: ['127.0.0.1'] } } })
  const warning = await child.log((line) => line.level === 40 && ALLOW_ALONE.test(line.msg), 'the allow-alone warning')
  t.match(warning, { path: '/prestop', allow: ['127.0.0.1'], msg: /externalTrafficPolicy Cluster.*add `preStopRoute.header`, or serve the route with `probeServer`/ })
  t.ok(warning.at < child.messages.find((m) => m.type === 'ready')!.at, 'warned at start, before the app listened')

  const proxyPort = await behindHaproxy(t, child, '/readyz')
  const response = await call(proxyPort!, '/prestop')
  t.equal(response.status, 200, 'an outside client, forwarded from 127.0.0.1, passed the allow list')
  t.match(await child.report(), { trigger: { type: 'prestop-route' }, outcome: 'completed' }, 'and stopped the app')
  t.match(await child.exited(), { code: 0 })
})

test('probe port: through the proxy the preStop endpoint does not exist; the kubelet\'s direct call with the header works', async (t) => {
  const missing = await haproxyMissing()
  if (missing) return t.plan(0, missing)
  const child = await startFixture(t, 'probe-app', {
    shutdown: { ...probes, preStopRoute: { path: '/prestop', header: TOKEN }, probeServer: { port: 0, host: '127.0.0.1' } }
  })
  const port = await probePort(child)
  t.notOk(child.logs.some((line) => ALLOW_ALONE.test(line.msg)), 'no allow-alone warning')

  const proxyPort = await behindHaproxy(t, child, '/fast')
  for (const headers of [{}, { [TOKEN.name]: TOKEN.value }]) {
    t.equal((await call(proxyPort!, '/prestop', headers)).status, 404, `through the proxy${Object.keys(headers).length ? ', even with the header' : ''}: 404`)
  }
  for (const probe of ['/readyz', '/livez']) t.equal((await call(proxyPort!, probe)).status, 404, `${probe} is not on the app's port either`)
  t.same(JSON.parse((await call(proxyPort!, '/state')).body), { state: 'serving', ready: true }, 'nothing started a shutdown')

  t.equal((await call(port, '/prestop')).status, 403, 'direct, without the header: refused')
  const direct = await call(port, '/prestop', { [TOKEN.name]: TOKEN.value })
  t.equal(direct.status, 200, 'direct, with the header: the preStop endpoint answers')
  t.match(await child.report(), { trigger: { type: 'prestop-route' }, outcome: 'completed' })
  t.match(await child.exited(), { code: 0 })
})

test('probe port: readiness 503 from the first signal; liveness 200 through the drain and fastify.close(), until exit', async (t) => {
  const child = await startFixture(t, 'probe-app', { holdTelemetry: true, shutdown: { ...probes, probeServer: { port: 0, host: '127.0.0.1' } } })
  const port = await probePort(child)
  t.equal((await call(port, '/readyz')).status, 200)

  const slow = call(child.port, '/slow/1')
  await child.message((m) => m.type === 'handling' && m.id === '1', 'the slow request in its handler')
  child.signal('SIGTERM')
  await child.log('shutdown started')
  const unready = await call(port, '/readyz')
  t.equal(unready.status, 503, 'readiness fails from the first moment')
  t.match(JSON.parse(unready.body).status, /^(pre-stop|draining)$/)

  await child.log('listener closed, draining')
  await t.rejects(call(child.port, '/fast'), { code: 'ECONNREFUSED' }, 'the app\'s listener is closed')
  t.same([(await call(port, '/livez')).status, (await call(port, '/readyz')).status], [200, 503], 'the probe server is not drained')

  child.send({ type: 'release', id: '1' })
  t.equal((await slow).status, 200)
  await child.message((m) => m.type === 'telemetry-flushing', 'the telemetry flush, after fastify.close()')
  t.ok(child.logs.some((line) => line.msg === 'fixture preClose'), 'fastify.close() has run')
  const live = await call(port, '/livez')
  t.same([live.status, JSON.parse(live.body)], [200, { status: 'alive' }], 'liveness still answers after fastify.close()')
  t.same(JSON.parse((await call(port, '/readyz')).body), { status: 'closing' })

  child.send({ type: 'release-telemetry' })
  t.match(await child.report(), { outcome: 'completed', exitCode: 0 })
  t.match(await child.exited(), { code: 0, signal: null })
  await t.rejects(call(port, '/livez'), { code: 'ECONNREFUSED' }, 'gone with the process')
})

test('probe port: the process ends by itself once fastify.close() has closed the probe server', async (t) => {
  const child = await startFixture(t, 'probe-app', { shutdown: { ...probes, probeServer: { port: 0, host: '127.0.0.1' } } })
  const port = await probePort(child)
  t.equal((await call(port, '/livez')).status, 200)
  child.send({ type: 'close' })
  await child.log('close resolved')
  t.match(await child.exited(), { code: 0, signal: null }, 'nothing held the event loop: the probe server closed with the app')
})

test('probe port, exit: false: after a signal\'s shutdown the process ends by itself once the report is out', async (t) => {
  const child = await startFixture(t, 'probe-app', { shutdown: { ...probes, exit: false, probeServer: { port: 0, host: '127.0.0.1' } } })
  const port = await probePort(child)
  t.equal((await call(port, '/livez')).status, 200)
  child.signal('SIGTERM')
  t.match(await child.report(), { outcome: 'completed' })
  // The IPC channel is the last thing holding the process: without it, it must end on its own.
  child.send({ type: 'disconnect' })
  t.match(await child.exited(), { code: 0, signal: null })
})
