import path from 'node:path'
import { checkCommand, commandWords } from './check-command'
import { STDIN } from './check-input'
import type { Subject } from './check-rules'
import { checkBudget, checkGracePassedDown, type CheckContext, checkStopSignal, type Deadline, optionsIn } from './check-runner'
import { ERR_CHECK_INPUT } from './errors'

interface Setting {
  readonly value: string
  readonly line: number
}

interface ServiceSection {
  readonly line: number
  /** Each key's assignments in order; an empty one resets the list, as systemd does. */
  readonly settings: Map<string, Setting[]>
}

function serviceSection (text: string): ServiceSection {
  const settings = new Map<string, Setting[]>()
  let section = ''
  let serviceLine = 1
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1
    let content = lines[i].trim()
    if (content === '' || content.startsWith('#') || content.startsWith(';')) continue
    while (content.endsWith('\\') && i + 1 < lines.length) content = `${content.slice(0, -1)} ${lines[++i].trim()}`
    if (content.startsWith('[')) {
      section = content
      if (section === '[Service]') serviceLine = line
      continue
    }
    const equals = content.indexOf('=')
    if (section !== '[Service]' || equals === -1) continue
    const key = content.slice(0, equals).trim()
    const value = content.slice(equals + 1).trim()
    settings.set(key, value === '' ? [] : [...(settings.get(key) ?? []), { value, line }])
  }
  return { line: serviceLine, settings }
}

/** systemd's time units (systemd.time(7)); a bare number is seconds. `m` is minutes and `M` months. */
const TIME_UNITS: [names: string[], ms: number][] = [
  [['us', 'usec', 'µs'], 0.001],
  [['ms', 'msec'], 1],
  [['', 's', 'sec', 'second', 'seconds'], 1000],
  [['m', 'min', 'minute', 'minutes'], 60_000],
  [['h', 'hr', 'hour', 'hours'], 3_600_000],
  [['d', 'day', 'days'], 86_400_000],
  [['w', 'week', 'weeks'], 604_800_000],
  [['M', 'month', 'months'], 2_629_800_000],
  [['y', 'year', 'years'], 31_557_600_000]
]
const UNIT_MS = new Map(TIME_UNITS.flatMap(([names, ms]) => names.map((name) => [name, ms] as const)))

/** A systemd time span in milliseconds: `16`, `16s`, `1min 30s`, `infinity`; null when it is not one. */
export function systemdTimeSpanMs (text: string): number | null {
  if (text.trim() === 'infinity') return Infinity
  const parts = [...text.matchAll(/\s*(\d+(?:\.\d+)?)\s*([a-zA-Zµ]*)/gy)]
  if (parts.length === 0 || parts.map(([part]) => part).join('') !== text.replace(/\s+$/, '')) return null
  let ms = 0
  for (const [, number, unit] of parts) {
    const scale = UNIT_MS.get(unit)
    if (scale === undefined) return null
    ms += Number(number) * scale
  }
  return ms
}

/** systemd's default stop timeout (`DefaultTimeoutStopSec=`). */
const DEFAULT_TIMEOUT_STOP_MS = 90_000

/** `ExecStart=` without its prefixes (`-`, `@`, `:`, `+`, `!`); with `@` the second word is argv[0]. */
function execStartArgv (value: string): string[] {
  const prefixes = /^[-@:+!]*/.exec(value)![0]
  const words = commandWords(value.slice(prefixes.length))
  return prefixes.includes('@') ? words.slice(1) : words
}

/** A unit's `[Service]`: its stop timeout, kill signal and mode, and what `ExecStart` runs, against the options. */
export async function checkSystemdUnit ({ record, source }: CheckContext, file: string, text: string): Promise<void> {
  const { line, settings } = serviceSection(text)
  const last = (key: string): Setting | undefined => settings.get(key)?.at(-1)
  const subject: Subject = { file, line, object: file === STDIN ? 'unit' : `unit ${path.basename(file)}` }
  const at = (setting: Setting | undefined): Subject => setting === undefined ? subject : { ...subject, line: setting.line }

  const env = Object.fromEntries((settings.get('Environment') ?? []).flatMap(({ value }) => commandWords(value))
    .filter((pair) => pair.includes('=')).map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]))
  if (settings.has('EnvironmentFile')) record.note(subject, 'EnvironmentFile= is not read: the options were resolved without it')
  const options = await optionsIn(record, subject, source, env)
  if (options === null) return

  const timeout = last('TimeoutStopSec') ?? last('TimeoutSec')
  const timeoutMs = timeout === undefined ? DEFAULT_TIMEOUT_STOP_MS : systemdTimeSpanMs(timeout.value)
  if (timeoutMs === null) throw new ERR_CHECK_INPUT(`${file}:${timeout!.line}`, `\`${timeout!.value}\` is not a systemd time span`)
  const deadline: Deadline = {
    ms: timeoutMs,
    setting: timeout === undefined ? 'TimeoutStopSec (systemd\'s default)' : `TimeoutStopSec=${timeout.value}`,
    fitting: (ms) => `TimeoutStopSec=${Math.ceil(ms / 1000)}`
  }
  checkBudget(record, at(timeout), options, deadline)
  checkGracePassedDown(record, at(timeout), options, deadline)

  const killSignal = last('KillSignal')
  checkStopSignal(record, at(killSignal), options, killSignal?.value ?? 'SIGTERM', killSignal === undefined ? 'systemd\'s default KillSignal' : `KillSignal=${killSignal.value}`)

  const killMode = last('KillMode')
  const sendSigkill = last('SendSIGKILL')
  const leftRunning = killMode?.value === 'process' || killMode?.value === 'none'
  record.rule(at(leftRunning ? killMode : sendSigkill), 'systemd-kill-mode', (leftRunning || sendSigkill?.value === 'no') && {
    message: leftRunning
      ? `KillMode=${killMode!.value} signals the main process only and leaves the rest of the unit running`
      : 'SendSIGKILL=no: whatever the app leaves behind at TimeoutStopSec is never killed',
    fix: 'KillMode=mixed (SIGTERM to node, SIGKILL to what is left at the timeout), SendSIGKILL=yes'
  })

  const execStart = last('ExecStart')
  if (execStart !== undefined) checkCommand(record, at(execStart), execStartArgv(execStart.value), options, env, 'ExecStart')
}
