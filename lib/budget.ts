import type { FastifyBaseLogger } from 'fastify'
import type { ResolvedShutdownOptions } from '../types'
import { budgetTerms, worstCaseMs } from './options'

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
  const terms = Object.fromEntries(budgetTerms(options).map(([name, ms]) => [`${name}Ms`, ms]))
  log.warn(
    { ...terms, worstCaseMs: worstCase, marginMs: KILL_MARGIN_MS, gracePeriodMs: options.gracePeriod },
    'the shutdown budget leaves less than %d ms before SIGKILL; raise terminationGracePeriodSeconds or shorten the timeouts',
    KILL_MARGIN_MS
  )
}
