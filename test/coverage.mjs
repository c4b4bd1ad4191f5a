// `npm run coverage`: the suite with coverage of lib/ taken in the child processes too, compared with the
// floor in test/coverage-floor.json, which only goes up: a run below it fails, a run above it raises it (in
// whole percent, so that a path a race takes only sometimes does not fail the next run).
//
// Real-process tests run dist/ in children. tap's processinfo records their V8 coverage and maps dist/*.js
// back to lib/*.ts through the source maps, but writing it takes a child 70-100 ms at exit, which would swamp
// the exit timings those tests measure; so `npm test` turns it off (test/helpers/child.ts) and this run turns
// it on. Here a bound on an exit time can be overrun by that cost: the run's figure counts, its timing
// verdicts do not (npm test gives those).
import { spawn } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')
const FLOOR = path.join(root, 'test', 'coverage-floor.json')
const SUMMARY = path.join(root, '.tap', 'report', 'coverage-summary.json')
const METRICS = ['lines', 'statements', 'functions', 'branches']
// The rolling restarts and the benchmark smoke keep coverage off in their children: they load the machine
// for minutes and cover nothing the other tests do not.
const EXCLUDED = ['test/rolling/rolling-restart.test.ts', 'test/rolling/ingress-nginx.test.ts', 'test/bench-smoke.test.ts']

const args = [
  ...EXCLUDED.flatMap((file) => ['--exclude', file]),
  '--coverage-map=test/coverage-map.mjs',
  '--coverage-report=json-summary',
  '--coverage-report=text'
]
const tap = spawn('npx', ['tap', ...args], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, FASTIFY_SHUTDOWN_CHILD_COVERAGE: '1' }
})
const tapCode = await new Promise((resolve) => tap.on('close', resolve))

const summary = JSON.parse(await readFile(SUMMARY, 'utf8'))
const total = Object.fromEntries(METRICS.map((metric) => [metric, { covered: 0, total: 0 }]))
for (const [file, counts] of Object.entries(summary)) {
  if (file === 'total' || !path.relative(path.join(root, 'lib'), file).match(/^[^.][^/]*\.ts$/)) continue
  for (const metric of METRICS) {
    total[metric].covered += counts[metric].covered
    total[metric].total += counts[metric].total
  }
}
const figure = Object.fromEntries(METRICS.map((metric) => [metric, Math.floor(1000 * total[metric].covered / total[metric].total) / 10]))
const floor = JSON.parse(await readFile(FLOOR, 'utf8'))

const below = METRICS.filter((metric) => figure[metric] < floor[metric])
console.log(`coverage of lib/, children included: ${METRICS.map((metric) => `${metric} ${figure[metric]} % (floor ${floor[metric]} %)`).join(', ')}`)
if (tapCode !== 0) console.log(`tap exited ${tapCode}: exit-time bounds can fail here, with coverage written at each child's exit; npm test is the verdict on those`)
if (below.length > 0) {
  console.log(`coverage fell below the floor in test/coverage-floor.json: ${below.join(', ')}`)
  process.exitCode = 1
} else if (METRICS.some((metric) => Math.floor(figure[metric]) > floor[metric])) {
  await writeFile(FLOOR, JSON.stringify(Object.fromEntries(METRICS.map((metric) => [metric, Math.max(floor[metric], Math.floor(figure[metric]))])), null, 2) + '\n')
  console.log('coverage rose: test/coverage-floor.json raised to it; commit it, so it never goes back down')
}
