import { test } from 'tap'

// The only way to load ESM from this CommonJS test; the import is kept as import() under NodeNext.
const helper = import('./helpers/tally.mjs')

const TYPES_OK = { code: 0, output: 'Test files: 2 passed, 2 total\nTests:      24 passed, 24 total\nAssertions: 110 passed, 110 total\n' }

test('npm test: a file that skips for a missing tool counts as skipped, and the run passes', async (t) => {
  const { tally } = await helper
  const suites = [
    { code: 0, output: '# { total: 1091, pass: 1091 }\n' },
    { code: 0, output: 'ok 1 - test/rolling/rolling-restart.test.ts # SKIP haproxy is not installed\n# { total: 2, pass: 0, skip: 2 }\n' }
  ]
  t.same(tally(TYPES_OK, suites), { passed: 1115, failed: 0, skipped: 2, line: '1115 passed, 0 failed, 2 skipped' })
})

test('npm test: a real failure still fails, beside skips and todos', async (t) => {
  const { tally } = await helper
  const suites = [{ code: 1, output: '# { total: 10, pass: 6, fail: 2, skip: 1, todo: 1 }\n' }]
  t.same(tally(TYPES_OK, suites), { passed: 30, failed: 2, skipped: 2, line: '30 passed, 2 failed, 2 skipped' })
})

test('npm test: a run that exits non-zero fails even when its summary shows no failure or is missing', async (t) => {
  const { tally } = await helper
  t.equal(tally(TYPES_OK, [{ code: 1, output: '# { total: 3, pass: 3 }\n' }]).failed, 1, 'summary without failures')
  t.equal(tally(TYPES_OK, [{ code: 0, output: 'no summary at all' }]).failed, 1, 'no summary')
  t.equal(tally({ code: 1, output: 'error: no tsconfig' }, []).failed, 1, 'type tests that crashed')
})

test('npm test: tstyche counts, failed and skipped included', async (t) => {
  const { tally } = await helper
  const types = { code: 1, output: 'Tests:      1 failed, 2 skipped, 3 passed, 6 total\n' }
  t.same(tally(types, []), { passed: 3, failed: 1, skipped: 2, line: '3 passed, 1 failed, 2 skipped' })
})

const FAILED_ONCE = [
  '# Subtest: test/a.test.ts',
  '    # Subtest: drains',
  '        ok 1 - exit code',
  '        not ok 2 - exited within 100 ms',
  '        1..2',
  '    not ok 1 - drains # time=10ms',
  '    # Subtest: times out',
  '    not ok 2 - times out # time=120000ms',
  'not ok 1 - test/a.test.ts # time=12ms',
  '# Subtest: test/b.test.ts',
  'ok 2 - test/b.test.ts # time=3ms',
  '# { total: 9, pass: 7, fail: 2 }'
].join('\n')

test('npm test: a failure names its file and its innermost failing tests', async (t) => {
  const { failures } = await helper
  t.same(failures(FAILED_ONCE), [{ file: 'test/a.test.ts', tests: ['drains › exited within 100 ms', 'times out'] }])
  t.same(failures('# Subtest: test/b.test.ts\nok 1 - test/b.test.ts\n'), [])
})

test('npm test: a file that fails once and passes alone is listed as flaky and counted as passed', async (t) => {
  const { rerunFailedFiles, tally } = await helper
  const suites = [{ code: 1, output: FAILED_ONCE }]
  const rerunWith: string[][] = []
  const settled = await rerunFailedFiles(tally(TYPES_OK, suites), 0, suites, async (files) => {
    rerunWith.push(files)
    return { code: 0, output: '# Subtest: test/a.test.ts\nok 1 - test/a.test.ts\n# { total: 3, pass: 3 }\n' }
  })
  t.same(rerunWith, [['test/a.test.ts']], 'only the failed file runs again')
  t.equal(settled.line, '33 passed, 0 failed, 0 skipped')
  t.same(settled.verdicts, [
    '# flaky (failed, then passed alone): test/a.test.ts › drains › exited within 100 ms',
    '# flaky (failed, then passed alone): test/a.test.ts › times out'
  ])
})

test('npm test: a file that fails again counts, and type-test failures are never cleared by a rerun', async (t) => {
  const { rerunFailedFiles, tally } = await helper
  const suites = [{ code: 1, output: FAILED_ONCE }]
  const types = { code: 1, output: 'Tests:      1 failed, 3 passed, 4 total\n' }
  const settled = await rerunFailedFiles(tally(types, suites), 1, suites, async () => ({
    code: 1, output: '# Subtest: test/a.test.ts\n    not ok 1 - drains\nnot ok 1 - test/a.test.ts\n# { total: 3, pass: 2, fail: 1 }\n'
  }))
  t.equal(settled.failed, 2, 'the type test and the repeated failure')
  t.match(settled.verdicts[0], /^# failed twice: test\/a\.test\.ts › drains › exited within 100 ms$/)
})

test('npm test: more than three failed files are not run again', async (t) => {
  const { rerunFailedFiles, tally } = await helper
  const output = [1, 2, 3, 4].map((n) => `# Subtest: test/f${n}.test.ts\nnot ok ${n} - test/f${n}.test.ts`).join('\n') + '\n# { total: 4, pass: 0, fail: 4 }\n'
  let reran = false
  const settled = await rerunFailedFiles(tally(TYPES_OK, [{ code: 1, output }]), 0, [{ code: 1, output }], async () => {
    reran = true
    return { code: 0, output: '' }
  })
  t.notOk(reran)
  t.equal(settled.failed, 4)
  t.equal(settled.verdicts.length, 4)
})
