/** The timer functions a deadline uses: Node's by default, injectable for tests. */
export interface Timers {
  setTimeout (fn: () => void, ms: number): unknown
  clearTimeout (handle: unknown): void
}

/**
 * Referenced, like every shutdown timer: a deadline is what guarantees the end, and an unreferenced one would
 * let the process exit 0 silently when what it bounds leaves nothing else on the event loop.
 */
const REFERENCED: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout)
}

/**
 * Races `work` against a timer of `ms`: true when the work settled first, false when the time ran out. The
 * timer is cleared as soon as either wins; a rejection of the work rejects the race.
 */
export async function withinDeadline (work: Promise<unknown>, ms: number, timers: Timers = REFERENCED): Promise<boolean> {
  let handle: unknown
  const timeout = new Promise<false>((resolve) => { handle = timers.setTimeout(() => resolve(false), ms) })
  try {
    return await Promise.race([work.then(() => true), timeout])
  } finally {
    timers.clearTimeout(handle)
  }
}

/** The deadlines of one shutdown, on one set of timers, so that the force path can end every one at once. */
export class Deadlines {
  private readonly pending = new Set<unknown>()

  constructor (private readonly timers: Timers = REFERENCED) {}

  /** Calls `expired` once `ms` have passed, unless the returned function cancels it first. */
  start (ms: number, expired: () => void): () => void {
    const handle = this.timers.setTimeout(() => {
      this.pending.delete(handle)
      expired()
    }, ms)
    this.pending.add(handle)
    return () => {
      this.timers.clearTimeout(handle)
      this.pending.delete(handle)
    }
  }

  /** {@link withinDeadline} on these timers. */
  within (work: Promise<unknown>, ms: number): Promise<boolean> {
    return withinDeadline(work, ms, this.timers)
  }

  cancelAll (): void {
    for (const handle of this.pending) this.timers.clearTimeout(handle)
    this.pending.clear()
  }
}
