import { test } from 'tap'
import { faultTest } from './helpers/fault-matrix'
import { startFixture, type LogLine } from './helpers/child'
import { get, keepAliveAgent } from './helpers/http'
import { secondSignalWhileStuck } from './helpers/scenarios'

const DRAIN_MS = 500
const FORCE_MS = 1000
/** For the second-signal tests: long enough never to be what ends them, short enough to end a broken run. */
const LONG_DRAIN_MS = 8000
/** Slack for a loaded machine on top of a deadline the plugin promises. */
const MARGIN_MS = 250
/** Timers run on the monotonic clock, log times are Date.now(): they can disagree by a few milliseconds. */
const EARLY_MS = 5

/**
 * How long after its timer was set the drain deadline passed. The timer is set between two log lines,
 * 'shutdown started' and 'listener closed, draining' (the server's close() runs in between, and a loaded
 * machine can stretch that), so the answer is a range.
 */
function drainElapsed (started: LogLine, listenerClosed: LogLine, forcing: LogLine): { atLeast: number, atMost: number } {
  return {
    atLeast: (forcing.time as number) - (listenerClosed.time as number),
    atMost: (forcing.time as number) - (started.time as number)
  }
}

test(faultTest('stuck-handler'), async (t) => {
  const child = await startFixture(t, 'app', { shutdown: { drainTimeout: DRAIN_MS, forceTimeout: FORCE_MS } })
  const stuck = get(keepAliveAgent(t), child.port, '/stuck/42')
  await child.message((m) => m.type === 'handling' && m.id === '42', 'the handler of /stuck/42')

  child.signal('SIGTERM')
  const started = await child.log('shutdown started')
  const listenerClosed = await child.log('listener closed, draining')
  const forcing = await child.log('forcing shutdown')
  const { atLeast, atMost } = drainElapsed(started, listenerClosed, forcing)
  t.ok(atMost >= DRAIN_MS - EARLY_MS && atLeast < DRAIN_MS + MARGIN_MS,
    `forced ${atLeast}-${atMost} ms after the drain began (drainTimeout ${DRAIN_MS} ms)`)

  await t.rejects(stuck.response, { code: 'ECONNRESET' }, 'the stuck request is cut off')
  const exit = await child.exited()
  t.equal(exit.code, 1)
  t.ok(exit.at - forcing.at < FORCE_MS, `exited ${Math.round(exit.at - forcing.at)} ms into the force path (forceTimeout ${FORCE_MS} ms)`)

  const report = await child.report()
  t.match(report, {
    msg: 'shutdown forced',
    outcome: 'forced',
    forcedBy: 'drain-timeout',
    exitCode: 1,
    trigger: { type: 'signal', signal: 'SIGTERM' },
    completedRequests: 0,
    errors: []
  })
  t.equal(report.openRequests.length, 1)
  t.match(report.openRequests[0], { method: 'GET', url: '/stuck/42', route: '/stuck/:id' })
  t.ok(report.openRequests[0]!.ageMs >= DRAIN_MS - EARLY_MS, `the open request was ${report.openRequests[0]!.ageMs} ms old`)
  t.ok(report.phases.forceMs! < FORCE_MS, `the force path took ${report.phases.forceMs} ms`)
})

test('a second SIGTERM while a handler is stuck exits 1 within forceTimeout', async (t) => {
  // Sent right after the listener closes: with no window, that is a deliberate second signal.
  const child = await startFixture(t, 'app', { shutdown: { drainTimeout: LONG_DRAIN_MS, forceTimeout: FORCE_MS, duplicateSignalWindow: 0 } })
  const { secondAt, exit } = await secondSignalWhileStuck(t, child, '7')
  t.equal(exit.code, 1)
  t.ok(exit.at - secondAt < FORCE_MS + MARGIN_MS, `exited ${Math.round(exit.at - secondAt)} ms after the second signal (forceTimeout ${FORCE_MS} ms)`)
  const report = await child.report()
  t.match(report, { outcome: 'forced', forcedBy: 'second-signal', exitCode: 1, trigger: { type: 'signal', signal: 'SIGTERM' } })
  t.match(report.openRequests, [{ method: 'GET', url: '/stuck/7', route: '/stuck/:id' }])
  t.same(report.errors, [], 'the force path finished its work; the forceTimeout bound was not needed')
})

