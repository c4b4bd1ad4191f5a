import { test, type Test } from 'tap'
import path from 'node:path'
import { get, keepAliveAgent } from './helpers/http'
import type { Child } from './helpers/child'
import { DIST, HELD_ROUTE, NODE_MODULES, execFileAsync, freePort, scratchDir, startRunner, writeFiles } from './helpers/runner-apps'

const FASTIFY_CLI = path.join(NODE_MODULES, 'fastify-cli', 'cli.js')
// drainTimeout + telemetryTimeout + forceTimeout, plus the 2 s kept before any kill.
const SHUTDOWN = { drainTimeout: 5_000, forceTimeout: 1_000, telemetryTimeout: 2_000, duplicateSignalWindow: 1_000 }
const FITTING_DELAY_MS = 10_000
const EXPORT_MS = 200

/**
 * The layout `fastify generate` writes, untouched, plus what a user adds: plugins/shutdown.js wrapped in
 * fastify-plugin like the generated plugins, and a route whose request the test holds in flight. The
 * telemetry target takes EXPORT_MS, as an exporter sending its last batch does, and logs when it is done.
 */
async function generatedApp (t: Test): Promise<string> {
  const scratch = await scratchDir(t, 'fastify-cli')
  const dir = path.join(scratch, 'app')
  await execFileAsync(process.execPath, [FASTIFY_CLI, 'generate', dir])
  await writeFiles(dir, {
    'plugins/shutdown.js': `'use strict'
const fp = require('fastify-plugin')
const fastifyShutdown = require(${JSON.stringify(DIST)})

module.exports = fp(async function (fastify) {
  await fastify.register(fastifyShutdown, {
    ...${JSON.stringify(SHUTDOWN)},
    ...JSON.parse(process.env.SHUTDOWN_OPTIONS || '{}'),
    telemetry: {
      shutdown: () => new Promise((resolve) => setTimeout(() => {
        fastify.log.info('telemetry flushed')
        resolve()
      }, ${EXPORT_MS}))
    }
  })
})
`,
    'routes/held.js': `'use strict'
module.exports = async function (fastify) {${HELD_ROUTE}}
`
  })
  // fastify-cli's own app would resolve these from its node_modules; the generated dir has none.
  await execFileAsync('ln', ['-s', path.join(scratch, 'node_modules'), path.join(dir, 'node_modules')])
  return dir
}

async function fastifyStart (t: Test, dir: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ child: Child, port: number }> {
  const port = await freePort()
  const child = startRunner(t, process.execPath, [FASTIFY_CLI, 'start', '-l', 'info', '-a', '127.0.0.1', '-p', String(port), ...args, 'app.js'], dir, env)
  await child.log((line) => line.msg.startsWith('Server listening at'), 'fastify-cli\'s listening line')
  return { child, port }
}

test('fastify start on the generated layout, unedited: a request in flight at SIGTERM completes, exit 0, the telemetry flush and the report are logged', async (t) => {
  const dir = await generatedApp(t)
  const { child, port } = await fastifyStart(t, dir, ['--close-grace-delay', String(FITTING_DELAY_MS)])
  t.equal((await get(false, port, '/example').response).body, 'this is an example', 'the generated routes are served')
  t.notOk(child.logs.some((line) => line.runner === 'fastify-cli'), 'no warning: the delay fits')

  const held = get(keepAliveAgent(t), port, '/held')
  await child.log('held request started')
  child.signal('SIGTERM')
  await child.log('shutdown started')
  child.send({ type: 'release' })

  const response = await held.response
  t.equal(response.status, 200)
  t.equal(response.headers.connection, 'close')
  const exit = await child.exited()
  t.equal(exit.code, 0)
  const flushed = await child.log('telemetry flushed')
  const report = await child.report()
  t.ok(flushed.at <= report.at, 'the flush ended before the report')
  t.match(report, {
    msg: 'shutdown complete',
    outcome: 'completed',
    exitCode: 0,
    trigger: { type: 'signal', signal: 'SIGTERM' },
    completedRequests: 1,
    openRequests: [],
    errors: [],
    telemetry: { confirmed: true, targets: 1, timedOut: false }
  })
  t.notMatch(child.stderr, /killed by timeout|second/, 'fastify-cli\'s close-with-grace never had to step in')
})

test('fastify start: a Ctrl-C forwarded twice is one shutdown; the request in flight completes and the exit is 0', async (t) => {
  const dir = await generatedApp(t)
  const { child, port } = await fastifyStart(t, dir, ['-g', String(FITTING_DELAY_MS)])
  const held = get(keepAliveAgent(t), port, '/held')
  await child.log('held request started')
  child.signal('SIGINT')
  await child.log('shutdown started')
  child.signal('SIGINT')
  t.match(await child.log('the same signal again, within duplicateSignalWindow: ignored'), { signal: 'SIGINT' })
  child.send({ type: 'release' })

  t.equal((await held.response).status, 200)
  t.equal((await child.exited()).code, 0, 'fastify-cli\'s close-with-grace did not exit 1 on the duplicate')
  t.match(await child.report(), { outcome: 'completed', exitCode: 0, trigger: { type: 'signal', signal: 'SIGINT' } })
  await child.log('telemetry flushed')
})

test('fastify start: a request stuck past drainTimeout is cut, and the exit is the report\'s 1, not fastify-cli\'s 0', async (t) => {
  const dir = await generatedApp(t)
  const drainTimeout = 300
  const { child, port } = await fastifyStart(t, dir, ['-g', String(FITTING_DELAY_MS)], { SHUTDOWN_OPTIONS: JSON.stringify({ drainTimeout }) })
  const held = get(keepAliveAgent(t), port, '/held')
  await child.log('held request started')
  child.signal('SIGTERM')

  await t.rejects(held.response, { code: 'ECONNRESET' }, 'the stuck request is cut at drainTimeout')
  t.equal((await child.exited()).code, 1)
  t.match(await child.report(), { outcome: 'forced', forcedBy: 'drain-timeout', exitCode: 1, openRequests: [{ method: 'GET', url: '/held' }] })
  await child.log('telemetry flushed')
})

test('fastify start with the default 500 ms grace delay: a warning at start names fastify-cli and the delay that fits', async (t) => {
  const dir = await generatedApp(t)
  const { child } = await fastifyStart(t, dir, [])
  const warning = await child.log((line) => line.runner === 'fastify-cli', 'the fastify-cli warning')
  t.match(warning, {
    level: 40,
    closeGraceDelayMs: 500,
    worstCaseMs: FITTING_DELAY_MS - 2_000,
    fittingCloseGraceDelayMs: FITTING_DELAY_MS,
    msg: `fastify-cli exits 500 ms after the signal, whatever is still running; the shutdown may need ${FITTING_DELAY_MS - 2_000} ms: start it with \`--close-grace-delay ${FITTING_DELAY_MS}\` (or FASTIFY_CLOSE_GRACE_DELAY=${FITTING_DELAY_MS})`
  })
  // tap's process tracking adds listeners of its own to every child; fastify-cli's must not be among them.
  t.notOk(child.logs.some((line) => line.msg.startsWith('another') && (line.listeners as string[]).includes('onSignal')), 'fastify-cli gets its own warning, not the generic one')
})
