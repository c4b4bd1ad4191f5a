// The benchmark smoke: `node bench/run.mjs --smoke` runs one tiny round of every suite there is, so that
// the benchmarks cannot rot between the runs that publish figures. Only the shape of what it writes is
// checked; a timing is never asserted (this machine is shared, and the figures of a smoke run mean nothing).
import t, { type Test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const root = join(__dirname, '..')
const SUITES = ['hot-path', 'memory', 'stop', 'busy', 'force', 'rolling']

/** The smoke's budget is about four minutes on a loaded 2-core machine; past this it is a hang. */
const SMOKE_LIMIT_MS = 330_000

interface Table { title: string, columns: string[], rows: string[][], notes?: string[] }
interface SuiteResult { name: string, status: 'ok' | 'failed' | 'missing', durationMs?: number, tables?: Table[], charts?: string[], error?: string }
interface Results { command: string, smoke: boolean, machine: { cpu: string, cores: number, node: string }, suites: SuiteResult[] }

function installed (command: string, args: string[]): boolean {
  const probe = spawnSync(command, args, { stdio: 'ignore' })
  return probe.error === undefined && probe.status === 0
}

/** Runs the smoke in its own process group, so that a hang is ended with every replica and HAProxy it started. */
function runSmoke (t: Test, out: string): Promise<{ code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }> {
  const env: NodeJS.ProcessEnv = {}
  // tap's NODE_OPTIONS and NODE_V8_COVERAGE would load its hooks and coverage into the benchmarks, at a cost.
  for (const [name, value] of Object.entries(process.env)) if (!/^(tap_|_tapjs_|node_options$|node_v8_coverage$)/i.test(name)) env[name] = value
  const child = spawn(process.execPath, ['bench/run.mjs', '--smoke', '--out', out], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const killGroup = (): void => {
    try {
      process.kill(-(child.pid as number), 'SIGKILL')
    } catch {
      // The group has already gone.
    }
  }
  const limit = setTimeout(() => {
    stderr += `\n[bench-smoke] still running after ${SMOKE_LIMIT_MS} ms: killed\n`
    killGroup()
  }, SMOKE_LIMIT_MS)
  t.teardown(killGroup)
  return new Promise((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(limit)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

/** Every tag closed in order: enough to tell a truncated or mis-nested document from SVG a browser will draw. */
function unbalancedTag (xml: string): string | null {
  const open: string[] = []
  for (const [, closing, name, selfClosing] of xml.matchAll(/<(\/?)([A-Za-z][\w:.-]*)(?:\s[^<>]*?)?(\/?)>/g)) {
    if (selfClosing === '/') continue
    if (closing === '') open.push(name)
    else if (open.pop() !== name) return `</${name}> closes <${open.at(-1) ?? 'nothing'}>`
  }
  return open.length === 0 ? null : `<${open.at(-1)}> never closed`
}

const missing = [['valgrind', '--version'], ['haproxy', '-v']].filter(([command, flag]) => !installed(command, [flag])).map(([command]) => command)
if (missing.length > 0) {
  t.plan(0, `${missing.join(' and ')} not installed (\`apt-get install -y ${missing.join(' ')}\`; CI installs both): the benchmark smoke needs them`)
} else {
  // Above tap's per-file timeout: the smoke of all six suites takes minutes, and this tells tap so.
  t.setTimeout(SMOKE_LIMIT_MS + 30_000)

  t.test('node bench/run.mjs --smoke writes results, Markdown tables and SVG charts', async (t) => {
    const out = await mkdtemp(join(tmpdir(), 'fastify-shutdown-bench-smoke-'))
    t.teardown(() => rm(out, { recursive: true, force: true }))
    const run = await runSmoke(t, out)
    t.equal(run.code, 0, 'the run exits 0', { signal: run.signal, stderr: run.stderr.split('\n').slice(-40).join('\n') })

    const results = JSON.parse(await readFile(join(out, 'results.json'), 'utf8')) as Results
    t.equal(results.smoke, true, 'results.json says it was a smoke run')
    t.match(results.command, /bench\/run\.mjs --smoke --out /, 'results.json holds the command')
    t.match(results.machine, { cpu: String, cores: Number, node: process.version }, 'results.json describes the machine')

    const present = SUITES.filter((name) => existsSync(join(root, 'bench', `${name}.mjs`)))
    t.ok(present.includes('rolling'), 'the rolling-restart suite is there')
    t.same(results.suites.map((s) => s.name), SUITES, 'every suite is listed, in order')
    for (const suite of results.suites) {
      // Durations are only reported: CI's log then shows which suite outgrows its smoke budget (bench/run.mjs).
      if (suite.durationMs !== undefined) t.comment(`${suite.name}: ${(suite.durationMs / 1000).toFixed(1)} s`)
      if (!present.includes(suite.name)) {
        t.equal(suite.status, 'missing', `${suite.name}: no module, listed as missing`)
        continue
      }
      t.equal(suite.status, 'ok', `${suite.name} ran`, { error: suite.error })
      const tables = suite.tables ?? []
      t.ok(tables.some((table) => table.rows.length > 0), `${suite.name} has a table with rows`)
      for (const table of tables) {
        t.ok(table.rows.every((row) => row.length === table.columns.length && row.every((cell) => typeof cell === 'string')),
          `${suite.name} "${table.title}": every row is one string per column`)
      }
    }

    const markdown = await readFile(join(out, 'RESULTS.md'), 'utf8')
    t.match(markdown, /^\| .+ \|\n\|( --- \|)+\n\| .+ \|$/m, 'RESULTS.md has a Markdown table')
    t.equal(run.stdout.trim(), markdown.trim(), 'the run prints RESULTS.md')

    const charts = results.suites.flatMap((s) => s.charts ?? [])
    t.ok(charts.includes('rolling-restart.svg'), 'the rolling restart is charted')
    t.same((await readdir(out)).filter((file) => file.endsWith('.svg')).sort(), [...charts].sort(), 'every chart listed is written, and only those')
    for (const file of charts) {
      const svg = await readFile(join(out, file), 'utf8')
      t.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/, `${file} starts with an <svg> element`)
      t.match(svg, /^<svg [^>]*viewBox="0 0 \d+(\.\d+)? \d+(\.\d+)?"/, `${file} has a viewBox`)
      t.equal(unbalancedTag(svg), null, `${file}: every element is closed, in order`)
      t.notMatch(svg, /<script|<foreignObject|@import|href="http/, `${file} loads nothing and runs nothing`)
    }
  })
}
