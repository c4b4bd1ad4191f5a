import type { FastifyBaseLogger } from 'fastify'
import type { ShutdownTask, TaskOutcome } from '../types'
import { withinDeadline } from './deadline'
import { ERR_INVALID_OPTION, ERR_TASK_CUT, ERR_TASK_TIMEOUT, ERR_TASK_TOO_LATE } from './errors'
import { describe, MAX_TIMER_MS } from './options'
import type { DrainParticipant, ReportPart } from './drain-participant'

interface Registered extends Required<Pick<ShutdownTask, 'name' | 'phase'>> {
  readonly timeout: number
  readonly run: ShutdownTask['run']
}

/**
 * The app's own work in the shutdown: when draining starts, tasks run phase by phase (all of a phase at
 * once, the next phase when they have all settled), each under its own timeout, beside the HTTP drain.
 * A task that throws or runs late is reported and never holds the others back; the drain deadline still
 * bounds the whole.
 */
export class ShutdownTasks implements DrainParticipant {
  readonly name = 'shutdown tasks'
  private readonly tasks: Registered[] = []
  private readonly outcomes: TaskOutcome[] = []
  private readonly running = new Map<Registered, { controller: AbortController, startedAt: number, settle: (outcome: TaskOutcome) => void }>()
  private started = false
  private done: Promise<void> = Promise.resolve()

  constructor (private readonly defaultTimeout: number, private readonly log: FastifyBaseLogger) {}

  add (task: ShutdownTask): void {
    if (this.started) throw new ERR_TASK_TOO_LATE(String(task?.name))
    const { name, run, phase = 0, timeout = this.defaultTimeout } = task ?? {}
    if (typeof name !== 'string' || name.length === 0 || this.tasks.some((known) => known.name === name)) {
      throw new ERR_INVALID_OPTION('task.name', 'a non-empty name no other task has', describe(name))
    }
    if (typeof run !== 'function') throw new ERR_INVALID_OPTION('task.run', 'a function', `\`${typeof run}\``)
    if (!Number.isSafeInteger(phase)) throw new ERR_INVALID_OPTION('task.phase', 'a whole number', describe(phase))
    if (typeof timeout !== 'number' || !(timeout >= 0) || timeout > MAX_TIMER_MS) {
      throw new ERR_INVALID_OPTION('task.timeout', `a number of milliseconds from 0 to ${MAX_TIMER_MS}`, describe(timeout))
    }
    this.tasks.push({ name, run, phase, timeout })
  }

  /** Settles when every phase has run; at once when there are no tasks. */
  settled (): Promise<void> {
    return this.done
  }

  reportPart (): ReportPart {
    return { tasks: Object.freeze([...this.outcomes]) }
  }

  drainStarted (): void {
    if (this.started) return
    this.started = true
    this.done = this.runPhases()
  }

  forced (): void {
    this.started = true
    for (const [task, { controller, startedAt, settle }] of this.running) {
      controller.abort(new ERR_TASK_CUT(task.name))
      settle({ name: task.name, phase: task.phase, outcome: 'cut', durationMs: Math.round(performance.now() - startedAt) })
    }
  }

  private async runPhases (): Promise<void> {
    const phases = [...new Set(this.tasks.map((task) => task.phase))].sort((a, b) => a - b)
    for (const phase of phases) {
      await Promise.all(this.tasks.filter((task) => task.phase === phase).map((task) => this.runOne(task)))
    }
  }

  private async runOne (task: Registered): Promise<void> {
    const controller = new AbortController()
    const startedAt = performance.now()
    let over!: () => void
    const settled = new Promise<void>((resolve) => { over = resolve })
    const settle = (outcome: TaskOutcome): void => {
      if (!this.running.has(task)) return
      this.running.delete(task)
      this.outcomes.push(Object.freeze(outcome))
      const fields = { task: task.name, phase: task.phase, durationMs: outcome.durationMs }
      if (outcome.outcome === 'completed') this.log.info(fields, 'shutdown task completed')
      else this.log.warn({ ...fields, outcome: outcome.outcome, err: outcome.error }, 'shutdown task did not complete')
      over()
    }
    const elapsed = (): number => Math.round(performance.now() - startedAt)
    this.running.set(task, { controller, startedAt, settle })
    Promise.resolve()
      .then(() => task.run(controller.signal))
      .then(
        () => settle({ name: task.name, phase: task.phase, outcome: 'completed', durationMs: elapsed() }),
        (err: unknown) => settle({ name: task.name, phase: task.phase, outcome: 'failed', durationMs: elapsed(), error: err instanceof Error ? err.message : String(err) })
      )
    if (await withinDeadline(settled, task.timeout)) return
    const error = new ERR_TASK_TIMEOUT(task.name, task.timeout)
    controller.abort(error)
    settle({ name: task.name, phase: task.phase, outcome: 'timed-out', durationMs: elapsed(), error: error.message })
  }
}
