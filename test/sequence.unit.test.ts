// The shutdown sequence on its own, in fake time: its timers are the test's, its Fastify a stand-in whose
// close the test completes by hand, its connection tracker a real one over a server that never listened.
import { test } from 'tap'
import { createServer, type Server } from 'node:http'
import Fastify, { type FastifyInstance } from 'fastify'
import type { FastifyShutdownOptions, ShutdownTrigger, TaskOutcome } from '../types'
import { ConnectionTracker } from '../lib/connections'
import type { Timers } from '../lib/deadline'
import type { DrainParticipant, ReportPart } from '../lib/drain-participant'
import { resolveOptions } from '../lib/options'
import { ResponseWatcher } from '../lib/response-watcher'
import { ShutdownSequence } from '../lib/sequence'
import { STATE } from '../lib/states'
import { logCapture } from './helpers/log-capture'
import { bounded } from './helpers/wait'

const TIMES = Object.freeze({ preStopDelay: 3_000, drainTimeout: 8_000, forceTimeout: 2_000 })
const DEPLOY: ShutdownTrigger = Object.freeze({ type: 'manual', reason: 'deploy' })

/** Timers the test runs by hand; `started(ms)` waits for the sequence to start one of `ms`. */
class FakeTimers implements Timers {
  readonly pending = new Map<number, { fn: () => void, ms: number }>()
  private next = 0
  private readonly waiting = new Map<number, () => void>()

  setTimeout (fn: () => void, ms: number): number {
    this.pending.set(++this.next, { fn, ms })
    this.waiting.get(ms)?.()
    return this.next
  }

  clearTimeout (handle: unknown): void {
    this.pending.delete(handle as number)
  }

  durations (): number[] {
    return [...this.pending.values()].map(({ ms }) => ms)
  }

  started (ms: number): Promise<void> {
    if (this.durations().includes(ms)) return Promise.resolve()
    return bounded(new Promise<void>((resolve) => this.waiting.set(ms, resolve)), `a ${ms} ms timer`)
  }

  /** The pending timer of `ms` runs, as if its time had come. */
  elapse (ms: number): void {
    const [handle, { fn }] = [...this.pending].find(([, timer]) => timer.ms === ms)!
    this.pending.delete(handle)
    fn()
  }
}

/** Fastify as the sequence sees it: a `close()` that the test ends, with or without an onClose error. */
class FakeFastify {
  private listener: ((err: Error | null) => unknown) | null = null
  private called: () => void = () => {}
  readonly closeCalled = new Promise<void>((resolve) => { this.called = resolve })
  closes = 0

  close (listener: (err: Error | null) => unknown): void {
    this.closes++
    this.listener = listener
    this.called()
  }

  closed (err: Error | null = null): void {
    void this.listener!(err)
  }
}

/** Long-lived work the drain waits for until the test releases it, with its part of the report. */
class HeldWork implements DrainParticipant {
  readonly told: string[] = []
  release: () => void = () => {}
  private readonly done = new Promise<void>((resolve) => { this.release = resolve })

  constructor (readonly name: string, private readonly part: ReportPart = {}) {}

  drainStarted (): void { this.told.push('drainStarted') }
  forced (): void { this.told.push('forced') }
  settled (): Promise<void> { return this.done }
  reportPart (): ReportPart { return this.part }
}

function setup (opts: FastifyShutdownOptions = {}, participants: DrainParticipant[] = [new HeldWork('held')]) {
  const options = resolveOptions({ handleSignals: false, exit: false, ...TIMES, ...opts })
  const servers = new Set<Server>([createServer()])
  const failed = (err: unknown): void => { throw err }
  const connections = new ConnectionTracker(servers, options.idleCloseDelay, failed, { of: () => undefined })
  const responses = new ResponseWatcher(servers, () => {}, failed)
  const { stream, lines, line } = logCapture()
  const log = Fastify({ logger: { stream } }).log
  const fastify = new FakeFastify()
  const timers = new FakeTimers()
  const sequence = new ShutdownSequence({
    fastify: fastify as unknown as FastifyInstance,
    options,
    connections,
    responses,
    log,
    ownTelemetry: null,
    participants,
    timers
  })
  return { sequence, fastify, timers, lines, line, held: participants[0] as HeldWork }
}

