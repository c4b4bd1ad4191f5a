// The published package, checked as a consumer gets it: `npm pack` the repo, install the tarball into a
// fresh project with no network, then load it with `require` and with `import`, list what the tarball
// ships, and let @arethetypeswrong/cli judge its types for every module resolution mode.
//
// Installing offline without depending on whatever happens to sit in the user's npm cache: the tarball's
// runtime dependencies are packed from this repo's own installed copies (the versions package-lock.json
// chose) and installed next to it with a private, empty cache. npm still has to match them against the
// ranges in the tarball's package.json; a range they do not satisfy would make npm go to the registry,
// which `--offline` turns into a failure. Fastify, a dev dependency here and the app's own dependency in
// real life, is linked from node_modules/fastify.
import t from 'tap'
import { execFile } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative, sep } from 'node:path'
import { promisify } from 'node:util'
import { STATE } from '../lib/states'

const execFileAsync = promisify(execFile)

const root = join(__dirname, '..')
const helpers = join(__dirname, 'helpers')
const attwBin = join(root, 'node_modules', '@arethetypeswrong', 'cli', 'dist', 'index.js')

/** What the tarball may hold: the manifest, the docs npm always adds, the build and the declarations. */
const ALLOWED_FILE = /^(package\.json|(README|LICEN[CS]E|CHANGELOG)(\.md|\.txt)?|dist\/[^/]+\.js|types\/index\.d\.ts)$/i
const REQUIRED_FILES = ['package.json', 'dist/index.js', 'types/index.d.ts']
const RESOLUTION_KINDS = ['node10', 'node16-cjs', 'node16-esm', 'bundler']

interface PackResult {
  filename: string
  files: { path: string }[]
}

interface Manifest {
  name: string
  version: string
  main?: string
  types?: string
  dependencies?: Record<string, string>
  exports?: Record<string, string | Record<string, string>>
}

/**
 * The children get none of the variables `npm run` and tap set: `npm_config_local_prefix` would point the
 * install at this repo, and tap's NODE_OPTIONS would load its TypeScript and coverage hooks into npm.
 */
function childEnv (): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(npm_|tap_|_tapjs_|node_options$)/i.test(name)) env[name] = value
  }
  return env
}

async function run (command: string, args: string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync(command, args, {
      cwd, env: childEnv(), encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024
    })
    return stdout
  } catch (err) {
    const { stdout, stderr } = err as { stdout?: string, stderr?: string }
    throw new Error(`\`${command} ${args.join(' ')}\` failed in ${cwd}\n${stderr ?? ''}\n${stdout ?? ''}`, { cause: err })
  }
}

async function exists (path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false)
}

/** The installed copy of `name` that Node would load from `fromDir`. */
async function installedDir (name: string, fromDir: string): Promise<string> {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name)
    if (await exists(join(candidate, 'package.json'))) return candidate
    if (dirname(dir) === dir) throw new Error(`${name} is not installed (looked up from ${fromDir})`)
  }
}

/** `name` and everything it depends on, as installed in this repo, nearest copy first. */
async function dependencyClosure (dependencies: Record<string, string>, fromDir: string, found = new Map<string, string>()): Promise<Map<string, string>> {
  for (const name of Object.keys(dependencies)) {
    if (found.has(name)) continue
    const dir = await installedDir(name, fromDir)
    found.set(name, dir)
    const manifest = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as Manifest
    await dependencyClosure(manifest.dependencies ?? {}, dir, found)
  }
  return found
}

function readJsonLine (stdout: string): Record<string, unknown> {
  return JSON.parse(stdout.trim().split('\n').pop() ?? '') as Record<string, unknown>
}

const work = { dir: '', tarball: '', app: '', files: [] as string[], manifest: {} as Manifest }

