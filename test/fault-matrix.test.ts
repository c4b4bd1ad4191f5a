import { test } from 'tap'
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { FAULT_MATRIX, matrixTable } from './helpers/fault-matrix'

const PAGE = path.join(__dirname, '..', 'docs', 'fault-matrix.md')
const START = '<!-- fault-matrix:start (generated from test/helpers/fault-matrix.ts) -->'
const END = '<!-- fault-matrix:end -->'

function testFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) return testFiles(full)
    return entry.name.endsWith('.test.ts') && full !== __filename ? [full] : []
  })
}

test('every row of the fault matrix is proven by a test titled after it', async (t) => {
  const provers = testFiles(__dirname)
    .map((file) => ({ file: path.relative(__dirname, file), source: readFileSync(file, 'utf8') }))
    .filter(({ source }) => source.includes('faultTest('))
  for (const id of Object.keys(FAULT_MATRIX)) {
    const files = provers.filter(({ source }) => source.includes(`'${id}'`)).map(({ file }) => file)
    t.equal(files.length, 1, `${id}: proven in ${files.join(', ') || 'no test file'}`)
  }
})

// FAULT_MATRIX_UPDATE=1 npx tap test/fault-matrix.test.ts rewrites the table in docs/fault-matrix.md from the rows.
test('the fault matrix in docs/fault-matrix.md is the one the tests prove', async (t) => {
  const page = readFileSync(PAGE, 'utf8')
  const start = page.indexOf(START)
  const end = page.indexOf(END)
  t.ok(start !== -1 && end > start, 'docs/fault-matrix.md has the fault matrix markers')
  const table = `${START}\n${matrixTable()}\n${END}`
  if (process.env.FAULT_MATRIX_UPDATE === '1') {
    writeFileSync(PAGE, page.slice(0, start) + table + page.slice(end + END.length))
    t.pass('docs/fault-matrix.md rewritten')
    return
  }
  t.equal(page.slice(start, end + END.length), table, 'run FAULT_MATRIX_UPDATE=1 npx tap test/fault-matrix.test.ts to regenerate it')
})
