import { readFileSync } from 'node:fs'
import path from 'node:path'
import { checkCommand, commandWords } from './check-command'
import { type Dockerfile, imageCommand, parseDockerfile } from './check-dockerfile'
import { STDIN, type YamlDocument } from './check-input'
import type { Subject } from './check-rules'
import { checkBudget, checkGracePassedDown, type CheckContext, checkStopSignal, type Deadline, optionsIn } from './check-runner'
import { ERR_CHECK_INPUT } from './errors'

interface ComposeService {
  build?: string | { context?: string, dockerfile?: string }
  command?: string | string[]
  entrypoint?: string | string[]
  environment?: Record<string, string | number | boolean | null> | string[]
  env_file?: unknown
  stop_grace_period?: unknown
  stop_signal?: string
}

/** A Compose file: a mapping with `services` and no `kind`. */
export function isComposeFile (value: unknown): boolean {
  return typeof value === 'object' && value !== null && !('kind' in value) &&
    typeof (value as { services?: unknown }).services === 'object' && (value as { services?: unknown }).services !== null
}

const GO_DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** A Compose duration (Go's syntax): `16s`, `1m30s`, `1500ms`; null when it is not one. */
export function composeDurationMs (text: string): number | null {
  if (!/^(?:\d+(?:\.\d*)?(?:ns|us|µs|ms|s|m|h))+$/.test(text)) return null
  let ms = 0
  for (const [, number, unit] of text.matchAll(/(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(number) * GO_DURATION_UNITS[unit]
  return ms
}

/** Docker's default: SIGKILL 10 s after the stop signal. */
const DEFAULT_STOP_GRACE_MS = 10_000

/** A `command` or `entrypoint`: a list as it is, a string split into words (Compose runs no shell). */
const argvOf = (command: string | string[]): string[] => typeof command === 'string' ? commandWords(command) : command.map(String)

/** The Dockerfile a service builds from, when it is there to read. */
function builtFrom (context: CheckContext, subject: Subject, base: string, build: ComposeService['build']): Dockerfile | undefined {
  if (build === undefined) return undefined
  const { context: dir = '.', dockerfile = 'Dockerfile' } = typeof build === 'string' ? { context: build } : build
  const file = path.join(base, dir, dockerfile)
  try {
    return parseDockerfile(readFileSync(file, 'utf8'))
  } catch {
    context.record.note(subject, `the Dockerfile it builds from (${file}) could not be read: its STOPSIGNAL and command were not checked`)
    return undefined
  }
}

export async function checkCompose (context: CheckContext, document: YamlDocument): Promise<void> {
  const { record, source } = context
  const { file } = document
  const base = file === STDIN ? process.cwd() : path.dirname(file)
  const services = (document.value as { services: Record<string, ComposeService | null> }).services
  for (const [name, service] of Object.entries(services)) {
    const subject: Subject = { file, line: document.lineOf(['services', name]), object: `service ${name}` }
    if (service === null || !context.selected(subject, name)) continue
    const lineOf = (key: string): Subject => ({ ...subject, line: document.lineOf(['services', name, key]) ?? subject.line })

    const dockerfile = builtFrom(context, subject, base, service.build)
    const env: Record<string, string> = { ...dockerfile?.env }
    const entries = Array.isArray(service.environment)
      ? service.environment.map((entry) => String(entry).includes('=') ? String(entry).split(/=(.*)/s, 2) : [String(entry), null])
      : Object.entries(service.environment ?? {})
    for (const [key, value] of entries) {
      if (value === null) record.note(subject, `environment ${key} comes from the shell running docker compose: the options were resolved without it`)
      else env[key as string] = String(value)
    }
    if (service.env_file !== undefined) record.note(subject, 'env_file is not read: the options were resolved without it')
    const options = await optionsIn(record, subject, source, env)
    if (options === null) continue

    const grace = service.stop_grace_period
    const graceMs = grace === undefined ? DEFAULT_STOP_GRACE_MS : composeDurationMs(String(grace))
    if (graceMs === null) throw new ERR_CHECK_INPUT(`${file}:${lineOf('stop_grace_period').line}`, `stop_grace_period \`${String(grace)}\` is not a duration (16s, 1m30s)`)
    const deadline: Deadline = {
      ms: graceMs,
      setting: grace === undefined ? 'stop_grace_period (Docker\'s default)' : `stop_grace_period ${String(grace)}`,
      fitting: (ms) => `stop_grace_period: ${Math.ceil(ms / 1000)}s`
    }
    checkBudget(record, lineOf('stop_grace_period'), options, deadline)
    checkGracePassedDown(record, lineOf('stop_grace_period'), options, deadline)

    const signal = service.stop_signal ?? dockerfile?.stopSignal?.value
    checkStopSignal(record, lineOf('stop_signal'), options, signal ?? 'SIGTERM',
      service.stop_signal !== undefined ? `stop_signal ${signal}` : signal !== undefined ? `the Dockerfile's STOPSIGNAL ${signal}` : 'docker compose stop\'s default')

    // `entrypoint` replaces the image's ENTRYPOINT and drops its CMD; `command` replaces CMD.
    const entrypoint = service.entrypoint === undefined ? dockerfile?.entrypoint : { value: argvOf(service.entrypoint), line: 0 }
    const cmd = service.command !== undefined ? { value: argvOf(service.command), line: 0 } : service.entrypoint === undefined ? dockerfile?.cmd : undefined
    const command = imageCommand({ from: 0, env: {}, entrypoint, cmd })
    if (command !== undefined) {
      const setting = service.command !== undefined || service.entrypoint !== undefined ? 'command' : 'the image\'s command'
      checkCommand(record, lineOf(service.command !== undefined ? 'command' : 'entrypoint'), command.value, options, env, setting)
    } else {
      record.note(subject, 'what it runs (its image\'s command) is not among the inputs: node as PID 1 was not checked')
    }
  }
}
