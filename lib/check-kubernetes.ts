import { isIP } from 'node:net'
import type { ResolvedShutdownOptions } from '../types'
import { checkCommand } from './check-command'
import type { YamlDocument } from './check-input'
import type { Environment } from './check-options'
import type { Subject } from './check-rules'
import { checkBudget, checkGracePassedDown, checkStopSignal, type CheckContext, optionsIn } from './check-runner'

type Path = readonly (string | number)[]

/** One object of a manifest (an item of a `List` too), and the line each of its nodes starts on. */
export interface KubeObject {
  readonly kind: string
  readonly name: string
  readonly namespace: string | undefined
  readonly value: Manifest
  readonly file: string
  lineOf (at: Path): number | undefined
}

/** The parts of the manifests the rules read; anything may be missing or of another type in a user's file. */
interface Manifest {
  kind?: string
  metadata?: { name?: string, namespace?: string, labels?: Record<string, string> }
  spec?: {
    replicas?: number
    selector?: Selector | Record<string, string>
    template?: { metadata?: { labels?: Record<string, string> }, spec?: PodSpec }
    ports?: ServicePort[]
    minAvailable?: number | string
    maxUnavailable?: number | string
  }
  data?: Record<string, string>
  stringData?: Record<string, string>
  items?: unknown[]
}

interface Selector {
  matchLabels?: Record<string, string>
  matchExpressions?: { key: string, operator: string, values?: string[] }[]
}

interface PodSpec {
  terminationGracePeriodSeconds?: number
  containers?: Container[]
}

interface Container {
  name?: string
  command?: string[]
  args?: string[]
  ports?: { name?: string, containerPort?: number }[]
  env?: { name: string, value?: string, valueFrom?: Record<string, { name?: string, key?: string }> }[]
  envFrom?: { prefix?: string, configMapRef?: { name?: string }, secretRef?: { name?: string } }[]
  readinessProbe?: Probe
  livenessProbe?: Probe
  lifecycle?: {
    stopSignal?: string
    preStop?: { sleep?: { seconds?: number }, exec?: { command?: string[] }, httpGet?: HttpGet }
  }
}

interface Probe {
  httpGet?: HttpGet
  periodSeconds?: number
  failureThreshold?: number
}

interface HttpGet {
  path?: string
  port?: number | string
  httpHeaders?: { name?: string, value?: string }[]
}

interface ServicePort {
  name?: string
  port?: number
  targetPort?: number | string
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/** A Kubernetes object: a mapping with a `kind` and an `apiVersion`. */
export function isKubeObject (value: unknown): boolean {
  return isRecord(value) && typeof value.kind === 'string' && typeof value.apiVersion === 'string'
}

/** The objects of a document: the object itself, or each item of a `List` (`kubectl get -o yaml`). */
export function kubeObjects (document: YamlDocument): KubeObject[] {
  const objectAt = (value: Manifest, base: Path): KubeObject => ({
    kind: value.kind as string,
    name: value.metadata?.name ?? '(unnamed)',
    namespace: value.metadata?.namespace,
    value,
    file: document.file,
    lineOf: (at) => document.lineOf([...base, ...at])
  })
  const value = document.value as Manifest
  if (value.kind === 'List' && Array.isArray(value.items)) {
    return value.items.flatMap((item, index) => isKubeObject(item) ? [objectAt(item as Manifest, ['items', index])] : [])
  }
  return [objectAt(value, [])]
}

const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'DaemonSet'])
/** Read for what they say about the workloads: who routes to them, who may evict them, their environment. */
const READ_FOR_WORKLOADS = new Set(['Service', 'PodDisruptionBudget', 'ConfigMap', 'Secret'])

/** Kubernetes' defaults (core/v1). */
const DEFAULT_GRACE_SECONDS = 30
const DEFAULT_PERIOD_SECONDS = 10
const DEFAULT_FAILURE_THRESHOLD = 3

const sameNamespace = (a: KubeObject, b: KubeObject): boolean =>
  a.namespace === undefined || b.namespace === undefined || a.namespace === b.namespace

