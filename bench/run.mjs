// `npm run bench`: every benchmark suite in one run, on one machine, written down with the machine.
//
//   npm run build && node bench/run.mjs [--smoke] [--only hot-path,rolling] [--rounds 3] [--out bench/results]
//
//   --smoke   one tiny round of each suite (CI runs it so that the suites cannot rot; nothing is asserted)
//   --only    the suites to run, by name, in the usual order whatever the order given
//   --rounds  rounds for the suites that take a number of rounds (stop, busy, force) instead of their own
//   --out     where results.json, RESULTS.md and the charts (SVG) go; default bench/results
//
// Every heading names the Node.js line that produced the figures: run it once per line (PATH= the line's node).
//
// A suite is a module bench/<name>.mjs exporting `suite = { name, title, run({ smoke, log }) }`, where run
// resolves with `{ tables: [{ title, columns, rows, notes }], raw, charts: [{ file, svg }] }`. A suite that
// throws fails the run (exit 1) once the others have run; a suite whose module is not there is skipped.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** Every suite, in the order they run and appear in the results. */
const SUITES = ['hot-path', 'memory', 'stop', 'busy', 'force', 'rolling']

/**
 * What each suite may take in a smoke run on a loaded 2-core machine: together about four minutes, the
 * budget of the CI smoke test (rolling: behind HAProxy and behind nginx). Past it the runner warns; it
 * never fails a run for time.
 */
const SMOKE_BUDGET_MS = { 'hot-path': 80_000, memory: 30_000, stop: 40_000, busy: 20_000, force: 30_000, rolling: 45_000 }

const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    only: { type: 'string' },
    rounds: { type: 'string' },
    out: { type: 'string', default: 'bench/results' }
  }
})

const wanted = values.only === undefined ? SUITES : values.only.split(',').map((name) => name.trim())
for (const name of wanted) {
  if (!SUITES.includes(name)) throw new TypeError(`Expected --only to list suites among ${SUITES.join(', ')}, got "${name}"`)
}
const rounds = values.rounds === undefined ? undefined : Number(values.rounds)
if (rounds !== undefined && !(Number.isInteger(rounds) && rounds > 0)) throw new TypeError(`Expected --rounds to be a positive integer, got "${values.rounds}"`)
if (!existsSync(path.join(ROOT, 'dist', 'index.js'))) {
  console.error('dist/ is missing: run `npm run build` first (the benchmarks load the built plugin)')
  process.exit(1)
}

const outDir = path.resolve(values.out)
const startedAt = new Date()
const machine = describeMachine()
const command = ['node', path.relative(process.cwd(), fileURLToPath(import.meta.url)) || 'bench/run.mjs', ...process.argv.slice(2)].join(' ')
console.error(`${command}\n${machine.cpu} × ${machine.cores}, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}`)

const suites = []
for (const name of SUITES.filter((n) => wanted.includes(n))) {
  const file = path.join(ROOT, 'bench', `${name}.mjs`)
  if (!existsSync(file)) {
    console.error(`[${name}] skipped: bench/${name}.mjs is not there`)
    suites.push({ name, status: 'missing' })
    continue
  }
  const log = (line) => console.error(`[${name}] ${line}`)
  const begin = performance.now()
  let title
  try {
    const { suite } = await import(pathToFileURL(file).href)
    if (typeof suite?.run !== 'function') throw new TypeError(`bench/${name}.mjs exports no \`suite\` with a run() method`)
    title = suite.title
    log(`${title}${values.smoke ? ' (smoke)' : ''}`)
    const result = await suite.run({ smoke: values.smoke, log, rounds })
    const durationMs = Math.round(performance.now() - begin)
    checkResult(name, result)
    suites.push({ name, title, status: 'ok', durationMs, tables: result.tables, raw: result.raw, charts: (result.charts ?? []).map((c) => c.file), svgs: result.charts ?? [] })
    log(`done in ${(durationMs / 1000).toFixed(1)} s`)
    if (values.smoke && durationMs > SMOKE_BUDGET_MS[name]) log(`warning: over its smoke budget of ${SMOKE_BUDGET_MS[name] / 1000} s`)
  } catch (err) {
    const durationMs = Math.round(performance.now() - begin)
    log(`failed after ${(durationMs / 1000).toFixed(1)} s: ${err.stack ?? err}`)
    suites.push({ name, title, status: 'failed', durationMs, error: String(err.stack ?? err) })
  }
}

machine.loadAverageAfter = os.loadavg().map((n) => Math.round(n * 100) / 100)
const results = {
  command,
  date: startedAt.toISOString(),
  durationMs: Math.round(performance.now()),
  smoke: values.smoke,
  machine,
  suites: suites.map(({ svgs, ...suite }) => suite)
}
await mkdir(outDir, { recursive: true })
await writeFile(path.join(outDir, 'results.json'), JSON.stringify(results, null, 2) + '\n')
for (const suite of suites) {
  for (const { file, svg } of suite.svgs ?? []) await writeFile(path.join(outDir, file), svg)
}
const markdown = toMarkdown(results)
await writeFile(path.join(outDir, 'RESULTS.md'), markdown)
console.log(markdown)
const failed = suites.filter((s) => s.status === 'failed').map((s) => s.name)
if (failed.length > 0) {
  console.error(`failed: ${failed.join(', ')}`)
  process.exitCode = 1
}

