// `fastify-shutdown check` as a user's CI runs it: the built command (dist/cli.js) as a child process, its
// exit code, stdout and stderr. One broken fixture per rule in test/fixtures/check/rules/ (named after the rule
// it breaks, and nothing else), the example app's own files, helm-style output on stdin, bad input.
import { test } from 'tap'
import { spawn } from 'node:child_process'
import { readdirSync } from 'node:fs'
import path from 'node:path'
import { CHECK_RULES, type Finding, type RuleId } from '../lib/check-rules'
import { childCoverage } from './helpers/child'
import { bounded } from './helpers/wait'

const ROOT = path.join(__dirname, '..')
const CLI = path.join(ROOT, 'dist', 'cli.js')
const RULE_FIXTURES = 'test/fixtures/check/rules'
const FIXTURE_OPTIONS = 'test/fixtures/check/options.mjs'

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs the command from the repository root, with `stdin` written to it and closed. */
function cli (args: readonly string[], stdin = ''): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: childCoverage() }
  delete env.NODE_OPTIONS
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  child.stdin.end(stdin)
  const closed = new Promise<Run>((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })))
  return bounded(closed, `fastify-shutdown ${args.join(' ')}`, () => `stdout:\n${stdout}\nstderr:\n${stderr}`)
}

/** The rule a fixture breaks: its name up to the first dot. */
const ruleOf = (file: string): string => file.slice(0, file.indexOf('.'))

test('every rule has a broken fixture, and each is caught with its id, and only it, and the exit code its level gives', async (t) => {
  const fixtures = readdirSync(path.join(ROOT, RULE_FIXTURES)).sort()
  t.same(Object.keys(CHECK_RULES).filter((rule) => !fixtures.some((file) => ruleOf(file) === rule)), [], 'rules without a fixture')
  const runs: Run[] = []
  // A few at a time: each child spends most of its ~150 ms starting Node and loading modules.
  for (let start = 0; start < fixtures.length; start += 4) {
    runs.push(...await Promise.all(fixtures.slice(start, start + 4)
      .map((file) => cli(['check', '--json', '--options', FIXTURE_OPTIONS, path.join(RULE_FIXTURES, file)]))))
  }
  for (const [index, file] of fixtures.entries()) {
    const rule = ruleOf(file) as RuleId
    const { code, stdout, stderr } = runs[index]
    const { findings } = JSON.parse(stdout) as { findings: Finding[] }
    t.same([...new Set(findings.map(({ id }) => id))], [rule], `${file}: ${rule}`)
    t.equal(code, CHECK_RULES[rule] === 'error' ? 1 : 0, `${file}: exit code of a ${CHECK_RULES[rule]}`)
    t.equal(stderr, '', `${file}: nothing on stderr`)
  }
})

test('the example app\'s manifests, Compose file, unit, ecosystem file and Dockerfile pass', async (t) => {
  const { code, stdout, stderr } = await cli([
    'check', '--options', 'example-app/config.mjs',
    'example-app/k8s', 'example-app/k8s/alternatives', 'example-app/compose.yaml',
    'example-app/fastify-shutdown-example.service', 'example-app/ecosystem.config.cjs', 'example-app/Dockerfile'
  ])
  t.equal(code, 0, 'exit 0', { stdout, stderr })
  t.match(stdout, /^0 errors, 0 warnings in 8 objects checked\n$/m, 'three Deployments, the PodDisruptionBudget, the Compose service, the unit, the PM2 app, the image')
  t.equal(stderr, '')
})

// What `helm template` writes: `---` between documents, a `# Source:` comment atop each, kinds the command
// does not check, the environment in a ConfigMap.
const HELM_OUTPUT = `---
# Source: api/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: api-env
data:
  PRE_STOP_DELAY_MS: "5000"
  DRAIN_TIMEOUT_MS: "21000"
  TERMINATION_GRACE_PERIOD_SECONDS: "30"
---
# Source: api/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  selector:
    app.kubernetes.io/name: api
  ports:
    - name: http
      port: 80
      targetPort: http
---
# Source: api/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: api
  template:
    metadata:
      labels:
        app.kubernetes.io/name: api
    spec:
      containers:
        - name: api
          image: "api:1.2.3"
          envFrom:
            - configMapRef:
                name: api-env
          ports:
            - name: http
              containerPort: 3000
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            periodSeconds: 2
            failureThreshold: 1
---
# Source: api/templates/ingress.yaml
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: api
`

test('helm template output on stdin: every document read, the environment from its ConfigMap, unknown kinds skipped and listed', async (t) => {
  const { code, stdout, stderr } = await cli(['check', '--json', '--options', 'example-app/config.mjs', '-'], HELM_OUTPUT)
  const result = JSON.parse(stdout)
  t.equal(code, 1, 'exit 1: an error')
  t.equal(stderr, '')
  t.match(result.findings, [{
    id: 'budget-exceeds-grace',
    level: 'error',
    file: '<stdin>',
    line: 40,
    object: 'Deployment/api container api',
    message: /^shutdown worst case 29000 ms \(preStopDelay 5000 \+ drainTimeout 21000 \+ forceTimeout 3000\) \+ 2000 ms margin = 31000 ms, more than the 30000 ms of terminationGracePeriodSeconds 30/,
    fix: /^terminationGracePeriodSeconds: 31/
  }])
  t.equal(result.findings.length, 1, 'only that: the ConfigMap\'s PRE_STOP_DELAY_MS is the pre-stop wait')
  t.same(result.skipped, [{ file: '<stdin>', line: 56, object: 'Ingress/api', reason: 'kind Ingress is not checked' }])
})