test('serving → pre-stop → draining → closing → closed, the pre-stop window waited out in fake time', async (t) => {
  const { sequence, fastify, timers, line, held } = setup()
  sequence.markBooted()
  t.equal(sequence.state, STATE.SERVING)
  t.equal(sequence.serving, true)

  const reported = sequence.run(DEPLOY)
  t.equal(sequence.state, STATE.PRE_STOP)
  t.equal(sequence.serving, false, 'serving follows the state')
  t.equal(sequence.run({ type: 'signal', signal: 'SIGTERM' }), reported, 'a second start joins the first')
  t.same(timers.durations(), [TIMES.preStopDelay], 'only the pre-stop window is timed')
  t.same(held.told, [], 'nothing drains during the window')
  t.match(await line('shutdown started'), { preStopDelayMs: TIMES.preStopDelay, drainTimeoutMs: TIMES.drainTimeout })

  timers.elapse(TIMES.preStopDelay)
  await timers.started(TIMES.drainTimeout)
  t.equal(sequence.state, STATE.DRAINING)
  await sequence.preStopOver
  t.same(held.told, ['drainStarted'])

  held.release()
  await fastify.closeCalled
  t.equal(sequence.state, STATE.CLOSING)
  t.match(await line('drained'), { completedRequests: 0, rejectedRequests: 0 })

  fastify.closed()
  const report = await reported
  t.equal(sequence.state, STATE.CLOSED)
  t.match(report, { outcome: 'completed', exitCode: 0, trigger: DEPLOY, errors: [] })
  t.notOk('forcedBy' in report)
  t.same(Object.keys(report.phases), ['preStopMs', 'drainMs', 'closeMs'])
  t.same(timers.durations(), [], 'the drain deadline ended with the close')
  t.equal(fastify.closes, 1)
})

test('before the app has booted there is no pre-stop window: draining starts in the same turn', async (t) => {
  const { sequence, timers, line } = setup()
  t.teardown(() => { sequence.dispose() })
  void sequence.run(DEPLOY)
  t.equal(sequence.state, STATE.DRAINING)
  t.same(timers.durations(), [TIMES.drainTimeout])
  t.match(await line('shutdown started'), { booting: true, preStopDelayMs: 0 })
})

test('the drain deadline forces the shutdown with forcedBy drain-timeout', async (t) => {
  const { sequence, fastify, timers, line, held } = setup()
  const reported = sequence.run(DEPLOY)
  timers.elapse(TIMES.drainTimeout)
  t.equal(sequence.state, STATE.FORCING)
  t.same(held.told, ['drainStarted', 'forced'])
  t.match(await line('forcing shutdown'), { level: 40, forcedBy: 'drain-timeout', forceTimeoutMs: TIMES.forceTimeout, openRequests: [] })
  t.same(timers.durations(), [TIMES.forceTimeout], 'only the force path\'s own bound is left')

  await fastify.closeCalled
  fastify.closed()
  const report = await reported
  t.match(report, { outcome: 'forced', forcedBy: 'drain-timeout', exitCode: 1, errors: [] })
  t.same(Object.keys(report.phases), ['preStopMs', 'forceMs'], 'the drain cut short has no phase of its own')
  t.equal(sequence.state, STATE.CLOSED)
  t.same(timers.durations(), [])
})

