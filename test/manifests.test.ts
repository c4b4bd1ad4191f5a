import { test } from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { resolveOptions } from '../lib/options'
import { KILL_MARGIN_MS, worstCaseMs } from '../lib/shutdown-budget'
import type { FastifyShutdownOptions } from '../types'

const k8s = join(__dirname, '..', 'example-app', 'k8s')
const manifest = (name: string): any => parse(readFileSync(join(k8s, name), 'utf8'))

const deployments = ['deployment.yaml', 'alternatives/deployment-in-app-delay.yaml', 'alternatives/deployment-prestop-httpget.yaml']

for (const file of deployments) {
  const deployment = manifest(file)
  const pod = deployment.spec.template.spec
  const container = pod.containers[0]
  const env: Record<string, string> = Object.fromEntries(container.env.map(({ name, value }: { name: string, value: string }) => [name, value]))
  const preStopSleepMs = (container.lifecycle?.preStop?.sleep?.seconds ?? 0) * 1000

  async function appOptions (): Promise<FastifyShutdownOptions> {
    const { shutdownOptions } = await import('../example-app/config.mjs' as string)
    return shutdownOptions(env)
  }

  test(`${file}: the grace period the plugin budgets for is the pod's own`, async (t) => {
    t.equal(Number(env.TERMINATION_GRACE_PERIOD_SECONDS), pod.terminationGracePeriodSeconds)
  })

  test(`${file}: preStop wait + drain + force + margin fit in terminationGracePeriodSeconds`, async (t) => {
    const saved = process.env.TERMINATION_GRACE_PERIOD_SECONDS
    process.env.TERMINATION_GRACE_PERIOD_SECONDS = env.TERMINATION_GRACE_PERIOD_SECONDS
    t.teardown(() => { if (saved === undefined) delete process.env.TERMINATION_GRACE_PERIOD_SECONDS; else process.env.TERMINATION_GRACE_PERIOD_SECONDS = saved })
    const options = resolveOptions(await appOptions())
    const total = preStopSleepMs + worstCaseMs(options)
    t.ok(total + KILL_MARGIN_MS <= pod.terminationGracePeriodSeconds * 1000,
      `${total} ms worst case + ${KILL_MARGIN_MS} ms margin within ${pod.terminationGracePeriodSeconds} s`)
  })

  test(`${file}: the wait before the listener closes is counted once, and outlasts endpoint removal`, async (t) => {
    const options = resolveOptions(await appOptions())
    t.ok(preStopSleepMs === 0 || options.preStopDelay === 0, 'a preStop sleep and an in-app delay would wait twice')
    const { periodSeconds, failureThreshold } = container.readinessProbe
    const unreadyWithinMs = periodSeconds * failureThreshold * 1000
    t.ok(preStopSleepMs + options.preStopDelay >= unreadyWithinMs,
      `the kubelet sees the pod unready within ${unreadyWithinMs} ms, before the listener closes`)
  })

  /** A container port by name or number, as a probe, hook or Service names it. */
  const containerPort = (port: string | number): number | undefined =>
    typeof port === 'number' ? port : container.ports.find(({ name }: { name: string }) => name === port)?.containerPort

  test(`${file}: the probes point at the plugin's readiness and liveness routes, on the probe port`, async (t) => {
    const options = await appOptions()
    const { port } = options.probeServer as { port: number }
    t.equal(container.readinessProbe.httpGet.path, (options.readiness as { path: string }).path)
    t.equal(container.livenessProbe.httpGet.path, (options.liveness as { path: string }).path)
    t.equal(containerPort(container.readinessProbe.httpGet.port), port)
    t.equal(containerPort(container.livenessProbe.httpGet.port), port)
    t.not(port, Number(env.PORT), 'a port of its own')
    t.equal((options.probeServer as { host?: string }).host, undefined, 'on every interface: the kubelet calls the pod IP')
    t.ok(container.livenessProbe.periodSeconds * container.livenessProbe.failureThreshold >= pod.terminationGracePeriodSeconds,
      'liveness cannot fail its way to a restart while the pod drains')
  })

  const hook = container.lifecycle?.preStop?.httpGet
  if (hook !== undefined) {
    test(`${file}: the preStop httpGet hook calls the plugin's guarded route with its token`, async (t) => {
      const { preStopRoute } = await appOptions() as { preStopRoute: { path: string, header: { name: string, value: string } } }
      t.equal(hook.path, preStopRoute.path)
      t.same(hook.httpHeaders, [{ name: preStopRoute.header.name, value: preStopRoute.header.value }])
      t.equal(containerPort(hook.port), ((await appOptions()).probeServer as { port: number }).port, 'on the probe port')
    })
  }

  test(`${file}: Service and PodDisruptionBudget select its pods, ports agree`, async (t) => {
    const service = manifest('service.yaml')
    const pdb = manifest('pdb.yaml')
    const labels = deployment.spec.template.metadata.labels
    t.match(labels, service.spec.selector)
    t.match(labels, pdb.spec.selector.matchLabels)
    t.equal(service.spec.ports[0].targetPort, container.ports[0].name)
    t.equal(String(container.ports[0].containerPort), env.PORT)
    t.equal(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0)
  })

  test(`${file}: the Service never exposes the probe port`, async (t) => {
    const service = manifest('service.yaml')
    const { port } = (await appOptions()).probeServer as { port: number }
    t.ok(container.ports.some(({ containerPort: declared }: { containerPort: number }) => declared === port), 'the probe port is a containerPort')
    for (const exposed of service.spec.ports) {
      // A Service without targetPort sends to its own port number.
      const target = containerPort(exposed.targetPort ?? exposed.port)
      t.not(target, port, `Service port ${exposed.name ?? exposed.port} does not lead to the probe port`)
      t.not(exposed.port, port)
    }
  })
}

test('the image runs node as PID 1 and stops it with SIGTERM', async (t) => {
  const dockerfile = readFileSync(join(__dirname, '..', 'example-app', 'Dockerfile'), 'utf8')
  t.match(dockerfile, /^STOPSIGNAL SIGTERM$/m)
  t.match(dockerfile, /^CMD \["node", "server\.mjs"\]$/m)
})
