import { test } from 'tap'
import { startFixture, type LogLine } from './helpers/child'
import { faultTest } from './helpers/fault-matrix'
import { get, keepAliveAgent } from './helpers/http'
import { slowRequestThroughDrain } from './helpers/scenarios'

const FORCE_MS = 1000
/** Long enough never to be what ends a test here. */
const LONG_DRAIN_MS = 8000
/** Slack for a loaded machine on top of a deadline the plugin promises. */
const MARGIN_MS = 250

const failures = [
  { row: 'uncaught-exception', message: { type: 'throw', message: 'boom from a timer' } },
  { row: 'unhandled-rejection', message: { type: 'reject', message: 'rejected and never caught' } }
] as const

for (const { row, message } of failures) {
  test(faultTest(row), async (t) => {
    const child = await startFixture(t, 'app')
    await slowRequestThroughDrain(t, child, '1', () => { child.send(message) })
    const exit = await child.exited()
    t.equal(exit.code, 1)
    const report = await child.report()
    t.match(report, { msg: 'shutdown complete', outcome: 'completed', exitCode: 1, trigger: { type: 'error' }, completedRequests: 1 })
    t.notOk('forcedBy' in report, 'nothing was forced')
  })
}

/** The error a line carries, whether under `err` (Fastify's serializer) or inside the trigger. */
function loggedError (line: LogLine): unknown {
  return line.err ?? (line.trigger as { err?: unknown } | undefined)?.err
}

test('the error that started the shutdown is logged with its message and stack', async (t) => {
  const child = await startFixture(t, 'app')
  child.send({ type: 'throw', message: 'boom from a timer' })
  const started = await child.log('shutdown started')
  t.equal((await child.exited()).code, 1)
  const report = await child.report()
  t.match(report.trigger, { type: 'error' })
  const logged = { message: 'boom from a timer', stack: /boom from a timer/ }
  t.match(loggedError(started), logged, '"shutdown started" says which error it was')
  t.match(loggedError(report), logged, 'so does the report')
})

const duringDrain = [
  { row: 'uncaught-exception-mid-drain', message: { type: 'throw', message: 'boom while draining' } },
  { row: 'unhandled-rejection-mid-drain', message: { type: 'reject', message: 'rejected while draining' } }
] as const

for (const { row, message } of duringDrain) {
  test(faultTest(row), async (t) => {
    const child = await startFixture(t, 'app', { shutdown: { drainTimeout: LONG_DRAIN_MS, forceTimeout: FORCE_MS } })
    const stuck = get(keepAliveAgent(t), child.port, '/stuck/3')
    await child.message((m) => m.type === 'handling' && m.id === '3', 'the handler of /stuck/3')
    child.signal('SIGTERM')
    await child.log('listener closed, draining')

    child.send(message)
    const fatal = await child.log('fatal error while shutting down, forcing')
    t.match(loggedError(fatal), { message: message.message }, 'the error is logged with the open requests')
    t.match(fatal.openRequests, [{ url: '/stuck/3' }])
    await t.rejects(stuck.response, { code: 'ECONNRESET' }, 'the request in flight is cut')
    const exit = await child.exited()
    t.equal(exit.code, 1)
    t.ok(exit.at - fatal.at < FORCE_MS + MARGIN_MS, `exited ${Math.round(exit.at - fatal.at)} ms after the error (forceTimeout ${FORCE_MS} ms)`)
    const report = await child.report()
    t.match(report, {
      msg: 'shutdown forced',
      outcome: 'forced',
      forcedBy: 'fatal-error',
      exitCode: 1,
      trigger: { type: 'signal', signal: 'SIGTERM' },
      errors: [`fatal error while shutting down: ${message.message}`]
    })
    t.match(report.openRequests, [{ method: 'GET', url: '/stuck/3', route: '/stuck/:id' }])
  })
}
