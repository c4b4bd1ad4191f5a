import { test } from 'tap'
import { readFileSync } from 'node:fs'
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
  // test/lines.mjs runs the lint and npm test on the lines it is given: all of them in .ci/run, the job's in the workflow.
  const commands = (lines: string[]): string[] => lines.flatMap((line) => line.split('&&')).map((command) => command.trim())
    .filter((command) => command.startsWith('npm ') || command.startsWith('node test/lines.mjs'))
    .map((command) => command.replace(/^node test\/lines\.mjs.*$/, 'node test/lines.mjs'))
  t.same(commands(runs), commands(script.split('\n')), 'the same commands, in the same order')
  t.ok(runs.some((run) => /^node test\/lines\.mjs \$\{\{ matrix\.node \}\}$/.test(run)), 'each job runs its own line')
})
