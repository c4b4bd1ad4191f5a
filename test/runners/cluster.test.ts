// Node's cluster module: example-app/cluster.mjs, a primary with two workers of the example app, each with
// the plugin. A rolling restart (each worker replaced in turn) under keep-alive load, then SIGTERM to the
// primary with a request in flight.
import { test } from 'tap'
import { fork } from 'node:child_process'
import path from 'node:path'
import { Child } from '../helpers/child'
import { EXAMPLE_APP, freePort, plainEnv } from '../helpers/runners'

const harness = import('../helpers/rolling/index.mjs')

test('cluster: a rolling restart under keep-alive load loses no request; SIGTERM to the primary drains every worker', async (t) => {
  const { startLoad } = await harness
  const port = await freePort()
  const primary = new Child(fork(path.join(EXAMPLE_APP, 'cluster.mjs'), [], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    execArgv: [],
    env: plainEnv({ WORKERS: '2', PORT: String(port) })
  }))
  t.teardown(() => primary.stop())
  await primary.message((m) => m.type === 'ready', 'the primary\'s ready message')

  const load = startLoad({ port, fastPath: '/reports/slow?ms=0', fastLoops: 6, slowLoops: 2, slowMs: [200, 600], maxMs: 60_000 })
  await load.warm(200)
  primary.signal('SIGHUP')
  await primary.message((m) => m.type === 'restarted', 'the rolling restart')
  await load.warm(load.records.length + 100)
  const { records, stoppedBy } = await load.stop()
  t.equal(stoppedBy, 'stop', 'the load ran through the restart')
  const failed = records.filter((record) => record.error !== null || record.status < 200 || record.status > 299)
  t.same(failed, [], `no failed request among ${records.length}`)

  const reports = (): Record<string, any>[] => primary.logs.filter((line) => line.msg === 'shutdown complete' || line.msg === 'shutdown forced')
  t.equal(reports().length, 2, 'each replaced worker logged its report')

  const inFlight = fetch(`http://127.0.0.1:${port}/reports/slow?ms=800`)
  await primary.log((line) => line.msg === 'incoming request' && (line.req as { url?: string } | undefined)?.url === '/reports/slow?ms=800', 'the slow request in a worker')
  primary.signal('SIGTERM')
  const response = await inFlight
  t.equal(response.status, 200, 'the request in flight at SIGTERM completed')
  const exit = await primary.exited()
  t.same([exit.code, exit.signal], [0, null], 'the primary exited 0 once every worker had')
  t.equal(reports().length, 4)
  t.same(reports().map((report) => [report.outcome, report.exitCode, report.trigger.signal]),
    reports().map(() => ['completed', 0, 'SIGTERM']), 'every worker drained and exited 0')
})
