import { test } from 'tap'
import { appWithShutdown } from './helpers/app'

test('tasks run phase by phase beside the drain; one that fails or runs late never holds back the others', async (t) => {
  const events: string[] = []
  const { app } = await appWithShutdown(t)
  app.addHook('onClose', async () => { events.push('onClose') })
  await app.ready()
  let consumersStopped!: () => void
  const stopped = new Promise<void>((resolve) => { consumersStopped = resolve })
  app.shutdown.addTask({ name: 'stop consumers', run: () => { events.push('stop consumers'); consumersStopped() } })
  app.shutdown.addTask({ name: 'broken consumer', run: async () => { events.push('broken consumer'); throw new Error('queue gone') } })
  app.shutdown.addTask({ name: 'finish jobs', phase: 1, run: async () => { await stopped; events.push('finish jobs') } })
  app.shutdown.addTask({
    name: 'stuck flush',
    phase: 1,
    timeout: 50,
    run: (signal) => new Promise((resolve) => signal.addEventListener('abort', () => { events.push(`stuck flush aborted: ${(signal.reason as { code: string }).code}`); resolve(undefined) }))
  })

  const report = await app.shutdown.start()
  t.same(events, ['stop consumers', 'broken consumer', 'finish jobs', 'stuck flush aborted: FST_SHUTDOWN_TASK_TIMEOUT', 'onClose'])
  t.match(report.tasks, [
    { name: 'stop consumers', phase: 0, outcome: 'completed' },
    { name: 'broken consumer', phase: 0, outcome: 'failed', error: 'queue gone' },
    { name: 'finish jobs', phase: 1, outcome: 'completed' },
    { name: 'stuck flush', phase: 1, outcome: 'timed-out', error: /ran past its timeout of 50 ms/ }
  ])
  t.equal(report.outcome, 'completed')
})

test('a task still running at the drain deadline is cut, with its signal aborted', async (t) => {
  const { app } = await appWithShutdown(t, { drainTimeout: 100, forceTimeout: 500 })
  await app.ready()
  let aborted: unknown
  app.shutdown.addTask({ name: 'endless', run: (signal) => new Promise(() => { signal.addEventListener('abort', () => { aborted = signal.reason }) }) })
  const report = await app.shutdown.start()
  t.match(report, { outcome: 'forced', forcedBy: 'drain-timeout', tasks: [{ name: 'endless', outcome: 'cut' }] })
  t.match(aborted, { code: 'FST_SHUTDOWN_TASK_CUT' })
})

test('addTask refuses bad tasks, and tasks added once the shutdown has started', async (t) => {
  const { app } = await appWithShutdown(t)
  await app.ready()
  app.shutdown.addTask({ name: 'once', run: () => {} })
  t.throws(() => app.shutdown.addTask({ name: 'once', run: () => {} }), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /`task.name`/ })
  t.throws(() => app.shutdown.addTask({ name: '', run: () => {} }), { code: 'FST_SHUTDOWN_INVALID_OPTION' })
  t.throws(() => app.shutdown.addTask({ name: 'no run' } as never), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /`task.run` to be a function/ })
  t.throws(() => app.shutdown.addTask({ name: 'half', run: () => {}, phase: 0.5 }), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /`task.phase`/ })
  t.throws(() => app.shutdown.addTask({ name: 'late', run: () => {}, timeout: -1 }), { code: 'FST_SHUTDOWN_INVALID_OPTION', message: /`task.timeout`/ })
  const report = app.shutdown.start()
  await new Promise(setImmediate)
  t.throws(() => app.shutdown.addTask({ name: 'too late', run: () => {} }), { code: 'FST_SHUTDOWN_TASK_TOO_LATE' })
  await report
})

test('a direct fastify.close() runs the shutdown tasks and waits for them before the onClose hooks', async (t) => {
  const events: string[] = []
  const { app } = await appWithShutdown(t)
  app.addHook('onClose', async () => { events.push('onClose') })
  await app.ready()
  let finish!: () => void
  let taskStarted!: () => void
  const started = new Promise<void>((resolve) => { taskStarted = resolve })
  app.shutdown.addTask({
    name: 'finish jobs',
    run: () => new Promise<void>((resolve) => {
      events.push('task started')
      finish = () => { events.push('task done'); resolve() }
      taskStarted()
    })
  })
  const closing = app.close()
  await started
  // One full turn of the event loop: time enough for an onClose hook that did not wait to have run.
  await new Promise(setImmediate)
  t.same(events, ['task started'], 'the onClose hooks wait for the task')
  finish()
  await closing
  t.same(events, ['task started', 'task done', 'onClose'])
})
