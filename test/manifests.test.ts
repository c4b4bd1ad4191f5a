// The example's Kubernetes manifests and image, checked by `fastify-shutdown check`'s own rules (lib/check*.ts)
// against the app's configuration (example-app/config.mjs), as a user's CI checks theirs; then what the example
// promises beyond those rules.
import { test } from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { check } from '../lib/check'
import type { RuleId } from '../lib/check-rules'

const EXAMPLE_APP = join(__dirname, '..', 'example-app')
const k8s = join(EXAMPLE_APP, 'k8s')
const OPTIONS = join(EXAMPLE_APP, 'config.mjs')
const manifest = (name: string): any => parse(readFileSync(join(k8s, name), 'utf8'))

/** What every one of the three ways is held to, whichever way it waits before the listener closes. */
const CONTAINER_RULES: RuleId[] = [
  'options-invalid', 'budget-exceeds-grace', 'grace-period-not-passed', 'prestop-counted-twice', 'prestop-too-short',
  'readiness-probe-missing', 'probe-path', 'probe-port', 'probe-port-exposed'
]

const deployments: [file: string, more: RuleId[]][] = [
  ['deployment.yaml', []],
  ['alternatives/deployment-in-app-delay.yaml', []],
  ['alternatives/deployment-prestop-httpget.yaml', ['prestop-hook-route', 'prestop-hook-header']]
]

for (const [file, more] of deployments) {
  test(`${file}, with the Service and the PodDisruptionBudget: every rule holds`, async (t) => {
    const result = await check({ inputs: [join(k8s, file), join(k8s, 'service.yaml'), join(k8s, 'pdb.yaml')], options: OPTIONS })
    t.same(result.findings, [], 'no finding')
    t.same(result.notes, [], 'everything it needs is in the manifests')
    t.same(result.skipped, [])
    t.same(result.checked.map(({ object, rules }) => [object, [...rules].sort()]), [
      ['Deployment/orders-api container orders-api', [...CONTAINER_RULES, ...more].sort()],
      ['PodDisruptionBudget/orders-api', ['pdb-blocks-eviction']]
    ], 'the rules each object was held to')
  })
}

test('the image: node as PID 1, in the exec form, stopped with a signal the plugin handles', async (t) => {
  const result = await check({ inputs: [join(EXAMPLE_APP, 'Dockerfile')], options: OPTIONS })
  t.same(result.findings, [])
  t.same(result.checked.map(({ object, rules }) => [object, rules]), [['image', ['options-invalid', 'stop-signal-unhandled', 'npm-start', 'shell-form']]])
})

// Beyond the rules: the example's own objects agree with one another.
for (const [file] of deployments) {
  test(`${file}: Service and PodDisruptionBudget select its pods, ports agree, a rollout never goes below the replicas`, async (t) => {
    const deployment = manifest(file)
    const container = deployment.spec.template.spec.containers[0]
    const env = Object.fromEntries(container.env.map(({ name, value }: { name: string, value: string }) => [name, value]))
    const service = manifest('service.yaml')
    const labels = deployment.spec.template.metadata.labels
    t.match(labels, service.spec.selector)
    t.match(labels, manifest('pdb.yaml').spec.selector.matchLabels)
    t.equal(service.spec.ports[0].targetPort, container.ports[0].name)
    t.equal(String(container.ports[0].containerPort), env.PORT)
    t.not(env.PROBE_PORT, env.PORT, 'the probe server has a port of its own')
    t.equal(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0)
  })
}
