// `fastify-shutdown check` in this process: how each input is read, how options are loaded and resolved, and the
// parts of each runner's rules that the one-fixture-per-rule suite (check.process.test.ts) does not reach.
import { test } from 'tap'
import { Readable } from 'node:stream'
import path from 'node:path'
import { check, type CheckRequest, type CheckResult } from '../lib/check'
import { checkCommand } from '../lib/check-command'
import { composeDurationMs } from '../lib/check-compose'
import { imageCommand, parseDockerfile } from '../lib/check-dockerfile'
import { textReport } from '../lib/check-report'
import { CheckRecord } from '../lib/check-rules'
import { systemdTimeSpanMs } from '../lib/check-systemd'
import { resolveOptions } from '../lib/options'
import type { FastifyShutdownOptions } from '../types'

const EXAMPLE_OPTIONS = path.join(__dirname, '..', 'example-app', 'config.mjs')

/** Checks `text` given on standard input. */
const checkText = (text: string, request: Partial<CheckRequest> = {}): Promise<CheckResult> =>
  check({ inputs: ['-'], stdin: Readable.from([text]), ...request })

const ids = (result: CheckResult): string[] => result.findings.map(({ id }) => id)
const notes = (result: CheckResult): string[] => result.notes.map(({ note }) => note)
const rulesOf = (result: CheckResult, object: string): string[] | undefined => result.checked.find((checked) => checked.object === object)?.rules

/** A Compose service with room to spare: a 60 s grace period, passed down. */
const compose = (environment = 'TERMINATION_GRACE_PERIOD_SECONDS: "60"', more = ''): string => `services:
  api:
    image: api
    command: ["node", "server.js"]
    stop_grace_period: 60s
    environment: { ${environment} }
${more}`

test('Compose durations and systemd time spans', async (t) => {
  for (const [text, ms] of [['16s', 16_000], ['1m30s', 90_000], ['1500ms', 1500], ['1.5s', 1500], ['2h', 7_200_000], ['10', null], ['', null], ['10 s', null], ['1d', null]] as const) {
    t.equal(composeDurationMs(text), ms, `compose ${JSON.stringify(text)}`)
  }
  for (const [text, ms] of [['16', 16_000], ['16s', 16_000], ['1min 30s', 90_000], ['2min3s', 123_000], ['500ms', 500], ['1.5', 1500], ['infinity', Infinity], ['1M', 2_629_800_000], ['1m', 60_000], ['soon', null], ['', null], ['5 parsecs', null]] as const) {
    t.equal(systemdTimeSpanMs(text), ms, `systemd ${JSON.stringify(text)}`)
  }
})

test('what a command runs: inits, env, exec and shells seen through; npm, shells, fastify-cli, nodemon and tsx watch told apart', async (t) => {
  const runs = (argv: string[], { env = {}, options = {} }: { env?: Record<string, string>, options?: FastifyShutdownOptions } = {}): { found: string[], rules: string[] } => {
    const record = new CheckRecord()
    checkCommand(record, { file: 'f', object: 'o' }, argv, resolveOptions({ gracePeriod: 60_000, ...options }), env, 'command')
    return { found: record.findings.map(({ id }) => id), rules: record.checked[0].rules }
  }
  const cases: [string[], string[]][] = [
    [['node', 'server.js'], []],
    [['/bin/sh', '-c', 'exec node server.js'], []],
    [['sh', '-c', 'node migrate.js && node server.js'], ['shell-form']],
    [['sh', '-c', "echo 'a; b' # a comment\nnode \"server.js\" | tee \\\nlog"], ['shell-form']],
    [['bash', '-ec', 'npm run start'], ['npm-start', 'shell-form']],
    [['sh', 'entrypoint.sh'], []],
    [['/sbin/tini', '-g', '--', 'node', 'server.js'], []],
    [['dumb-init', 'npm', 'start'], ['npm-start']],
    [['/usr/bin/env', '-i', 'NODE_ENV=production', 'node', 'server.js'], []],
    [['yarn', 'start'], ['npm-start']],
    [['npx', '--yes', 'fastify', 'start', '-g', '20000', 'app.js'], ['npm-start']],
    [['npx', 'fastify', 'start', 'app.js'], ['npm-start', 'fastify-cli-close-grace-delay']],
    [['nodemon', '--signal', 'SIGTERM', 'server.js'], []],
    [['nodemon', '--signal=SIGHUP', 'server.js'], ['nodemon-signal']],
    [['node_modules/.bin/tsx', 'watch', 'server.ts'], ['tsx-watch-timeout']],
    [['sh', '-c', 'exec node "a \\"quoted\\" name.js" # a comment to the end'], []],
    [['sh', '-c', "exec node 'unclosed.js"], []],
    [['sh', '-c', 'exec npm start \\'], ['npm-start']],
    [['tini', '--'], []]
  ]
  for (const [argv, found] of cases) t.same(runs(argv).found, found, JSON.stringify(argv))
  t.same(runs(['fastify', 'start', 'app.js'], { env: { FASTIFY_CLOSE_GRACE_DELAY: '15000' } }).found, [], 'the delay from the environment')
  t.notOk(runs(['fastify', 'start', '-c', 'config.js', 'app.js']).rules.includes('fastify-cli-close-grace-delay'), 'a --config file may set it: not checked')
  t.same(runs(['tsx', 'watch', 'server.ts'], { options: { drainTimeout: 4000 } }).found, [], 'a drain that fits tsx\'s 5 s')
  t.same(runs(['nodemon', 'server.js'], { options: { signals: ['SIGTERM', 'SIGUSR2'] } }).found, [], 'SIGUSR2 handled on purpose')
})

