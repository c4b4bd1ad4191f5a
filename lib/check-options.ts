import { readFileSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import type { FastifyShutdownOptions, ResolvedShutdownOptions } from '../types'
import { read } from './check-input'
import { ERR_CHECK_INPUT, ERR_CHECK_USAGE, messageOf } from './errors'
import { GRACE_PERIOD_ENV, resolveOptions } from './options'

/** An environment as a runner sets it for the app: a container's `env`, a unit's `Environment=`. */
export type Environment = Readonly<Record<string, string>>

/** The plugin's options in one environment, resolved, or the error `register` would throw there. */
export type OptionsIn = { readonly options: ResolvedShutdownOptions } | { readonly error: string, readonly code?: string }

/** The options the app gives the plugin: the same everywhere, or a function of the environment it runs in. */
export interface OptionsSource {
  resolveIn (env: Environment): Promise<OptionsIn>
}

/** Stands for the app's OpenTelemetry SDK (`--telemetry`), so that `telemetryTimeout` counts in the budget. */
const TELEMETRY_PLACEHOLDER = Object.freeze({ shutdown: async () => {} })

/**
 * The options as the plugin resolves them in `env`: `TERMINATION_GRACE_PERIOD_SECONDS` is read from there, not
 * from this process.
 */
function resolvedIn (input: unknown, env: Environment): OptionsIn {
  const saved = process.env[GRACE_PERIOD_ENV]
  if (env[GRACE_PERIOD_ENV] === undefined) delete process.env[GRACE_PERIOD_ENV]
  else process.env[GRACE_PERIOD_ENV] = env[GRACE_PERIOD_ENV]
  try {
    return { options: resolveOptions(input as FastifyShutdownOptions) }
  } catch (err) {
    // Only the plugin's own coded errors come out of resolveOptions.
    const { code } = err as { code: string }
    return { error: `${code}: ${messageOf(err)}`, code }
  } finally {
    if (saved === undefined) delete process.env[GRACE_PERIOD_ENV]
    else process.env[GRACE_PERIOD_ENV] = saved
  }
}

function withTelemetry (input: unknown, telemetry: boolean): unknown {
  if (!telemetry || typeof input !== 'object' || input === null || 'telemetry' in input) return input
  return { ...input, telemetry: TELEMETRY_PLACEHOLDER }
}

/** A module's export: the one named after `#`, else its default (a CommonJS module's `module.exports`), else its only export. */
function pickExport (namespace: Record<string, unknown>, name: string | undefined, where: string): unknown {
  if (name !== undefined) {
    const exported = namespace[name] ?? (namespace.default as Record<string, unknown> | undefined)?.[name]
    if (exported === undefined) throw new ERR_CHECK_USAGE(`--options ${where}: the module exports no \`${name}\``)
    return exported
  }
  if (namespace.default !== undefined) return namespace.default
  const names = Object.keys(namespace).filter((key) => key !== 'default')
  if (names.length === 1) return namespace[names[0]]
  throw new ERR_CHECK_USAGE(`--options ${where}: name the export that holds the options, e.g. --options ${where}#${names[0] ?? 'options'} (it exports ${names.map((key) => `\`${key}\``).join(', ') || 'nothing'})`)
}

async function exported (file: string, name: string | undefined): Promise<unknown> {
  const absolute = path.resolve(file)
  if (/\.json$/i.test(file)) {
    const text = read(file, () => readFileSync(absolute, 'utf8'))
    try {
      return JSON.parse(text)
    } catch (err) {
      throw new ERR_CHECK_INPUT(file, messageOf(err))
    }
  }
  if (!/\.[cm]?js$/i.test(file)) throw new ERR_CHECK_USAGE(`--options ${file}: expected a .json, .js, .cjs or .mjs file`)
  let namespace: Record<string, unknown>
  try {
    namespace = await import(pathToFileURL(absolute).href)
  } catch (err) {
    throw new ERR_CHECK_INPUT(file, `could not be loaded: ${messageOf(err)}`)
  }
  return pickExport(namespace, name, file)
}

/**
 * Loads `--options file[#export]`: JSON, or a module exporting the options or a function of the environment
 * (called with each runner's environment, as the app calls it with `process.env`). Options that are the same
 * everywhere are checked at once, as `register` would: only a budget that may fit the grace period a runner
 * passes down (`TERMINATION_GRACE_PERIOD_SECONDS`) waits for that runner.
 */
export async function loadOptions (spec: string | undefined, { telemetry = false } = {}): Promise<OptionsSource> {
  if (spec === undefined) return staticOptions(withTelemetry({}, telemetry))
  const hash = spec.lastIndexOf('#')
  const file = hash === -1 ? spec : spec.slice(0, hash)
  const value = await exported(file, hash === -1 ? undefined : spec.slice(hash + 1))
  if (typeof value === 'function') {
    return {
      async resolveIn (env) {
        let input: unknown
        try {
          input = await value({ ...env })
        } catch (err) {
          return { error: `the options function of ${file} threw: ${messageOf(err)}` }
        }
        return resolvedIn(withTelemetry(input, telemetry), env)
      }
    }
  }
  const input = withTelemetry(value, telemetry)
  const everywhere = resolvedIn(input, {})
  if ('error' in everywhere && !(everywhere.code === 'FST_SHUTDOWN_BUDGET_EXCEEDED' && (value as FastifyShutdownOptions).gracePeriod === undefined)) {
    // The plugin's own error, as `register` would throw it.
    throw Object.assign(new TypeError(`--options ${file}: ${everywhere.error.replace(/^\w+: /, '')}`), { code: everywhere.code })
  }
  return staticOptions(input)
}

function staticOptions (input: unknown): OptionsSource {
  return { resolveIn: async (env) => resolvedIn(input, env) }
}
