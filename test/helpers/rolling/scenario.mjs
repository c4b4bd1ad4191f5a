// The rolling restart: N replicas behind a load balancer (HAProxy, or nginx as ingress-nginx runs it) under
// constant keep-alive load, replaced one at a time the way a Kubernetes Deployment does it by default
// (maxSurge 1, maxUnavailable 0):
//
//   1. start the new replica; once it listens and answers (its readiness), put it into rotation and wait
//      until the load balancer has it (HAProxy: UP in a free slot; nginx: reloaded with it);
//   2. terminate the oldest replica: SIGTERM (the kubelet), and at the same moment start the endpoint
//      removal (kube-proxy, the ingress controller), which only takes effect after a propagation lag: then
//      the replica leaves the load balancer (HAProxy: its slot goes to maintenance through the runtime API,
//      whatever its health checks say; nginx: reloaded without it). SIGKILL if the process is still running
//      at the grace period;
//   3. go on with the next replica once the removal has taken effect.
//
// The lag is the one deliberate delay here: it stands for the time endpoint changes take to reach every
// load balancer. Everything else waits on an event: the IPC ready message, HAProxy's state over its socket,
// nginx's log of its reload, exits.
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { CHECK_INTERVAL_MS, READINESS_PATH, startHaproxyIngress } from './haproxy.mjs'
import { countBy, quantile, startLoad } from './load.mjs'
import { startNginxIngress } from './nginx.mjs'
import { startReplica } from './replica.mjs'

export const DEFAULTS = Object.freeze({
  /** The load balancer: 'haproxy', or 'nginx' (whose own defaults are NGINX_DEFAULTS). */
  ingress: 'haproxy',
  replicas: 3,
  restarts: 5,
  /** The plugin's preStopDelay (PRE_STOP_DELAY_MS): serve on, readiness failing, while the endpoint goes. */
  preStopDelayMs: 1500,
  /**
   * The plugin's drainTimeout (DRAIN_TIMEOUT_MS), from the listener's close: room for the longest request
   * started during the pre-stop delay. preStopDelay + drainTimeout + forceTimeout (3000) plus the plugin's
   * 2 s margin fit in the grace period, so the plugin's tight-budget warning stays quiet.
   */
  drainTimeoutMs: 4000,
  /** terminationGracePeriodSeconds × 1000: SIGKILL after this; the plugin reads it as TERMINATION_GRACE_PERIOD_SECONDS. */
  gracePeriodMs: 12_000,
  /**
   * What HAProxy's active health check asks, every `checkIntervalMs`. On the readiness path it is a
   * readiness probe whose result reaches the load balancer at once, so it usually takes a stopping replica
   * out of rotation well before the lag ends; LIVENESS_PATH leaves that to the endpoint removal alone.
   */
  checkPath: READINESS_PATH,
  checkIntervalMs: CHECK_INTERVAL_MS,
  /** Endpoint propagation lag of each restart in turn: from below the pre-stop delay to above it. */
  lagsMs: Object.freeze([1000, 1250, 1500, 1750, 2000]),
  fastLoops: 6,
  slowLoops: 2,
  slowMs: Object.freeze([300, 800]),
  /**
   * Requests longer than the pre-stop delay, so that the replica being stopped has some still in flight
   * when its listener closes: the drain, and its `Connection: close` on a busy pooled connection, under test.
   */
  longLoops: 2,
  longMs: Object.freeze([2000, 3000]),
  /** Requests completed before the first restart. */
  warmRequests: 300,
  /** Bounds on the load, whatever happens to the scenario. */
  maxLoadMs: 150_000,
  maxRequests: 2_000_000,
  /** Width of the time buckets of the result's `timeline` (requests served and failed, by their end). */
  timelineBucketMs: 250
})

/**
 * nginx in front, configured as ingress-nginx runs it (nginx.mjs): two replicas, four restarts, each
 * replica removed 1.5 s after its SIGTERM by a reload, and 32 client connections. nginx checks no health,
 * so the lag alone takes a replica out of rotation: the pre-stop delay must outlast it, reload included.
 * The reload takes 0.10-0.21 s (nginx's master waits 100 ms before it retires the old workers); with a
 * 2000 ms delay, a reload that a loaded 2-core machine held up (removal done 2070 ms after SIGTERM, load
 * average 13) once let 44 requests meet the closed listener: 2500 ms leaves a second for it.
 */