test('a Dockerfile\'s final stage: ENV in both forms, continued lines, ENTRYPOINT with CMD, the shell form', async (t) => {
  const dockerfile = parseDockerfile([
    '# syntax=docker/dockerfile:1',
    'FROM node:24 AS build',
    'ENV STAGE=build',
    'CMD ["npm", "run", "build"]',
    'FROM node:24-slim',
    'ENV NODE_ENV=production PORT="3000" \\',
    '    # a comment inside the instruction',
    '    HOST=0.0.0.0',
    'env LEGACY value with spaces',
    'ENTRYPOINT ["/usr/bin/tini", "--"]',
    'CMD ["node", \\',
    '     "server.mjs"]',
    'STOPSIGNAL SIGINT'
  ].join('\n'))
  t.equal(dockerfile.from, 5)
  t.same(dockerfile.env, { NODE_ENV: 'production', PORT: '3000', HOST: '0.0.0.0', LEGACY: 'value with spaces' })
  t.same(dockerfile.stopSignal, { value: 'SIGINT', line: 13 })
  t.same(imageCommand(dockerfile), { value: ['/usr/bin/tini', '--', 'node', 'server.mjs'], line: 10 })
  t.same(imageCommand(parseDockerfile('FROM node\nENTRYPOINT node server.mjs\nCMD ["--inspect"]')), { value: ['/bin/sh', '-c', 'node server.mjs'], line: 2 }, 'a shell-form ENTRYPOINT takes no CMD')
  t.same(imageCommand(parseDockerfile('FROM node\nCMD [node, server.mjs]')), { value: ['/bin/sh', '-c', '[node, server.mjs]'], line: 2 }, 'not JSON: the shell form')
  t.equal(imageCommand(parseDockerfile('FROM node')), undefined)
})

