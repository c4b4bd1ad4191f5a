// `npm run test:fastify`: Fastify's own test suite, as its npm package ships it, run twice on this Node line:
// once as shipped, once with fastify-shutdown registered with its defaults on every instance the tests build,
// except `exit: false`. Each file runs its tests in one process, and the plugin ends the process on an
// uncaught error, as it should in an app: with exit, one failing assertion in a callback would end its file
// and hide the verdicts of every test after it.
// A test whose verdict differs fails the run unless test/fastify-compat/differences.json documents it.
//
// The two copies live in node_modules/.fastify-compat/ so that Fastify's own dependencies resolve as they do
// for Fastify itself; the packages its tests need beyond those (test/fastify-compat/dev-dependencies.json,
// exact versions) are installed once beside them. A file with a difference nothing documents is run again,
// both ways: only a difference seen twice counts, so a timing test that fails once under load is not mistaken
// for the plugin's.
// Ends with one plain `N passed, N failed` line: a test with the same verdict both ways, or a documented
// difference, passes.
import { spawn, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
const require = createRequire(join(root, 'package.json'))
const fastifyDir = dirname(require.resolve('fastify/package.json'))
const fastifyVersion = JSON.parse(readFileSync(join(fastifyDir, 'package.json'), 'utf8')).version
const plugin = join(root, 'dist', 'index.js')
const work = join(root, 'node_modules', '.fastify-compat')
const devDependencies = JSON.parse(readFileSync(join(here, 'dev-dependencies.json'), 'utf8'))
const differences = JSON.parse(readFileSync(join(here, 'differences.json'), 'utf8'))
/** A test that hangs fails after this, instead of holding its file, and the run, forever. */
const TEST_TIMEOUT_MS = 60_000
const excluded = new Map(differences.excludedFiles.map((entry) => [entry.file, entry]))

if (!existsSync(plugin)) {
  console.error('dist/index.js is missing: run `npm run build` first')
  process.exit(2)
}

installDevDependencies()
const copies = { unwrapped: copyFastify('unwrapped') }
copies.wrapped = wrapFactory(copyFastify('wrapped'))
// `npm run test:fastify -- test/close.test.js …` runs only those files.
const chosen = process.argv.slice(2)
const files = (chosen.length > 0 ? chosen : testFiles(copies.unwrapped)).filter((file) => !excluded.has(file))

const started = performance.now()
const [unwrapped, wrapped] = await Promise.all([runSuite(copies.unwrapped, files), runSuite(copies.wrapped, files)])
const seconds = Math.round((performance.now() - started) / 1000)

const documented = new Map(differences.tests.map((entry) => [keyOf(entry.file, entry.path), entry]))
// A test that never ends (it waits for an event the plugin's behaviour never sends) leaves the event loop
// empty, and node:test cancels every test of its file after it: its entry accounts for them.
const cancelledBy = new Map(differences.tests.filter((entry) => entry.cancelsRest === true).map((entry) => [entry.file, entry]))

/** The entry of differences.json that explains a difference, with the link to print; undefined if none does. */
function explanationOf ({ key, file, after }) {
  const entry = documented.get(key)
  if (entry !== undefined) return entry.see
  const cause = cancelledBy.get(file)
  if (cause !== undefined && (after === 'cancelled' || after === 'absent')) return `cancelled after: ${cause.path.join(' › ')}`
  return undefined
}

let differing = compare(unwrapped, wrapped)
// Only a difference nothing documents is confirmed by a second run of its file.
const rerunFiles = [...new Set(differing.filter((difference) => explanationOf(difference) === undefined).map(({ file }) => file))]
if (rerunFiles.length > 0) {
  console.log(`# undocumented differences in ${rerunFiles.length} files: running those files again, both ways`)
  const [unwrappedAgain, wrappedAgain] = await Promise.all([runSuite(copies.unwrapped, rerunFiles), runSuite(copies.wrapped, rerunFiles)])
  const again = new Set(compare(unwrappedAgain, wrappedAgain).map(({ key }) => key))
  const once = differing.filter((difference) => explanationOf(difference) === undefined && !again.has(difference.key))
  for (const { key } of once) console.log(`# differed once, not again (timing): ${key}`)
  differing = differing.filter((difference) => !once.includes(difference))
}
const undocumented = differing.filter((difference) => explanationOf(difference) === undefined)
const seen = new Set(differing.map(({ key }) => key))

console.log(`\n# Fastify ${fastifyVersion}'s suite on Node ${process.versions.node}: ${files.length} files in ${seconds} s ` +
  `(${excluded.size} excluded, see test/fastify-compat/differences.json)`)
console.log(`# unwrapped: ${summaryOf(unwrapped)}`)
console.log(`# wrapped:   ${summaryOf(wrapped)}`)
console.log(`# differing: ${differing.length}, documented: ${differing.length - undocumented.length}`)
for (const difference of differing) {
  const see = explanationOf(difference)
  const { key, before, after } = difference
  console.log(`# ${see === undefined ? 'UNDOCUMENTED' : 'documented'}: ${key}: ${before} unwrapped, ${after} wrapped${see === undefined ? '' : ` (${see})`}`)
}
for (const [key, entry] of documented) {
  if (!seen.has(key)) console.log(`# documented, not seen on this line: ${key} (${entry.see})`)
}
const total = new Set([...unwrapped.keys(), ...wrapped.keys()]).size
console.log(`${total - undocumented.length} passed, ${undocumented.length} failed`)
process.exitCode = undocumented.length === 0 ? 0 : 1

function keyOf (file, path) {
  return `${file} › ${path.join(' › ')}`
}

function summaryOf (verdicts) {
  const counts = { pass: 0, fail: 0, cancelled: 0, skip: 0, todo: 0 }
  for (const verdict of verdicts.values()) counts[verdict]++
  return `${counts.pass} pass, ${counts.fail + counts.cancelled} fail, ${counts.skip + counts.todo} skip/todo`
}

function installDevDependencies () {
  const manifest = JSON.stringify({ private: true, dependencies: devDependencies }, null, 2)
  if (existsSync(join(work, 'package.json')) && readFileSync(join(work, 'package.json'), 'utf8') === manifest &&
    existsSync(join(work, 'node_modules'))) return
  mkdirSync(work, { recursive: true })
  writeFileSync(join(work, 'package.json'), manifest)
  const install = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock', '--prefer-offline'], { cwd: work, stdio: 'inherit' })
  if (install.status !== 0) throw new Error('installing the packages Fastify\'s tests need failed')
}

function copyFastify (name) {
  const target = join(work, name)
  rmSync(target, { recursive: true, force: true })
  cpSync(fastifyDir, target, { recursive: true })
  return target
}

/**
 * Every way the tests reach the factory (`require('..')`, `require('../fastify')`, `import … from
 * '../../fastify.js'`, proxyquire with stubs for its modules) ends at fastify.js: the wrapper is appended to it,
 * so Fastify's own code runs as shipped and what it exports is a factory that registers the plugin.
 */
function wrapFactory (copy) {
  const entry = join(copy, 'fastify.js')
  const names = Object.keys(require(join(copies.unwrapped, 'fastify.js'))).filter((name) => name !== 'fastify' && name !== 'default')
  writeFileSync(entry, readFileSync(entry, 'utf8') + [
    '',
    '// Appended by fastify-shutdown\'s test/fastify-compat/run.mjs: every instance has the plugin registered.',
    '{',
    '  const unwrapped = module.exports',
    `  const fastifyShutdown = require(${JSON.stringify(plugin)})`,
    '  const fastifyWithShutdown = function fastify (...args) {',
    '    const app = unwrapped(...args)',
    '    app.register(fastifyShutdown, { exit: false })',
    '    return app',
    '  }',
    '  module.exports = fastifyWithShutdown',
    // One assignment per name, so that ESM's named imports find them as they find Fastify's own.
    ...names.map((name) => `  module.exports.${name} = unwrapped.${name}`),
    '  module.exports.fastify = fastifyWithShutdown',
    '  module.exports.default = fastifyWithShutdown',
    '}',
    ''
  ].join('\n'))
  return copy
}

/** What Fastify's own runner (borp, .borp.yaml) runs: test/**\/*.test.js and *.test.mjs. */
function testFiles (copy) {
  const found = []
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (/\.test\.m?js$/.test(entry.name)) found.push(relative(copy, path))
    }
  }
  walk(join(copy, 'test'))
  return found.sort()
}