test(faultTest('sigint-then-sigterm'), async (t) => {
  const child = await startFixture(t, 'app', { shutdown: { drainTimeout: LONG_DRAIN_MS, forceTimeout: FORCE_MS } })
  const { secondAt, exit } = await secondSignalWhileStuck(t, child, '1', ['SIGINT', 'SIGTERM'])
  t.equal(exit.code, 1)
  t.equal(exit.signal, null, 'the process exited by itself, not by the default SIGTERM action')
  t.ok(exit.at - secondAt < FORCE_MS + MARGIN_MS, `exited ${Math.round(exit.at - secondAt)} ms after SIGTERM`)
  const report = await child.report()
  t.match(report, { outcome: 'forced', forcedBy: 'second-signal', exitCode: 1, trigger: { type: 'signal', signal: 'SIGINT' } })
  t.match(report.openRequests, [{ method: 'GET', url: '/stuck/1', route: '/stuck/:id' }])
  t.same(report.errors, [], 'the force path finished its work; the forceTimeout bound was not needed')
})

test(faultTest('onclose-hangs'), async (t) => {
  const child = await startFixture(t, 'app', {
    shutdown: { drainTimeout: DRAIN_MS, forceTimeout: FORCE_MS },
    stuckOnClose: true
  })

  child.signal('SIGTERM')
  const started = await child.log('shutdown started')
  const listenerClosed = await child.log('listener closed, draining')
  await child.log('onClose hook stuck')
  const forcing = await child.log('forcing shutdown')
  const { atLeast, atMost } = drainElapsed(started, listenerClosed, forcing)
  t.ok(atMost >= DRAIN_MS - EARLY_MS && atLeast < DRAIN_MS + MARGIN_MS,
    `forced ${atLeast}-${atMost} ms after the drain began: drainTimeout covers fastify.close() too`)

  const report = await child.report()
  const gaveUpAfter = (report.time as number) - (forcing.time as number)
  t.ok(gaveUpAfter >= FORCE_MS - EARLY_MS && gaveUpAfter < FORCE_MS + MARGIN_MS,
    `the force path gave up ${gaveUpAfter} ms after it began (forceTimeout ${FORCE_MS} ms)`)
  t.match(report, {
    outcome: 'forced',
    forcedBy: 'drain-timeout',
    exitCode: 1,
    openRequests: [],
    errors: [/forceTimeout/]
  })
  t.equal((await child.exited()).code, 1)
})

test(faultTest('duplicate-signal'), async (t) => {
  const child = await startFixture(t, 'app', { shutdown: { drainTimeout: LONG_DRAIN_MS, forceTimeout: FORCE_MS, duplicateSignalWindow: 1_000 } })
  const slow = get(keepAliveAgent(t), child.port, '/slow/9')
  await child.message((m) => m.type === 'handling' && m.id === '9', 'the handler of /slow/9')
  child.signal('SIGTERM')
  await child.log('shutdown started')
  child.signal('SIGTERM')
  t.match(await child.log('the same signal again, within duplicateSignalWindow: ignored'), { signal: 'SIGTERM', level: 30 }, 'logged at info')
  child.send({ type: 'release', id: '9' })
  t.equal((await slow.response).status, 200, 'the request in flight still finishes')
  t.equal((await child.exited()).code, 0)
  t.match(await child.report(), { outcome: 'completed', exitCode: 0 })
})

test(faultTest('signal-storm'), async (t) => {
  const child = await startFixture(t, 'app', { shutdown: { drainTimeout: LONG_DRAIN_MS, forceTimeout: FORCE_MS } })
  const slow = get(keepAliveAgent(t), child.port, '/slow/6')
  await child.message((m) => m.type === 'handling' && m.id === '6', 'the handler of /slow/6')
  for (let i = 0; i < 10; i++) child.signal('SIGTERM')
  await child.log('listener closed, draining')
  child.send({ type: 'release', id: '6' })
  t.equal((await slow.response).status, 200)
  t.equal((await child.exited()).code, 0)
  t.match(await child.report(), { outcome: 'completed', exitCode: 0, trigger: { type: 'signal', signal: 'SIGTERM' }, completedRequests: 1 })
})

test(faultTest('deliberate-second-signal'), async (t) => {
  const child = await startFixture(t, 'app', { shutdown: { drainTimeout: LONG_DRAIN_MS, forceTimeout: FORCE_MS, duplicateSignalWindow: 50 } })
  const { exit } = await secondSignalWhileStuck(t, child, '8', ['SIGTERM', 'SIGTERM'], 50)
  t.equal(exit.code, 1)
  const report = await child.report()
  t.match(report, { outcome: 'forced', forcedBy: 'second-signal', exitCode: 1 })
  t.match(report.openRequests, [{ method: 'GET', url: '/stuck/8', route: '/stuck/:id' }])
})
