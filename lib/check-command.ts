import path from 'node:path'
import type { ResolvedShutdownOptions } from '../types'
import type { Environment } from './check-options'
import type { CheckRecord, Subject } from './check-rules'
import { fastifyCliCloseGraceDelay, fittingCloseGraceDelay } from './fastify-cli'

interface Token {
  readonly text: string
  /** `&&`, `||`, `;`, `|`, `&` or a line break between commands, outside quotes. */
  readonly operator: boolean
}

/** A command line split as a POSIX shell splits it, quotes and backslashes taken away. */
function tokens (text: string): Token[] {
  const found: Token[] = []
  let word: string | null = null
  const end = (): void => {
    if (word !== null) found.push({ text: word, operator: false })
    word = null
  }
  for (let i = 0; i < text.length; i++) {
    const char = text[i]
    if (char === '\'') {
      const close = text.indexOf('\'', i + 1)
      const stop = close === -1 ? text.length : close
      word = (word ?? '') + text.slice(i + 1, stop)
      i = stop
    } else if (char === '"') {
      word ??= ''
      for (i++; i < text.length && text[i] !== '"'; i++) {
        if (text[i] === '\\' && '"\\$`'.includes(text[i + 1] ?? '')) i++
        word += text[i]
      }
    } else if (char === '\\') {
      if (text[i + 1] !== '\n') word = (word ?? '') + (text[i + 1] ?? '')
      i++
    } else if (char === '#' && word === null) {
      const close = text.indexOf('\n', i)
      i = close === -1 ? text.length : close - 1
    } else if (/[;&|\n]/.test(char)) {
      end()
      const operator = text.slice(i, i + 2) === '&&' || text.slice(i, i + 2) === '||' ? text.slice(i, i + 2) : char
      i += operator.length - 1
      found.push({ text: operator, operator: true })
    } else if (/\s/.test(char)) {
      end()
    } else {
      word = (word ?? '') + char
    }
  }
  end()
  return found
}

/** The words of a command line, as Compose splits a `command` given as a string: no shell, no operators. */
export function commandWords (text: string): string[] {
  return tokens(text).map((token) => token.text)
}

/** The last command of a shell script: the one left running, the app. */
function lastCommand (script: string): string[] {
  let command: string[] = []
  for (const token of tokens(script)) {
    if (!token.operator) command.push(token.text)
    else if (command.length > 0 && token.text !== '|') command = []
  }
  return command
}

const SHELLS = new Set(['sh', 'bash', 'ash', 'dash', 'zsh', 'ksh'])
const INITS = new Set(['tini', 'tini-static', 'dumb-init', 'docker-init', 'catatonit'])
const PACKAGE_MANAGERS = new Set(['npm', 'npx', 'yarn', 'pnpm'])

/** What a command runs in the end, once inits, `env`, `exec` and `sh -c` are seen through. */
interface Program {
  readonly argv: readonly string[]
  /** A shell stays in between: `sh -c "node app.js"`, not `sh -c "exec node app.js"`. */
  readonly viaShell: boolean
  /** npm, npx, yarn or pnpm, which run the app as their child. */
  readonly packageManager: string | null
}

/** What follows a wrapper's own leading flags, up to and with `--`. */
function withoutFlags (argv: readonly string[]): string[] {
  let start = 0
  while (start < argv.length && argv[start].startsWith('-')) {
    if (argv[start++] === '--') break
  }
  return argv.slice(start)
}

