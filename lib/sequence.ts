import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { ResolvedShutdownOptions, ShutdownReport, ShutdownTrigger, TelemetryOutcome } from '../types'
import type { ResponseWatcher } from './response-watcher'
import type { ConnectionTracker } from './connections'
import type { DrainGate } from './request-gate'
import { Deadlines, type Timers } from './deadline'
import { messageOf } from './errors'
import type { ShutdownTelemetry } from './shutdown-telemetry'
import type { DrainParticipant } from './drain-participant'
import type { ProbedShutdown } from './probe-answers'
import { shutDownTelemetry } from './sdk-shutdown'
import { reportLogFields, ShutdownReportBuilder, triggerFields, type ForcedBy } from './shutdown-report'
import { STATE, type ShutdownState } from './states'

/**
 * The moves a shutdown may make. Once the force path has taken over, its own move to closed is the only one
 * left: a step of the scheduled path that asks for another learns that it has been overtaken.
 */
const MOVES: Readonly<Record<ShutdownState, readonly ShutdownState[]>> = {
  // Closing: a `fastify.close()` without a shutdown of ours; closed: its `onClose` without its `preClose`
  // (a boot that failed), then nothing to drain.
  [STATE.SERVING]: [STATE.PRE_STOP, STATE.CLOSING, STATE.CLOSED],
  [STATE.PRE_STOP]: [STATE.DRAINING, STATE.FORCING],
  [STATE.DRAINING]: [STATE.CLOSING, STATE.FORCING],
  [STATE.CLOSING]: [STATE.FORCING, STATE.CLOSED],
  [STATE.FORCING]: [STATE.CLOSED],
  // A shutdown started after that close: the sequence runs, and reports.
  [STATE.CLOSED]: [STATE.PRE_STOP]
}

/** What a shutdown works with, each part by name. */
export interface SequenceParts {
  readonly fastify: FastifyInstance
  readonly options: ResolvedShutdownOptions
  readonly connections: ConnectionTracker
  /** Counts the responses that finish during the shutdown. */
  readonly responses: ResponseWatcher
  readonly log: FastifyBaseLogger
  /** The shutdown's own spans and metrics; null without `telemetry`. */
  readonly ownTelemetry: ShutdownTelemetry | null
  /** Everything told when draining starts and when the force path runs; each adds its part to the report. */
  readonly participants: readonly DrainParticipant[]
  /** The timers of the sequence's deadlines: Node's, referenced, unless a test passes its own. */
  readonly timers?: Timers
}

/**
 * One server's shutdown: pre-stop → draining → closing → closed, or the force path from any of them.
 * `run()` and `force()` are idempotent and settle the same promise with the same report.
 */
export class ShutdownSequence implements DrainGate, ProbedShutdown {
  state: ShutdownState = STATE.SERVING
  /**
   * True until a shutdown starts: what the request gate reads on every request. Derived from the state by
   * `transition()` alone; a field rather than a getter, which costs about 200 instructions per request on Node 22.
   */
  serving = true
  rejectedRequests = 0
  report: ShutdownReport | null = null

  /** Settles with the report once it is out; null until a shutdown starts. */
  private reported: Promise<ShutdownReport> | null = null
  private resolveReported: (report: ShutdownReport) => void = () => {}
  private readonly reportBuilder: ShutdownReportBuilder
  private readonly deadlines: Deadlines
  private fastifyClose: Promise<void> | null = null
  private telemetryFlush: Promise<TelemetryOutcome> | null = null
  private wakePreStop: (() => void) | null = null
  private preStopEnded: (() => void) | null = null
  /** Settles when the pre-stop window ends: the listener closes, or the force path starts. */
  readonly preStopOver: Promise<void> = new Promise((resolve) => { this.preStopEnded = resolve })
  private drainEnded: () => void = () => {}
  /** Settles when the drain ends: every connection has closed, or the force path starts. */
  private readonly drainOver: Promise<void> = new Promise((resolve) => { this.drainEnded = resolve })
  private closedDirectly = false
  /** Someone else's `fastify.close()` came before the shutdown's own: fastify-cli, a test runner, the app. */
  private closedByOthers = false
  private onCloseReached: () => void = () => {}
  /** Settles when Fastify reaches the plugin's `onClose` hook in a close someone else started. */
  private readonly reachedOnClose: Promise<void> = new Promise((resolve) => { this.onCloseReached = resolve })
  private booted = false
  private logFailedOnce = false

  private readonly fastify: FastifyInstance
  private readonly options: ResolvedShutdownOptions
  private readonly connections: ConnectionTracker
  private readonly responses: ResponseWatcher
  private readonly log: FastifyBaseLogger
  private readonly ownTelemetry: ShutdownTelemetry | null
  private readonly participants: readonly DrainParticipant[]

