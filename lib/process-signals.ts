import closeWithGrace = require('close-with-grace')
import type { ShutdownReport, ShutdownTrigger } from '../types'
import { CLOSE_WITH_GRACE_SIGNALS, closeWithGraceListeners } from './foreign-signal-listeners'

/** One app taking part in the process-wide handling of signals and fatal errors. */
export interface SignalParticipant {
  readonly signals: readonly NodeJS.Signals[]
  /** Starts (or joins) the scheduled shutdown. */
  run (trigger: ShutdownTrigger): Promise<ShutdownReport>
  /** A further signal arrived: the force path. */
  force (trigger: ShutdownTrigger): void
  /** Called once every app has finished, with the worst exit code among them; false when it does not exit. */
  exit (code: number): Promise<boolean>
  /** A fatal error arrived while shutting down: the force path. */
  fatalDuringShutdown (err: unknown): void
  /** Signal listeners that are not ours, seen when a signal arrives. */
  warnForeignListeners (signal: NodeJS.Signals): void
}

/**
 * Tells the first signal's duplicate (a Ctrl-C that npm or a terminal forwards twice) from a deliberate
 * second signal: the same signal within `windowMs` of the first is a duplicate.
 */
export class DuplicateSignalWindow {
  private first: { signal: NodeJS.Signals, at: number } | null = null

  constructor (private readonly windowMs: number) {}

  /** Notes the trigger that started the shutdown. */
  started (trigger: ShutdownTrigger): void {
    if (trigger.type === 'signal') this.first ??= { signal: trigger.signal, at: performance.now() }
  }

  /** Milliseconds since the first signal when `trigger` duplicates it; null for a deliberate one. */
  duplicate (trigger: ShutdownTrigger): number | null {
    const sinceFirstMs = this.first === null ? Infinity : performance.now() - this.first.at
    const same = trigger.type === 'signal' && trigger.signal === this.first?.signal
    return same && sinceFirstMs < this.windowMs ? sinceFirstMs : null
  }
}

const FATAL_ERRORS = ['uncaughtException', 'unhandledRejection'] as const

/**
 * Signals and fatal errors belong to the process, not to one app: one set of listeners serves every
 * registered app, so two apps both drain on one SIGTERM and a hundred apps add no more listeners than one.
 *
 * close-with-grace sequences the shutdown, entered through its `close()`. Its events are all `skip`ped and
 * listened for here, as its README allows, because what it does on a second signal or error cannot be the
 * force path: `onSecondSignal` and `onSecondError` are followed by a synchronous `process.exit(1)`, which
 * would drop the requests in flight and every queued span without a report, and the force path needs async
 * work bounded by forceTimeout. Its own `process.exit()` once the shutdown settles is not used either: the
 * exit is the `exit` option's, so the shutdown it runs never settles.
 */
class SignalHub {
  private readonly participants = new Set<SignalParticipant>()
  private readonly listenedSignals = new Set<NodeJS.Signals>()
  private graceful: ReturnType<typeof closeWithGrace> | null = null
  private firstTrigger: ShutdownTrigger | null = null
  private running: SignalParticipant[] = []

  join (participant: SignalParticipant): void {
    this.participants.add(participant)
    for (const signal of participant.signals) {
      if (this.listenedSignals.has(signal)) continue
      this.listenedSignals.add(signal)
      process.on(signal, this.onSignal)
    }
    if (this.graceful !== null) return
    this.graceful = closeWithGrace({
      delay: null,
      logger: false,
      skip: [...CLOSE_WITH_GRACE_SIGNALS, ...FATAL_ERRORS, 'beforeExit']
    }, this.shutDownAll)
    for (const event of FATAL_ERRORS) process.on(event, this.onFatalError)
  }

  leave (participant: SignalParticipant): void {
    this.participants.delete(participant)
    if (this.firstTrigger === null) this.release()
  }

  readonly isOurs = (listener: unknown): boolean => listener === this.onSignal

  private release (): void {
    const stillWanted = new Set([...this.participants].flatMap((participant) => participant.signals))
    for (const signal of this.listenedSignals) {
      if (stillWanted.has(signal)) continue
      this.listenedSignals.delete(signal)
      process.removeListener(signal, this.onSignal)
    }
    if (this.participants.size === 0 && this.graceful !== null) {
      this.graceful.uninstall()
      this.graceful = null
      for (const event of FATAL_ERRORS) process.removeListener(event, this.onFatalError)
    }
  }

  private readonly onSignal = (signal: NodeJS.Signals): void => {
    const trigger: ShutdownTrigger = { type: 'signal', signal }
    const concerned = [...this.participants].filter((participant) => participant.signals.includes(signal))
    if (this.firstTrigger === null) {
      for (const participant of concerned) participant.warnForeignListeners(signal)
      this.start(trigger)
      // Another close-with-grace (fastify-cli's) swaps in its exit-at-once listeners later in this same emit.
      process.nextTick(this.takeOverSecondSignals)
      return
    }
    for (const participant of concerned) participant.force(trigger)
  }

  private readonly onFatalError = (err: unknown): void => {
    if (this.firstTrigger === null) {
      this.start({ type: 'error', error: err })
      return
    }
    for (const participant of this.running) participant.fatalDuringShutdown(err)
  }

  private start (trigger: ShutdownTrigger): void {
    this.firstTrigger = trigger
    this.graceful!.close()
  }

  /**
   * Another close-with-grace calls `process.exit(1)` on any later signal, a Ctrl-C forwarded twice (npm, a
   * terminal) included, cutting the requests in flight and the report. On our signals the force path takes
   * its place: a duplicate within duplicateSignalWindow is ignored, a deliberate one still forces, bounded by
   * forceTimeout and reported.
   */
  private readonly takeOverSecondSignals = (): void => {
    const exitsAtOnce = closeWithGraceListeners(this.isOurs)
    for (const signal of this.listenedSignals) {
      for (const listener of exitsAtOnce) process.removeListener(signal, listener as (signal: NodeJS.Signals) => void)
    }
  }

  private readonly shutDownAll = async (): Promise<void> => {
    const trigger = this.firstTrigger!
    this.running = [...this.participants].filter((participant) =>
      trigger.type !== 'signal' || participant.signals.includes(trigger.signal))
    const reports = await Promise.all(this.running.map((participant) => participant.run(trigger)))
    const exitCode = Math.max(0, ...reports.map((report) => report.exitCode))
    const exited = (await Promise.all(this.running.map((participant) => participant.exit(exitCode)))).some(Boolean)
    this.running = []
    if (!exited) {
      this.firstTrigger = null
      this.release()
    }
    return new Promise(() => {})
  }
}

export const signalHub = new SignalHub()
