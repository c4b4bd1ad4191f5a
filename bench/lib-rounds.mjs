// Rounds, medians and the cells the stop and force suites print: every figure as a median with its min–max
// spread over rounds, next to the baseline measured in the same rounds.

/**
 * The order of the variants in `round`: reversed every other round (A B, B A, A B, ...), so whatever the
 * run before leaves behind (sockets in TIME_WAIT, a warmer page cache) weighs on each variant alike.
 */
export function roundOrder (variants, round) {
  return round % 2 === 0 ? variants : [...variants].reverse()
}

/** Median, min and max of the finite numbers in `values`; null when there are none. */
export function summarize (values) {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (sorted.length === 0) return null
  const middle = sorted.length >> 1
  const median = sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
  return { median, min: sorted[0], max: sorted[sorted.length - 1], n: sorted.length }
}

/** A number in the given unit with as many digits as its size deserves: 0.42, 4.2, 42, 420, 4,200. */
export function amount (value, unit = 'ms') {
  const abs = Math.abs(value)
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2
  const digitsOf = abs.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
  return `${value < 0 ? '−' : ''}${digitsOf}${unit === '' ? '' : ` ${unit}`}`
}

/** `12.3 ms (10.1–15.0)`: the median, then the spread when there was more than one round. */
export function spread (summary, unit = 'ms') {
  if (summary === null) return '—'
  const median = amount(summary.median, unit)
  if (summary.n === 1) return median
  return `${median} (${amount(summary.min, '')}–${amount(summary.max, '')})`
}

/**
 * Per round, `combine(value(a), value(b))` for the run `pick[0]` and the run `pick[1]` choose in it (a
 * difference or a ratio against the baseline of the same round), summarised over the rounds.
 */
export function paired (runs, rounds, pick, value, combine) {
  const values = []
  for (let round = 0; round < rounds; round++) {
    const [a, b] = pick.map((p) => runs.find((run) => run.round === round && p(run)))
    if (a === undefined || b === undefined || value(a) === null || value(b) === null) continue
    values.push(combine(value(a), value(b)))
  }
  return summarize(values)
}

export const minus = (a, b) => a - b
export const over = (a, b) => a / b

/** `+12.3 ms (+10.1 to +15.0)` */
export function differenceSpread (summary, unit = 'ms') {
  if (summary === null) return '—'
  const median = difference(summary.median, unit)
  return summary.n === 1 ? median : `${median} (${difference(summary.min, '')} to ${difference(summary.max, '')})`
}

/** `×0.52 (×0.40–×0.61)` */
export function ratioSpread (summary) {
  if (summary === null) return '—'
  return summary.n === 1 ? ratio(summary.median) : `${ratio(summary.median)} (${ratio(summary.min)}–${ratio(summary.max)})`
}

/**
 * How far the rounds strayed: the widest and the typical (max − min) / median among `summaries`, as a
 * sentence for a table's notes; empty with a single round.
 */
export function noiseNote (summaries) {
  const widths = summaries.filter((s) => s !== null && s.n > 1 && s.median > 0).map((s) => (s.max - s.min) / s.median)
  if (widths.length === 0) return ''
  const typical = summarize(widths).median
  return `Noise: the spread over rounds ((max − min) / median) is ${Math.round(typical * 100)} % for the typical cell above and up to ${Math.round(Math.max(...widths) * 100)} %.`
}

/** `+12.3 ms` */
export function difference (value, unit = 'ms') {
  if (!Number.isFinite(value)) return '—'
  return `${value >= 0 ? '+' : '−'}${amount(Math.abs(value), unit)}`
}

/** `×0.52` */
export function ratio (value) {
  if (!Number.isFinite(value)) return '—'
  return `×${value >= 10 ? value.toFixed(0) : value >= 1 ? value.toFixed(1) : value.toFixed(2)}`
}

export const count = (n) => n.toLocaleString('en-US')

/** Exit codes seen over the rounds: `0`, or `1 ×3, 0 ×2` when they differ. */
export function exitCodes (codes) {
  const tally = new Map()
  for (const code of codes) tally.set(code, (tally.get(code) ?? 0) + 1)
  if (tally.size === 1) return String(codes[0])
  return [...tally].map(([code, times]) => `${code} ×${times}`).join(', ')
}

/** A suite's tables as Markdown, for a suite run on its own. */
export function markdown (tables) {
  const cell = (text) => String(text).replace(/\|/g, '\\|')
  return tables.map(({ title, columns, rows, notes = [] }) => [
    `### ${title}`,
    '',
    `| ${columns.map(cell).join(' | ')} |`,
    `|${columns.map(() => ' --- ').join('|')}|`,
    ...rows.map((row) => `| ${row.map(cell).join(' | ')} |`),
    ...notes.flatMap((note) => ['', note])
  ].join('\n')).join('\n\n')
}
