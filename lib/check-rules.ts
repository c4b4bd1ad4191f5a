/**
 * Every rule `fastify-shutdown check` holds a deployment to, by its stable id, with its level: an error makes
 * the command exit 1, a warning is reported only. docs/check.md has a row for each.
 */
export const CHECK_RULES = Object.freeze({
  'options-invalid': 'error',
  'budget-exceeds-grace': 'error',
  'grace-period-not-passed': 'warning',
  'stop-signal-unhandled': 'error',
  'prestop-counted-twice': 'error',
  'prestop-too-short': 'error',
  'readiness-probe-missing': 'warning',
  'probe-path': 'error',
  'probe-port': 'error',
  'probe-server-loopback': 'error',
  'probe-port-exposed': 'error',
  'prestop-hook-route': 'error',
  'prestop-hook-header': 'error',
  'pdb-blocks-eviction': 'warning',
  'npm-start': 'error',
  'shell-form': 'warning',
  'fastify-cli-close-grace-delay': 'error',
  'nodemon-signal': 'warning',
  'tsx-watch-timeout': 'warning',
  'pm2-fork-mode': 'warning',
  'pm2-prestop-delay': 'warning',
  'systemd-kill-mode': 'warning'
} as const)

export type RuleId = keyof typeof CHECK_RULES
export type Level = (typeof CHECK_RULES)[RuleId]

/** What a rule is about: a file, the line where it starts, and the object in words (`Deployment/api container app`). */
export interface Subject {
  readonly file: string
  readonly line?: number
  readonly object: string
}

/** A rule a subject breaks: one line with the numbers, and how to fix it. */
export interface Problem {
  readonly message: string
  readonly fix: string
  /** Where the problem lies, when that is another object than the subject (the Service exposing a port). */
  readonly at?: Subject
}

export interface Finding extends Subject {
  readonly id: RuleId
  readonly level: Level
  readonly message: string
  readonly fix: string
}

/** A subject and the rules held against it, broken or not: a clean result says what it checked. */
export interface Checked extends Subject {
  readonly rules: RuleId[]
}

/** Something read but not checked (a kind the command does not know, an object `--only` leaves out), and why. */
export interface Skipped extends Subject {
  readonly reason: string
}

/** What the command could not take into account (an environment variable from a Secret not among the inputs). */
export interface Note extends Subject {
  readonly note: string
}

/** Collects, while the rules run, what they found, what they checked, and what was left aside. */
export class CheckRecord {
  readonly findings: Finding[] = []
  readonly skipped: Skipped[] = []
  readonly notes: Note[] = []
  /** By file and object: a subject's line may point at the setting a rule reads, it is still one object. */
  private readonly byObject = new Map<string, Checked>()

  /** `rule` was held against `subject`: broken when a problem is given. */
  rule (subject: Subject, rule: RuleId, problem?: Problem | false): void {
    const key = `${subject.file}\0${subject.object}`
    let checked = this.byObject.get(key)
    if (checked === undefined) {
      checked = { file: subject.file, line: subject.line, object: subject.object, rules: [] }
      this.byObject.set(key, checked)
    }
    if (!checked.rules.includes(rule)) checked.rules.push(rule)
    if (problem === undefined || problem === false) return
    const at = problem.at ?? subject
    this.findings.push({ id: rule, level: CHECK_RULES[rule], file: at.file, line: at.line, object: at.object, message: problem.message, fix: problem.fix })
  }

  skip (subject: Subject, reason: string): void {
    this.skipped.push({ ...subject, reason })
  }

  note (subject: Subject, note: string): void {
    this.notes.push({ ...subject, note })
  }

  get checked (): Checked[] {
    return [...this.byObject.values()]
  }
}
