// The rolling restart behind a real nginx configured the way ingress-nginx runs it (upstream keep-alive,
// `proxy_next_upstream off`, no health checks): two replicas of the example app, four restarts under 32
// keep-alive client connections, each old replica taken out of the upstream block 1.5 s after its SIGTERM by
// a reload. With the plugin's pre-stop delay (2.5 s, longer than that lag and the reload), not one request
// may fail and nginx may log no upstream error. The baseline (close-with-grace + fastify.close()) runs alongside; its failures
// are recorded, not asserted. The machinery is in test/helpers/rolling/ (nginx.mjs, scenario.mjs).
//
// Each reload retires nginx's workers, which close their idle client connections at once: a client sending
// its next request on one at that moment gets a reset. Those resets are nginx's (the request never reached a
// replica, and adding a replica causes them as much as removing one): counted apart, listed, never asserted.
import { test, type Test } from 'tap'
import type { RunOptions, ScenarioResult } from '../helpers/rolling/index.mjs'
import { assertDrainedByItself } from '../helpers/rolling/assertions'

// The only way to load ESM from this CommonJS test; the import is kept as import() under NodeNext.
const harness = import('../helpers/rolling/index.mjs')

test('rolling restart behind nginx (ingress-nginx settings) under keep-alive load', async (t) => {
  const { nginxVersion, runRollingRestart, formatTable, NGINX_DEFAULTS, NGINX_SETTINGS } = await harness
  const version = nginxVersion()
  if (version === null) {
    t.plan(0, 'nginx is not installed: `apt-get install -y nginx-light` (CI installs it) to run the rolling restart behind nginx')
    return
  }
  t.comment(`${version}; upstream keepalive ${NGINX_SETTINGS.upstreamKeepalive} (timeout ${NGINX_SETTINGS.upstreamKeepaliveTimeoutS} s), ` +
    `proxy_next_upstream ${NGINX_SETTINGS.proxyNextUpstream}, ${NGINX_SETTINGS.workerProcesses} workers`)
  const results: ScenarioResult[] = []
  const { replicas, restarts, preStopDelayMs, lagsMs } = NGINX_DEFAULTS
  const run = async (t: Test, options: Omit<RunOptions, 'ingress' | 'log'>): Promise<ScenarioResult> => {
    const result = await runRollingRestart({ ingress: 'nginx', log: (line) => t.comment(line), ...options })
    results.push(result)
    t.equal(result.loadStoppedBy, 'stop', 'the load ran until every terminated replica had exited')
    t.ok(result.requests > 1000, `requests were served throughout (${result.requests})`)
    t.equal(result.ingress.reloads.length, 2 * restarts, 'nginx reloaded twice a restart: the replica added, then the old one removed')
    t.comment(`nginx reload resets: ${result.reloadResets} (${result.ingress.reloads.map((r) => `${r.change}: ${r.resets}`).join(', ')}); ` +
      `reloads took ${result.ingress.reloads.map((r) => r.tookMs).join(', ')} ms`)
    return result
  }

  await t.test(`fastify-shutdown, preStopDelay ${preStopDelayMs} ms: ${restarts} restarts of ${replicas} replicas, lag ${lagsMs.join('/')} ms, no request fails`, async (t) => {
    const result = await run(t, { app: 'plugin' })
    const { gracePeriodMs } = result.options
    const evidence = { failureKinds: result.failureKinds, failures: result.failures, nginxLog: result.proxyLog }
    t.equal(result.non2xx, 0, 'no response other than 2xx', evidence)
    t.equal(result.connectionErrors, 0, 'no connection error at the client but those of nginx\'s reloads', evidence)
    t.same(result.ingress.proxyErrors, {}, 'no upstream error in nginx\'s error log (connect() failed, upstream prematurely closed, recv() failed...)', evidence)
    t.same(result.ingress.otherErrors, [], 'nothing else at warn or above in nginx\'s error log')
    t.ok(Object.keys(result.ingress.statuses ?? {}).every((status) => status.startsWith('2')),
      `only 2xx in nginx's access log (${JSON.stringify(result.ingress.statuses)})`)

    t.equal(result.replicas.length, restarts)
    for (const replica of result.replicas) {
      const what = `${replica.name} (lag ${replica.lagMs} ms)`
      const removal = result.ingress.reloads.find((r) => r.change === `remove ${replica.name}`)
      // The premise: past it, requests meet a closed listener whatever the app does.
      t.ok(replica.removedAfterMs < preStopDelayMs, `${what} left nginx's upstreams ${replica.removedAfterMs} ms after SIGTERM, within the pre-stop delay ` +
        `(SIGHUP at ${(removal?.atMs ?? NaN) - replica.sigtermAtMs} ms, reload ${removal?.tookMs} ms)`)
      assertDrainedByItself(t, replica, what, { gracePeriodMs, preStopDelayMs })
    }
  })

  await t.test('baseline behind nginx: close-with-grace + fastify.close(), failures recorded', async (t) => {
    const result = await run(t, { app: 'baseline' })
    t.comment(`baseline failures by kind: ${JSON.stringify(result.failureKinds)}`)
    t.comment(`baseline upstream errors in nginx's error log: ${JSON.stringify(result.ingress.proxyErrors)}`)
  })

  for (const line of formatTable(results).split('\n')) t.comment(line)
  for (const result of results) {
    t.comment(`${result.scenario}: load ${(result.durationMs / 1000).toFixed(1)} s; failures ${JSON.stringify(result.failureKinds)}; ` +
      `p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms`)
  }
})
