import type { TaskOutcome } from '../types'

/** What one participant adds to the report. */
export interface ReportPart {
  /** Its counts of how things ended, under `connections.<name>`. */
  readonly connections?: Readonly<Record<string, number>>
  readonly abortedRequests?: number
  readonly tasks?: readonly TaskOutcome[]
}

/**
 * Long-lived work that a drain must end by itself: WebSockets, HTTP/2 sessions, the app's shutdown tasks,
 * request signals. Each is told when draining starts and when the force path runs; what it holds open
 * (sockets, sessions) is what the server's own close waits for.
 */
export interface DrainParticipant {
  readonly name: string
  /** The listener has just closed: ask everything open to wind down. */
  drainStarted (): void
  /** The force path: stop waiting, end what is left. */
  forced (): void
  /** Work the drain waits for besides the connections, e.g. shutdown tasks. */
  settled? (): Promise<void>
  /** Its part of the report, as it stands now: asked when the report is drafted and when it is built. */
  reportPart? (): ReportPart
}