/** Runs the files with `node --test` in the copy; resolves with each test's verdict by key. */
function runSuite (copy, files) {
  return new Promise((resolve, reject) => {
    let output = ''
    let errors = ''
    const child = spawn(process.execPath, ['--test', `--test-timeout=${TEST_TIMEOUT_MS}`, `--test-reporter=${join(here, 'reporter.mjs')}`, ...files], {
      cwd: copy,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: '' }
    })
    child.stdout.setEncoding('utf8').on('data', (chunk) => { output += chunk })
    child.stderr.setEncoding('utf8').on('data', (chunk) => { errors += chunk })
    child.on('error', reject)
    child.on('close', () => {
      const verdicts = new Map()
      for (const line of output.split('\n')) {
        if (!line.startsWith('{')) continue
        const { file, path, verdict } = JSON.parse(line)
        verdicts.set(keyOf(file, path), verdict)
      }
      if (verdicts.size === 0) reject(new Error(`node --test reported no test in ${copy}:\n${errors}`))
      else resolve(verdicts)
    })
  })
}

/** The tests whose verdict differs, or that ran only one way (a file that crashed at load, say). */
function compare (before, after) {
  const keys = new Set([...before.keys(), ...after.keys()])
  const differing = []
  for (const key of keys) {
    const a = before.get(key) ?? 'absent'
    const b = after.get(key) ?? 'absent'
    if (a === b) continue
    const [file] = key.split(' › ')
    differing.push({ key, file, before: a, after: b })
  }
  return differing
}