function programOf (argv: readonly string[]): Program {
  let rest = [...argv]
  let viaShell = false
  let packageManager: string | null = null
  for (;;) {
    const name = path.basename(rest[0] ?? '')
    if (INITS.has(name)) {
      rest = withoutFlags(rest.slice(1))
    } else if (name === 'env') {
      rest = rest.slice(1)
      while (rest[0] !== undefined && (rest[0].startsWith('-') || rest[0].includes('='))) rest.shift()
    } else if (name === 'exec') {
      rest = rest.slice(1)
    } else if (SHELLS.has(name)) {
      const flag = rest.findIndex((word, index) => index > 0 && /^-[a-z]*c[a-z]*$/.test(word))
      if (flag === -1 || rest[flag + 1] === undefined) break
      const last = lastCommand(rest[flag + 1])
      viaShell = last[0] !== 'exec'
      rest = last
    } else if (name === 'npx') {
      packageManager ??= name
      rest = withoutFlags(rest.slice(1))
    } else {
      if (PACKAGE_MANAGERS.has(name)) packageManager ??= name
      return { argv: rest, viaShell, packageManager }
    }
  }
  return { argv: rest, viaShell, packageManager }
}

/** `--signal SIGTERM`, `--signal=SIGTERM` or `-s SIGTERM` */
function flagValue (argv: readonly string[], flags: readonly string[]): string | undefined {
  let value: string | undefined
  for (let i = 1; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2)
    if (flags.includes(flag)) value = inline ?? argv[++i]
  }
  return value
}

/** tsx SIGKILLs the app this long after the SIGTERM of a restart (not configurable, tsx 4). */
const TSX_WATCH_KILL_MS = 5_000

/**
 * The rules on what a runner starts: node itself, not npm in between, nor a shell that may keep SIGTERM; and
 * the runners that can stand there themselves (fastify-cli, nodemon, tsx watch), each with its own deadline
 * or signal. `setting` names the command in the runner's words: `container command`, `ExecStart`.
 */
export function checkCommand (record: CheckRecord, subject: Subject, argv: readonly string[], options: ResolvedShutdownOptions, env: Environment, setting: string): void {
  const program = programOf(argv)
  const shown = JSON.stringify(argv)
  record.rule(subject, 'npm-start', program.packageManager !== null && {
    message: `${setting} ${shown} runs ${program.packageManager}, which passes SIGTERM on to node but does not wait for it to drain`,
    fix: 'run node itself: ["node", "<your entry file>"]'
  })
  record.rule(subject, 'shell-form', program.viaShell && {
    message: `${setting} ${shown} keeps a shell between the runner and node: whether SIGTERM reaches node depends on the shell`,
    fix: 'use the exec form (["node", "<your entry file>"]), or start the shell\'s last command with exec'
  })
  const [first = '', subcommand] = program.argv
  const name = path.basename(first)
  if (name === 'fastify' && subcommand === 'start') {
    const delay = fastifyCliCloseGraceDelay(program.argv, env)
    if (delay === null) return
    const fits = fittingCloseGraceDelay(options)
    record.rule(subject, 'fastify-cli-close-grace-delay', delay < fits && {
      message: `${setting} ${shown}: fastify-cli exits ${delay} ms after the signal, whatever is still running; the shutdown may need ${fits} ms (worst case + margin)`,
      fix: `fastify start --close-grace-delay ${fits} (or FASTIFY_CLOSE_GRACE_DELAY=${fits})`
    })
  } else if (name === 'nodemon') {
    const signal = flagValue(program.argv, ['--signal', '-s']) ?? 'SIGUSR2'
    record.rule(subject, 'nodemon-signal', !options.signals.includes(signal as NodeJS.Signals) && {
      message: `${setting} ${shown}: nodemon restarts the app with ${signal}, which the plugin does not handle: the app ends at once, nothing drains`,
      fix: 'nodemon --signal SIGTERM'
    })
  } else if (name === 'tsx' && subcommand === 'watch') {
    const restart = options.preStopDelay + options.drainTimeout
    record.rule(subject, 'tsx-watch-timeout', restart >= TSX_WATCH_KILL_MS && {
      message: `${setting} ${shown}: tsx watch SIGKILLs the app ${TSX_WATCH_KILL_MS} ms after its SIGTERM, and preStopDelay ${options.preStopDelay} + drainTimeout ${options.drainTimeout} = ${restart} ms`,
      fix: `in development, preStopDelay + drainTimeout below ${TSX_WATCH_KILL_MS}`
    })
  }
}
