// The closing line of `npm test`, counted from what tstyche and tap print (ANSI colours already stripped).

/**
 * tstyche prints `Tests:  1 failed, 2 skipped, 3 passed, 6 total`; tap prints `# { total: 6, pass: 3, fail: 1,
 * skip: 2 }`. Each count is there only when it is not zero. A test or file that skips for a missing tool
 * (`t.plan(0, reason)`) counts as skipped, never as failed; a run that exits non-zero counts at least one
 * failure, whatever it printed.
 * @param {{ code: number | null, output: string }} types
 * @param {Array<{ code: number | null, output: string }>} suites
 */
export function tally (types, suites) {
  let passed = 0
  let failed = 0
  let skipped = 0
  const typeTests = /^\s*Tests:(.*)$/m.exec(types.output)
  if (typeTests) {
    const count = (word) => Number(new RegExp(`(\\d+) ${word}`).exec(typeTests[1])?.[1] ?? 0)
    passed += count('passed')
    failed += count('failed')
    skipped += count('skipped') + count('todo')
  }
  if (types.code !== 0) failed = Math.max(failed, 1)
  for (const suite of suites) {
    const summary = [...suite.output.matchAll(/# \{ total: (\d+), pass: (\d+)(.*) \}/g)].at(-1)
    let suiteFailed = 1
    if (summary) {
      const count = (key) => Number(new RegExp(`${key}: (\\d+)`).exec(summary[3])?.[1] ?? 0)
      const notRun = count('skip') + count('todo')
      passed += Number(summary[2])
      skipped += notRun
      suiteFailed = Math.max(count('fail'), Number(summary[1]) - Number(summary[2]) - notRun)
    }
    failed += suite.code !== 0 ? Math.max(suiteFailed, 1) : suiteFailed
  }
  return { passed, failed, skipped, line: `${passed} passed, ${failed} failed, ${skipped} skipped` }
}
