import http from 'node:http'
import { setTimeout as delay } from 'node:timers/promises'
import { test, type Test } from 'tap'
import { startFixture, type Child, type LogLine, type ReportLine } from './helpers/child'
import { faultTest } from './helpers/fault-matrix'
import { closed, get, keepAliveAgent, slowBody, type PendingRequest } from './helpers/http'
import { slowRequestThroughDrain } from './helpers/scenarios'

const FIXTURE = 'app-faults-app'
const PRE_STOP_MS = 3000
const DRAIN_MS = 500
const FORCE_MS = 1000
/** Long enough never to be what ends a test here. */
const LONG_DRAIN_MS = 8000
/**
 * How soon after the last response (or the end of startup) the process must have exited: a few ms on an idle
 * machine, 271 ms seen with a load average of 14 on 2 cores. Far below every deadline a hang would run into.
 */
const PROMPT_MS = 500
/** Slack for a loaded machine on top of a deadline the plugin promises. */
const MARGIN_MS = 250
/** Timers run on the monotonic clock, log times are Date.now(): they can disagree by a few milliseconds. */
const EARLY_MS = 5

function reports (child: Child): ReportLine[] {
  return child.logs.filter((line) => line.msg === 'shutdown complete' || line.msg === 'shutdown forced') as ReportLine[]
}

/** What one `GET /fast` on a new connection got: an answer, a refused connection, or a reset one. */
function requestOutcome (port: number): Promise<'answered' | 'refused' | 'reset'> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/fast', agent: false }, (response) => {
      response.resume()
      resolve('answered')
    })
    request.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') resolve('refused')
      else if (err.code === 'ECONNRESET') resolve('reset')
      else reject(err)
    })
  })
}

/** Sends requests to `port`, one at a time, until the child has exited (the exit resets any still open). */
async function requestUntilExit (child: Child, port: number): Promise<Record<'answered' | 'refused' | 'reset', number>> {
  const counts = { answered: 0, refused: 0, reset: 0 }
  for (let attempt = 0; attempt < 10_000 && child.exit === null; attempt++) {
    counts[await requestOutcome(port)]++
  }
  return counts
}

test(faultTest('signal-during-pre-stop'), async (t) => {
  const WINDOW_MS = 50
  const child = await startFixture(t, FIXTURE, {
    shutdown: { preStopDelay: PRE_STOP_MS, drainTimeout: LONG_DRAIN_MS, forceTimeout: FORCE_MS, duplicateSignalWindow: WINDOW_MS }
  })
  const idleSocket = (await get(keepAliveAgent(t), child.port, '/fast').response).socket

  const firstAt = child.signal('SIGTERM')
  await child.log('shutdown started')
  const served = await get(keepAliveAgent(t), child.port, '/state').response
  t.equal(served.status, 200, 'the pre-stop window serves')
  t.equal(served.headers.connection, 'close')
  t.same(JSON.parse(served.body), { state: 'pre-stop', ready: false })
  // A deliberate second signal, not a duplicate delivery: the child began its window before that log line.
  await delay(WINDOW_MS)

  const secondAt = child.signal('SIGTERM')
  await child.log('forcing shutdown')
  await closed(idleSocket)
  t.pass('the idle keep-alive socket was closed')
  const exit = await child.exited()
  t.equal(exit.code, 1)
  t.ok(exit.at - secondAt < FORCE_MS + MARGIN_MS, `exited ${Math.round(exit.at - secondAt)} ms after the second signal (forceTimeout ${FORCE_MS} ms)`)
  t.ok(exit.at - firstAt < PRE_STOP_MS, `exited ${Math.round(exit.at - firstAt)} ms after the first: the pre-stop window (${PRE_STOP_MS} ms) was cut short`)
  t.notOk(child.logs.some((line) => line.msg === 'listener closed, draining'), 'no drain began')

  const report = await child.report()
  t.match(report, {
    msg: 'shutdown forced',
    outcome: 'forced',
    forcedBy: 'second-signal',
    exitCode: 1,
    trigger: { type: 'signal', signal: 'SIGTERM' },
    completedRequests: 1,
    openRequests: [],
    errors: []
  })
  t.ok(report.phases.forceMs! < FORCE_MS, `the force path took ${report.phases.forceMs} ms`)
})