test('--options: JSON, CommonJS and ES modules, a named export, a function of the environment', async (t) => {
  const dir = t.testdir({
    'options.json': JSON.stringify({ preStopDelay: 5000, drainTimeout: 15_000 }),
    'options.cjs': 'module.exports = { preStopDelay: 5000 }',
    'hidden.cjs': 'const all = {}\nall.shutdown = { preStopDelay: 5000 }\nmodule.exports = all',
    'named.mjs': 'export const shutdown = { preStopDelay: 5000 }',
    'two.mjs': 'export const a = {}\nexport const b = {}',
    'none.mjs': 'console.log.call(null)',
    'function.mjs': 'export default async (env) => ({ preStopDelay: 5000, drainTimeout: Number(env.DRAIN) })',
    'throws.mjs': 'export default () => { throw new Error(\'DATABASE_URL is not set\') }',
    'broken.mjs': 'export default {',
    'options.yaml': 'preStopDelay: 1',
    'bad.json': '{ "preStopDelay": ',
    'long.json': JSON.stringify({ drainTimeout: 40_000 }),
    'long-fixed.json': JSON.stringify({ drainTimeout: 40_000, gracePeriod: 30_000 })
  })
  const at = (file: string): string => path.join(dir, file)
  const service = compose('TERMINATION_GRACE_PERIOD_SECONDS: "60", DRAIN: "15000"')
  for (const file of ['options.json', 'options.cjs', 'named.mjs', 'named.mjs#shutdown', 'hidden.cjs#shutdown', 'function.mjs']) {
    const result = await checkText(service, { options: at(file) })
    t.same(ids(result), [], file)
    t.same(rulesOf(result, 'service api')?.includes('budget-exceeds-grace'), true, `${file}: checked`)
  }
  const drain = await checkText(compose('TERMINATION_GRACE_PERIOD_SECONDS: "60", DRAIN: "80000"'), { options: at('function.mjs') })
  t.match(drain.findings, [{ id: 'options-invalid', message: /FST_SHUTDOWN_BUDGET_EXCEEDED: .*`drainTimeout` \(80000 ms\)/ }], 'called with the service\'s environment')
  const threw = await checkText(service, { options: at('throws.mjs') })
  t.match(threw.findings, [{ id: 'options-invalid', message: /the options function of .*throws\.mjs threw: DATABASE_URL is not set/ }])

  const refused: [string, RegExp][] = [
    ['named.mjs#nope', /^--options .*named\.mjs: the module exports no `nope`$/],
    ['two.mjs', /^--options .*two\.mjs: name the export that holds the options, e\.g\. --options .*two\.mjs#a \(it exports `a`, `b`\)$/],
    ['none.mjs', /\(it exports nothing\)$/],
    ['broken.mjs', /broken\.mjs: could not be loaded: /],
    ['options.yaml', /expected a \.json, \.js, \.cjs or \.mjs file/],
    ['bad.json', /bad\.json: /],
    ['missing.json', /missing\.json: no such file/],
    ['long-fixed.json', /^--options .*long-fixed\.json: `preStopDelay` \(0 ms\) \+ `drainTimeout` \(40000 ms\)/]
  ]
  for (const [file, message] of refused) await t.rejects(checkText(service, { options: at(file) }), { message }, file)
  await t.rejects(checkText(service, { options: at('long-fixed.json') }), { code: 'FST_SHUTDOWN_BUDGET_EXCEEDED' }, 'the plugin\'s own code')

  t.same(ids(await checkText(service, { options: at('long.json') })), [], 'a long drain fits the grace period the runner passes down')
  t.match((await checkText(compose('DRAIN: "1"'), { options: at('long.json') })).findings, [{ id: 'options-invalid', message: /FST_SHUTDOWN_BUDGET_EXCEEDED.*`gracePeriod` \(30000 ms\)/ }],
    'and not the default one')
})

test('--options: resolved in the runner\'s environment only, --telemetry counts telemetryTimeout, the defaults without it', async (t) => {
  const saved = process.env.TERMINATION_GRACE_PERIOD_SECONDS
  process.env.TERMINATION_GRACE_PERIOD_SECONDS = '5'
  t.teardown(() => { if (saved === undefined) delete process.env.TERMINATION_GRACE_PERIOD_SECONDS; else process.env.TERMINATION_GRACE_PERIOD_SECONDS = saved })
  const tight = compose('TERMINATION_GRACE_PERIOD_SECONDS: "19"').replace('60s', '19s')
  t.same(ids(await checkText(tight)), [], 'the defaults (13 s + 2 s) fit 19 s, whatever this process\'s own environment says')
  t.equal(process.env.TERMINATION_GRACE_PERIOD_SECONDS, '5', 'and it is left as it was')
  t.match((await checkText(tight, { telemetry: true })).findings, [{ id: 'budget-exceeds-grace', message: /telemetryTimeout 5000/ }], 'with telemetry, 18 s + 2 s do not')
})

const DEPLOYMENT = (container: string, { kind = 'Deployment', pod = '' } = {}): string => `apiVersion: apps/v1
kind: ${kind}
metadata: { name: api, namespace: shop }
spec:
  replicas: 2
  template:
    metadata: { labels: { app: api, tier: web } }
    spec:${pod}
      containers:
${container}
`

const APP = `        - name: app
          env:
            - { name: PORT, value: "3000" }
            - { name: PROBE_PORT, value: "9000" }
          ports: [{ name: http, containerPort: 3000 }, { name: probes, containerPort: 9000 }]
          lifecycle: { preStop: { sleep: { seconds: 5 } } }
          readinessProbe: { httpGet: { path: /readyz, port: probes }, periodSeconds: 2, failureThreshold: 1 }
          livenessProbe: { httpGet: { path: /livez, port: probes } }`

test('Kubernetes: a List, a StatefulSet, its environment from a ConfigMap and a Secret, what cannot be read noted', async (t) => {
  const result = await checkText(`apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Secret
    metadata: { name: api-secrets }
    data: { PRESTOP_TOKEN: czNjcmV0 }
  - apiVersion: v1
    kind: ConfigMap
    metadata: { name: api-config }
    data: { PROBE_PORT: "9000" }
  - apiVersion: v1
    kind: ConfigMap
    metadata: { name: api-config, namespace: other }
    data: { PROBE_PORT: "9999" }
  - not: an object
  - apiVersion: apps/v1
    kind: StatefulSet
    metadata: { name: api }
    spec:
      template:
        metadata: { labels: { app: api } }
        spec:
          containers:
            - name: app
              envFrom:
                - configMapRef: { name: api-config }
                - secretRef: { name: api-more-secrets }
                  prefix: MORE_
              env:
                - { name: PRESTOP_TOKEN, valueFrom: { secretKeyRef: { name: api-secrets, key: PRESTOP_TOKEN } } }
                - { name: POD_IP, valueFrom: { fieldRef: { fieldPath: status.podIP } } }
                - { name: PRE_STOP_DELAY_MS, value: "5000" }
                - { name: EMPTY }
              ports: [{ name: probes, containerPort: 9000 }]
              lifecycle:
                preStop:
                  httpGet: { path: /prestop, port: probes, httpHeaders: [{ name: X-Prestop-Token, value: s3cret }] }
              readinessProbe: { httpGet: { path: /readyz, port: 9000 }, periodSeconds: 2, failureThreshold: 1 }
              livenessProbe: { tcpSocket: { port: 9000 } }
`, { options: EXAMPLE_OPTIONS })
  t.same(ids(result), [], 'the token from the Secret, the probe port from the ConfigMap (its own namespace\'s)')
  t.ok(rulesOf(result, 'StatefulSet/api container app')?.includes('prestop-hook-header'), 'the header was checked')
  t.same(notes(result), [
    'envFrom Secret api-more-secrets is not among the inputs: the options were resolved without its variables',
    'env POD_IP comes from fieldRef, not among the inputs: the options were resolved without it'
  ])
  t.equal(result.checked[0].line, 25, 'lines within the List')
})

test('Kubernetes: probes, the preStop hook and the stop signal, each way they can be wrong', async (t) => {
  const broken = async (container: string, options = EXAMPLE_OPTIONS): Promise<CheckResult> => checkText(DEPLOYMENT(container), { options })
  const replace = (from: string, to: string): string => {
    if (!APP.includes(from)) throw new Error(`not in APP: ${from}`)
    return APP.replace(from, to)
  }
  t.same(ids(await broken(APP)), [], 'the base is clean')
  t.match((await broken(replace('httpGet: { path: /readyz, port: probes }', 'tcpSocket: { port: probes }'))).findings,
    [{ id: 'probe-path', message: /readinessProbe is not an httpGet probe/ }])
  t.same(ids(await broken(replace('livenessProbe: { httpGet: { path: /livez, port: probes } }', 'livenessProbe: { exec: { command: [true] } }'))), [], 'liveness may be of any kind')
  t.match((await broken(replace('{ path: /livez, port: probes }', '{ port: probes }'))).findings, [{ id: 'probe-path', message: /livenessProbe calls \/, the plugin's liveness route is \/livez/ }])
  t.match((await broken(replace('{ path: /readyz, port: probes }', '{ path: /readyz, port: metrics }'))).findings,
    [{ id: 'probe-port', message: /readinessProbe calls port metrics, the plugin serves its probes on the probe server's port 9000/ }])
  t.match((await broken(replace('{ path: /readyz, port: probes }', '{ path: /readyz, port: "3000" }'))).findings, [{ id: 'probe-port', message: /calls port 3000, / }])
  t.match((await broken(replace('sleep: { seconds: 5 }', 'exec: { command: ["sh", "-c", "sleep 5s"] }'))).findings, [], 'an exec sleep counts')
  const unread = await broken(replace('sleep: { seconds: 5 }', 'exec: { command: ["/bin/drain"] }'))
  t.match(unread.findings, [{ id: 'prestop-too-short' }])
  t.same(notes(unread), ['preStop exec `/bin/drain` has no sleep this command can read: its time is not counted'])
  t.match((await broken(replace('preStop: { sleep: { seconds: 5 } }', 'preStop: { httpGet: { path: /prestop, port: probes } }'))).findings,
    [{ id: 'prestop-too-short' }, { id: 'prestop-hook-route', message: /calls a route the plugin does not serve \(preStopRoute is off\)/ }])
  const token = replace('- { name: PORT, value: "3000" }', '- { name: PORT, value: "3000" }\n            - { name: PRESTOP_TOKEN, value: s3cret }\n            - { name: PRE_STOP_DELAY_MS, value: "5000" }')
  t.match((await broken(token.replace('preStop: { sleep: { seconds: 5 } }', 'preStop: { httpGet: { path: /prestop, port: http } }'))).findings,
    [{ id: 'prestop-hook-route', message: /calls port http, the plugin serves preStopRoute on the probe server's port 9000/ }, { id: 'prestop-hook-header', message: /sends no x-prestop-token header/ }])
  t.match((await broken(replace('lifecycle: {', 'lifecycle: { stopSignal: SIGUSR1,'))).findings, [{ id: 'stop-signal-unhandled', message: /SIGUSR1 \(lifecycle\.stopSignal SIGUSR1\)/ }])
  t.same(ids(await checkText(DEPLOYMENT(APP, { pod: '\n      terminationGracePeriodSeconds: 19' }), { options: EXAMPLE_OPTIONS })), ['budget-exceeds-grace', 'grace-period-not-passed'], '5 s + 13 s + 2 s of 19 s, and the plugin told 30 s')

  const noProbes = await checkText(DEPLOYMENT('        - name: app\n          lifecycle: { preStop: { sleep: { seconds: 5 } } }'))
  t.same(ids(noProbes), [], 'the plugin\'s defaults: no readiness route, and so no probe to miss')
  t.notOk(rulesOf(noProbes, 'Deployment/api container app')?.includes('readiness-probe-missing'))
})

test('Kubernetes: Services and PodDisruptionBudgets by selector and namespace, --only, kinds it skips', async (t) => {
  const service = (selector: string, ports: string, namespace = 'shop'): string => `---
apiVersion: v1
kind: Service
metadata: { name: api-${namespace}, namespace: ${namespace} }
spec:
  ${selector}
  ports: ${ports}
`
  const pdb = (spec: string): string => `---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: { name: api }
spec: ${spec}
`
  const deployment = DEPLOYMENT(`${APP}\n        - name: proxy\n          image: envoy`)
  const result = await checkText([
    deployment,
    service('selector: { app: api }', '[{ port: 9000 }]'),
    service('selector: { app: api }', '[{ port: 9000 }]', 'other'),
    service('', '[{ port: 80, targetPort: probes }]', 'nobody'),
    service('selector: { app: admin }', '[{ port: 80, targetPort: 9000 }]', 'elsewhere'),
    pdb('{ minAvailable: 2, selector: { matchLabels: { app: api }, matchExpressions: [{ key: tier, operator: In, values: [web] }, { key: canary, operator: DoesNotExist }] } }'),
    pdb('{ minAvailable: "100%", selector: { matchExpressions: [{ key: tier, operator: NotIn, values: [web] }] } }'),
    pdb('{ maxUnavailable: 0, selector: { matchExpressions: [{ key: app, operator: Exists }, { key: tier, operator: Near }] } }'),
    '---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: { name: api }\n',
    '---\nkind: Kustomization\nresources: [deployment.yaml]\n'
  ].join(''), { options: EXAMPLE_OPTIONS, only: ['app'] })
  t.match(result.findings, [
    { id: 'probe-port-exposed', object: 'Service/api-shop', line: 26, message: /^port 9000 leads to containerPort 9000, where Deployment\/api container app serves its probes/ },
    { id: 'pdb-blocks-eviction', message: /^minAvailable 2 for Deployment\/api \(replicas 2\)/ }
  ], 'the Service in its namespace without targetPort, the budget whose labels and expressions select it')
  t.equal(result.findings.length, 2)
  t.same(result.skipped.map(({ object, reason }) => [object, reason]), [
    ['Deployment/api container proxy', 'not named by --only'],
    ['HorizontalPodAutoscaler/api', 'kind HorizontalPodAutoscaler is not checked'],
    ['document', 'not a Kubernetes object, a Compose file or a PM2 ecosystem file']
  ])

  const daemons = await checkText(DEPLOYMENT(APP, { kind: 'DaemonSet' }) + pdb('{ minAvailable: 5, selector: {} }'), { options: EXAMPLE_OPTIONS })
  t.same(ids(daemons), [], 'a DaemonSet has no replicas to count, and an empty selector selects every pod')
  t.same(rulesOf(daemons, 'PodDisruptionBudget/api'), ['pdb-blocks-eviction'])
  const unnamed = await checkText('apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers: [{ lifecycle: { preStop: { sleep: { seconds: 5 } } } }]\n')
  t.same(unnamed.checked.map(({ object }) => object), ['Deployment/(unnamed) container 0'])
})

test('Compose: the environment in both forms, the Dockerfile it builds from, entrypoint and command, what it cannot read', async (t) => {
  const dir = t.testdir({
    'compose.yaml': `services:
  api:
    build: { context: app, dockerfile: api.Dockerfile }
    stop_grace_period: 20s
    environment: [TERMINATION_GRACE_PERIOD_SECONDS=20, FROM_SHELL]
    env_file: .env
  worker:
    build: app
    entrypoint: ["node", "worker.js"]
    stop_grace_period: 20s
    environment: { TERMINATION_GRACE_PERIOD_SECONDS: 20 }
  cron:
    build: missing
    stop_grace_period: 20s
    environment: { TERMINATION_GRACE_PERIOD_SECONDS: "20" }
  db:
    image: postgres
    stop_grace_period: 20s
    environment: { TERMINATION_GRACE_PERIOD_SECONDS: "20", POSTGRES_PASSWORD: null }
  empty:
`,
    app: {
      'api.Dockerfile': 'FROM node:24-slim\nENV DRAIN_TIMEOUT_MS=5000\nSTOPSIGNAL SIGHUP\nCMD ["npm", "start"]\n',
      Dockerfile: 'FROM node:24-slim\nENTRYPOINT ["npm"]\nCMD ["start"]\n'
    }
  })
  const result = await check({ inputs: [path.join(dir, 'compose.yaml')], options: EXAMPLE_OPTIONS })
  t.same(result.findings.map(({ id, object }) => [id, object]), [
    ['stop-signal-unhandled', 'service api'],
    ['npm-start', 'service api']
  ], 'the Dockerfile\'s STOPSIGNAL and CMD; the worker\'s entrypoint replaces npm')
  t.match(result.findings[0].message, /SIGHUP \(the Dockerfile's STOPSIGNAL SIGHUP\)/)
  t.match(notes(result), [
    'environment FROM_SHELL comes from the shell running docker compose: the options were resolved without it',
    'env_file is not read: the options were resolved without it',
    /^the Dockerfile it builds from \(.*missing\/Dockerfile\) could not be read: its STOPSIGNAL and command were not checked$/,
    'what it runs (its image\'s command) is not among the inputs: node as PID 1 was not checked',
    'environment POSTGRES_PASSWORD comes from the shell running docker compose: the options were resolved without it',
    'what it runs (its image\'s command) is not among the inputs: node as PID 1 was not checked'
  ])
  t.same(result.checked.map(({ object }) => object), ['service api', 'service worker', 'service cron', 'service db'])

  await t.rejects(checkText(compose().replace('60s', '1 minute')), { code: 'FST_SHUTDOWN_CHECK_INPUT', message: /^<stdin>:5: stop_grace_period `1 minute` is not a duration \(16s, 1m30s\)$/ })
})

test('systemd: prefixes, continued lines, resets, infinity, what it cannot read', async (t) => {
  const unit = (service: string): string => `# a unit on stdin\n[Unit]\nDescription=api\n\n[Service]\n${service}\n[Install]\nWantedBy=multi-user.target\nTimeoutStopSec=1\n`
  const clean = await checkText(unit([
    'ExecStart=@/usr/bin/node node \\',
    '  server.js',
    '; a comment',
    'Environment=PORT=3000',
    'Environment=',
    'Environment="PRE_STOP_DELAY_MS=1000" TERMINATION_GRACE_PERIOD_SECONDS=90',
    'NotASetting'
  ].join('\n')))
  t.same(ids(clean), [], 'systemd\'s default 90 s, passed down; the unit on stdin')
  t.same(clean.checked.map(({ object, line }) => [object, line]), [['unit', 5]], 'the line of [Service]')
  const lax = await checkText(unit('ExecStart=-/usr/bin/npm start\nTimeoutSec=infinity\nSendSIGKILL=no\nEnvironmentFile=/etc/api.env'))
  t.same(ids(lax), ['npm-start', 'grace-period-not-passed', 'systemd-kill-mode'], 'in the order of their lines')
  t.match(lax.findings, [{ line: 6 }, { line: 7, fix: 'gracePeriod: Infinity' }, { line: 8, message: /SendSIGKILL=no/ }])
  t.same(notes(lax), ['EnvironmentFile= is not read: the options were resolved without it'])
  t.same(ids(await checkText(unit('KillMode=none\nKillSignal=15\nTimeoutStopSec=30'))), ['systemd-kill-mode'], 'signal 15 is SIGTERM')
  await t.rejects(checkText(unit('TimeoutStopSec=soon')), { code: 'FST_SHUTDOWN_CHECK_INPUT', message: '<stdin>:6: `soon` is not a systemd time span' })
})

test('PM2: ecosystem files as arrays, ES modules, in JSON and YAML; apps named by their script; what is not one', async (t) => {
  const dir = t.testdir({
    'array.config.cjs': 'module.exports = [{ script: "dist/server.js", args: ["--port", "3000"], instances: 2, kill_timeout: "16000", shutdown_with_message: true, env: { PRE_STOP_DELAY_MS: 1000 } }]',
    esm: {
      'package.json': '{ "type": "module" }',
      'ecosystem.config.js': 'export default { apps: [{ name: "api", script: "server.mjs", exec_mode: "cluster_mode", kill_timeout: 16000, env: { PRE_STOP_DELAY_MS: "1000" } }] }'
    },
    'ecosystem.yaml': 'apps:\n  - name: api\n    script: server.mjs\n    exec_mode: fork_mode\n    kill_timeout: 16000\n',
    'not-an-ecosystem.cjs': 'module.exports = { name: "api" }',
    'throws.cjs': 'throw new Error("no config")'
  })
  const result = await check({ inputs: [path.join(dir, 'array.config.cjs'), path.join(dir, 'esm', 'ecosystem.config.js'), path.join(dir, 'ecosystem.yaml')], options: EXAMPLE_OPTIONS })
  t.same(result.findings.map(({ id, object }) => [id, object]), [['pm2-fork-mode', 'app api']], 'the YAML one is in fork mode')
  t.same(result.checked.map(({ object, line }) => [object, line]), [['app server.js', undefined], ['app api', undefined], ['app api', 2]])
  t.notOk(result.checked[0].rules.includes('stop-signal-unhandled'), 'shutdown_with_message: no signal')
  await t.rejects(check({ inputs: [path.join(dir, 'not-an-ecosystem.cjs')] }), { message: /not-an-ecosystem\.cjs: not a PM2 ecosystem file: it exports no `apps` array$/ })
  await t.rejects(check({ inputs: [path.join(dir, 'throws.cjs')] }), { code: 'FST_SHUTDOWN_CHECK_INPUT', message: /throws\.cjs: could not be loaded: no config$/ })
})

test('inputs: directories, stdin told apart by its text, `-` once', async (t) => {
  const dir = t.testdir({
    k8s: {
      'a.yaml': DEPLOYMENT(APP),
      'b.json': JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'api' }, spec: { selector: { app: 'api' }, ports: [{ port: 9000 }] } }),
      'notes.txt': 'not read'
    }
  })
  const result = await check({ inputs: [path.join(dir, 'k8s')], options: EXAMPLE_OPTIONS })
  t.same(ids(result), ['probe-port-exposed'], 'the Service in the JSON file of the same directory')
  t.match(result.findings[0].file, /b\.json$/)
  t.same((await checkText('# built from\nARG BASE=node:24\nFROM $BASE\nCMD ["npm", "start"]\n')).findings.map(({ id, object }) => [id, object]), [['npm-start', 'image']], 'a Dockerfile on stdin')
  await t.rejects(check({ inputs: ['-', '-'] }), { code: 'FST_SHUTDOWN_CHECK_USAGE', message: '`-` (standard input) can be given once' })
  await t.rejects(checkText(''), { code: 'FST_SHUTDOWN_CHECK_USAGE', message: /^nothing was checked: no workload, Compose service, unit, PM2 app or Dockerfile$/ })
  await t.rejects(check({ inputs: [path.join(dir, 'nowhere')] }), { code: 'FST_SHUTDOWN_CHECK_INPUT', message: /nowhere: no such file$/ })
  await t.rejects(check({ inputs: [path.join(dir, 'k8s', 'a.yaml', 'b.yaml')] }), { code: 'FST_SHUTDOWN_CHECK_INPUT', message: /a\.yaml[\\/]b\.yaml: ENOTDIR: not a directory/ })
  await t.rejects(checkText('a: 1\nb: [\n'), { code: 'FST_SHUTDOWN_CHECK_INPUT', message: /^<stdin>:3:1: / })
  await t.rejects(checkText('a: *unknown\n'), { code: 'FST_SHUTDOWN_CHECK_INPUT', message: /^<stdin>: Unresolved alias/ })
})

test('the readable report names notes and what was skipped', async (t) => {
  const result = await checkText(`${compose('TERMINATION_GRACE_PERIOD_SECONDS: "60", FROM_SHELL: null')}---\napiVersion: v1\nkind: Namespace\nmetadata: { name: shop }\n`)
  t.equal(textReport(result), [
    '<stdin>:2: note: service api: environment FROM_SHELL comes from the shell running docker compose: the options were resolved without it',
    'checked service api (<stdin>:2): 6 rules',
    'skipped Namespace/shop (<stdin>:8): kind Namespace is not checked',
    '0 errors, 0 warnings in 1 object checked, 1 skipped',
    ''
  ].join('\n'))
})

test('sparse manifests: whatever a field leaves out, the rules read Kubernetes\' defaults and nothing throws', async (t) => {
  const result = await checkText(`apiVersion: apps/v1
kind: Deployment
metadata: { name: empty }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: api }
spec:
  template:
    metadata: { labels: { app: api } }
    spec:
      terminationGracePeriodSeconds: 60
      containers:
        - name: app
          envFrom: [{ configMapRef: {} }]
          env:
            - { name: TERMINATION_GRACE_PERIOD_SECONDS, value: "60" }
            - { name: PRESTOP_TOKEN, value: s3cret }
            - { name: A, valueFrom: {} }
            - { name: B, valueFrom: { configMapKeyRef: { name: api-config, key: B } } }
            - { name: C, valueFrom: { secretKeyRef: { name: api-secret, key: C } } }
            - { name: D, valueFrom: { secretKeyRef: { name: api-secret, key: D } } }
            - { name: PRE_STOP_DELAY_MS, valueFrom: { configMapKeyRef: { name: api-config, key: DELAY } } }
          readinessProbe: { httpGet: { path: /readyz, port: http } }
          lifecycle: { preStop: { httpGet: { port: http } } }
---
apiVersion: v1
kind: Secret
metadata: { name: api-secret }
stringData: { C: c }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: api-config }
data: { DELAY: "30000" }
---
apiVersion: v1
kind: Service
metadata: { name: no-spec }
---
apiVersion: v1
kind: Service
metadata: { name: empty-selector }
spec: { selector: {} }
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: { name: no-spec }
`, { options: EXAMPLE_OPTIONS })
  t.same(ids(result), ['prestop-hook-route', 'prestop-hook-header'], 'a wait of 30 s outlasts the default readiness probe\'s 10 s × 3; a hook without a path calls /')
  t.match(result.findings[0].message, /calls \/, the plugin's preStopRoute is/)
  t.same(notes(result), [
    'envFrom ConfigMap  is not among the inputs: the options were resolved without its variables',
    'env A comes from undefined, not among the inputs: the options were resolved without it',
    'env B comes from configMapKeyRef api-config, not among the inputs: the options were resolved without it',
    'env D comes from secretKeyRef api-secret, not among the inputs: the options were resolved without it'
  ])
  t.same(result.checked.map(({ object }) => object), ['Deployment/api container app'], 'a Deployment without containers has nothing to check')
})

test('probe server hosts: loopback by every name is refused, any other address is not', async (t) => {
  for (const [host, loopback] of [['127.0.0.1', true], ['127.1.2.3', true], ['localhost', true], ['::1', true], ['::ffff:127.0.0.1', true], ['0.0.0.0', false], ['10.0.0.1', false], ['pod.local', false]] as const) {
    const result = await checkText(DEPLOYMENT(APP.replace('- { name: PORT, value: "3000" }', `- { name: PORT, value: "3000" }\n            - { name: PROBE_HOST, value: "${host}" }`)), { options: EXAMPLE_OPTIONS })
    t.same(ids(result), loopback ? ['probe-server-loopback'] : [], host)
  }
})

test('options the plugin refuses in one runner\'s environment stop that runner\'s other rules; handleSignals: false leaves the signal to the app', async (t) => {
  const dir = t.testdir({
    Dockerfile: 'FROM node:24-slim\nENV DRAIN_TIMEOUT_MS=soon\nCMD ["npm", "start"]\n',
    'api.service': '[Service]\nExecStart=/usr/bin/npm start\nEnvironment=DRAIN_TIMEOUT_MS=soon\n',
    'ecosystem.config.cjs': 'module.exports = { apps: [{ name: "api", script: "npm", env: { DRAIN_TIMEOUT_MS: "soon" } }, { script: "other.js" }, {}] }',
    'compose.yaml': 'services:\n  api:\n    image: api\n    command: npm start\n',
    'no-signals.json': JSON.stringify({ handleSignals: false })
  })
  const result = await check({ inputs: ['Dockerfile', 'api.service', 'ecosystem.config.cjs'].map((file) => path.join(dir, file)), options: EXAMPLE_OPTIONS, only: ['api'] })
  t.same(result.findings.map(({ id, object }) => [id, object]), [['options-invalid', 'image'], ['options-invalid', 'unit api.service'], ['options-invalid', 'app api']], 'and npm start is not reported')
  t.same(result.skipped.map(({ object }) => object), ['app other.js', 'app 2'], 'named by their script, or their place')
  const signals = await check({ inputs: [path.join(dir, 'compose.yaml')], options: path.join(dir, 'no-signals.json') })
  t.notOk(rulesOf(signals, 'service api')?.includes('stop-signal-unhandled'))
  t.same(ids(signals), ['budget-exceeds-grace', 'grace-period-not-passed', 'npm-start'], 'no environment: the default grace periods')
  const fork = await checkText('apps:\n  - script: server.js\n')
  t.same(ids(fork), ['budget-exceeds-grace', 'pm2-fork-mode'], 'neither exec_mode nor instances: fork mode')
})

test('signals as Docker and systemd write them', async (t) => {
  const unit = (signal: string): string => `[Service]\nExecStart=/usr/bin/node server.js\nKillSignal=${signal}\nTimeoutStopSec=30\nEnvironment=TERMINATION_GRACE_PERIOD_SECONDS=30\n`
  for (const [signal, handled] of [['SIGTERM', true], ['TERM', true], ['15', true], ['2', true], ['sigint', true], ['99', false], ['SIGHUP', false]] as const) {
    t.same(ids(await checkText(unit(signal))), handled ? [] : ['stop-signal-unhandled'], signal)
  }
  t.match((await checkText(unit('99'))).findings, [{ message: /stopped with 99 \(KillSignal=99\)/ }])
})

test('an ES module ecosystem file that require() cannot load (top-level await) is imported', async (t) => {
  const dir = t.testdir({
    'package.json': '{ "type": "module" }',
    'ecosystem.config.js': 'const env = await Promise.resolve({ PRE_STOP_DELAY_MS: "1000" })\nexport default { apps: [{ name: "api", script: "server.mjs", instances: 2, kill_timeout: 16000, env }] }\n'
  })
  const result = await check({ inputs: [path.join(dir, 'ecosystem.config.js')], options: EXAMPLE_OPTIONS })
  t.same(ids(result), [])
  t.same(result.checked.map(({ object }) => object), ['app api'])
})
