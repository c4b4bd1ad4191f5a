import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { OpenRequest, ResolvedShutdownOptions, ShutdownPhases, ShutdownReport, ShutdownTrigger, TelemetryOutcome } from '../types'
import type { ResponseWatcher } from './response-watcher'
import type { ConnectionTracker } from './connections'
import type { DrainGate } from './drain-hook'
import { withinDeadline } from './deadline'
import { messageOf } from './errors'
import type { ShutdownTelemetry } from './shutdown-telemetry'
import type { DrainParticipant } from './drain-participant'
import type { ProbedShutdown } from './probe-answers'
import type { RequestSignals } from './request-signals'
import type { ShutdownTasks } from './shutdown-tasks'
import { shutDownTelemetry } from './sdk-shutdown'
import { STATE, type ShutdownState } from './states'

type ForcedBy = NonNullable<ShutdownReport['forcedBy']>

const elapsedSince = (start: number): number => Math.round(performance.now() - start)

function describeTrigger (trigger: ShutdownTrigger): Record<string, unknown> {
  switch (trigger.type) {
    case 'signal': return { type: 'signal', signal: trigger.signal }
    case 'manual': return { type: 'manual', reason: trigger.reason }
    case 'error': return { type: 'error' }
    case 'prestop-route': return { type: 'prestop-route' }
  }
}

/** Log fields for a trigger: an error goes under the top-level `err`, the only place pino serializes it. */
function triggerFields (trigger: ShutdownTrigger): Record<string, unknown> {
  const fields: Record<string, unknown> = { trigger: describeTrigger(trigger) }
  if (trigger.type === 'error') fields.err = trigger.error
  return fields
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
  /** Also in `participants`: named here for the report's `abortedRequests`. */
  readonly requestSignals: RequestSignals
  /** Also in `participants`: named here for the report's `tasks`. */
  readonly tasks: ShutdownTasks
  /** Everything told when draining starts and when the force path runs. */
  readonly participants: readonly DrainParticipant[]
}

/**
 * One server's shutdown: pre-stop → draining → closing → closed, or the force path from any of them.
 * `run()` and `force()` are idempotent and settle the same promise with the same report.
 */
export class ShutdownSequence implements DrainGate, ProbedShutdown {
  serving = true
  state: ShutdownState = STATE.SERVING
  rejectedRequests = 0
  report: ShutdownReport | null = null

  private trigger: ShutdownTrigger | null = null
  private startedAt = 0
  private startedAtIso = ''
  private readonly phases: { -readonly [K in keyof ShutdownPhases]: ShutdownPhases[K] } = {}
  private readonly errors: string[] = []
  private openRequests: OpenRequest[] = []
  private forcedBy: ForcedBy | null = null
  private completion: Promise<ShutdownReport> | null = null
  private settle: (report: ShutdownReport) => void = () => {}
  private fastifyClose: Promise<void> | null = null
  private readonly timers = new Set<NodeJS.Timeout>()
  private wakePreStop: (() => void) | null = null
  private preStopEnded: (() => void) | null = null
  /** Settles when the pre-stop window ends: the listener closes, or the force path starts. */
  readonly preStopOver: Promise<void> = new Promise((resolve) => { this.preStopEnded = resolve })
  private closedDirectly = false
  /** Someone else's `fastify.close()` came before the shutdown's own: fastify-cli, a test runner, the app. */
  private closedByOthers = false
  private onCloseReached: () => void = () => {}
  /** Settles when Fastify reaches the plugin's `onClose` hook in a close someone else started. */
  private readonly reachedOnClose: Promise<void> = new Promise((resolve) => { this.onCloseReached = resolve })
  private booted = false
  private fastifyCloseFailed = false
  private cutSpans = 0
  private telemetry: Promise<TelemetryOutcome> | null = null
  private telemetryOutcome: TelemetryOutcome | null = null

  private readonly fastify: FastifyInstance
  private readonly options: ResolvedShutdownOptions
  private readonly connections: ConnectionTracker
  private readonly responses: ResponseWatcher
  private readonly log: FastifyBaseLogger
  private readonly ownTelemetry: ShutdownTelemetry | null
  private readonly requestSignals: RequestSignals
  private readonly tasks: ShutdownTasks
  private readonly participants: readonly DrainParticipant[]

