import type { TelemetryOutcome, TelemetryTarget } from '../types'
import { withinDeadline } from './deadline'

/**
 * Shuts every target down at once and waits for all of them, at most `boundMs`. `shutdown()`, not
 * `forceFlush()`: a batch processor's `forceFlush()` does not wait for an export already under way, and
 * `shutdown()` does, so only it confirms that what was recorded has left the process.
 */
export async function shutDownTelemetry (
  targets: readonly TelemetryTarget[],
  boundMs: number,
  cutSpans: number
): Promise<TelemetryOutcome> {
  const failed: string[] = []
  let settled = 0
  const all = Promise.all(targets.map(async (target, index) => {
    try {
      await target.shutdown()
    } catch (err) {
      failed.push(`target ${index}: ${err instanceof Error ? err.message : String(err)}`)
    } finally {
      settled++
    }
  }))

  const timedOut = !(await withinDeadline(all, boundMs))
  if (timedOut) failed.push(`${targets.length - settled} of ${targets.length} did not confirm within ${boundMs} ms`)
  return Object.freeze({
    confirmed: !timedOut && failed.length === 0,
    targets: targets.length,
    failed: Object.freeze(failed),
    timedOut,
    cutSpans
  })
}