  constructor (parts: SequenceParts) {
    this.fastify = parts.fastify
    this.options = parts.options
    this.connections = parts.connections
    this.responses = parts.responses
    this.log = parts.log
    this.ownTelemetry = parts.ownTelemetry
    this.participants = parts.participants
    this.deadlines = new Deadlines(parts.timers)
    this.reportBuilder = new ShutdownReportBuilder({
      connections: parts.connections,
      responses: parts.responses,
      gate: this,
      participants: parts.participants,
      telemetryTargets: parts.options.telemetry.length
    })
  }

  /** The promise of the report, once a shutdown has started; null before. */
  get finished (): Promise<ShutdownReport> | null {
    return this.reported
  }

  run (trigger: ShutdownTrigger): Promise<ShutdownReport> {
    if (this.reported) return this.reported
    const reported = this.begin(trigger)
    this.follow(this.closedDirectly ? this.joinDirectClose(trigger) : this.scheduled(trigger), trigger)
    return reported
  }

  private follow (steps: Promise<void>, trigger: ShutdownTrigger): void {
    steps.catch((err: unknown) => {
      this.reportBuilder.error(`shutdown sequence failed: ${messageOf(err)}`)
      this.log.error({ err }, 'shutdown sequence failed, forcing')
      void this.force('internal-error', trigger)
    })
  }

  /** `error`: what went wrong, for the report's errors (a fatal error during the shutdown). */
  force (forcedBy: ForcedBy, trigger: ShutdownTrigger, error?: string): Promise<ShutdownReport> {
    const reported = this.reported ?? this.begin(trigger)
    if (error !== undefined && this.state !== STATE.CLOSED) this.reportBuilder.error(error)
    if (this.transition(STATE.FORCING)) void this.forced(forcedBy)
    return reported
  }

  /**
   * `preClose`: someone's `fastify.close()` has started. Without a shutdown of ours, drain what is open, never
   * hang on it.
   */
  closingDirectly (): Promise<void> {
    this.closedByOthers = this.fastifyClose === null
    if (this.reported) {
      if (!this.closedByOthers) return Promise.resolve()
      // Their close would end the pre-stop window anyway; held until the drain is over, its `server.close()`
      // then finds no connection left in its grace to reap.
      this.wakePreStop?.()
      return this.drainOver
    }
    this.closedDirectly = true
    this.transition(STATE.CLOSING)
    this.connections.closeAfterCurrentResponses()
    this.connections.closeIdleWithoutGrace()
    this.responses.begin()
    // WebSockets, HTTP/2 sessions and streams would otherwise hold fastify.close() for their own timeouts.
    this.tellParticipants('drainStarted')
    // Shutdown tasks end before the onClose hooks close what they use, as on the scheduled path.
    return this.participantsSettled()
  }

  /**
   * `onClose`: Fastify has run every `onClose` hook registered after the plugin. When someone else's
   * `fastify.close()` came first, their `close()` resolves only once this hook has: the telemetry flush and
   * the report happen now, before they can exit (fastify-cli, a test runner and an app's own script all exit
   * as soon as `close()` resolves). A direct close without a shutdown reports here, as a `manual` one.
   * Null when the shutdown's own `fastify.close()` came first: its close listener holds the others' instead.
   */
  reachOnClose (): Promise<ShutdownReport> | null {
    if (!this.closedByOthers) return null
    this.onCloseReached()
    if (this.reported) return this.reported
    const trigger: ShutdownTrigger = { type: 'manual', reason: 'fastify.close()' }
    const reported = this.begin(trigger)
    this.follow(this.closeThenReport(), trigger)
    return reported
  }

  /**
   * What the plugin's own code threw inside a Node callback (a socket event, a diagnostics subscriber, the
   * server's close): reported, and the drain goes on without what failed.
   */
  internalError (err: unknown, during: string): void {
    this.reportBuilder.error(`internal error while ${during}: ${messageOf(err)}`)
    this.log.error({ err, during }, 'internal error, the drain goes on')
  }

  /** A line the app's logger could not write: reported once; the shutdown goes on without it. */
  logFailed (err: unknown): void {
    if (this.logFailedOnce) return
    this.logFailedOnce = true
    this.reportBuilder.error(`logging failed: ${messageOf(err)}`)
  }

  /** `onReady`: every plugin has loaded; from now on the server may listen. */
  markBooted (): void {
    this.booted = true
  }