test('a second force during the drain: the first decides, the overtaken drain stops where it is', async (t) => {
  const { sequence, fastify, timers, lines, held } = setup()
  const reported = sequence.run(DEPLOY)
  t.equal(sequence.force('second-signal', { type: 'signal', signal: 'SIGTERM' }), reported)
  t.equal(sequence.state, STATE.FORCING)
  t.notOk(timers.durations().includes(TIMES.drainTimeout), 'the drain deadline is cancelled')
  t.equal(sequence.force('manual', DEPLOY, 'the force path again'), reported)
  t.same(held.told, ['drainStarted', 'forced'], 'participants are forced once')

  held.release()
  // Every continuation the release made possible runs before an immediate: the drain's own included.
  await new Promise(setImmediate)
  t.equal(sequence.state, STATE.FORCING, 'the drain, done now, may not move the sequence to closing')
  t.notOk(lines.some((line) => line.msg === 'drained'))

  await fastify.closeCalled
  fastify.closed()
  const report = await reported
  t.match(report, { outcome: 'forced', forcedBy: 'second-signal', errors: ['the force path again'] })
  t.equal(fastify.closes, 1)
})

test('a force path stuck in fastify.close() ends at forceTimeout, in fake time', async (t) => {
  const { sequence, timers, line } = setup()
  const reported = sequence.force('manual', DEPLOY)
  await timers.started(TIMES.forceTimeout)
  timers.elapse(TIMES.forceTimeout)
  const report = await reported
  t.match(report, { outcome: 'forced', forcedBy: 'manual', errors: [`force path did not finish within forceTimeout (${TIMES.forceTimeout} ms)`] })
  t.match(await line('shutdown forced'), { forcedBy: 'manual' })
})

test('the report is built once, from each participant\'s part', async (t) => {
  const task: TaskOutcome = Object.freeze({ name: 'flush queue', phase: 0, outcome: 'completed', durationMs: 4 })
  const participants = [
    new HeldWork('websocket', { connections: { closed: 2, terminated: 1 } }),
    new HeldWork('request signals', { abortedRequests: 3 }),
    new HeldWork('shutdown tasks', { tasks: [task] }),
    new HeldWork('silent')
  ]
  const { sequence, fastify, lines } = setup({}, participants)
  const reported = sequence.run(DEPLOY)
  sequence.rejectedRequests = 5
  for (const participant of participants) participant.release()
  await fastify.closeCalled
  fastify.closed(new Error('pool would not close'))
  const report = await reported

  t.match(report, {
    outcome: 'completed',
    exitCode: 1,
    rejectedRequests: 5,
    abortedRequests: 3,
    tasks: [task],
    errors: ['fastify.close() failed: pool would not close']
  })
  t.same(report.connections, {
    http: { closedIdle: 0, closedAfterGrace: 0, closedAfterResponse: 0, destroyed: 0 },
    websocket: { closed: 2, terminated: 1 }
  })
  t.notOk('telemetry' in report, 'no telemetry targets, no telemetry outcome')
  t.ok(Object.isFrozen(report) && Object.isFrozen(report.connections) && Object.isFrozen(report.phases))
  t.equal(sequence.report, report)
  t.equal(await sequence.force('second-signal', DEPLOY), report, 'a force after the end gets the same report')
  t.equal(await sequence.run(DEPLOY), report)
  t.equal(lines.filter((line) => line.msg === 'shutdown complete' || line.msg === 'shutdown forced').length, 1, 'logged once')
})

test('a failure in the plugin\'s own sequence forces with forcedBy internal-error, never manual', async (t) => {
  const broken: DrainParticipant = {
    name: 'broken',
    drainStarted () {},
    forced () {},
    settled () { throw new Error('the participant broke') },
    reportPart () { return {} }
  }
  const { sequence, fastify, timers } = setup({ preStopDelay: 0 }, [broken])
  sequence.markBooted()
  const reported = sequence.run(DEPLOY)
  await fastify.closeCalled
  fastify.closed()
  await timers.started(TIMES.forceTimeout)
  const report = await bounded(reported, 'the report')
  t.match(report, { outcome: 'forced', forcedBy: 'internal-error', exitCode: 1, errors: [/^shutdown sequence failed: the participant broke$/] })
})
