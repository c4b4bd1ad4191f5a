import { test } from 'tap'
import { startFixture, type LogLine } from '../helpers/child'
import { get, keepAliveAgent, slowBody } from '../helpers/http'

const failures = [
  { kind: 'an uncaught exception thrown from a timer', message: { type: 'throw', message: 'boom from a timer' } },
  { kind: 'an unhandled rejection', message: { type: 'reject', message: 'rejected and never caught' } }
]

for (const { kind, message } of failures) {
  test(`${kind} drains the request in flight, then exits 1`, async (t) => {
    const child = await startFixture(t, 'app')
    const inFlight = get(keepAliveAgent(t), child.port, '/slow/1')
    await child.message((m) => m.type === 'handling' && m.id === '1', 'the handler of /slow/1')

    child.send(message)
    await child.log('listener closed, draining')
    child.send({ type: 'release', id: '1' })

    const response = await inFlight.response
    t.equal(response.status, 200)
    t.equal(response.headers.connection, 'close')
    t.equal(response.body, slowBody('1'))
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
