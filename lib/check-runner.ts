import { constants } from 'node:os'
import type { ResolvedShutdownOptions } from '../types'
import type { Environment, OptionsSource } from './check-options'
import type { CheckRecord, Subject } from './check-rules'
import { GRACE_PERIOD_ENV } from './options'
import { budgetTerms, KILL_MARGIN_MS, worstCaseMs } from './shutdown-budget'

/** What every runner's rules are checked with. */
export interface CheckContext {
  readonly record: CheckRecord
  readonly source: OptionsSource
  /** Whether `--only` lets the container, Compose service or PM2 app named `name` be checked; recorded as skipped if not. */
  selected (subject: Subject, name: string): boolean
}

/** When a runner SIGKILLs the app after its stop signal, as its configuration says. */
export interface Deadline {
  readonly ms: number
  /** The setting in the runner's words: `terminationGracePeriodSeconds 30`, `TimeoutStopSec=16`, `kill_timeout (PM2's default)`. */
  readonly setting: string
  /** The setting that would allow `ms` milliseconds, in the runner's words. */
  fitting (ms: number): string
}

/** A wait the runner adds before its stop signal, inside the same deadline: a preStop sleep. */
export interface WaitBefore {
  readonly name: string
  readonly ms: number
}

/** The options as the app resolves them in the environment a runner gives it; null where `register` would refuse them. */
export async function optionsIn (record: CheckRecord, subject: Subject, source: OptionsSource, env: Environment): Promise<ResolvedShutdownOptions | null> {
  const resolved = await source.resolveIn(env)
  record.rule(subject, 'options-invalid', 'error' in resolved && {
    message: `register would refuse the options in this environment: ${resolved.error}`,
    fix: 'fix the option, or the environment variable it is read from'
  })
  return 'options' in resolved ? resolved.options : null
}

/** `preStopDelay 0 + drainTimeout 15000 + forceTimeout 3000` */
export function budgetSum (options: ResolvedShutdownOptions): string {
  return budgetTerms(options).map(([name, ms]) => `${name} ${ms}`).join(' + ')
}

/** Every runner's rule: the whole shutdown, and the margin `register` asks for, before its SIGKILL. */
export function checkBudget (record: CheckRecord, subject: Subject, options: ResolvedShutdownOptions, deadline: Deadline, before?: WaitBefore): void {
  const worstCase = worstCaseMs(options)
  const total = (before?.ms ?? 0) + worstCase + KILL_MARGIN_MS
  record.rule(subject, 'budget-exceeds-grace', total > deadline.ms && {
    message: `${before === undefined ? '' : `${before.name} ${before.ms} ms + `}shutdown worst case ${worstCase} ms (${budgetSum(options)}) + ${KILL_MARGIN_MS} ms margin = ${total} ms, more than the ${deadline.ms} ms of ${deadline.setting}: SIGKILL can cut the drain`,
    fix: `${deadline.fitting(total)}, or shorten the timeouts`
  })
}

/** `register` checks the budget against `gracePeriod`: it must be the runner's own deadline, passed down. */
export function checkGracePassedDown (record: CheckRecord, subject: Subject, options: ResolvedShutdownOptions, deadline: Deadline): void {
  record.rule(subject, 'grace-period-not-passed', options.gracePeriod !== deadline.ms && {
    message: `the plugin's gracePeriod is ${options.gracePeriod} ms, ${deadline.setting} allows ${deadline.ms} ms: register checks the budget against the wrong figure`,
    fix: Number.isFinite(deadline.ms)
      ? `pass it down: ${GRACE_PERIOD_ENV}=${deadline.ms / 1000} in the app's environment (or gracePeriod: ${deadline.ms})`
      : 'gracePeriod: Infinity'
  })
}

/** `SIGTERM`, `TERM` or `15`, as Docker and systemd take a signal, by its full name. */
function signalName (signal: string): string {
  const upper = signal.trim().toUpperCase()
  if (/^\d+$/.test(upper)) {
    return Object.entries(constants.signals).find(([, number]) => number === Number(upper))?.[0] ?? upper
  }
  return upper.startsWith('SIG') ? upper : `SIG${upper}`
}

/** The signal a runner stops the app with must be one the plugin listens for, or Node's default action ends it. */
export function checkStopSignal (record: CheckRecord, subject: Subject, options: ResolvedShutdownOptions, signal: string, setting: string): void {
  // The app listens for signals itself and calls `start()`: which ones it handles is its own code's business.
  if (!options.handleSignals) return
  const name = signalName(signal)
  record.rule(subject, 'stop-signal-unhandled', !options.signals.includes(name as NodeJS.Signals) && {
    message: `the app is stopped with ${name} (${setting}), which the plugin does not handle (signals: ${options.signals.join(', ')}): the process ends at once, nothing drains`,
    fix: `stop it with ${options.signals[0]}, or add ${name} to the plugin's signals`
  })
}
