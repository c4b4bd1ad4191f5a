// Every code sample in README.md and docs/ runs, so none can rot. A ```js block is a whole program; one
// marked `prelude=app` or `prelude=plugin` is a fragment that runs after the prelude below (a Fastify app, and
// with `plugin` fastify-shutdown registered on it); `skip-run` leaves a block out, for the few that cannot
// run here. Each runs in a child process from a scratch folder where `require('fastify-shutdown')` resolves to
// this package: it must listen (on loopback, see the preload), and drain and exit 0 on SIGTERM.
import { test } from 'tap'
import { fork } from 'node:child_process'
import { mkdtemp, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import ts from 'typescript'
import { Child } from './helpers/child'

const root = path.join(__dirname, '..')
const PRELOAD = path.join(__dirname, 'helpers', 'docs-samples-preload.cjs')
const RUNNABLE = new Set(['js', 'cjs', 'mjs', 'ts'])

interface Sample {
  readonly where: string
  readonly lang: string
  readonly flags: Map<string, string | true>
  readonly code: string
}

function pages (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) return pages(full)
    return entry.name.endsWith('.md') ? [full] : []
  })
}

function samples (): Sample[] {
  const found: Sample[] = []
  for (const file of [path.join(root, 'README.md'), ...pages(path.join(root, 'docs'))]) {
    const text = readFileSync(file, 'utf8')
    for (const match of text.matchAll(/^```([^\n]*)\n([\s\S]*?)^```$/gm)) {
      const [lang = '', ...words] = match[1].trim().split(/\s+/)
      const line = text.slice(0, match.index).split('\n').length
      const flags = new Map<string, string | true>(words.map((word) => {
        const [key, value] = word.split('=')
        return [key, value ?? true]
      }))
      found.push({ where: `${path.relative(root, file)}:${line}`, lang, flags, code: match[2] })
    }
  }
  return found
}

// The names the fragments leave to the reader, each defined only when a fragment uses it.
const STUBS: Record<string, string> = {
  PassThrough: "const { PassThrough } = require('node:stream')",
  NodeSDK: "const { NodeSDK } = require('@opentelemetry/sdk-node')",
  upstream: "const upstream = 'http://127.0.0.1:9/'",
  nextEvent: 'const nextEvent = ({ signal }) => new Promise((resolve, reject) => signal.addEventListener(\'abort\', () => reject(signal.reason), { once: true }))',
  queue: 'const queue = { pause: async () => {} }',
  jobs: 'const jobs = { idle: async ({ signal }) => {} }',
  pool: 'const pool = { end: async () => {} }'
}

function program (sample: Sample): string {
  const prelude = sample.flags.get('prelude')
  if (prelude === undefined) return sample.code
  if (prelude !== 'app' && prelude !== 'plugin') throw new Error(`${sample.where}: unknown prelude=${String(prelude)}`)
  const stubs = Object.entries(STUBS).filter(([name]) => new RegExp(`\\b${name}\\b`).test(sample.code)).map(([, line]) => line)
  return [
    "'use strict'",
    ...stubs,
    "const fastify = require('fastify')({ logger: true })",
    ';(async () => {',
    prelude === 'plugin' ? "await fastify.register(require('fastify-shutdown'))" : '',
    sample.code,
    'await fastify.listen({ port: 0 })',
    '})()'
  ].join('\n')
}

/** A scratch folder whose node_modules has this package as `fastify-shutdown` beside its dependencies. */
async function scratch (): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'fastify-shutdown-docs-'))
  const modules = path.join(dir, 'node_modules')
  await mkdir(modules)
  const installed = (await readdir(path.join(root, 'node_modules'))).filter((name) => !name.startsWith('.'))
  await Promise.all(installed.map((name) => symlink(path.join(root, 'node_modules', name), path.join(modules, name))))
  await symlink(root, path.join(modules, 'fastify-shutdown'))
  return dir
}

const all = samples()

test('the docs have code samples, and every one is run or marked skip-run', async (t) => {
  const code = all.filter((sample) => RUNNABLE.has(sample.lang))
  t.ok(code.length >= 6, `${code.length} js/ts samples found`)
  const skipped = code.filter((sample) => sample.flags.has('skip-run'))
  t.ok(skipped.length <= 3, `few are left out: ${skipped.map((sample) => sample.where).join(', ') || 'none'}`)
})

test('every JSON sample parses', async (t) => {
  for (const sample of all.filter(({ lang }) => lang === 'json')) {
    t.doesNotThrow(() => JSON.parse(sample.code), sample.where)
  }
})

test('every js/ts sample listens, and drains and exits 0 on SIGTERM', async (t) => {
  const dir = await scratch()
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // No loaders of ours in the child, and no coverage of its own (see startFixture): the samples cover
  // nothing the other tests do not.
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    _TAPJS_PROCESSINFO_COVERAGE_: '0',
    OTEL_TRACES_EXPORTER: 'none',
    OTEL_METRICS_EXPORTER: 'none',
    OTEL_LOGS_EXPORTER: 'none',
    // Samples read the preStop token from the environment, as a pod spec passes it down.
    PRESTOP_TOKEN: 'sample-token'
  }
  delete env.NODE_OPTIONS
  for (const [index, sample] of all.entries()) {
    if (!RUNNABLE.has(sample.lang) || sample.flags.has('skip-run')) continue
    await t.test(sample.where, async (t) => {
      let source = program(sample)
      if (sample.lang === 'ts') source = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText
      const file = path.join(dir, `sample-${index}.${sample.lang === 'mjs' ? 'mjs' : 'cjs'}`)
      await writeFile(file, source)
      const child = new Child(fork(file, [], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv: ['--require', PRELOAD], env }))
      t.teardown(() => child.stop())
      await child.message((m) => m.type === 'listening', 'the sample to listen')
      child.signal('SIGTERM')
      const report = await child.report()
      t.equal(report.outcome, 'completed', 'the shutdown completes')
      const exit = await child.exited()
      t.equal(exit.code, 0, 'exit 0', { stderr: child.stderr })
    })
  }
})