  /** `onClose`: everything the sequence holds ends here, whoever called `fastify.close()`. */
  dispose (): void {
    this.responses.end()
    if (!this.reported) this.transition(STATE.CLOSED)
  }

  /**
   * Moves the sequence to `next`, when {@link MOVES} allows it: false, and nothing moves, when it does not.
   * Leaving pre-stop for draining or forcing ends the pre-stop window.
   */
  private transition (next: ShutdownState): boolean {
    if (!MOVES[this.state].includes(next)) return false
    this.state = next
    this.serving = next === STATE.SERVING
    if (next === STATE.DRAINING || next === STATE.FORCING) this.preStopEnded!()
    return true
  }

  private begin (trigger: ShutdownTrigger): Promise<ShutdownReport> {
    this.reportBuilder.start(trigger)
    // After a direct fastify.close() the sequence is closing already: there is no pre-stop left to have.
    if (!this.closedDirectly) this.transition(STATE.PRE_STOP)
    this.responses.begin()
    this.connections.closeAfterCurrentResponses()
    this.ownTelemetry?.started(trigger, this.connections.inFlight)
    this.reported = new Promise((resolve) => { this.resolveReported = resolve })
    return this.reported
  }

  /**
   * The shutdown as scheduled. Each wait may end with the force path in charge: the next move is then
   * refused, and this path stops where it is, leaving the report to the force path.
   */
  private async scheduled (trigger: ShutdownTrigger): Promise<void> {
    const { drainTimeout } = this.options
    // While Fastify still boots nothing listens, so no load balancer can be routing here: waiting would only
    // let the listen() to come open a listener in the middle of the shutdown.
    const preStopDelay = this.booted ? this.options.preStopDelay : 0
    const booting = this.booted ? {} : { booting: true }
    this.log.info({ ...triggerFields(trigger), ...booting, preStopDelayMs: preStopDelay, drainTimeoutMs: drainTimeout, inFlight: this.connections.inFlight }, 'shutdown started')

    // Pre-stop: readiness fails, every route still serves. Without a window the listener closes in this turn.
    if (preStopDelay > 0) await this.preStopWindow(preStopDelay)
    if (!this.transition(STATE.DRAINING)) return
    this.reportBuilder.phaseEnded('preStopMs', this.reportBuilder.startedAt)

    // Draining: the listener closes, each connection ends after its response, the participants wind down.
    const drainStart = performance.now()
    this.ownTelemetry?.enterPhase('draining', this.connections.inFlight)
    const endDrainDeadline = this.startDrainDeadline(trigger)
    const inFlight = this.connections.inFlight
    const listenerClosed = this.connections.closeListeners()
    this.log.info({ inFlight, connections: this.connections.size }, 'listener closed, draining')
    this.tellParticipants('drainStarted')
    await Promise.all([listenerClosed, this.participantsSettled()])
    this.drainEnded()
    if (!this.transition(STATE.CLOSING)) return
    const drainMs = this.reportBuilder.phaseEnded('drainMs', drainStart)
    this.log.info({ drainMs, completedRequests: this.responses.completed, rejectedRequests: this.rejectedRequests }, 'drained')

    // Closing: fastify.close() and its onClose hooks, the telemetry flush, the report.
    this.ownTelemetry?.enterPhase('closing', this.connections.inFlight)
    await this.closeThenReport(endDrainDeadline)
  }

  /** Forces the shutdown once `drainTimeout` has passed; returns what ends the deadline first. */
  private startDrainDeadline (trigger: ShutdownTrigger): () => void {
    return this.deadlines.start(this.options.drainTimeout, () => { void this.force('drain-timeout', trigger) })
  }

