import { execFile, spawn } from 'node:child_process'
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { Child } from './child'

const ROOT = path.join(__dirname, '..', '..')
export const NODE_MODULES = path.join(ROOT, 'node_modules')
export const DIST = path.join(ROOT, 'dist')

interface Teardown {
  teardown (fn: () => void | Promise<void>): void
}

/** A temporary directory that resolves packages from this repository, removed in teardown. */
export async function scratchDir (t: Teardown, name: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `fastify-shutdown-${name}-`))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await symlink(NODE_MODULES, path.join(dir, 'node_modules'), 'dir')
  return dir
}

/** A port nothing listens on right now, for runners that cannot be told to pick one (fastify-cli reads 0 as 3000). */
export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo
      probe.close(() => resolve(port))
    })
  })
}

/**
 * A route that answers only when the test sends `{ type: 'release' }` over IPC, so a request stays in flight
 * for exactly as long as the test wants; it logs when its handler starts.
 */
export const HELD_ROUTE = `
  let held = []
  process.on('message', (message) => {
    if (message.type !== 'release') return
    for (const release of held) release()
    held = []
  })
  fastify.get('/held', async (request) => {
    request.log.info('held request started')
    await new Promise((resolve) => { held.push(resolve) })
    return { released: true }
  })
`

/**
 * Starts a runner's command with an IPC channel (the app's routes read it), JSON logs on stdout, and kills
 * its whole process group in teardown: a runner's children must not outlive the test.
 */
export function startRunner (t: Teardown, command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Child {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0', ...env }
  delete childEnv.NODE_OPTIONS
  const proc = spawn(command, args, { cwd, env: childEnv, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], detached: true })
  const child = new Child(proc)
  t.teardown(async () => {
    try {
      process.kill(-proc.pid!, 'SIGKILL')
    } catch {}
    await child.stop()
  })
  return child
}

export const execFileAsync = promisify(execFile)

/** Writes files under `dir`, given as path → content. */
export async function writeFiles (dir: string, files: Record<string, string>): Promise<void> {
  for (const [file, content] of Object.entries(files)) await writeFile(path.join(dir, file), content)
}
