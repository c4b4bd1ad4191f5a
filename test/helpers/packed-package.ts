// The package as npm would publish it, installed the way a user installs it: `npm pack` this repository,
// then the tarball into a fresh project of its own, beside fastify, typescript and @types/node.
//
// The project's package-lock.json is cut from this repository's: the same versions the suite runs with,
// whose tarballs `npm ci` has already put in npm's cache. `npm ci --prefer-offline` then installs without
// asking the registry for anything (it still would for a tarball the cache lacks), and fails instead of
// quietly resolving again if the cut lockfile does not match the project.
import { execFile, fork } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { Child } from './child'

const execFileAsync = promisify(execFile)

export const ROOT = path.join(__dirname, '..', '..')
const HELPERS = __dirname

/** What the consumer project depends on beside the tarball, at the versions of this repository's lockfile. */
const CONSUMER_DEPENDENCIES = ['fastify', 'typescript', '@types/node']

interface Teardown {
  teardown (fn: () => void | Promise<void>): void
}

export interface Manifest {
  name: string
  version: string
  license?: string
  main?: string
  types?: string
  repository?: { type: string, url: string }
  bugs?: { url: string }
  homepage?: string
  engines?: Record<string, string>
  bin?: Record<string, string>
  dependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
  exports?: Record<string, string | Record<string, string>>
}

interface LockEntry extends Partial<Manifest> {
  optionalDependencies?: Record<string, string>
  dev?: boolean
  optional?: boolean
  devOptional?: boolean
  peer?: boolean
}

interface PackResult {
  filename: string
  integrity: string
  files: { path: string }[]
}

/**
 * Every file the tarball must hold, and nothing else: the manifest, LICENSE, README, the build of each
 * `lib/` module and the declarations.
 */
export async function expectedTarballFiles (): Promise<string[]> {
  const modules = (await readdir(path.join(ROOT, 'lib'))).filter((file) => file.endsWith('.ts'))
  return ['LICENSE', 'README.md', 'package.json', 'types/index.d.ts', ...modules.map((file) => `dist/${file.replace(/\.ts$/, '.js')}`)].sort()
}

/**
 * The variables a child gets: none that `npm run` and tap set (`npm_config_local_prefix` would point an
 * install at this repository, tap's NODE_OPTIONS would load its TypeScript hooks), no coverage from tap's
 * process tracking, and the project's `node_modules/.bin` first on PATH, as in its own `npm run`.
 */
function consumerEnv (dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(npm_|tap_|_tapjs_|node_options$)/i.test(name)) env[name] = value
  }
  env._TAPJS_PROCESSINFO_COVERAGE_ = '0'
  env.PATH = `${path.join(dir, 'node_modules', '.bin')}${path.delimiter}${process.env.PATH ?? ''}`
  return env
}

async function run (command: string, args: string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync(command, args, {
      cwd, env: consumerEnv(cwd), encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024
    })
    return stdout
  } catch (err) {
    const { stdout, stderr } = err as { stdout?: string, stderr?: string }
    throw new Error(`\`${command} ${args.join(' ')}\` failed in ${cwd}\n${stderr ?? ''}\n${stdout ?? ''}`, { cause: err })
  }
}

/** The lockfile key of the copy of `name` that Node would load from the package at key `from`. */
function locate (lock: Record<string, LockEntry>, name: string, from: string): string | undefined {
  for (let dir = from; ; dir = dir.slice(0, Math.max(0, dir.lastIndexOf('/node_modules/')))) {
    const key = `${dir === '' ? '' : `${dir}/`}node_modules/${name}`
    if (key in lock) return key
    if (dir === '') return undefined
  }
}

/**
 * The lockfile entries that `names`, required from the package at key `from`, need, with everything they
 * need in turn; without the `dev`/`optional`/`peer` flags, which describe their place in this repository.
 */
function lockClosure (lock: Record<string, LockEntry>, names: string[], from: string, picked: Record<string, LockEntry>): void {
  for (const name of names) {
    const key = locate(lock, name, from)
    if (key === undefined) throw new Error(`package-lock.json has no ${name} that ${from === '' ? 'the project' : from} could load`)
    if (key in picked) continue
    const { dev, optional, devOptional, peer, ...entry } = lock[key]
    picked[key] = entry
    const peers = Object.keys(entry.peerDependencies ?? {}).filter((peerName) => entry.peerDependenciesMeta?.[peerName]?.optional !== true)
    lockClosure(lock, [...Object.keys(entry.dependencies ?? {}), ...peers], key, picked)
    // An optional dependency this repository did not install (another platform's binary) is not needed.
    const optionals = Object.keys(entry.optionalDependencies ?? {}).filter((optionalName) => locate(lock, optionalName, key) !== undefined)
    lockClosure(lock, optionals, key, picked)
  }
}