function matchesExpression (labels: Record<string, string>, { key, operator, values = [] }: NonNullable<Selector['matchExpressions']>[number]): boolean {
  switch (operator) {
    case 'In': return key in labels && values.includes(labels[key])
    case 'NotIn': return !(key in labels) || !values.includes(labels[key])
    case 'Exists': return key in labels
    case 'DoesNotExist': return !(key in labels)
    default: return false
  }
}

/** A label selector (a PodDisruptionBudget's): every label and every expression holds; an empty one selects every pod. */
function selectorMatches (selector: Selector | undefined, labels: Record<string, string>): boolean {
  if (selector === undefined) return false
  return Object.entries(selector.matchLabels ?? {}).every(([key, value]) => labels[key] === value) &&
    (selector.matchExpressions ?? []).every((expression) => matchesExpression(labels, expression))
}

/** A Service's selector: plain labels; none selects no pod (its endpoints are managed by hand). */
function serviceSelects (selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!isRecord(selector) || Object.keys(selector).length === 0) return false
  return Object.entries(selector).every(([key, value]) => labels[key] === value)
}

/** `sleep 5` in a preStop exec command, however it is wrapped (`sh -c "sleep 5"`). */
function execSleepMs (command: readonly string[]): number | undefined {
  const match = /(?:^|[\s;&|])sleep\s+(\d+(?:\.\d+)?)s?(?:$|[\s;&|])/.exec(command.join(' '))
  return match === null ? undefined : Number(match[1]) * 1000
}

const isLoopback = (host: string): boolean =>
  host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.')) || /^::ffff:127\./i.test(host)

class KubernetesCheck {
  private readonly byKind = new Map<string, KubeObject[]>()

  constructor (private readonly context: CheckContext, objects: readonly KubeObject[]) {
    for (const object of objects) {
      if (!WORKLOADS.has(object.kind) && !READ_FOR_WORKLOADS.has(object.kind)) {
        context.record.skip({ file: object.file, line: object.lineOf([]), object: `${object.kind}/${object.name}` }, `kind ${object.kind} is not checked`)
        continue
      }
      this.byKind.set(object.kind, [...(this.byKind.get(object.kind) ?? []), object])
    }
  }

  async run (): Promise<void> {
    for (const kind of WORKLOADS) {
      for (const workload of this.byKind.get(kind) ?? []) await this.workload(workload)
    }
  }

  private async workload (workload: KubeObject): Promise<void> {
    const template = workload.value.spec?.template
    const labels = template?.metadata?.labels ?? {}
    const containers = template?.spec?.containers ?? []
    for (const [index, container] of containers.entries()) {
      const subject: Subject = {
        file: workload.file,
        line: workload.lineOf(['spec', 'template', 'spec', 'containers', index]),
        object: `${workload.kind}/${workload.name} container ${container.name ?? index}`
      }
      if (!this.context.selected(subject, container.name ?? '')) continue
      const env = this.environment(subject, workload, container)
      const options = await optionsIn(this.context.record, subject, this.context.source, env)
      if (options === null) continue
      this.container(subject, workload, container, options, env, labels)
    }
    this.disruptionBudgets(workload, labels)
  }

