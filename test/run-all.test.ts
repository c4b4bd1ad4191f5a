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
