// `npm test`: the type tests, then the tap suite, then one plain `N passed, N failed, N skipped` line for CI.
import { spawn } from 'node:child_process'
import { rerunFailedFiles, tally } from './helpers/tally.mjs'

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
// The rolling restarts (behind HAProxy, behind nginx) and the benchmark smoke load both cores for minutes:
// after the rest, one at a time, they cannot skew the timing of other tests.
const alone = ['test/rolling/rolling-restart.test.ts', 'test/rolling/ingress-nginx.test.ts', 'test/bench-smoke.test.ts']
const suites = [
  await run('npx', ['tap', ...alone.flatMap((file) => ['--exclude', file])]),
  await run('npx', ['tap', '--jobs', '1', ...alone])
]

const settled = await rerunFailedFiles(tally(types, suites), tally(types, []).failed, suites, (files) => run('npx', ['tap', '--jobs', '1', ...files]))
for (const line of settled.verdicts) console.log(line)
console.log(settled.line)
process.exitCode = settled.failed === 0 ? 0 : 1