  /** Readiness fails while every route still serves, so that load balancers stop routing here. */
  private preStopWindow (ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wakePreStop = resolve
      this.deadlines.start(ms, resolve)
    })
  }

  /**
   * The app's own `fastify.close()` was already draining when the shutdown started: it is the drain. The
   * shutdown waits for it under the drain deadline, which a direct close does not have, and reports.
   */
  private async joinDirectClose (trigger: ShutdownTrigger): Promise<void> {
    const { drainTimeout } = this.options
    this.log.info({ ...triggerFields(trigger), drainTimeoutMs: drainTimeout, inFlight: this.connections.inFlight }, 'shutdown started after fastify.close(): waiting for it')
    await this.closeThenReport(this.startDrainDeadline(trigger))
  }

  /**
   * `fastify.close()`, the telemetry flush, the report. After a direct `fastify.close()` it is all that is
   * left: nothing to drain. Both waits happen while closing: when the force path has taken over meanwhile,
   * the sequence is closing no more and the force path reports.
   */
  private async closeThenReport (endDrainDeadline?: () => void): Promise<void> {
    const closeStart = performance.now()
    await this.closeFastify()
    if (this.state !== STATE.CLOSING) return
    this.reportBuilder.phaseEnded('closeMs', closeStart)
    // The drain and the close are done: from here the telemetry flush has its own bound.
    endDrainDeadline?.()
    await this.flushTelemetry(this.options.telemetryTimeout)
    if (this.state !== STATE.CLOSING) return
    this.finish()
  }

  private async forced (forcedBy: ForcedBy): Promise<void> {
    const forceStart = performance.now()
    const { forceTimeout } = this.options
    this.reportBuilder.forcedBy = forcedBy
    this.deadlines.cancelAll()
    this.wakePreStop?.()
    this.drainEnded()
    const openRequests = this.connections.openRequests(Date.now())
    this.reportBuilder.openRequests = openRequests
    this.log.warn({ forcedBy, forceTimeoutMs: forceTimeout, openRequests }, 'forcing shutdown')

    this.tellParticipants('forced')
    // Telemetry first: the spans of the requests about to be cut are ended and exported, not lost.
    this.reportBuilder.cutSpans += this.ownTelemetry?.cut(this.connections.openRequestTelemetry()) ?? 0
    const telemetry = this.flushTelemetry(forceTimeout)
    const work = (async () => {
      this.connections.destroyAll()
      await this.closeFastify()
      await telemetry
    })()
    if (!(await this.deadlines.within(work, forceTimeout))) {
      this.reportBuilder.error(`force path did not finish within forceTimeout (${forceTimeout} ms)`)
    }
    this.reportBuilder.phaseEnded('forceMs', forceStart)
    this.finish()
  }

  /**
   * Records the shutdown's own spans and metrics, then shuts the telemetry down so they leave with the rest.
   * Started once; the force path joins a flush already under way.
   */
  private flushTelemetry (boundMs: number): Promise<TelemetryOutcome> | null {
    if (this.options.telemetry.length === 0) return null
    if (this.telemetryFlush === null) {
      this.ownTelemetry?.finished(this.reportBuilder.draft())
      const start = performance.now()
      this.telemetryFlush = shutDownTelemetry(this.options.telemetry, boundMs, this.reportBuilder.cutSpans).then((outcome) => {
        this.reportBuilder.phaseEnded('telemetryMs', start)
        this.reportBuilder.telemetryShutDown(outcome)
        return outcome
      })
    }
    return this.telemetryFlush
  }

  private async participantsSettled (): Promise<void> {
    await Promise.all(this.participants.map((participant) => participant.settled?.()))
  }

  /** One participant that throws is logged and reported; it never keeps the others from being told. */
  private tellParticipants (event: 'drainStarted' | 'forced'): void {
    for (const participant of this.participants) {
      try {
        participant[event]()
      } catch (err) {
        this.reportBuilder.error(`${participant.name} failed when ${event === 'forced' ? 'forced' : 'draining started'}: ${messageOf(err)}`)
        this.log.error({ err, participant: participant.name }, 'a drain participant failed')
      }
    }
  }

  /**
   * Our own `fastify.close()`, unless someone else's is under way: then what is left of it for us ends at the
   * plugin's `onClose` hook, which holds their `close()` until the report is out.
   */
  private closeFastify (): Promise<void> {
    if (this.fastifyClose !== null) return this.fastifyClose
    if (this.closedByOthers) {
      this.fastifyClose = this.reachedOnClose
      return this.fastifyClose
    }
    this.fastifyClose = new Promise((resolve) => {
      // A close listener that returns a promise holds Fastify's close queue: a fastify.close() called by
      // anyone after this one resolves only once the report is out. Fastify's types omit its argument, the
      // error of any onClose hook.
      const closed = (err: Error | null): Promise<unknown> => {
        if (err) {
          // The requests were served, but what the onClose hooks close (pools, files) may not be: not a clean exit.
          this.reportBuilder.closeFailed = true
          this.reportBuilder.error(`fastify.close() failed: ${messageOf(err)}`)
          this.log.error({ err }, 'fastify.close() failed')
        }
        resolve()
        return this.reported!
      }
      this.fastify.close(closed as unknown as () => void)
    })
    return this.fastifyClose
  }

  private finish (): void {
    if (!this.transition(STATE.CLOSED)) return
    this.deadlines.cancelAll()
    this.responses.end()
    this.report = this.reportBuilder.build()
    this.log.info(reportLogFields(this.report), this.report.outcome === 'forced' ? 'shutdown forced' : 'shutdown complete')
    this.resolveReported(this.report)
  }
}
