import { test } from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'

const root = join(__dirname, '..')

test('the GitHub workflow runs what .ci/run runs, on Node 20, 22, 24 and 26', async (t) => {
  const workflow = parse(readFileSync(join(root, '.github', 'workflows', 'ci.yml'), 'utf8'))
  const job = workflow.jobs.test
  t.same(job.strategy.matrix.node, [20, 22, 24, 26], 'one job per supported Node line')
  const runs: string[] = job.steps.map((step: { run?: string }) => step.run).filter(Boolean)
  t.match(runs[0], /apt-get install -y -qq haproxy nginx-light valgrind/, 'HAProxy, nginx and valgrind first, as .ci/run installs them')

  const script = readFileSync(join(root, '.ci', 'run'), 'utf8')
  // test/lines.mjs runs the lint, npm test and npm run test:fastify on the lines it is given: all of them in .ci/run, the job's in the workflow.
  const commands = (lines: string[]): string[] => lines.flatMap((line) => line.split('&&')).map((command) => command.trim())
    .filter((command) => command.startsWith('npm ') || command.startsWith('node test/lines.mjs'))
    .map((command) => command.replace(/^node test\/lines\.mjs.*$/, 'node test/lines.mjs'))
  t.same(commands(runs), commands(script.split('\n')), 'the same commands, in the same order')
  t.ok(runs.some((run) => /^node test\/lines\.mjs \$\{\{ matrix\.node \}\}$/.test(run)), 'each job runs its own line')
})

test('the GitHub workflow runs a job per other runtime, as .ci/run does after the Node lines', async (t) => {
  const { RUNTIMES } = await import('./runtimes.mjs')
  const workflow = parse(readFileSync(join(root, '.github', 'workflows', 'ci.yml'), 'utf8'))
  const job = workflow.jobs.runtimes
  t.same(job.strategy.matrix.runtime, Object.keys(RUNTIMES), 'one job per runtime of test/runtimes.mjs')
  const runs: string[] = job.steps.map((step: { run?: string }) => step.run).filter(Boolean)
  t.equal(runs.length, 2)
  t.equal(runs[0], 'npm ci --no-audit --no-fund')
  t.match(runs[1], /^node test\/lines\.mjs \$\{\{ matrix\.runtime \}\}$/, 'each job runs its own runtime')
})

test('test/runtimes.mjs leaves out files and tests that exist', async (t) => {
  const { APP_PROCESS_TESTS, SKIPPED, fileMatches, testPattern } = await import('./runtimes.mjs')
  const candidates = APP_PROCESS_TESTS.flatMap((pattern) => {
    if (!pattern.includes('*')) return [pattern]
    const [before, after] = pattern.split('*')
    const dir = before.slice(0, before.lastIndexOf('/'))
    return readdirSync(join(root, dir)).map((name) => `${dir}/${name}`).filter((file) => file.startsWith(before) && file.endsWith(after))
  })
  const sources = candidates.map((file) => readFileSync(join(root, file), 'utf8'))
  for (const { file, test: title, reason } of SKIPPED) {
    t.ok(reason.length > 0, `${file ?? title}: a reason`)
    if (file !== undefined) {
      t.ok(candidates.some((candidate) => fileMatches(file, candidate)), `${file} is a process test file`)
      continue
    }
    const fault = /^fault matrix \[([\w-]+)\]$/.exec(title!)
    // A title built from a template, `${mode}: ...`, is found by what follows its prefix.
    const found = fault !== null
      ? sources.some((source) => source.includes(`faultTest('${fault[1]}')`))
      : sources.some((source) => source.includes(`'${title}'`) || source.includes(`}: ${title!.slice(title!.indexOf(': ') + 2)}\``))
    t.ok(found, `"${title}" is a test of a process test file`)
  }
  // A process test whose children are not the fixtures of test/helpers/child.ts would run under Node on a
  // runtime's line, passing for a runtime it never ran on.
  for (const [file, source] of candidates.map((file, i) => [file, sources[i]] as const)) {
    if (/\bstart(?:Fixture|OtelApp)\(/.test(source)) continue
    const left = SKIPPED.filter((entry) => entry.file !== undefined && fileMatches(entry.file, file)).flatMap((entry) => entry.runtimes)
    t.same([...new Set(left)].sort(), ['bun', 'deno'], `${file} starts no fixture app: left out on every runtime`)
  }
  const pattern = new RegExp(testPattern(['fault matrix [slowloris]', 'a (b)']))
  t.ok(pattern.test('fault matrix [slowloris]: a slowloris connection that sent half its headers'), 'a fault matrix row by its id')
  t.ok(pattern.test('a (b)'), 'a whole title, its characters escaped')
  t.notOk(pattern.test('a (b) and more'), 'not a title it only begins')
})