/** A suite's result must have the shape the files are written from: caught here, it names the suite. */
function checkResult (name, result) {
  const fail = (what) => { throw new TypeError(`suite ${name} resolved with ${what}`) }
  if (result === null || typeof result !== 'object') fail(`${JSON.stringify(result)} instead of { tables, raw, charts }`)
  if (!Array.isArray(result.tables)) fail('no `tables` array')
  for (const table of result.tables) {
    if (!Array.isArray(table.columns) || !Array.isArray(table.rows)) fail(`table "${table.title}" without columns and rows`)
    for (const row of table.rows) {
      if (row.length !== table.columns.length || row.some((cell) => typeof cell !== 'string')) fail(`a row of table "${table.title}" that is not ${table.columns.length} strings: ${JSON.stringify(row)}`)
    }
  }
  for (const c of result.charts ?? []) {
    if (typeof c.file !== 'string' || path.basename(c.file) !== c.file || !c.file.endsWith('.svg')) fail(`chart file name ${JSON.stringify(c.file)} (a bare name ending in .svg)`)
    if (typeof c.svg !== 'string' || !c.svg.startsWith('<svg')) fail(`chart ${c.file} that is not an SVG document`)
  }
}

function describeMachine () {
  const cpus = os.cpus()
  const version = (pkg) => {
    try {
      return JSON.parse(readFileSync(path.join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')).version
    } catch {
      return null
    }
  }
  const firstLine = (cmd, args) => {
    const probe = spawnSync(cmd, args, { encoding: 'utf8' })
    return probe.error || probe.status !== 0 ? null : `${probe.stdout}${probe.stderr}`.trim().split('\n')[0]
  }
  const git = (...args) => {
    try {
      return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    } catch {
      return null
    }
  }
  const commit = git('rev-parse', '--short', 'HEAD')
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30 * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    versions: {
      'fastify-shutdown': JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version,
      fastify: version('fastify'),
      'close-with-grace': version('close-with-grace'),
      '@fastify/under-pressure': version('@fastify/under-pressure'),
      haproxy: firstLine('haproxy', ['-v']),
      nginx: firstLine('nginx', ['-v']),
      valgrind: firstLine('valgrind', ['--version'])
    },
    commit: commit === null ? null : `${commit}${git('status', '--porcelain', '--untracked-files=no') ? ' (with uncommitted changes)' : ''}`,
    loadAverageBefore: os.loadavg().map((n) => Math.round(n * 100) / 100)
  }
}

function toMarkdown ({ command, date, durationMs, smoke, machine, suites }) {
  const line = `Node ${machine.node}`
  const lines = [
    `# Benchmark results on ${line}${smoke ? ' (smoke run: one tiny round, not for quoting)' : ''}`,
    '',
    `\`${command}\` on ${date.slice(0, 10)}, ${Math.round(durationMs / 1000)} s in all.`,
    '',
    table(['machine', ''], [
      ['CPU', `${machine.cpu} × ${machine.cores}`],
      ['memory', `${machine.memoryGiB} GiB`],
      ['OS', machine.os],
      ['Node', machine.node],
      ...Object.entries(machine.versions).filter(([, v]) => v !== null).map(([name, v]) => [name, v]),
      ['commit', machine.commit ?? 'unknown'],
      ['load average (1, 5, 15 min) before → after', `${machine.loadAverageBefore.join(', ')} → ${machine.loadAverageAfter.join(', ')}`]
    ])
  ]
  const busiest = Math.max(machine.loadAverageBefore[0], machine.loadAverageAfter[0])
  if (busiest > machine.cores) {
    lines.push('', `The machine was shared and loaded while this ran (1-minute load average up to ${busiest} on ${machine.cores} cores): ` +
      'wall-clock figures (requests/s, times to stop and exit) are noisy, read their min–max spreads; instruction counts are not affected.')
  }
  for (const suite of suites) {
    lines.push('', `## ${suite.title ?? suite.name} (${line})`, '')
    if (suite.status === 'missing') {
      lines.push(`Not run: bench/${suite.name}.mjs is not there.`)
      continue
    }
    if (suite.status === 'failed') {
      lines.push(`**Failed** after ${(suite.durationMs / 1000).toFixed(1)} s:`, '', '```', suite.error.split('\n').slice(0, 8).join('\n'), '```')
      continue
    }
    lines.push(`\`${suite.name}\`, ${(suite.durationMs / 1000).toFixed(1)} s.`)
    for (const t of suite.tables) {
      lines.push('', `### ${t.title} (${line})`, '', table(t.columns, t.rows))
      for (const note of t.notes ?? []) lines.push('', note)
    }
    for (const file of suite.charts) lines.push('', `![${file}](${file})`)
  }
  return lines.join('\n') + '\n'
}

function table (columns, rows) {
  const cell = (text) => String(text).replace(/\|/g, '\\|').replace(/\n/g, ' ')
  return [
    `| ${columns.map(cell).join(' | ')} |`,
    `|${columns.map(() => ' --- ').join('|')}|`,
    ...rows.map((row) => `| ${row.map(cell).join(' | ')} |`)
  ].join('\n')
}
