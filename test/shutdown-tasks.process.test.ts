import { test } from 'tap'
import { faultTest } from './helpers/fault-matrix'
import { startFixture } from './helpers/child'

test(faultTest('task-throws'), async (t) => {
  const tasks = [
    { name: 'stop consumers', phase: 0, outcome: 'complete' },
    { name: 'broken consumer', phase: 0, outcome: 'throw' },
    { name: 'finish jobs', phase: 1, outcome: 'complete' },
    { name: 'flush batch', phase: 2, outcome: 'complete' }
  ]
  const child = await startFixture(t, 'app', { tasks })
  child.signal('SIGTERM')
  const exit = await child.exited()
  t.equal(exit.code, 0)
  const started = child.logs.filter((line) => line.msg === 'task started').map((line) => line.task)
  t.same(started.slice(2), ['finish jobs', 'flush batch'], 'later phases start only after earlier ones settled')
  t.same(new Set(started.slice(0, 2)), new Set(['stop consumers', 'broken consumer']))
  const report = await child.report()
  t.match(report, { outcome: 'completed', exitCode: 0 })
  t.match(report.tasks, [
    { name: 'stop consumers', outcome: 'completed' },
    { name: 'broken consumer', outcome: 'failed', error: 'broken consumer failed' },
    { name: 'finish jobs', outcome: 'completed' },
    { name: 'flush batch', outcome: 'completed' }
  ])
})

test('a task still running at the drain deadline is cut and reported; the process exits 1 on time', async (t) => {
  const child = await startFixture(t, 'app', {
    shutdown: { drainTimeout: 300, forceTimeout: 1_000 },
    tasks: [{ name: 'endless', phase: 0, outcome: 'hang' }]
  })
  child.signal('SIGTERM')
  t.equal((await child.exited()).code, 1)
  t.match(await child.report(), { outcome: 'forced', forcedBy: 'drain-timeout', tasks: [{ name: 'endless', outcome: 'cut' }] })
})