  /** The container's environment as the kubelet builds it, from the ConfigMaps and Secrets among the inputs. */
  private environment (subject: Subject, workload: KubeObject, container: Container): Record<string, string> {
    const env: Record<string, string> = {}
    const data = (kind: 'ConfigMap' | 'Secret', name: string | undefined): Record<string, string> | undefined => {
      const found = (this.byKind.get(kind) ?? []).find((object) => object.name === name && sameNamespace(object, workload))
      if (found === undefined) return undefined
      const decoded = Object.fromEntries(Object.entries(found.value.data ?? {})
        .map(([key, value]) => [key, kind === 'Secret' ? Buffer.from(String(value), 'base64').toString('utf8') : String(value)]))
      return { ...decoded, ...found.value.stringData }
    }
    for (const from of container.envFrom ?? []) {
      const [kind, ref] = from.configMapRef !== undefined ? ['ConfigMap', from.configMapRef] as const : ['Secret', from.secretRef] as const
      const values = data(kind, ref?.name)
      if (values === undefined) {
        this.context.record.note(subject, `envFrom ${kind} ${ref?.name ?? ''} is not among the inputs: the options were resolved without its variables`)
        continue
      }
      for (const [key, value] of Object.entries(values)) env[`${from.prefix ?? ''}${key}`] = value
    }
    for (const variable of container.env ?? []) {
      if (variable.valueFrom === undefined) {
        env[variable.name] = String(variable.value ?? '')
        continue
      }
      const [source, ref] = Object.entries(variable.valueFrom)[0] ?? []
      const kind = source === 'configMapKeyRef' ? 'ConfigMap' : source === 'secretKeyRef' ? 'Secret' : undefined
      const value = kind === undefined ? undefined : data(kind, ref?.name)?.[ref?.key ?? '']
      if (value === undefined) {
        this.context.record.note(subject, `env ${variable.name} comes from ${source}${ref?.name === undefined ? '' : ` ${ref.name}`}, not among the inputs: the options were resolved without it`)
      } else {
        env[variable.name] = value
      }
    }
    return env
  }

  private container (subject: Subject, workload: KubeObject, container: Container, options: ResolvedShutdownOptions, env: Environment, labels: Record<string, string>): void {
    const { record } = this.context
    const graceSeconds = workload.value.spec?.template?.spec?.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS
    const preStop = container.lifecycle?.preStop
    let sleepMs = preStop?.sleep?.seconds === undefined ? 0 : Number(preStop.sleep.seconds) * 1000
    if (preStop?.exec?.command !== undefined) {
      const execMs = execSleepMs(preStop.exec.command)
      if (execMs === undefined) record.note(subject, `preStop exec \`${preStop.exec.command.join(' ')}\` has no sleep this command can read: its time is not counted`)
      sleepMs = execMs ?? 0
    }
    const sleep = sleepMs > 0 ? { name: 'preStop sleep', ms: sleepMs } : undefined

    const deadline = {
      ms: graceSeconds * 1000,
      setting: `terminationGracePeriodSeconds ${graceSeconds}`,
      fitting: (ms: number) => `terminationGracePeriodSeconds: ${Math.ceil(ms / 1000)}`
    }
    checkBudget(record, subject, options, deadline, sleep)
    checkGracePassedDown(record, subject, options, deadline)
    if (container.lifecycle?.stopSignal !== undefined) {
      checkStopSignal(record, subject, options, container.lifecycle.stopSignal, `lifecycle.stopSignal ${container.lifecycle.stopSignal}`)
    }

    record.rule(subject, 'prestop-counted-twice', sleepMs > 0 && options.preStopDelay > 0 && {
      message: `preStop sleep ${sleepMs} ms and preStopDelay ${options.preStopDelay} ms: the wait for endpoints to be removed is counted twice, and eats the grace period`,
      fix: 'preStopDelay: 0 with a preStop sleep, or drop the sleep'
    })
    const wait = sleepMs + options.preStopDelay
    const readiness = container.readinessProbe
    const unreadyMs = readiness === undefined
      ? 0
      : Number(readiness.periodSeconds ?? DEFAULT_PERIOD_SECONDS) * Number(readiness.failureThreshold ?? DEFAULT_FAILURE_THRESHOLD) * 1000
    record.rule(subject, 'prestop-too-short', (wait === 0 || wait < unreadyMs) && {
      message: wait === 0
        ? 'no pre-stop wait (no preStop sleep, preStopDelay 0): the listener closes while endpoints are still being removed, and clients see errors'
        : `the pre-stop wait (preStop sleep ${sleepMs} ms + preStopDelay ${options.preStopDelay} ms = ${wait} ms) ends before the kubelet can see the pod unready (readinessProbe periodSeconds × failureThreshold = ${unreadyMs} ms)`,
      fix: wait === 0
        ? 'a preStop sleep of 5 s (lifecycle.preStop.sleep.seconds: 5), or preStopDelay: 5000'
        : `a pre-stop wait of at least ${unreadyMs} ms, or a readiness probe that fails sooner (periodSeconds × failureThreshold)`
    })

    this.probes(subject, container, options)
    this.preStopHook(subject, container, options)
    this.exposedProbePort(subject, workload, container, options, labels)
    if (container.command !== undefined) {
      checkCommand(record, subject, [...container.command, ...(container.args ?? [])], options, env, 'the container\'s command')
    }
  }