  constructor (parts: SequenceParts) {
    this.fastify = parts.fastify
    this.options = parts.options
    this.connections = parts.connections
    this.responses = parts.responses
    this.log = parts.log
    this.ownTelemetry = parts.ownTelemetry
    this.requestSignals = parts.requestSignals
    this.tasks = parts.tasks
    this.participants = parts.participants
  }

  /** The promise of the report, once a shutdown has started; null before. */
  get finished (): Promise<ShutdownReport> | null {
    return this.completion
  }

  run (trigger: ShutdownTrigger): Promise<ShutdownReport> {
    if (this.completion) return this.completion
    const completion = this.begin(trigger)
    this.follow(this.closedDirectly ? this.joinDirectClose() : this.scheduled(), trigger)
    return completion
  }

  private follow (steps: Promise<void>, trigger: ShutdownTrigger): void {
    steps.catch((err: unknown) => {
      this.errors.push(`shutdown sequence failed: ${messageOf(err)}`)
      this.log.error({ err }, 'shutdown sequence failed, forcing')
      void this.force('internal-error', trigger)
    })
  }

  /** `error`: what went wrong, for the report's errors (a fatal error during the shutdown). */
  force (forcedBy: ForcedBy, trigger: ShutdownTrigger, error?: string): Promise<ShutdownReport> {
    const completion = this.completion ?? this.begin(trigger)
    if (error !== undefined && this.state !== STATE.CLOSED) this.errors.push(error)
    if (this.forcedBy !== null || this.state === STATE.CLOSED) return completion
    this.forcedBy = forcedBy
    void this.forced()
    return completion
  }

  /**
   * `preClose`: someone's `fastify.close()` has started. Without a shutdown of ours, drain what is open, never
   * hang on it.
   */
  closingDirectly (): Promise<void> {
    this.closedByOthers = this.fastifyClose === null
    if (this.completion) {
      // Fastify is closing the listener now: a pre-stop window would keep nothing open any more.
      if (this.closedByOthers) this.wakePreStop?.()
      return Promise.resolve()
    }
    this.closedDirectly = true
    this.serving = false
    this.state = STATE.CLOSING
    this.connections.closeIdleWithoutGrace()
    this.connections.closeAfterCurrentResponses()
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
    if (this.completion) return this.completion
    const trigger: ShutdownTrigger = { type: 'manual', reason: 'fastify.close()' }
    const completion = this.begin(trigger)
    this.follow(this.closeThenReport(), trigger)
    return completion
  }

  /**
   * What the plugin's own code threw inside a Node callback (a socket event, a diagnostics subscriber, the
   * server's close): reported, and the drain goes on without what failed.
   */
  internalError (err: unknown, during: string): void {
    this.errors.push(`internal error while ${during}: ${messageOf(err)}`)
    this.log.error({ err, during }, 'internal error, the drain goes on')
  }

  /** `onReady`: every plugin has loaded; from now on the server may listen. */
  markBooted (): void {
    this.booted = true
  }

  /** `onClose`: everything the sequence holds ends here, whoever called `fastify.close()`. */
  dispose (): void {
    this.responses.end()
    if (!this.completion) this.state = STATE.CLOSED
  }

  private begin (trigger: ShutdownTrigger): Promise<ShutdownReport> {
    this.trigger = trigger
    this.startedAt = performance.now()
    this.startedAtIso = new Date().toISOString()
    this.serving = false
    this.state = this.closedDirectly ? STATE.CLOSING : STATE.PRE_STOP
    this.responses.begin()
    this.connections.closeAfterCurrentResponses()
    this.ownTelemetry?.started(trigger, this.connections.inFlight)
    this.completion = new Promise((resolve) => { this.settle = resolve })
    return this.completion
  }