/** A fresh project that installed the packed tarball; removed in teardown. */
export class ConsumerProject {
  private constructor (
    /** The project folder; the tarball and npm's output live beside it. */
    readonly dir: string,
    /** The paths in the tarball, sorted. */
    readonly files: string[],
    /** The manifest as installed from the tarball. */
    readonly manifest: Manifest
  ) {}

  static async create (t: Teardown): Promise<ConsumerProject> {
    const work = await mkdtemp(path.join(tmpdir(), 'fastify-shutdown-package-'))
    t.teardown(() => rm(work, { recursive: true, force: true }))
    const packs = path.join(work, 'packs')
    const dir = path.join(work, 'project')
    await mkdir(packs)
    await mkdir(dir)

    const [packed] = JSON.parse(await run('npm', ['pack', '--json', '--pack-destination', packs], ROOT)) as PackResult[]
    const manifest = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as Manifest
    const repoLock = (JSON.parse(await readFile(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> }).packages

    const picked: Record<string, LockEntry> = {}
    lockClosure(repoLock, CONSUMER_DEPENDENCIES, '', picked)
    lockClosure(repoLock, Object.keys(manifest.dependencies ?? {}), 'node_modules/fastify-shutdown', picked)
    const tarball = `file:../packs/${packed.filename}`
    const dependencies: Record<string, string> = { 'fastify-shutdown': tarball }
    for (const name of CONSUMER_DEPENDENCIES) dependencies[name] = picked[`node_modules/${name}`].version!
    const project = { name: 'consumer', version: '1.0.0', private: true, dependencies }
    const { name, version, license, bin, dependencies: needs, peerDependencies, peerDependenciesMeta, engines } = manifest
    await writeFile(path.join(dir, 'package.json'), JSON.stringify(project, null, 2))
    await writeFile(path.join(dir, 'package-lock.json'), JSON.stringify({
      ...project,
      lockfileVersion: 3,
      requires: true,
      packages: {
        '': { name: project.name, version: project.version, dependencies },
        // npm ci links a package's commands from its lockfile entry.
        [`node_modules/${name}`]: { version, resolved: tarball, integrity: packed.integrity, license, bin, dependencies: needs, peerDependencies, peerDependenciesMeta, engines },
        ...picked
      }
    }, null, 2))
    await run('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund', '--no-update-notifier'], dir)

    const installed = JSON.parse(await readFile(path.join(dir, 'node_modules', name, 'package.json'), 'utf8')) as Manifest
    return new ConsumerProject(dir, packed.files.map((file) => file.path).sort(), installed)
  }

  /** Copies `test/helpers/<file>` into the project. */
  async copy (...files: string[]): Promise<void> {
    for (const file of files) await copyFile(path.join(HELPERS, file), path.join(this.dir, file))
  }

  async write (file: string, content: string): Promise<void> {
    await writeFile(path.join(this.dir, file), content)
  }

  /** Runs a command in the project, its own binaries first on PATH; resolves with stdout, rejects with both outputs. */
  run (command: string, args: string[]): Promise<string> {
    return run(command, args, this.dir)
  }

  /** Runs `node <file>` in the project and parses the last line it prints as JSON. */
  async node (file: string): Promise<Record<string, unknown>> {
    const stdout = await this.run(process.execPath, [file])
    return JSON.parse(stdout.trim().split('\n').pop() ?? '') as Record<string, unknown>
  }

  /** Forks `<file>` in the project with an IPC channel and JSON logs on stdout; killed in teardown. */
  fork (t: Teardown, file: string): Child {
    const proc = fork(path.join(this.dir, file), [], {
      cwd: this.dir, env: consumerEnv(this.dir), execArgv: [], stdio: ['ignore', 'pipe', 'pipe', 'ipc']
    })
    const child = new Child(proc)
    t.teardown(() => child.stop())
    return child
  }
}