  /** A container port by number, or by the name a probe, a hook or a Service gives it. */
  private portOf (container: Container, port: number | string | undefined): number | undefined {
    if (typeof port === 'number') return port
    if (typeof port === 'string' && /^\d+$/.test(port)) return Number(port)
    return (container.ports ?? []).find(({ name }) => name === port)?.containerPort
  }

  private probes (subject: Subject, container: Container, options: ResolvedShutdownOptions): void {
    const { record } = this.context
    const { probeServer } = options
    if (options.readiness !== false) {
      record.rule(subject, 'readiness-probe-missing', container.readinessProbe === undefined && {
        message: `no readinessProbe: the plugin's readiness route (${options.readiness.path}) fails from the first moment of a shutdown, and nothing reads it`,
        fix: `readinessProbe: { httpGet: { path: ${options.readiness.path}, port: ${probeServer === false ? '<the app\'s port>' : probeServer.port} }, periodSeconds: 2, failureThreshold: 1 }`
      })
    }
    for (const [field, probe, route] of [['readinessProbe', container.readinessProbe, options.readiness], ['livenessProbe', container.livenessProbe, options.liveness]] as const) {
      if (probe === undefined || route === false) continue
      const { httpGet } = probe
      // Only readiness must be the plugin's: a tcpSocket or exec liveness probe never restarts a draining pod either.
      if (httpGet === undefined && field === 'livenessProbe') continue
      record.rule(subject, 'probe-path', httpGet?.path !== route.path && {
        message: httpGet === undefined
          ? `${field} is not an httpGet probe: it passes while the plugin's readiness route (${route.path}) fails during a shutdown`
          : `${field} calls ${httpGet.path ?? '/'}, the plugin's ${field === 'readinessProbe' ? 'readiness' : 'liveness'} route is ${route.path}`,
        fix: `${field}: { httpGet: { path: ${route.path} } }`
      })
      if (httpGet === undefined || probeServer === false) continue
      const port = this.portOf(container, httpGet.port)
      record.rule(subject, 'probe-port', port !== probeServer.port && {
        message: `${field} calls port ${String(httpGet.port)}${port === undefined || String(port) === String(httpGet.port) ? '' : ` (${port})`}, the plugin serves its probes on the probe server's port ${probeServer.port}`,
        fix: `${field}.httpGet.port: ${probeServer.port} (or the name of the containerPort ${probeServer.port})`
      })
    }
    if (probeServer !== false && probeServer.host !== undefined) {
      record.rule(subject, 'probe-server-loopback', isLoopback(probeServer.host) && {
        message: `probeServer.host ${probeServer.host} is loopback: the kubelet calls the pod IP, and every probe fails`,
        fix: 'leave probeServer.host out: the probe server then listens on every interface'
      })
    }
  }