test(faultTest('signal-before-listen'), async (t) => {
  t.test('while a plugin registered after fastify-shutdown is still loading', async (t) => {
    // With a pre-stop window configured, to show it is skipped: nothing can route to a server still booting.
    const child = await startFixture(t, FIXTURE, { boot: 'after-plugin', shutdown: { preStopDelay: PRE_STOP_MS } })
    child.signal('SIGTERM')
    t.match(await child.log('shutdown started'), { booting: true, preStopDelayMs: 0 })
    t.equal(await requestOutcome(child.port), 'refused', 'nothing listens yet')

    child.send({ type: 'boot' })
    const booted = await child.log('fixture booted')
    // listen() binds once startup ends, and the close that was waiting for startup unbinds within a
    // millisecond: a connection the kernel accepted in between is reset, never handed to the app.
    const attempts = await requestUntilExit(child, child.port)
    t.equal(attempts.answered, 0, `no request was answered (${JSON.stringify(attempts)})`)
    const exit = await child.exited()
    t.equal(exit.code, 0)
    t.ok(exit.at - booted.at < PROMPT_MS, `exited ${Math.round(exit.at - booted.at)} ms after startup ended (preStopDelay ${PRE_STOP_MS} ms)`)
    t.notOk(child.logs.some((line) => line.msg === 'fixture request'), 'no request reached the server')

    t.match(await child.report(), {
      msg: 'shutdown complete',
      outcome: 'completed',
      exitCode: 0,
      trigger: { type: 'signal', signal: 'SIGTERM' },
      completedRequests: 0,
      rejectedRequests: 0,
      openRequests: [],
      errors: []
    })
  })

  t.test('between ready() and listen()', async (t) => {
    const child = await startFixture(t, FIXTURE, { boot: 'after-ready', shutdown: { preStopDelay: 0 } })
    const signalAt = child.signal('SIGTERM')
    const exit = await child.exited()
    t.equal(exit.code, 0)
    t.ok(exit.at - signalAt < PROMPT_MS, `exited ${Math.round(exit.at - signalAt)} ms after the signal`)
    t.notOk(child.logs.some((line) => line.msg === 'fixture listening'), 'the server never listened')
    t.match(await child.report(), { outcome: 'completed', exitCode: 0, completedRequests: 0, rejectedRequests: 0, openRequests: [], errors: [] })
  })
})

// A limit, not a promise: the plugin can only listen for signals once Fastify has loaded it.
test('a SIGTERM before fastify-shutdown has loaded meets Node\'s default action: killed, never served', async (t) => {
  const child = await startFixture(t, FIXTURE, { boot: 'before-plugin' })
  child.signal('SIGTERM')
  const exit = await child.exited()
  t.same({ code: exit.code, signal: exit.signal }, { code: null, signal: 'SIGTERM' })
  t.equal(reports(child).length, 0, 'no report')
  t.notOk(child.logs.some((line) => line.msg === 'fixture listening'), 'the server never listened')
})

/**
 * A request to `path` (`/slow/<id>` or `/stuck/<id>`) in its handler, then the app's own `fastify.close()`,
 * then a SIGTERM while that close runs. Resolves once the signal has joined the close.
 */
async function signalDuringAppClose (t: Test, child: Child, path: string): Promise<{ request: PendingRequest, joined: LogLine }> {
  const request = get(keepAliveAgent(t), child.port, path)
  const id = path.split('/').at(-1)
  await child.message((m) => m.type === 'handling' && m.id === id, `the handler of ${path}`)
  child.send({ type: 'close' })
  await child.log('fixture preClose')
  child.signal('SIGTERM')
  return { request, joined: await child.log('shutdown started after fastify.close(): waiting for it') }
}

test(faultTest('signal-during-app-close'), async (t) => {
  const child = await startFixture(t, FIXTURE, { shutdown: { drainTimeout: LONG_DRAIN_MS, forceTimeout: FORCE_MS } })
  const { request: slow } = await signalDuringAppClose(t, child, '/slow/1')
  child.send({ type: 'release', id: '1' })

  const response = await slow.response
  t.equal(response.status, 200)
  t.equal(response.headers.connection, 'close')
  t.equal(response.body, slowBody('1'))
  const exit = await child.exited()
  t.equal(exit.code, 0)
  t.ok(exit.at - response.endAt < PROMPT_MS, `exited ${Math.round(exit.at - response.endAt)} ms after the last response ended`)
  t.notOk(child.logs.some((line) => line.msg === 'listener closed, draining'), 'one drain: the app\'s close; the shutdown started no other')

  const all = reports(child)
  t.equal(all.length, 1, 'exactly one report')
  t.match(all[0], {
    msg: 'shutdown complete',
    outcome: 'completed',
    exitCode: 0,
    trigger: { type: 'signal', signal: 'SIGTERM' },
    completedRequests: 1,
    openRequests: [],
    errors: []
  })
})

