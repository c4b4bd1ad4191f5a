import { checkCompose, isComposeFile } from './check-compose'
import { checkDockerfile } from './check-dockerfile'
import { readInputs } from './check-input'
import { checkKubernetes, isKubeObject, type KubeObject, kubeObjects } from './check-kubernetes'
import { loadOptions } from './check-options'
import { checkPm2, ecosystemApps } from './check-pm2'
import { CheckRecord, type Checked, type Finding, type Note, type Skipped } from './check-rules'
import type { CheckContext } from './check-runner'
import { checkSystemdUnit } from './check-systemd'
import { ERR_CHECK_USAGE } from './errors'

export interface CheckRequest {
  /** Files, directories (their YAML and JSON files) and `-` for standard input. */
  readonly inputs: readonly string[]
  /** `--options file[#export]`; the plugin's defaults without it. */
  readonly options?: string
  /** `--only`: the containers, Compose services and PM2 apps to check, by name; all of them without it. */
  readonly only?: readonly string[]
  /** `--telemetry`: the app passes the plugin an OpenTelemetry SDK, so `telemetryTimeout` counts. */
  readonly telemetry?: boolean
  readonly stdin?: NodeJS.ReadableStream
}

export interface CheckResult {
  readonly errors: number
  readonly warnings: number
  readonly findings: readonly Finding[]
  readonly checked: readonly Checked[]
  readonly skipped: readonly Skipped[]
  readonly notes: readonly Note[]
}

/** Reads every input, runs each runner's rules on what it found, and says what broke them, what it checked and what it left aside. */
export async function check (request: CheckRequest): Promise<CheckResult> {
  if (request.inputs.length === 0) throw new ERR_CHECK_USAGE('nothing to check: name files, directories, or - for standard input')
  const source = await loadOptions(request.options, { telemetry: request.telemetry })
  const inputs = await readInputs(request.inputs, request.stdin ?? process.stdin)
  const record = new CheckRecord()
  const only = request.only === undefined || request.only.length === 0 ? null : new Set(request.only)
  const context: CheckContext = {
    record,
    source,
    selected (subject, name) {
      if (only === null || only.has(name)) return true
      record.skip(subject, 'not named by --only')
      return false
    }
  }

  const kubernetes: KubeObject[] = []
  for (const input of inputs) {
    if (input.format === 'systemd') await checkSystemdUnit(context, input.file, input.text)
    else if (input.format === 'dockerfile') await checkDockerfile(context, input.file, input.text)
    else if (input.format === 'module') await checkPm2(context, input.file, input.value)
    else {
      for (const document of input.documents) {
        if (isKubeObject(document.value)) kubernetes.push(...kubeObjects(document))
        else if (isComposeFile(document.value)) await checkCompose(context, document)
        else if (ecosystemApps(document.value) !== null) await checkPm2(context, input.file, document.value, document.lineOf)
        else record.skip({ file: input.file, line: document.lineOf([]), object: 'document' }, 'not a Kubernetes object, a Compose file or a PM2 ecosystem file')
      }
    }
  }
  // After every input: a Service, budget or ConfigMap may come in another file than its workload.
  await checkKubernetes(context, kubernetes)

  if (record.checked.length === 0) {
    const skipped = record.skipped.map(({ object, reason }) => `${object}: ${reason}`).join('; ')
    throw new ERR_CHECK_USAGE(`nothing was checked: no workload, Compose service, unit, PM2 app or Dockerfile${skipped === '' ? '' : ` (skipped: ${skipped})`}`)
  }

  const order = new Map(inputs.map(({ file }, index) => [file, index]))
  const byPlace = (a: { file: string, line?: number }, b: { file: string, line?: number }): number =>
    order.get(a.file)! - order.get(b.file)! || (a.line ?? 0) - (b.line ?? 0)
  const findings = [...record.findings].sort(byPlace)
  return {
    errors: findings.filter(({ level }) => level === 'error').length,
    warnings: findings.filter(({ level }) => level === 'warning').length,
    findings,
    checked: record.checked.sort(byPlace),
    skipped: [...record.skipped].sort(byPlace),
    notes: [...record.notes].sort(byPlace)
  }
}
