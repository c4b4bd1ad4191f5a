import { test } from 'tap'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { startFixture } from './helpers/child'
import { closed, get, keepAliveAgent } from './helpers/http'

const WRAPPER = path.join(__dirname, 'fixtures', 'dual-stack', 'node-in-namespace.sh')
process.env.NODE_FOR_NAMESPACE = process.execPath

function namespaceUnavailable (): string | false {
  const probe = spawnSync(WRAPPER, ['-e', 'require("dns").lookup("localhost", { all: true }, (e, a) => console.log(a.length))'], { encoding: 'utf8' })
  if (probe.status === 0 && probe.stdout.trim() === '2') return false
  return `a mount namespace with its own /etc/hosts needs root and unshare: ${probe.stderr.trim() || probe.stdout.trim()}`
}

/** How soon after the last response has ended the process must be gone. */
const PROMPT_MS = 100

// fastify.listen({ host: 'localhost' }) opens one server per address of `localhost` (fastify/fastify#7043);
// `fastify.server` is only one of them.
test('a dual-stack listen drains both addresses: each slow request completes with Connection: close, idle sockets close, exit 0', { skip: namespaceUnavailable() }, async (t) => {
  const child = await startFixture(t, 'app', { host: 'localhost', shutdown: { idleCloseDelay: 0 } }, { execPath: WRAPPER })
  const hosts = ['127.0.0.1', '::1']
  const idle = await Promise.all(hosts.map(async (host) => {
    const response = await get(keepAliveAgent(t), child.port, '/fast', host).response
    t.equal(response.status, 200, `${host} serves`)
    return response.socket
  }))
  const slow = hosts.map((host, i) => get(keepAliveAgent(t), child.port, `/slow/${i + 1}`, host))
  await Promise.all(hosts.map((_host, i) => child.message((m) => m.type === 'handling' && m.id === String(i + 1), `the handler of /slow/${i + 1}`)))

  child.signal('SIGTERM')
  await child.log('listener closed, draining')
  await Promise.all(idle.map((socket) => closed(socket)))
  t.pass('the idle keep-alive socket on each address was closed by the server')
  for (const [i] of hosts.entries()) child.send({ type: 'release', id: String(i + 1) })

  const responses = await Promise.all(slow.map((request) => request.response))
  responses.forEach((response, i) => {
    t.equal(response.status, 200, `the slow request on ${hosts[i]} completed`)
    t.equal(response.headers.connection, 'close', `and told its client on ${hosts[i]} to close`)
  })
  const lastResponseEndAt = Math.max(...responses.map((response) => response.endAt))
  const exit = await child.exited()
  t.equal(exit.code, 0)
  t.ok(exit.at - lastResponseEndAt < PROMPT_MS, `exited ${Math.round(exit.at - lastResponseEndAt)} ms after the last response ended (limit ${PROMPT_MS} ms)`)
  t.match(await child.report(), { outcome: 'completed', completedRequests: 2, openRequests: [], connections: { http: { closedIdle: 2, closedAfterResponse: 2 } } })
})
