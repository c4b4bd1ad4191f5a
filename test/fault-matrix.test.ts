import { test } from 'tap'
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { FAULT_MATRIX, matrixTable } from './helpers/fault-matrix'

const README = path.join(__dirname, '..', 'README.md')
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

// FAULT_MATRIX_UPDATE=1 npx tap test/fault-matrix.test.ts rewrites the README's table from the rows.
test("the README's fault matrix is the one the tests prove", async (t) => {
  const readme = readFileSync(README, 'utf8')
  const start = readme.indexOf(START)
  const end = readme.indexOf(END)
  t.ok(start !== -1 && end > start, 'README.md has the fault matrix markers')
  const table = `${START}\n${matrixTable()}\n${END}`
  if (process.env.FAULT_MATRIX_UPDATE === '1') {
    writeFileSync(README, readme.slice(0, start) + table + readme.slice(end + END.length))
    t.pass('README.md rewritten')
    return
  }
  t.equal(readme.slice(start, end + END.length), table, 'run FAULT_MATRIX_UPDATE=1 npx tap test/fault-matrix.test.ts to regenerate it')
})
