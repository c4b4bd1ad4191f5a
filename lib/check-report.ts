import type { CheckResult } from './check'
import type { Subject } from './check-rules'

const where = ({ file, line }: Subject): string => line === undefined ? file : `${file}:${line}`
const count = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`

/**
 * The readable report: one line per finding (where, level, rule id, object, what with the numbers, and the
 * fix), then what was checked, left aside or not taken into account, and a summary.
 */
export function textReport (result: CheckResult): string {
  const lines = [
    ...result.findings.map((finding) => `${where(finding)}: ${finding.level} ${finding.id}: ${finding.object}: ${finding.message}. Fix: ${finding.fix}`),
    ...result.notes.map((note) => `${where(note)}: note: ${note.object}: ${note.note}`),
    ...result.checked.map((checked) => `checked ${checked.object} (${where(checked)}): ${count(checked.rules.length, 'rule')}`),
    ...result.skipped.map((skipped) => `skipped ${skipped.object} (${where(skipped)}): ${skipped.reason}`),
    `${count(result.errors, 'error')}, ${count(result.warnings, 'warning')} in ${count(result.checked.length, 'object')} checked` +
      (result.skipped.length === 0 ? '' : `, ${result.skipped.length} skipped`)
  ]
  return `${lines.join('\n')}\n`
}

export function jsonReport (result: CheckResult): string {
  return `${JSON.stringify(result, null, 2)}\n`
}
