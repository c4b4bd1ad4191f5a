// The rolling restart: N replicas behind HAProxy under constant keep-alive load, replaced one at a time the
// way a Kubernetes Deployment does it by default for 3 replicas (maxSurge 1, maxUnavailable 0):
//
//   1. start the new replica; once it listens and answers (its readiness), add it to the load balancer in a
//      free slot and wait until HAProxy has it UP;
//   2. terminate the oldest replica: SIGTERM (the kubelet), and at the same moment start the endpoint
//      removal (kube-proxy), which only takes effect after a propagation lag: then the slot goes to
//      maintenance through the runtime API, whatever its health checks say. SIGKILL if the process is still
//      running at the grace period;
//   3. go on with the next replica once the removal has taken effect (its slot is the next free one).
//
// The lag is the one deliberate delay here: it stands for the time endpoint changes take to reach every
// node. Everything else waits on an event: the IPC ready message, HAProxy's state over its socket, exits.
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { CHECK_INTERVAL_MS, READINESS_PATH, slotName, startHaproxy } from './haproxy.mjs'
import { quantile, startLoad } from './load.mjs'
import { startReplica } from './replica.mjs'

export const DEFAULTS = Object.freeze({
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

/** How many failures (and HAProxy log lines) the result lists one by one; the counts cover all of them. */
const LISTED_FAILURES = 40

/**
 * Runs the scenario against `app` ('plugin': example-app/server.mjs with fastify-shutdown; 'baseline': the
 * same app shut down with close-with-grace and `fastify.close()`) and resolves with a plain JSON result.
 * Every process it starts is stopped and its temporary directory removed before it settles, also on failure.
 */
export async function runRollingRestart ({ app, label = app, script, log = () => {}, keepDir = false, ...overrides }) {
  const options = { ...DEFAULTS, ...overrides }
  const dir = await mkdtemp(path.join(os.tmpdir(), `fastify-shutdown-rolling-${app}-`))
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
  let haproxy = null
  let load = null
  // Should this process end abruptly (a runner's timeout, an uncaught error), no child may outlive it.
  const killAll = () => {
    for (const replica of replicas) if (replica.exit === null) replica.proc.kill('SIGKILL')
    if (haproxy !== null && haproxy.exit === null) haproxy.proc.kill('SIGKILL')
  }
  process.once('exit', killAll)
  try {
    const start = async () => {
      const replica = await startReplica({ app, dir, env, script })
      replicas.push(replica)
      return replica
    }

    // Slots 0..N-1 hold the first replicas; slot N is the free one the first replacement goes into.
    const first = await Promise.all(Array.from({ length: options.replicas }, start))
    haproxy = await startHaproxy({ dir, servers: first.map((r) => r.port), slots: options.replicas + 1, checkPath: options.checkPath, checkIntervalMs: options.checkIntervalMs })
    const t0 = performance.now()
    log(`${label}: ${options.replicas} replicas UP behind haproxy on 127.0.0.1:${haproxy.port} (health check GET ${options.checkPath})`)

    load = startLoad({
      port: haproxy.port,
      fastLoops: options.fastLoops,
      slowLoops: options.slowLoops,
      slowMs: options.slowMs,
      longLoops: options.longLoops,
      longMs: options.longMs,
      maxMs: options.maxLoadMs,
      maxRequests: options.maxRequests
    })
    await load.warm(options.warmRequests)

    const live = first.map((replica, slot) => ({ replica, slot }))
    // Which replica went into which slot when: a failure HAProxy logged against a slot names its replica.
    const occupancy = first.map((replica, slot) => ({ slot: slotName(slot), replica, from: 0 }))
    let freeSlot = options.replicas
    const restarts = []
    for (let i = 0; i < options.restarts; i++) {
      const old = live.shift()
      const lagMs = options.lagsMs[i % options.lagsMs.length]

      const fresh = await start()
      occupancy.push({ slot: slotName(freeSlot), replica: fresh, from: performance.now() })
      await haproxy.enable(slotName(freeSlot), fresh.port)
      live.push({ replica: fresh, slot: freeSlot })

      const exit = old.replica.terminate(options.gracePeriodMs)
      const sigtermAt = old.replica.sigtermAt
      // Deliberate: the endpoint removal reaches the load balancer only after the propagation lag.
      await sleep(lagMs)
      await haproxy.maintenance(slotName(old.slot))
      const removedAt = performance.now()
      freeSlot = old.slot
      restarts.push({ replica: old.replica, replacement: fresh, slot: slotName(old.slot), lagMs, sigtermAt, removedAt, exit })
      log(`${label}: restart ${i + 1}/${options.restarts}: ${fresh.name} UP in ${slotName(live.at(-1).slot)}; ${old.replica.name} SIGTERM, out of rotation after ${Math.round(removedAt - sigtermAt)} ms`)
    }

    // Every terminated replica is gone before the load stops, so each drain ran under load to its end.
    await Promise.all(restarts.map((r) => r.exit))
    const { records, stoppedBy } = await load.stop()
    load = null
    return await summarise({ label, options, records, stoppedBy, restarts, occupancy, haproxy, t0, dir: keepDir ? dir : undefined })
  } finally {
    if (load !== null) await load.stop()
    await Promise.all(replicas.map((replica) => replica.stop()))
    if (haproxy !== null) await haproxy.stop()
    process.removeListener('exit', killAll)
    if (!keepDir) await rm(dir, { recursive: true, force: true })
  }
}

/** A pino `time` (epoch ms) on this process's performance clock. */
const onPerfClock = (epochMs) => epochMs - performance.timeOrigin

const round = (ms) => Math.round(ms)

async function summarise ({ label, options, records, stoppedBy, restarts, occupancy, haproxy, t0, dir }) {
  const ok = (r) => r.error === null && r.status >= 200 && r.status < 300
  const non2xx = records.filter((r) => r.error === null && !ok(r))
  const connectionErrors = records.filter((r) => r.error !== null)
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

  // Each failure placed on the timeline of the replica that answered it. HAProxy's log line of the request
  // (same client port, same status, logged as it ended) names the slot, the slot's history names the
  // replica. A failure HAProxy did not log is placed after the last SIGTERM before it: HAProxy logs nothing
  // when it resets a keep-alive client connection because the reused server connection it sent the request
  // on failed before any response (its `abort_keep_alive` path, meant to make the client retry).
  const lbLines = haproxy.requestLogs().map(parseRequestLog).filter((line) => line !== null)
  const restartOf = new Map(restarts.map((r) => [r.replica, r]))
  const place = (record) => {
    const lb = lbLines
      .filter((line) => line.clientPort === record.localPort && Math.abs(line.at - record.end) < 100 &&
        (record.status === 0 ? line.status <= 0 : line.status === record.status))
      .sort((a, b) => Math.abs(a.at - record.end) - Math.abs(b.at - record.end))[0]
    const occupant = lb === undefined ? undefined : occupancy.filter((o) => o.slot === lb.slot && o.from <= record.start).at(-1)
    const restart = occupant !== undefined ? restartOf.get(occupant.replica) : restarts.filter((r) => r.sigtermAt <= record.start).at(-1)
    const placed = {
      request: `${record.method} ${record.path}`,
      kind: failureKind(record),
      status: record.status || null,
      body: record.body?.slice(0, 160) ?? null,
      reusedConnection: record.reused,
      startAtMs: round(record.start - t0),
      durationMs: round(record.end - record.start),
      haproxy: lb === undefined ? null : { server: lb.server, timers: lb.timers, termination: lb.termination },
      replica: occupant?.replica.name ?? null
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
  const failures = [...non2xx, ...connectionErrors].sort((a, b) => a.start - b.start)

  const bucketOf = (record) => Math.max(0, Math.floor((record.end - t0) / options.timelineBucketMs))
  const buckets = records.reduce((most, record) => Math.max(most, bucketOf(record)), 0) + 1
  const timeline = { bucketMs: options.timelineBucketMs, ok: Array(buckets).fill(0), failed: Array(buckets).fill(0) }
  for (const record of records) timeline[ok(record) ? 'ok' : 'failed'][bucketOf(record)]++

  return {
    scenario: label,
    options,
    requests: records.length,
    non2xx: non2xx.length,
    connectionErrors: connectionErrors.length,
    /** Every failure by what answered it: `503 FST_...` (the app's code), `503 haproxy`, `error ECONNRESET`... */
    failureKinds: countBy(failures, failureKind),
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
    haproxyLog: haproxy.requestLogs().slice(0, LISTED_FAILURES).map(({ at, line }) => `+${round(at - t0)}ms ${line}`),
    ...(dir === undefined ? {} : { dir })
  }
}

/**
 * One line of HAProxy's httplog, e.g.
 * `127.0.0.1:54856 [22/Nov/2026:01:00:23.226] fe be/srv1 0/0/0/4/4 503 265 - - ---- 8/8/7/0/0 0/0 "GET /orders/1 HTTP/1.1"`:
 * client port, backend/server, timers (TR/Tw/Tc/Tr/Ta), status, termination state (`SC--`: the server
 * refused the connection, `SH--`: it closed before sending headers, ...).
 */
function parseRequestLog ({ at, line }) {
  const match = /^\S+:(\d+) \[[^\]]+\] \S+ (\S+)\/(\S+) (\S+) (-?\d+) \S+ \S+ \S+ (\S{4}) /.exec(line)
  if (match === null) return null
  const [, clientPort, , slot, timers, status, termination] = match
  return { at, clientPort: Number(clientPort), server: `${match[2]}/${slot}`, slot, timers, status: Number(status), termination }
}

function failureKind (record) {
  if (record.error !== null) return `error ${record.error}`
  if (record.body?.startsWith('<html>')) return `${record.status} haproxy`
  try {
    // The app's own error body: its code when it has one (the plugin's, under-pressure's), else Fastify's.
    const { code } = JSON.parse(record.body)
    return `${record.status} ${code ?? 'app'}`
  } catch {
    return String(record.status)
  }
}

function countBy (items, key) {
  const counts = {}
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1
  return counts
}

const round1 = (ms) => Math.round(ms * 10) / 10

/** The comparison table: one row per scenario result. */
export function formatTable (results) {
  const rows = [['scenario', 'requests', 'non-2xx', 'conn errors', 'p99 ms', 'SIGTERM→exit ms (exit code; K = SIGKILLed)']]
  for (const r of results) {
    rows.push([
      r.scenario,
      String(r.requests),
      String(r.non2xx),
      String(r.connectionErrors),
      String(r.latencyMs.p99),
      r.replicas.map((x) => `${x.sigtermToExitMs}(${x.killed ? 'K' : x.exitCode ?? x.exitSignal})`).join(' ')
    ])
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)))
  return rows.map((row) => row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i])).join('  ')).join('\n')
}