t.before(async () => {
  if (!await exists(join(root, 'dist', 'index.js'))) await run('npm', ['run', 'build'], root)

  work.dir = await mkdtemp(join(tmpdir(), 'fastify-shutdown-package-'))
  const packs = join(work.dir, 'packs')
  work.app = join(work.dir, 'app')
  await mkdir(packs)
  await mkdir(work.app)

  const [packed] = JSON.parse(await run('npm', ['pack', '--json', '--pack-destination', packs], root)) as PackResult[]
  work.tarball = join(packs, packed.filename)
  work.files = packed.files.map((file) => file.path).sort()
  const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as Manifest

  const dependencies = await dependencyClosure(manifest.dependencies ?? {}, root)
  const dependencyPacks = dependencies.size === 0
    ? []
    : (JSON.parse(await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', packs, ...dependencies.values()], root)) as PackResult[])
        .map((pack) => join(packs, pack.filename))

  await writeFile(join(work.app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
  await run('npm', [
    'install', '--offline', '--no-audit', '--no-fund', '--no-update-notifier',
    '--cache', join(work.dir, 'npm-cache'), '--prefix', work.app,
    work.tarball, ...dependencyPacks, join(root, 'node_modules', 'fastify')
  ], work.app)
  work.manifest = JSON.parse(await readFile(join(work.app, 'node_modules', 'fastify-shutdown', 'package.json'), 'utf8')) as Manifest

  for (const fixture of ['package-consumer.cjs', 'package-consumer.mjs']) {
    await copyFile(join(helpers, fixture), join(work.app, fixture))
  }
})

t.teardown(async () => {
  if (work.dir !== '') await rm(work.dir, { recursive: true, force: true })
})

t.test('the tarball holds only the manifest, docs, the build and the declarations', async (t) => {
  t.same(work.files.filter((file) => !ALLOWED_FILE.test(file)), [], 'no file outside the allowed set')
  for (const file of REQUIRED_FILES) t.ok(work.files.includes(file), `ships ${file}`)
  t.notOk(work.files.some((file) => file.endsWith('.map')), 'no source maps')
  t.notOk(work.files.some((file) => /\.ts$/.test(file) && file !== 'types/index.d.ts'), 'no TypeScript sources')

  const entry = work.manifest.exports?.['.'] as Record<string, string>
  const pointers = { main: work.manifest.main, types: work.manifest.types, 'exports types': entry.types, 'exports default': entry.default }
  for (const [field, target] of Object.entries(pointers)) {
    t.ok(target !== undefined && work.files.includes(target.replace(/^\.\//, '')), `${field} (${target}) is in the tarball`)
  }
})

t.test('require() gives the plugin with .default, .fastifyShutdown and .STATE', async (t) => {
  const seen = readJsonLine(await run(process.execPath, ['package-consumer.cjs'], work.app))
  const app = await realpath(work.app)
  t.equal(seen.type, 'function')
  t.equal(seen.defaultIsSame, true, '.default is the export itself')
  t.equal(seen.namedIsSame, true, '.fastifyShutdown is the export itself')
  t.equal(seen.draining, 'draining', '.STATE.DRAINING')
  t.same(seen.states, STATE, '.STATE holds every state of lib/states.ts (the build is not stale)')
  t.equal(seen.entry, join(app, 'node_modules', 'fastify-shutdown', 'dist', 'index.js'), 'loaded from the installed tarball')
  for (const dependency of seen.dependencies as string[]) {
    t.ok(relative(join(app, 'node_modules'), dependency).split(sep)[0] !== '..', `${dependency} was installed into the fresh project`)
  }
  t.equal(seen.outcome, 'completed', 'shutdown.start() resolves with a completed report')
  t.same(seen.trigger, { type: 'manual', reason: 'test' })
  t.equal(seen.state, 'closed')
})

t.test('import gives the same plugin as default and named exports, and STATE', async (t) => {
  const seen = readJsonLine(await run(process.execPath, ['package-consumer.mjs'], work.app))
  const app = await realpath(work.app)
  t.equal(seen.type, 'function')
  t.equal(seen.namedType, 'function')
  t.equal(seen.namedIsSame, true, 'the named export is the default export')
  t.equal(seen.defaultIsSame, true, '.default is the default export itself')
  t.equal(seen.stateIsSame, true, 'the named STATE is .STATE')
  t.equal(seen.draining, 'draining', 'STATE.DRAINING')
  t.same(seen.states, STATE, 'STATE holds every state of lib/states.ts')
  t.equal(seen.entry, `file://${join(app, 'node_modules', 'fastify-shutdown', 'dist', 'index.js')}`, 'loaded from the installed tarball')
  t.equal(seen.outcome, 'completed', 'shutdown.start() resolves with a completed report')
  t.same(seen.trigger, { type: 'manual', reason: 'test' })
  t.equal(seen.state, 'closed')
})

// `attw --pack .` packs the repo into the repo folder and judges that tarball; judging the tarball packed
// above is the same check without writing into the working tree.
t.test('@arethetypeswrong/cli finds no problem in any resolution mode', async (t) => {
  let stdout: string
  try {
    stdout = (await execFileAsync(process.execPath, [attwBin, work.tarball, '--format', 'json'], {
      cwd: work.dir, env: childEnv(), encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024
    })).stdout
  } catch (err) {
    // attw exits non-zero when it finds problems; its JSON report is still on stdout.
    stdout = (err as { stdout?: string }).stdout ?? ''
    t.fail(`attw exited with ${String((err as { code?: unknown }).code)}`)
  }
  const { analysis, problems } = JSON.parse(stdout) as {
    analysis: {
      types: { kind: string } | false
      problems: unknown[]
      entrypoints: Record<string, {
        resolutions: Record<string, {
          resolution?: { fileName: string }
          implementationResolution?: { fileName: string }
          visibleProblems?: unknown[]
        }>
      }>
    }
    problems?: Record<string, unknown[]>
  }

  t.same(analysis.types, { kind: 'included' }, 'types ship with the package')
  t.same(problems, {}, 'no problems, grouped by kind')
  t.same(analysis.problems, [], 'no problems')
  const resolutions = analysis.entrypoints['.'].resolutions
  for (const kind of RESOLUTION_KINDS) {
    const resolution = resolutions[kind]
    t.match(resolution?.resolution?.fileName, /\/node_modules\/fastify-shutdown\/types\/index\.d\.ts$/, `${kind}: types/index.d.ts`)
    t.match(resolution?.implementationResolution?.fileName, /\/node_modules\/fastify-shutdown\/dist\/index\.js$/, `${kind}: dist/index.js`)
    t.same(resolution?.visibleProblems ?? [], [], `${kind}: no problems`)
  }
})
