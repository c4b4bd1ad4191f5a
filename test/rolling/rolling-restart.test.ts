// A rolling restart under load, behind a real HAProxy, with the kubelet and kube-proxy simulated: every
// replica of the example app is replaced in turn while keep-alive clients keep sending requests, and not one
// request may fail. The same scenario runs against the baseline (close-with-grace + fastify.close(), what
// apps do today), whose failures are recorded beside ours, not asserted.
// The machinery is in test/helpers/rolling/ (plain ESM, shared with bench/rolling-restart.mjs).
import { test, type Test } from 'tap'
import type { RunOptions, ScenarioResult } from '../helpers/rolling/index.mjs'
import { assertDrainedByItself } from '../helpers/rolling/assertions'

// The only way to load ESM from this CommonJS test; the import is kept as import() under NodeNext.
const harness = import('../helpers/rolling/index.mjs')

test('rolling restart behind HAProxy under keep-alive load', async (t) => {
  const { haproxyVersion, runRollingRestart, formatTable, DEFAULTS, LIVENESS_PATH } = await harness
  const version = haproxyVersion()
  if (version === null) {
    t.plan(0, 'haproxy is not installed: `apt-get install -y haproxy` (CI installs it) to run the rolling restart')
    return
  }
  t.comment(version)
  const results: ScenarioResult[] = []

  async function plugin (t: Test, options: Omit<RunOptions, 'app' | 'log'>): Promise<void> {
    const result = await runRollingRestart({ app: 'plugin', log: (line) => t.comment(line), ...options })
    results.push(result)
    const { preStopDelayMs, gracePeriodMs, restarts } = result.options
    const evidence = { failureKinds: result.failureKinds, failures: result.failures, haproxyLog: result.proxyLog }

    t.equal(result.loadStoppedBy, 'stop', 'the load ran until every terminated replica had exited')
    t.ok(result.requests > 1000, `requests were served throughout (${result.requests})`)
    t.equal(result.non2xx, 0, 'no response other than 2xx', evidence)
    t.equal(result.connectionErrors, 0, 'no connection error at the client', evidence)

    t.equal(result.replicas.length, restarts)
    for (const replica of result.replicas) {
      const what = `${replica.name} (lag ${replica.lagMs} ms)`
      assertDrainedByItself(t, replica, what, { gracePeriodMs, preStopDelayMs })
      t.comment(`${replica.name}: out of rotation ${replica.removedAfterMs} ms after SIGTERM, listener closed at ${replica.listenerClosedAfterMs} ms ` +
        `with ${replica.inFlightAtListenerClose} in flight, exit at ${replica.sigtermToExitMs} ms; ` +
        `${replica.report?.completedRequests} served after SIGTERM, ${replica.report?.rejectedRequests} rejected`)
    }
  }

  // The setup asked for: HAProxy checks readiness every 500 ms, so it usually takes a stopping replica out
  // of rotation within a check interval, before the endpoint removal (1-2 s) lands.
  await t.test(`fastify-shutdown, readiness checked by HAProxy: ${DEFAULTS.restarts} restarts, no request fails`, (t) =>
    plugin(t, {}))

  // Like a load balancer that does not probe readiness itself (kube-proxy, many ingresses): HAProxy's check
  // only notices a closed listener, so the replica stays in rotation for the whole propagation lag and the
  // pre-stop delay (longer than every lag, as the README asks) is what keeps those requests from failing.
  await t.test(`fastify-shutdown, removal by the endpoint lag only: ${DEFAULTS.restarts} restarts, no request fails`, (t) =>
    plugin(t, { label: 'plugin, lag only', checkPath: LIVENESS_PATH, preStopDelayMs: 2500 }))

  await t.test('baseline: close-with-grace + fastify.close(), failures recorded', async (t) => {
    const result = await runRollingRestart({ app: 'baseline', log: (line) => t.comment(line) })
    results.push(result)
    t.equal(result.loadStoppedBy, 'stop', 'the load ran until every terminated replica had exited')
    t.ok(result.requests > 1000, `requests were served throughout (${result.requests})`)
    t.comment(`baseline failures by kind: ${JSON.stringify(result.failureKinds)}`)
  })

  for (const line of formatTable(results).split('\n')) t.comment(line)
  for (const result of results) {
    t.comment(`${result.scenario}: failures ${JSON.stringify(result.failureKinds)}; p50 ${result.latencyMs.p50} ms, ` +
      `p99 fast ${result.latencyMs.fastP99} / slow ${result.latencyMs.slowP99} / long ${result.latencyMs.longP99} ms`)
  }
})
