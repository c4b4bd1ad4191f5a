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

/**
 * The files tap reports failed (`not ok N - test/….test.ts` at the top level), each with its innermost failures
 * by the path of their names (`test › assertion`), so a summary can say what failed without the whole log.
 * @param {string} output tap's TAP output, ANSI colours stripped
 * @returns {Array<{ file: string, tests: string[] }>}
 */
export function failures (output) {
  const found = []
  /** The names of the subtests open at each depth of indentation, the file's at 0. */
  const names = []
  let paths = []
  for (const line of output.split('\n')) {
    const depth = Math.floor(/^ */.exec(line)[0].length / 4)
    const subtest = /^\s*# Subtest: (.*)$/.exec(line)
    if (subtest) {
      names.length = depth
      names[depth] = subtest[1]
      if (depth === 0) paths = []
      continue
    }
    const failed = /^\s*not ok \d+ - (.*?)(?: # .*)?$/.exec(line)
    if (!failed) continue
    if (depth > 0) {
      paths.push([...names.slice(1, depth), failed[1]].join(' › '))
      continue
    }
    // A test fails with its failing assertions: only the innermost failures say what went wrong.
    const tests = paths.filter((path) => !paths.some((other) => other.startsWith(`${path} › `)))
    found.push({ file: failed[1], tests })
    paths = []
  }
  return found
}

/** More than a few files failing is not noise: they are not run again. */
const MAX_RERUN_FILES = 3

/**
 * Runs each file that failed once more, alone: a failure it repeats counts; one it does not is listed as flaky,
 * with what failed the first time, and counted as passed. A timing test on a loaded 2-core machine can miss
 * once; the list keeps every such miss in sight.
 * @param {{ passed: number, failed: number, skipped: number }} first the tally of the first run
 * @param {number} failedElsewhere failures outside these tap runs (type tests, a build), which no rerun clears
 * @param {Array<{ code: number | null, output: string }>} suites the tap runs
 * @param {(files: string[]) => Promise<{ code: number | null, output: string }>} runAlone runs tap on these files
 */
export async function rerunFailedFiles (first, failedElsewhere, suites, runAlone) {
  const failedFiles = suites.flatMap((suite) => failures(suite.output))
  let { passed, failed } = first
  let verdictOf = () => 'failed'
  if (failedFiles.length > 0 && failedFiles.length <= MAX_RERUN_FILES) {
    const rerun = await runAlone(failedFiles.map(({ file }) => file))
    const failedAgain = new Set(failures(rerun.output).map(({ file }) => file))
    failed = failedElsewhere + tally({ code: 0, output: '' }, [rerun]).failed
    passed = first.passed + Math.max(0, first.failed - failed)
    verdictOf = (file) => failedAgain.has(file) ? 'failed twice' : 'flaky (failed, then passed alone)'
  }
  const verdicts = failedFiles.flatMap(({ file, tests }) =>
    (tests.length > 0 ? tests : ['(the file)']).map((test) => `# ${verdictOf(file)}: ${file} › ${test}`))
  return { passed, failed, skipped: first.skipped, verdicts, line: `${passed} passed, ${failed} failed, ${first.skipped} skipped` }
}