export const NGINX_DEFAULTS = Object.freeze({
  ...DEFAULTS,
  ingress: 'nginx',
  replicas: 2,
  restarts: 4,
  preStopDelayMs: 2500,
  lagsMs: Object.freeze([1500]),
  fastLoops: 26,
  slowLoops: 3,
  longLoops: 3
})

/** The defaults of a scenario behind `ingress`. */
export function defaultsFor (ingress = DEFAULTS.ingress) {
  if (ingress === 'haproxy') return DEFAULTS
  if (ingress === 'nginx') return NGINX_DEFAULTS
  throw new TypeError(`Expected \`ingress\` to be 'haproxy' or 'nginx', got ${JSON.stringify(ingress)}`)
}

const INGRESSES = {
  haproxy: ({ dir, replicas, options }) => startHaproxyIngress({ dir, replicas, checkPath: options.checkPath, checkIntervalMs: options.checkIntervalMs }),
  nginx: ({ dir, replicas }) => startNginxIngress({ dir, replicas })
}

/** How many failures (and load-balancer log lines) the result lists one by one; the counts cover all of them. */
const LISTED_FAILURES = 40

/**
 * Runs the scenario against `app` ('plugin': example-app/server.mjs with fastify-shutdown; 'baseline': the
 * same app shut down with close-with-grace and `fastify.close()`) behind `ingress` ('haproxy' by default,
 * or 'nginx', each with its own defaults) and resolves with a plain JSON result. Every process it starts is
 * stopped and its temporary directory removed before it settles, also on failure.
 */
export async function runRollingRestart ({ app, label = app, script, log = () => {}, keepDir = false, ...overrides }) {
  const options = { ...defaultsFor(overrides.ingress), ...overrides }
  const dir = await mkdtemp(path.join(os.tmpdir(), `fastify-shutdown-rolling-${options.ingress}-${app}-`))
  const env = {
    LOG_LEVEL: 'info',
    ...(app === 'plugin'
      ? {
          PRE_STOP_DELAY_MS: String(options.preStopDelayMs),
          DRAIN_TIMEOUT_MS: String(options.drainTimeoutMs),
          TERMINATION_GRACE_PERIOD_SECONDS: String(options.gracePeriodMs / 1000)
        }
      : {})
  }
  const replicas = []
  let ingress = null
  let load = null
  // Should this process end abruptly (a runner's timeout, an uncaught error), no child may outlive it.
  const killAll = () => {
    for (const replica of replicas) if (replica.exit === null) replica.proc.kill('SIGKILL')
    ingress?.kill()
  }
  process.once('exit', killAll)
  try {
    const start = async () => {
      const replica = await startReplica({ app, dir, env, script })
      replicas.push(replica)
      return replica
    }

    const first = await Promise.all(Array.from({ length: options.replicas }, start))
    ingress = await INGRESSES[options.ingress]({ dir, replicas: first, options })
    const t0 = performance.now()
    log(`${label}: ${options.replicas} replicas in rotation behind ${ingress.describe}`)

    load = startLoad({
      port: ingress.port,
      fastLoops: options.fastLoops,
      slowLoops: options.slowLoops,
      slowMs: options.slowMs,
      longLoops: options.longLoops,
      longMs: options.longMs,
      maxMs: options.maxLoadMs,
      maxRequests: options.maxRequests
    })
    await load.warm(options.warmRequests)

    const live = [...first]
    const restarts = []
    for (let i = 0; i < options.restarts; i++) {
      const old = live.shift()
      const lagMs = options.lagsMs[i % options.lagsMs.length]

      const fresh = await start()
      await ingress.add(fresh)
      live.push(fresh)

      const exit = old.terminate(options.gracePeriodMs)
      const sigtermAt = old.sigtermAt
      // Deliberate: the endpoint removal reaches the load balancer only after the propagation lag.
      await sleep(lagMs)
      const slot = ingress.where(old)
      await ingress.remove(old)
      const removedAt = performance.now()
      restarts.push({ replica: old, replacement: fresh, slot, lagMs, sigtermAt, removedAt, exit })
      log(`${label}: restart ${i + 1}/${options.restarts}: ${fresh.name} in rotation at ${ingress.where(fresh)}; ` +
        `${old.name} SIGTERM, out of rotation after ${Math.round(removedAt - sigtermAt)} ms`)
    }

    // Every terminated replica is gone before the load stops, so each drain ran under load to its end.
    await Promise.all(restarts.map((r) => r.exit))
    const { records, stoppedBy } = await load.stop()
    load = null
    const evidence = await ingress.collect()
    return await summarise({ label, options, records, stoppedBy, restarts, evidence, t0, dir: keepDir ? dir : undefined })
  } finally {
    if (load !== null) await load.stop()
    await Promise.all(replicas.map((replica) => replica.stop()))
    if (ingress !== null) await ingress.stop()
    process.removeListener('exit', killAll)
    if (!keepDir) await rm(dir, { recursive: true, force: true })
  }
}

