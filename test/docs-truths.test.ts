// What the docs say against what the code does, where a table can be read: option names and defaults (README,
// the declarations' JSDoc, lib/options.ts), error codes (docs/errors.md, lib/), forcedBy values
// (docs/report.md, the declarations), the check command's rules (docs/check.md, lib/check-rules.ts).
import { test } from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { CHECK_RULES } from '../lib/check-rules'
import { resolveOptions } from '../lib/options'

const root = path.join(__dirname, '..')
const read = (file: string): string => readFileSync(path.join(root, file), 'utf8')

/** The rows of the first Markdown table after `heading`, as cells. */
function table (markdown: string, heading: string): string[][] {
  markdown = `\n${markdown}`
  const at = markdown.indexOf(`\n${heading}\n`)
  if (at === -1) throw new Error(`no heading ${JSON.stringify(heading)}`)
  const lines = markdown.slice(at).split('\n')
  const start = lines.findIndex((line) => line.startsWith('|'))
  const end = lines.findIndex((line, index) => index > start && !line.startsWith('|'))
  return lines.slice(start + 2, end).map((line) => line.slice(1, -1).split(/(?<!\\)\|/).map((cell) => cell.trim()))
}

const unquote = (cell: string): string => cell.replace(/^`|`$/g, '')

/** A default as the docs write it, as a value: a JS literal, or `process.exit`. */
function literal (text: string): unknown {
  if (text === 'process.exit') return 'function'
  // eslint-disable-next-line no-new-func -- the docs' own literals, from this repository
  return new Function(`return (${text})`)()
}

function resolvedDefaults (): Record<string, unknown> {
  const saved = process.env.TERMINATION_GRACE_PERIOD_SECONDS
  delete process.env.TERMINATION_GRACE_PERIOD_SECONDS
  try {
    const options: Record<string, unknown> = { ...resolveOptions(undefined) }
    options.exit = typeof options.exit
    return JSON.parse(JSON.stringify(options))
  } finally {
    if (saved !== undefined) process.env.TERMINATION_GRACE_PERIOD_SECONDS = saved
  }
}

test("README's options table: every option, and its default is the one lib/options.ts applies", async (t) => {
  const defaults = resolvedDefaults()
  const rows = table(read('README.md'), '## Options')
  t.same(rows.map(([name]) => unquote(name)).sort(), Object.keys(defaults).sort(), 'every option, and only those')
  for (const [name, value] of rows) {
    t.same(literal(unquote(value)), defaults[unquote(name)], `${unquote(name)}: ${value}`)
  }
})

test("types/index.d.ts: each option's @default is the one lib/options.ts applies", async (t) => {
  const defaults = resolvedDefaults()
  const declarations = read('types/index.d.ts')
  const options = declarations.slice(declarations.indexOf('export interface FastifyShutdownOptions {'), declarations.indexOf('export interface ResolvedShutdownOptions'))
  const documented = Object.fromEntries([...options.matchAll(/@default (.+)\n\s+\*\/\n\s+(\w+)\?:/g)].map(([, value, name]) => [name, value.trim()]))
  t.same(Object.keys(documented).sort(), Object.keys(defaults).sort(), 'every option has a @default')
  for (const [name, value] of Object.entries(documented)) {
    t.same(literal(value), defaults[name], `${name}: @default ${value}`)
  }
})

test('docs/errors.md lists every FST_SHUTDOWN_* code in lib/, and only those', async (t) => {
  const inCode = new Set<string>()
  for (const file of readdirSync(path.join(root, 'lib'))) {
    for (const [code] of read(path.join('lib', file)).matchAll(/FST_SHUTDOWN_[A-Z_]+/g)) inCode.add(code)
  }
  const documented = table(read('docs/errors.md'), '# Errors').map(([code]) => /`(FST_SHUTDOWN_[A-Z_]+)`/.exec(code)?.[1])
  t.same([...documented].sort(), [...inCode].sort())
})

test('docs/report.md names every forcedBy the declarations allow', async (t) => {
  const union = /forcedBy\?: ([^\n]+)/.exec(read('types/index.d.ts'))![1]
  const values = [...union.matchAll(/'([a-z-]+)'/g)].map(([, value]) => value)
  const sentence = /`forcedBy` is ([^.]+)\./.exec(read('docs/report.md'))![1]
  t.same([...sentence.matchAll(/`([a-z-]+)`/g)].map(([, value]) => value).sort(), values.sort())
})

test('docs/check.md lists every rule of fastify-shutdown check, with its level, and only those', async (t) => {
  const rows = table(read('docs/check.md'), '## Rules').map(([id, level]) => [unquote(id), level])
  t.same(rows.sort(), Object.entries(CHECK_RULES).sort())
})