  private async scheduled (): Promise<void> {
    const { drainTimeout } = this.options
    // While Fastify still boots nothing listens, so no load balancer can be routing here: waiting would only
    // let the listen() to come open a listener in the middle of the shutdown.
    const preStopDelay = this.booted ? this.options.preStopDelay : 0
    const booting = this.booted ? {} : { booting: true }
    this.log.info({ ...triggerFields(this.trigger!), ...booting, preStopDelayMs: preStopDelay, drainTimeoutMs: drainTimeout, inFlight: this.connections.inFlight }, 'shutdown started')

    if (preStopDelay > 0) {
      await new Promise<void>((resolve) => {
        this.wakePreStop = resolve
        this.timer(resolve, preStopDelay)
      })
    }
    if (this.forcedBy !== null) return
    this.phases.preStopMs = elapsedSince(this.startedAt)

    const drainStart = performance.now()
    this.state = STATE.DRAINING
    this.preStopEnded!()
    this.ownTelemetry?.enterPhase('draining', this.connections.inFlight)
    const drainDeadline = this.timer(() => { void this.force('drain-timeout', this.trigger!) }, drainTimeout)
    const inFlight = this.connections.inFlight
    const listenerClosed = this.connections.closeListeners()
    this.log.info({ inFlight, connections: this.connections.size }, 'listener closed, draining')
    this.tellParticipants('drainStarted')
    await Promise.all([listenerClosed, this.participantsSettled()])
    if (this.forcedBy !== null) return
    this.phases.drainMs = elapsedSince(drainStart)
    this.log.info({ drainMs: this.phases.drainMs, completedRequests: this.responses.completed, rejectedRequests: this.rejectedRequests }, 'drained')

    this.state = STATE.CLOSING
    this.ownTelemetry?.enterPhase('closing', this.connections.inFlight)
    await this.closeThenReport(drainDeadline)
  }

  /**
   * The app's own `fastify.close()` was already draining when the shutdown started: it is the drain. The
   * shutdown waits for it under the drain deadline, which a direct close does not have, and reports.
   */
  private async joinDirectClose (): Promise<void> {
    const { drainTimeout } = this.options
    this.log.info({ ...triggerFields(this.trigger!), drainTimeoutMs: drainTimeout, inFlight: this.connections.inFlight }, 'shutdown started after fastify.close(): waiting for it')
    const drainDeadline = this.timer(() => { void this.force('drain-timeout', this.trigger!) }, drainTimeout)
    await this.closeThenReport(drainDeadline)
  }

  /**
   * `fastify.close()`, the telemetry flush, the report. After a direct `fastify.close()` it is all that is
   * left: nothing to drain.
   */
  private async closeThenReport (drainDeadline?: NodeJS.Timeout): Promise<void> {
    const closeStart = performance.now()
    await this.closeFastify()
    if (this.forcedBy !== null) return
    this.phases.closeMs = elapsedSince(closeStart)
    // The drain and the close are done: from here the telemetry flush has its own bound.
    if (drainDeadline !== undefined) this.clearTimer(drainDeadline)
    await this.flushTelemetry(this.options.telemetryTimeout)
    if (this.forcedBy !== null) return
    this.finish()
  }

  private async forced (): Promise<void> {
    const forceStart = performance.now()
    const { forceTimeout } = this.options
    this.clearTimers()
    this.wakePreStop?.()
    this.preStopEnded!()
    this.serving = false
    this.state = STATE.FORCING
    this.openRequests = this.connections.openRequests(Date.now())
    this.log.warn({ forcedBy: this.forcedBy, forceTimeoutMs: forceTimeout, openRequests: this.openRequests }, 'forcing shutdown')

    this.tellParticipants('forced')
    // Telemetry first: the spans of the requests about to be cut are ended and exported, not lost.
    this.cutSpans += this.ownTelemetry?.cut(this.connections.openRequestTelemetry()) ?? 0
    const telemetry = this.flushTelemetry(forceTimeout)
    const work = (async () => {
      this.connections.destroyAll()
      await this.closeFastify()
      await telemetry
    })()
    if (!(await withinDeadline(work, forceTimeout))) {
      this.errors.push(`force path did not finish within forceTimeout (${forceTimeout} ms)`)
    }
    this.phases.forceMs = elapsedSince(forceStart)
    this.finish()
  }