/** A pino `time` (epoch ms) on this process's performance clock. */
const onPerfClock = (epochMs) => epochMs - performance.timeOrigin

const round = (ms) => Math.round(ms)

async function summarise ({ label, options, records, stoppedBy, restarts, evidence, t0, dir }) {
  const ok = (r) => r.error === null && r.status >= 200 && r.status < 300
  const failures = records.filter((r) => !ok(r)).sort((a, b) => a.start - b.start)
  // What the load balancer's logs say of each failure, and whether its own reload caused it.
  const explained = new Map(failures.map((record) => [record, evidence.explain(record)]))
  const reloadOf = (record) => explained.get(record).reload
  const kindOf = (record) => failureKind(record, options.ingress) + (reloadOf(record) === null ? '' : ` (${options.ingress} reload)`)
  const non2xx = failures.filter((r) => r.error === null)
  const reloadResets = failures.filter((r) => reloadOf(r) !== null)
  const connectionErrors = failures.filter((r) => r.error !== null && reloadOf(r) === null)
  const latencies = (kind) => records.filter((r) => kind === undefined || r.kind === kind).map((r) => r.end - r.start).sort((a, b) => a - b)
  const all = latencies()
  const fast = latencies('fast')
  const slow = latencies('slow')
  const long = latencies('long')

  const replicas = []
  for (const r of restarts) {
    const lines = await r.replica.logLines()
    const report = lines.find((l) => l.msg === 'shutdown complete' || l.msg === 'shutdown forced') ?? null
    const listenerClosed = lines.find((l) => l.msg === 'listener closed, draining' || l.msg === 'server closing')
    const exit = await r.exit
    replicas.push({
      name: r.replica.name,
      slot: r.slot,
      replacedBy: r.replacement.name,
      lagMs: r.lagMs,
      sigtermToExitMs: round(exit.at - r.sigtermAt),
      exitCode: exit.code,
      exitSignal: exit.signal,
      killed: r.replica.killed,
      removedAfterMs: round(r.removedAt - r.sigtermAt),
      listenerClosedAfterMs: listenerClosed?.time === undefined ? null : round(onPerfClock(listenerClosed.time) - r.sigtermAt),
      /** Requests in flight when the listener closed (the plugin logs it; the baseline has no such line). */
      inFlightAtListenerClose: listenerClosed?.inFlight ?? null,
      sigtermAtMs: round(r.sigtermAt - t0),
      report: report === null
        ? null
        : { msg: report.msg, outcome: report.outcome, exitCode: report.exitCode, durationMs: report.durationMs, phases: report.phases, completedRequests: report.completedRequests, rejectedRequests: report.rejectedRequests, openRequests: report.openRequests },
      stderr: (await r.replica.stderr()).trim().split('\n').filter(Boolean).slice(-5)
    })
  }

  // Each failure placed on the timeline of the replica that answered it, as the load balancer's log names
  // it; a failure its log does not place is placed after the last SIGTERM before it.
  const restartOf = new Map(restarts.map((r) => [r.replica, r]))
  const place = (record) => {
    const { proxy, replica } = explained.get(record)
    const restart = restartOf.get(replica) ?? restarts.filter((r) => r.sigtermAt <= record.start).at(-1)
    const placed = {
      request: `${record.method} ${record.path}`,
      kind: kindOf(record),
      status: record.status || null,
      body: record.body?.slice(0, 160) ?? null,
      reusedConnection: record.reused,
      startAtMs: round(record.start - t0),
      durationMs: round(record.end - record.start),
      proxy,
      replica: replica?.name ?? null
    }
    if (restart !== undefined) {
      Object.assign(placed, {
        sigtermOf: restart.replica.name,
        startAfterSigtermMs: round(record.start - restart.sigtermAt),
        endAfterSigtermMs: round(record.end - restart.sigtermAt),
        removedAfterSigtermMs: round(restart.removedAt - restart.sigtermAt)
      })
    }
    return placed
  }

  const bucketOf = (record) => Math.max(0, Math.floor((record.end - t0) / options.timelineBucketMs))
  const buckets = records.reduce((most, record) => Math.max(most, bucketOf(record)), 0) + 1
  const timeline = { bucketMs: options.timelineBucketMs, ok: Array(buckets).fill(0), failed: Array(buckets).fill(0) }
  for (const record of records) timeline[ok(record) ? 'ok' : 'failed'][bucketOf(record)]++

  return {
    scenario: label,
    options,
    requests: records.length,
    non2xx: non2xx.length,
    /** Requests that ended without a response, reload resets left out. */
    connectionErrors: connectionErrors.length,
    /** Requests on a client connection that nginx's own reload closed under them (see nginx.mjs); 0 with HAProxy. */
    reloadResets: reloadResets.length,
    /** Every failure by what answered it: `503 FST_...` (the app's code), `502 nginx`, `error ECONNRESET`... */
    failureKinds: countBy(failures, kindOf),
    latencyMs: {
      p50: round1(quantile(all, 0.5)),
      p99: round1(quantile(all, 0.99)),
      max: round1(all.at(-1) ?? 0),
      fastP99: round1(quantile(fast, 0.99)),
      slowP99: round1(quantile(slow, 0.99)),
      longP99: round1(quantile(long, 0.99))
    },
    durationMs: round(performance.now() - t0),
    loadStoppedBy: stoppedBy,
    replicas,
    /** Requests that ended in each bucket since the load started, 2xx and failed apart. */
    timeline,
    failures: failures.slice(0, LISTED_FAILURES).map(place),
    /**
     * The load balancer's own account: its name, version and the errors it logged (each ingress's `report`),
     * and each reload (nginx) with the client connections it reset.
     */
    ingress: {
      ...evidence.report,
      reloads: evidence.reloads.map((reload, i) => ({
        change: reload.change,
        atMs: round(reload.at - t0),
        tookMs: reload.tookMs,
        resets: reloadResets.filter((r) => reloadOf(r) === i).length
      }))
    },
    /** Its log lines of abnormal requests (HAProxy) or at warn and above (nginx), as written. */
    proxyLog: evidence.log.slice(0, LISTED_FAILURES).map(({ at, line }) => `+${round(at - t0)}ms ${line}`),
    ...(dir === undefined ? {} : { dir })
  }
}

function failureKind (record, ingress) {
  if (record.error !== null) return `error ${record.error}`
  if (record.body?.startsWith('<html>')) return `${record.status} ${ingress}`
  try {
    // The app's own error body: its code when it has one (the plugin's, under-pressure's), else Fastify's.
    const { code } = JSON.parse(record.body)
    return `${record.status} ${code ?? 'app'}`
  } catch {
    return String(record.status)
  }
}

const round1 = (ms) => Math.round(ms * 10) / 10

/** The comparison table: one row per scenario result. */
export function formatTable (results) {
  const rows = [['scenario', 'ingress', 'requests', 'non-2xx', 'conn errors', 'reload resets', 'p99 ms', 'SIGTERM→exit ms (exit code; K = SIGKILLed)']]
  for (const r of results) {
    rows.push([
      r.scenario,
      r.options.ingress,
      String(r.requests),
      String(r.non2xx),
      String(r.connectionErrors),
      String(r.reloadResets),
      String(r.latencyMs.p99),
      r.replicas.map((x) => `${x.sigtermToExitMs}(${x.killed ? 'K' : x.exitCode ?? x.exitSignal})`).join(' ')
    ])
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)))
  return rows.map((row) => row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i])).join('  ')).join('\n')
}
