import { checkCommand, commandWords } from './check-command'
import type { Environment } from './check-options'
import type { Subject } from './check-rules'
import { type CheckContext, checkStopSignal, optionsIn } from './check-runner'

interface Instruction<T> {
  readonly value: T
  readonly line: number
}

/** What the final stage of a Dockerfile says about how its container runs and stops. */
export interface Dockerfile {
  readonly from: number
  readonly env: Environment
  readonly stopSignal?: Instruction<string>
  /** The shell form as the image keeps it: `/bin/sh -c "…"`. */
  readonly entrypoint?: Instruction<string[]>
  readonly cmd?: Instruction<string[]>
}

/** `["node", "app.js"]` as it is; `node app.js` under `/bin/sh -c`, as Docker runs the shell form. */
function commandForm (text: string): string[] {
  if (text.startsWith('[')) {
    try {
      const argv: unknown = JSON.parse(text)
      if (Array.isArray(argv) && argv.every((word) => typeof word === 'string')) return argv
    } catch {}
  }
  return ['/bin/sh', '-c', text]
}

/** `ENV A=1 B="2 3"`, or the older `ENV A 1` */
function envPairs (text: string): [string, string][] {
  const words = commandWords(text)
  if (words[0]?.includes('=') !== true) return [[words[0] ?? '', text.slice(text.indexOf(' ') + 1).trim()]]
  return words.map((word) => [word.slice(0, word.indexOf('=')), word.slice(word.indexOf('=') + 1)])
}

export function parseDockerfile (text: string): Dockerfile {
  let stage: { -readonly [K in keyof Dockerfile]: Dockerfile[K] } = { from: 1, env: {} }
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1
    let instruction = lines[i].trim()
    if (instruction === '' || instruction.startsWith('#')) continue
    while (instruction.endsWith('\\') && i + 1 < lines.length) {
      const next = lines[++i].trim()
      if (!next.startsWith('#')) instruction = `${instruction.slice(0, -1)} ${next}`
    }
    const keyword = instruction.split(/\s/, 1)[0]
    const rest = instruction.slice(keyword.length).trim()
    switch (keyword.toUpperCase()) {
      case 'FROM': stage = { from: line, env: {} }; break
      case 'ENV': stage.env = { ...stage.env, ...Object.fromEntries(envPairs(rest)) }; break
      case 'STOPSIGNAL': stage.stopSignal = { value: rest, line }; break
      case 'ENTRYPOINT': stage.entrypoint = { value: commandForm(rest), line }; break
      case 'CMD': stage.cmd = { value: commandForm(rest), line }; break
    }
  }
  return stage
}

/** What the container runs: ENTRYPOINT with CMD as its arguments (none after a shell-form ENTRYPOINT), or CMD. */
export function imageCommand (dockerfile: Dockerfile): Instruction<string[]> | undefined {
  const { entrypoint, cmd } = dockerfile
  if (entrypoint === undefined) return cmd
  const shellForm = entrypoint.value[0] === '/bin/sh' && entrypoint.value[1] === '-c'
  return { value: [...entrypoint.value, ...(shellForm ? [] : cmd?.value ?? [])], line: entrypoint.line }
}

/** A Dockerfile on its own: the signal `docker stop` sends, and what runs as PID 1, against the options in its ENV. */
export async function checkDockerfile ({ record, source }: CheckContext, file: string, text: string): Promise<void> {
  const dockerfile = parseDockerfile(text)
  const subject: Subject = { file, line: dockerfile.from, object: 'image' }
  const options = await optionsIn(record, subject, source, dockerfile.env)
  if (options === null) return
  const { stopSignal } = dockerfile
  checkStopSignal(record, stopSignal === undefined ? subject : { ...subject, line: stopSignal.line }, options,
    stopSignal?.value ?? 'SIGTERM', stopSignal === undefined ? 'docker stop\'s default' : `STOPSIGNAL ${stopSignal.value}`)
  const command = imageCommand(dockerfile)
  if (command !== undefined) checkCommand(record, { ...subject, line: command.line }, command.value, options, dockerfile.env, 'the image\'s command')
}