  /**
   * Records the shutdown's own spans and metrics, then shuts the telemetry down so they leave with the rest.
   * Started once; the force path joins a flush already under way.
   */
  private flushTelemetry (boundMs: number): Promise<TelemetryOutcome> | null {
    if (this.options.telemetry.length === 0) return null
    if (this.telemetry === null) {
      this.ownTelemetry?.finished(this.draftReport())
      const start = performance.now()
      this.telemetry = shutDownTelemetry(this.options.telemetry, boundMs, this.cutSpans).then((outcome) => {
        this.phases.telemetryMs = elapsedSince(start)
        this.telemetryOutcome = outcome
        return outcome
      })
    }
    return this.telemetry
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
        this.errors.push(`${participant.name} failed when ${event === 'forced' ? 'forced' : 'draining started'}: ${messageOf(err)}`)
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
          this.fastifyCloseFailed = true
          this.errors.push(`fastify.close() failed: ${messageOf(err)}`)
          this.log.error({ err }, 'fastify.close() failed')
        }
        resolve()
        return this.completion!
      }
      this.fastify.close(closed as unknown as () => void)
    })
    return this.fastifyClose
  }

  /**
   * Shutdown timers stay referenced: they are what guarantees the end. An unreferenced deadline would let
   * the process exit 0 silently when a stuck hook leaves nothing else on the event loop.
   */
  private timer (fn: () => void, ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      fn()
    }, ms)
    this.timers.add(timer)
    return timer
  }

  private clearTimer (timer: NodeJS.Timeout): void {
    clearTimeout(timer)
    this.timers.delete(timer)
  }

  private clearTimers (): void {
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
  }

  private draftReport (): Omit<ShutdownReport, 'telemetry' | 'connections' | 'unreadConnections'> {
    const forced = this.forcedBy !== null
    return {
      trigger: this.trigger!,
      outcome: forced ? 'forced' : 'completed',
      ...(forced ? { forcedBy: this.forcedBy! } : {}),
      exitCode: forced || this.trigger!.type === 'error' || this.fastifyCloseFailed ? 1 : 0,
      startedAt: this.startedAtIso,
      durationMs: elapsedSince(this.startedAt),
      phases: Object.freeze({ ...this.phases }),
      completedRequests: this.responses.completed,
      rejectedRequests: this.rejectedRequests,
      abortedRequests: this.requestSignals.aborted,
      openRequests: Object.freeze(this.openRequests),
      tasks: this.tasks.report(),
      errors: Object.freeze([...this.errors])
    }
  }

  private finish (): void {
    if (this.report) return
    this.clearTimers()
    this.responses.end()
    this.state = STATE.CLOSED
    const telemetry = this.options.telemetry.length === 0
      ? {}
      : { telemetry: this.telemetryOutcome ?? unconfirmedTelemetry(this.options.telemetry.length, this.cutSpans) }
    const connections = Object.fromEntries([
      ['http', Object.freeze(this.connections.outcome())],
      ...this.participants.flatMap((participant) =>
        participant.outcome === undefined ? [] : [[participant.name, Object.freeze(participant.outcome())]])
    ])
    this.report = Object.freeze({
      ...this.draftReport(),
      connections: Object.freeze(connections),
      unreadConnections: Object.freeze(this.connections.unread.map((connection) => Object.freeze({ ...connection }))),
      ...telemetry
    })
    const { trigger, ...fields } = this.report
    this.log.info({ ...fields, ...triggerFields(trigger) }, this.forcedBy !== null ? 'shutdown forced' : 'shutdown complete')
    this.settle(this.report)
  }
}

/** The force path's bound passed while the telemetry was still shutting down. */
function unconfirmedTelemetry (targets: number, cutSpans: number): TelemetryOutcome {
  return Object.freeze({
    confirmed: false,
    targets,
    failed: Object.freeze(['the force path ended before the telemetry confirmed']),
    timedOut: true,
    cutSpans
  })
}