test('a malformed YAML file, or stdin, exits 2 naming the file and line, with no stack trace', async (t) => {
  const file = await cli(['check', 'test/fixtures/check/malformed.yaml'])
  t.equal(file.code, 2)
  t.equal(file.stdout, '')
  t.match(file.stderr, /^fastify-shutdown check: FST_SHUTDOWN_CHECK_INPUT: test\/fixtures\/check\/malformed\.yaml:9:1: /)
  t.equal(file.stderr.split('\n').length, 2, 'one line')

  const stdin = await cli(['check', '-'], 'kind: Service\napiVersion: v1\nmetadata: { name: [api }\n')
  t.equal(stdin.code, 2)
  t.match(stdin.stderr, /^fastify-shutdown check: FST_SHUTDOWN_CHECK_INPUT: <stdin>:3:/)
})

test('bad usage, an unreadable input or options the plugin refuses: exit 2, one line, the code, no stack trace', async (t) => {
  const cases: [string, string[], RegExp][] = [
    ['no command', [], /FST_SHUTDOWN_CHECK_USAGE: no command given\nRun `fastify-shutdown --help`/],
    ['another command', ['lint', 'x.yaml'], /FST_SHUTDOWN_CHECK_USAGE: unknown command `lint`/],
    ['an unknown flag', ['check', '--strict', 'x.yaml'], /FST_SHUTDOWN_CHECK_USAGE: Unknown option '--strict'/],
    ['no input', ['check'], /FST_SHUTDOWN_CHECK_USAGE: nothing to check/],
    ['a missing file', ['check', 'missing.yaml'], /FST_SHUTDOWN_CHECK_INPUT: missing\.yaml: no such file/],
    ['options the plugin refuses', ['check', '--options', 'test/fixtures/check/invalid-options.json', 'example-app/k8s'],
      /FST_SHUTDOWN_INVALID_OPTION: --options test\/fixtures\/check\/invalid-options\.json: Expected `drainTimeout` to be a non-negative finite number of milliseconds, got `"10s"` \(string\)/],
    ['nothing it can check', ['check', '-'], /FST_SHUTDOWN_CHECK_USAGE: nothing was checked: .* \(skipped: Ingress\/api: kind Ingress is not checked\)/]
  ]
  const runs = await Promise.all(cases.map(([, args]) => cli(args, 'apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: { name: api }\n')))
  for (const [index, [name, , message]] of cases.entries()) {
    const { code, stdout, stderr } = runs[index]
    t.equal(code, 2, `${name}: exit 2`)
    t.equal(stdout, '', `${name}: no report`)
    t.match(stderr, message, name)
    t.notMatch(stderr, /\n\s+at /, `${name}: no stack trace`)
  }
})

test('--help prints the usage and exits 0', async (t) => {
  const { code, stdout } = await cli(['--help'])
  t.equal(code, 0)
  t.match(stdout, /^Usage: fastify-shutdown check \[--options <file>\[#export\]\]/)
})

test('the readable report: one line per finding with the file, line, level, rule, object, the numbers and a fix', async (t) => {
  const { code, stdout } = await cli(['check', '--options', FIXTURE_OPTIONS, path.join(RULE_FIXTURES, 'budget-exceeds-grace.yaml'), path.join(RULE_FIXTURES, 'grace-period-not-passed.service')])
  t.equal(code, 1)
  t.equal(stdout, [
    'test/fixtures/check/rules/budget-exceeds-grace.yaml:16: error budget-exceeds-grace: Deployment/api container app: preStop sleep 5000 ms + ' +
      'shutdown worst case 18000 ms (preStopDelay 0 + drainTimeout 15000 + forceTimeout 3000) + 2000 ms margin = 25000 ms, more than the 23000 ms of ' +
      'terminationGracePeriodSeconds 23: SIGKILL can cut the drain. Fix: terminationGracePeriodSeconds: 25, or shorten the timeouts',
    'test/fixtures/check/rules/grace-period-not-passed.service:12: warning grace-period-not-passed: unit grace-period-not-passed.service: ' +
      'the plugin\'s gracePeriod is 16000 ms, TimeoutStopSec=1min 30s allows 90000 ms: register checks the budget against the wrong figure. ' +
      'Fix: pass it down: TERMINATION_GRACE_PERIOD_SECONDS=90 in the app\'s environment (or gracePeriod: 90000)',
    'checked Deployment/api container app (test/fixtures/check/rules/budget-exceeds-grace.yaml:16): 8 rules',
    'checked unit grace-period-not-passed.service (test/fixtures/check/rules/grace-period-not-passed.service:5): 7 rules',
    '1 error, 1 warning in 2 objects checked',
    ''
  ].join('\n'))
})

test('the plugin loads neither the command nor yaml', async (t) => {
  const child = spawn(process.execPath, ['-e', "require('./dist/index.js'); console.log(JSON.stringify(Object.keys(require.cache)))"], { cwd: ROOT, env: { ...process.env, NODE_OPTIONS: '' } })
  let stdout = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  await bounded(new Promise((resolve) => child.once('close', resolve)), 'the child to exit')
  const loaded = JSON.parse(stdout) as string[]
  t.ok(loaded.some((file) => file.endsWith(path.join('dist', 'index.js'))), 'the plugin was loaded')
  t.same(loaded.filter((file) => /[\\/]node_modules[\\/]yaml[\\/]|[\\/]dist[\\/](?:cli|check[-.])/.test(file)), [])
})