// A direct fastify.close() has no deadline of its own; the signal that joins it brings drainTimeout.
test('a SIGTERM during the app\'s own fastify.close() bounds a stuck request by drainTimeout', async (t) => {
  const child = await startFixture(t, FIXTURE, { shutdown: { drainTimeout: DRAIN_MS, forceTimeout: FORCE_MS } })
  const { request: stuck, joined } = await signalDuringAppClose(t, child, '/stuck/2')
  const forcing = await child.log('forcing shutdown')
  const waited = (forcing.time as number) - (joined.time as number)
  t.ok(waited >= DRAIN_MS - EARLY_MS && waited < DRAIN_MS + MARGIN_MS, `forced ${waited} ms after the signal joined the close (drainTimeout ${DRAIN_MS} ms)`)

  await t.rejects(stuck.response, { code: 'ECONNRESET' }, 'the stuck request is cut off')
  const exit = await child.exited()
  t.equal(exit.code, 1)
  t.ok(exit.at - forcing.at < FORCE_MS + MARGIN_MS, `exited ${Math.round(exit.at - forcing.at)} ms into the force path`)
  const report = await child.report()
  t.match(report, { outcome: 'forced', forcedBy: 'drain-timeout', exitCode: 1, errors: [] })
  t.match(report.openRequests, [{ method: 'GET', url: '/stuck/2', route: '/stuck/:id' }])
})

test(faultTest('onclose-throws'), async (t) => {
  for (const failingOnClose of ['reject', 'done-error'] as const) {
    t.test(failingOnClose === 'reject' ? 'an async hook that throws' : 'a hook that calls done(err)', async (t) => {
      const child = await startFixture(t, FIXTURE, { failingOnClose, shutdown: { drainTimeout: LONG_DRAIN_MS, forceTimeout: FORCE_MS } })
      const response = await slowRequestThroughDrain(t, child, '3')
      const exit = await child.exited()
      t.equal(exit.code, 1, 'the requests were served, but the cleanup failed')
      t.ok(exit.at - response.endAt < PROMPT_MS, `exited ${Math.round(exit.at - response.endAt)} ms after the last response ended`)
      const report = await child.report()
      t.match(report, {
        msg: 'shutdown complete',
        outcome: 'completed',
        exitCode: 1,
        completedRequests: 1,
        openRequests: [],
        errors: ['fastify.close() failed: pool.end() failed: connection lost']
      })
      t.notOk('forcedBy' in report, 'nothing was forced')
    })
  }
})

test(faultTest('route-throws-during-drain'), async (t) => {
  const child = await startFixture(t, FIXTURE, { shutdown: { drainTimeout: LONG_DRAIN_MS, forceTimeout: FORCE_MS } })
  const failing = get(keepAliveAgent(t), child.port, '/throws/4')
  await child.message((m) => m.type === 'handling' && m.id === '4', 'the handler of /throws/4')

  child.signal('SIGTERM')
  await child.log('listener closed, draining')
  child.send({ type: 'fail', id: '4' })
  const response = await failing.response
  t.equal(response.status, 500)
  t.equal(response.headers.connection, 'close')
  t.match(JSON.parse(response.body), { statusCode: 500, message: 'handler 4 failed' })
  await closed(response.socket)
  t.pass('the server closed the socket after the 500')

  const exit = await child.exited()
  t.equal(exit.code, 0)
  t.ok(exit.at - response.endAt < PROMPT_MS, `exited ${Math.round(exit.at - response.endAt)} ms after the last response ended`)
  t.match(await child.report(), {
    msg: 'shutdown complete',
    outcome: 'completed',
    exitCode: 0,
    completedRequests: 1,
    rejectedRequests: 0,
    openRequests: [],
    errors: []
  })
})
