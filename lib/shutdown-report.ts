import type { OpenRequest, ShutdownPhases, ShutdownReport, ShutdownTrigger, TaskOutcome, TelemetryOutcome } from '../types'
import type { ConnectionTracker } from './connections'
import type { DrainGate } from './request-gate'
import type { DrainParticipant, ReportPart } from './drain-participant'
import type { ResponseWatcher } from './response-watcher'

export type ForcedBy = NonNullable<ShutdownReport['forcedBy']>

/** The report before the connections have ended and the telemetry has been shut down. */
export type DraftReport = Omit<ShutdownReport, 'telemetry' | 'connections' | 'unreadConnections'>

/** Who counts what the report tells: each is asked only when the report is drafted or built. */
export interface ReportSources {
  readonly connections: Pick<ConnectionTracker, 'outcome' | 'unread'>
  readonly responses: Pick<ResponseWatcher, 'completed'>
  /** Counts the requests the request gate answered 503. */
  readonly gate: Pick<DrainGate, 'rejectedRequests'>
  readonly participants: readonly DrainParticipant[]
  /** How many telemetry targets the app gave: none leaves `telemetry` out of the report. */
  readonly telemetryTargets: number
}

const elapsedSince = (start: number): number => Math.round(performance.now() - start)

/**
 * Gathers a shutdown's report as it goes: the sequence tells it when the shutdown started, each phase's
 * duration, what failed and why the force path ran; the sources give their counts when it is drafted.
 */
export class ShutdownReportBuilder {
  /** Why the force path ran; null while it has not. */
  forcedBy: ForcedBy | null = null
  /** The requests the force path found open. */
  openRequests: readonly OpenRequest[] = []
  /** Spans the force path ended. */
  cutSpans = 0
  /** An `onClose` hook failed: what it closes may not be, so the exit is not clean. */
  closeFailed = false
  /** When the shutdown started, on `performance.now()`'s clock. */
  startedAt = 0
  private trigger: ShutdownTrigger | null = null
  private startedAtIso = ''
  private readonly phases: { -readonly [K in keyof ShutdownPhases]: ShutdownPhases[K] } = {}
  private readonly errors: string[] = []
  private telemetry: TelemetryOutcome | null = null

  constructor (private readonly sources: ReportSources) {}

  start (trigger: ShutdownTrigger): void {
    this.trigger = trigger
    this.startedAt = performance.now()
    this.startedAtIso = new Date().toISOString()
  }

  /** Records a phase that began at `since` (`performance.now()`) and has just ended; returns its duration. */
  phaseEnded (name: keyof ShutdownPhases, since: number): number {
    const ms = elapsedSince(since)
    this.phases[name] = ms
    return ms
  }

  error (message: string): void {
    this.errors.push(message)
  }

  telemetryShutDown (outcome: TelemetryOutcome): void {
    this.telemetry = outcome
  }

  /** What is known before the connections' and the telemetry's outcomes: the shutdown's own telemetry records it. */
  draft (parts = this.parts()): DraftReport {
    const forced = this.forcedBy !== null
    const trigger = this.trigger!
    let abortedRequests = 0
    let tasks: readonly TaskOutcome[] = Object.freeze([])
    for (const [, part] of parts) {
      abortedRequests += part.abortedRequests ?? 0
      tasks = part.tasks ?? tasks
    }
    return {
      trigger,
      outcome: forced ? 'forced' : 'completed',
      ...(forced ? { forcedBy: this.forcedBy! } : {}),
      exitCode: forced || trigger.type === 'error' || this.closeFailed ? 1 : 0,
      startedAt: this.startedAtIso,
      durationMs: elapsedSince(this.startedAt),
      phases: Object.freeze({ ...this.phases }),
      completedRequests: this.sources.responses.completed,
      rejectedRequests: this.sources.gate.rejectedRequests,
      abortedRequests,
      openRequests: Object.freeze(this.openRequests),
      tasks,
      errors: Object.freeze([...this.errors])
    }
  }

  /** The report, frozen: once the connections have ended, and the telemetry has been shut down or given up on. */
  build (): ShutdownReport {
    const { connections, telemetryTargets } = this.sources
    const parts = this.parts()
    const outcomes = Object.fromEntries([
      ['http', Object.freeze(connections.outcome())],
      ...parts.flatMap(([name, part]) => part.connections === undefined ? [] : [[name, Object.freeze(part.connections)]])
    ])
    const telemetry = telemetryTargets === 0
      ? {}
      : { telemetry: this.telemetry ?? unconfirmedTelemetry(telemetryTargets, this.cutSpans) }
    return Object.freeze({
      ...this.draft(parts),
      connections: Object.freeze(outcomes),
      unreadConnections: Object.freeze(connections.unread.map((connection) => Object.freeze({ ...connection }))),
      ...telemetry
    })
  }

  /** Each participant's part as it stands now, under the participant's name: asked once per draft or report. */
  private parts (): Array<[name: string, part: ReportPart]> {
    return this.sources.participants.flatMap((participant) =>
      participant.reportPart === undefined ? [] : [[participant.name, participant.reportPart()]])
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

function describeTrigger (trigger: ShutdownTrigger): Record<string, unknown> {
  switch (trigger.type) {
    case 'signal': return { type: 'signal', signal: trigger.signal }
    case 'manual': return { type: 'manual', reason: trigger.reason }
    case 'error': return { type: 'error' }
    case 'prestop-route': return { type: 'prestop-route' }
  }
}

/** Log fields for a trigger: an error goes under the top-level `err`, the only place pino serializes it. */
export function triggerFields (trigger: ShutdownTrigger): Record<string, unknown> {
  const fields: Record<string, unknown> = { trigger: describeTrigger(trigger) }
  if (trigger.type === 'error') fields.err = trigger.error
  return fields
}

/** The report as one log line: its fields, the trigger described as at the start. */
export function reportLogFields (report: ShutdownReport): Record<string, unknown> {
  const { trigger, ...fields } = report
  return { ...fields, ...triggerFields(trigger) }
}