  private preStopHook (subject: Subject, container: Container, options: ResolvedShutdownOptions): void {
    const hook = container.lifecycle?.preStop?.httpGet
    if (hook === undefined) return
    const { record } = this.context
    const { preStopRoute: route, probeServer } = options
    const port = this.portOf(container, hook.port)
    const wrong = route === false
      ? 'calls a route the plugin does not serve (preStopRoute is off)'
      : hook.path !== route.path
        ? `calls ${hook.path ?? '/'}, the plugin's preStopRoute is ${route.path}`
        : probeServer !== false && port !== probeServer.port
          ? `calls port ${String(hook.port)}, the plugin serves preStopRoute on the probe server's port ${probeServer.port}`
          : null
    record.rule(subject, 'prestop-hook-route', wrong !== null && {
      message: `the preStop httpGet hook ${wrong}: the hook fails, and the kubelet sends SIGTERM without the pre-stop wait`,
      fix: route === false
        ? 'preStopRoute: { path: \'/prestop\', header: { name, value } } in the plugin\'s options'
        : `lifecycle.preStop.httpGet: { path: ${route.path}, port: ${probeServer === false ? '<the app\'s port>' : probeServer.port} }`
    })
    if (route === false || route.header === undefined) return
    const { name, value } = route.header
    const sent = (hook.httpHeaders ?? []).find((header) => header.name?.toLowerCase() === name)
    // The value is a secret: the message says whether it matches, never what it is.
    record.rule(subject, 'prestop-hook-header', sent?.value !== value && {
      message: sent === undefined
        ? `the preStop httpGet hook sends no ${name} header: the plugin answers it 403, and nothing drains before SIGTERM`
        : `the preStop httpGet hook sends ${name} with another value than the plugin's preStopRoute.header: the plugin answers it 403`,
      fix: `lifecycle.preStop.httpGet.httpHeaders: [{ name: ${name}, value: <the value the app's preStopRoute.header has> }]`
    })
  }

  /** The probe server's port must be one no Service leads to, or every client of the Service can call the probes and preStop. */
  private exposedProbePort (subject: Subject, workload: KubeObject, container: Container, options: ResolvedShutdownOptions, labels: Record<string, string>): void {
    const { probeServer } = options
    if (probeServer === false) return
    for (const service of this.byKind.get('Service') ?? []) {
      if (!sameNamespace(service, workload) || !serviceSelects(service.value.spec?.selector as Record<string, string> | undefined, labels)) continue
      const ports = service.value.spec?.ports ?? []
      // A Service without targetPort sends to its own port number.
      const exposing = ports.findIndex((port) => this.portOf(container, port.targetPort ?? port.port) === probeServer.port)
      const port = ports[exposing]
      this.context.record.rule(subject, 'probe-port-exposed', port !== undefined && {
        message: `port ${port.name ?? port.port} leads to containerPort ${probeServer.port}, where ${subject.object} serves its probes: every client of the Service can call them${options.preStopRoute === false ? '' : ', and the preStop endpoint'}`,
        fix: `take port ${port.name ?? port.port} out of Service/${service.name}, or move probeServer to a port the Service does not list`,
        at: { file: service.file, line: service.lineOf(['spec', 'ports', exposing]), object: `Service/${service.name}` }
      })
    }
  }

  /** A budget that allows no disruption keeps `kubectl drain` from ever evicting the pods. */
  private disruptionBudgets (workload: KubeObject, labels: Record<string, string>): void {
    const replicas = workload.kind === 'DaemonSet' ? undefined : Number(workload.value.spec?.replicas ?? 1)
    for (const pdb of this.byKind.get('PodDisruptionBudget') ?? []) {
      if (!sameNamespace(pdb, workload) || !selectorMatches(pdb.value.spec?.selector as Selector | undefined, labels)) continue
      const { minAvailable, maxUnavailable } = pdb.value.spec ?? {}
      const blocks = maxUnavailable === 0 || maxUnavailable === '0%' || minAvailable === '100%' ||
        (typeof minAvailable === 'number' && replicas !== undefined && minAvailable >= replicas)
      const subject = { file: pdb.file, line: pdb.lineOf([]), object: `PodDisruptionBudget/${pdb.name}` }
      this.context.record.rule(subject, 'pdb-blocks-eviction', blocks && {
        message: `${maxUnavailable !== undefined ? `maxUnavailable ${maxUnavailable}` : `minAvailable ${minAvailable}`} for ${workload.kind}/${workload.name}${replicas === undefined ? '' : ` (replicas ${replicas})`}: no pod may ever be evicted, so a node drain waits forever and ends up forcing them`,
        fix: 'maxUnavailable: 1'
      })
    }
  }
}

/** Every workload's containers against the options, with the Services, budgets and environment among the objects. */
export async function checkKubernetes (context: CheckContext, objects: readonly KubeObject[]): Promise<void> {
  await new KubernetesCheck(context, objects).run()
}
