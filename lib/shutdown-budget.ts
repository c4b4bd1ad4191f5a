import type { FastifyBaseLogger } from 'fastify'
import type { ResolvedShutdownOptions } from '../types'
import { ERR_BUDGET_EXCEEDED } from './errors'

/**
 * What the longest shutdown adds up to: the pre-stop window, a drain that runs to its deadline, the telemetry
 * flush (when there is telemetry), and a force path started by a signal at the last moment.
 */
export function budgetTerms (options: ResolvedShutdownOptions): [name: string, ms: number][] {
  return [
    ['preStopDelay', options.preStopDelay],
    ['drainTimeout', options.drainTimeout],
    ...(options.telemetry.length > 0 ? [['telemetryTimeout', options.telemetryTimeout] as [string, number]] : []),
    ['forceTimeout', options.forceTimeout]
  ]
}

export function worstCaseMs (options: ResolvedShutdownOptions): number {
  return budgetTerms(options).reduce((sum, [, ms]) => sum + ms, 0)
}

/** The terms as log fields: `preStopDelayMs`, `drainTimeoutMs`... */
export function budgetFields (options: ResolvedShutdownOptions): Record<string, number> {
  return Object.fromEntries(budgetTerms(options).map(([name, ms]) => [`${name}Ms`, ms]))
}

/** At register: timeouts that cannot fit in `gracePeriod` at all are refused. */
export function assertBudgetFits (options: ResolvedShutdownOptions): void {
  const worstCase = worstCaseMs(options)
  if (worstCase > options.gracePeriod) {
    const terms = budgetTerms(options).map(([name, ms]) => `\`${name}\` (${ms} ms)`).join(' + ')
    throw new ERR_BUDGET_EXCEEDED(`${terms} = ${worstCase} ms`, options.gracePeriod)
  }
}

/**
 * Slack kept between the worst case and SIGKILL: the kubelet's clock, a slow node and the exit itself all
 * take some of the grace period.
 */
export const KILL_MARGIN_MS = 2_000

/**
 * `register` already refuses timeouts that cannot fit in `gracePeriod` at all; this warns when they fit
 * with less than `KILL_MARGIN_MS` to spare, since SIGKILL at the end of the grace period loses everything.
 */
export function warnIfBudgetIsTight (log: FastifyBaseLogger, options: ResolvedShutdownOptions): void {
  const worstCase = worstCaseMs(options)
  if (worstCase + KILL_MARGIN_MS <= options.gracePeriod) return
  log.warn(
    { ...budgetFields(options), worstCaseMs: worstCase, marginMs: KILL_MARGIN_MS, gracePeriodMs: options.gracePeriod },
    'the shutdown budget leaves less than %d ms before SIGKILL; raise terminationGracePeriodSeconds or shorten the timeouts',
    KILL_MARGIN_MS
  )
}
