import type { Test } from 'tap'
import type { ReplicaResult } from './index.mjs'

/**
 * What every replica the plugin drains in a rolling restart must show, behind any load balancer: it exited 0
 * by itself within the grace period, logged a clean report, and kept its listener for the pre-stop delay.
 */
export function assertDrainedByItself (t: Test, replica: ReplicaResult, what: string, limits: { gracePeriodMs: number, preStopDelayMs: number }): void {
  t.equal(replica.killed, false, `${what} was not SIGKILLed`)
  t.equal(replica.exitCode, 0, `${what} exited 0 by itself`, { stderr: replica.stderr })
  t.ok(replica.sigtermToExitMs < limits.gracePeriodMs, `${what} exited ${replica.sigtermToExitMs} ms after SIGTERM, within the grace period`)
  t.match(replica.report, { msg: 'shutdown complete', outcome: 'completed', exitCode: 0, openRequests: [] }, `${what} logged its report`)
  t.ok(replica.listenerClosedAfterMs !== null && replica.listenerClosedAfterMs >= limits.preStopDelayMs,
    `${what} kept its listener open for the pre-stop delay (closed after ${replica.listenerClosedAfterMs} ms)`)
}
