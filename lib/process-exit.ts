import type { FastifyBaseLogger } from 'fastify'
import type { ExitFunction } from '../types'
import { logWritesSettled } from './log-flush'
import { pm2LogWritten, type Pm2Process } from './pm2'

/**
 * The one exit of an app's shutdown, whoever ends it first (the signal hub, `start()`, `force()`): called
 * once, after the log lines before it have been written, so the report is the last line out.
 */
export class ProcessExit {
  private exited = false
  private decided!: () => void
  /** Settles once the exit has been called (a real one never returns) or declined (`exit: false`). */
  readonly settled: Promise<void> = new Promise((resolve) => { this.decided = resolve })

  constructor (
    private readonly exit: ExitFunction | false,
    private readonly log: FastifyBaseLogger,
    private readonly pm2: Pm2Process | null
  ) {}

  /** Exits with `code` unless it already has; false when it never exits (`exit: false`). */
  readonly once = async (code: number): Promise<boolean> => {
    const exit = this.exit
    if (exit === false) {
      this.decided()
      return false
    }
    if (!this.exited) {
      this.exited = true
      await logWritesSettled(this.log)
      await pm2LogWritten(this.pm2)
      exit(code)
      this.decided()
    }
    return true
  }
}
