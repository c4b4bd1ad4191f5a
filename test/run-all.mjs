// `npm test`: the type tests, then the tap suite, then one plain `N passed, N failed` line for CI.
import { spawn } from 'node:child_process'

function run (command, args) {
  return new Promise((resolve) => {
    let output = ''
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: process.env })
    for (const stream of [child.stdout, child.stderr]) {
      stream.on('data', (chunk) => {
        output += chunk
        process.stdout.write(chunk)
      })
    }
    // eslint-disable-next-line no-control-regex
    child.on('close', (code) => resolve({ code, output: output.replace(/\x1b\[[0-9;]*m/g, '') }))
  })
}

const types = await run('npx', ['tstyche'])
// The rolling restarts and the benchmark smoke load both cores for minutes: after the rest, one at a time,
// they cannot skew the timing of other tests.
const alone = ['test/rolling/rolling-restart.test.ts', 'test/bench-smoke.test.ts']
const suites = [
  await run('npx', ['tap', ...alone.flatMap((file) => ['--exclude', file])]),
  await run('npx', ['tap', '--jobs', '1', ...alone])
]

let passed = 0
let failed = 0
const typeTests = /Tests:\s+(?:(\d+) failed, )?(\d+) passed/.exec(types.output)
if (typeTests) {
  passed += Number(typeTests[2])
  failed += Number(typeTests[1] ?? 0)
} else if (types.code !== 0) failed++
for (const suite of suites) {
  const summary = [...suite.output.matchAll(/# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?/g)].at(-1)
  if (summary) {
    passed += Number(summary[2])
    failed += Number(summary[1]) - Number(summary[2])
  } else failed++
  if (suite.code !== 0) failed = Math.max(failed, 1)
}
if (types.code !== 0) failed = Math.max(failed, 1)

console.log(`${passed} passed, ${failed} failed`)
process.exitCode = failed === 0 ? 0 : 1
