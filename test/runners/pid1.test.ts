// Node as PID 1, as in a container whose CMD is `["node", "server.mjs"]`: a PID 1 gets no default signal
// handling from the kernel, so SIGTERM does only what the app's own listener does. `unshare --pid --fork`
// makes a new PID namespace with node as its PID 1 (root only; skipped where it is not permitted).
import { test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { Child } from '../helpers/child'
import { get } from '../helpers/http'
import { EXAMPLE_APP, plainEnv } from '../helpers/runners'

const UNSHARE = ['--pid', '--fork', '--mount-proc']

function unshareRefused (): string | null {
  const probe = spawnSync('unshare', [...UNSHARE, 'true'], { encoding: 'utf8' })
  if (probe.error !== undefined) return `unshare is not installed (${probe.error.message})`
  if (probe.status !== 0) return `unshare --pid is not permitted here (${probe.stderr.trim()}); CI runs as root`
  return null
}

/** The pid, in this namespace, of unshare's one child: PID 1 of the new namespace. */
function childOf (pid: number): number {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter(Boolean)
  if (children.length !== 1) throw new Error(`unshare ${pid} has children ${JSON.stringify(children)}`)
  return Number(children[0])
}

const refused = unshareRefused()

test('node as PID 1: SIGTERM drains the request in flight, then exit 0', { skip: refused ?? false }, async (t) => {
  const proc = spawn('unshare', [...UNSHARE, process.execPath, path.join(EXAMPLE_APP, 'server.mjs')], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: plainEnv({ PORT: '0', HOST: '127.0.0.1' })
  })
  const child = new Child(proc)
  t.teardown(() => child.stop())
  // The IPC channel passes through unshare's fork and exec, so server.mjs's own 'ready' message arrives.
  const { port } = await child.message((m) => m.type === 'ready', 'the ready message')
  const listening = await child.log((line) => /Server listening/.test(line.msg), 'the listening line')
  t.equal(listening.pid, 1, 'node is PID 1 in its namespace')

  const inFlight = get(false, port as number, '/reports/slow?ms=800')
  await child.log((line) => line.msg === 'incoming request' && (line.req as { url?: string })?.url === '/reports/slow?ms=800', 'the slow request in its handler')
  process.kill(childOf(proc.pid!), 'SIGTERM')
  const response = await inFlight.response
  t.equal(response.status, 200, 'the request in flight completed')
  t.equal(response.headers.connection, 'close')
  t.match(await child.report(), { outcome: 'completed', exitCode: 0, trigger: { type: 'signal', signal: 'SIGTERM' }, completedRequests: 1 })
  const exit = await child.exited()
  t.same([exit.code, exit.signal], [0, null], 'PID 1 exited 0, and unshare with it')
})
