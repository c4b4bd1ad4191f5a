import { execFile } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'

interface Teardown {
  teardown (fn: () => void | Promise<void>): void
}

const run = promisify(execFile)

export const ROOT = path.join(__dirname, '..', '..')
export const EXAMPLE_APP = path.join(ROOT, 'example-app')

/** The environment of a child that runs the built package under plain Node, without tap's loaders. */
export function plainEnv (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0', ...extra }
  delete env.NODE_OPTIONS
  return env
}

/** A port that was free a moment ago, on 127.0.0.1, for a server that a process manager starts. */
export async function freePort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** The pino lines of a log file; lines that are not JSON (PM2's own) are left out. */
export function jsonLines (file: string): Record<string, any>[] {
  return readFileSync(file, 'utf8').split('\n').flatMap((line) => {
    try {
      const parsed = JSON.parse(line)
      return typeof parsed === 'object' && parsed !== null ? [parsed] : []
    } catch {
      return []
    }
  })
}

export interface Pm2 {
  readonly home: string
  /** Runs the pm2 CLI of the devDependency, on this Node, against this test's own daemon. */
  run (...args: string[]): Promise<string>
  /** The app's log files in PM2's log folder: `<name>-out*.log`. */
  outLogs (name: string): string[]
}

/** A PM2 daemon of the test's own (a temporary PM2_HOME), killed and removed in teardown whatever happened. */
export function pm2 (t: Teardown): Pm2 {
  const home = mkdtempSync(path.join(tmpdir(), 'fastify-shutdown-pm2-'))
  const cli = path.join(ROOT, 'node_modules', 'pm2', 'bin', 'pm2')
  const env = plainEnv({ PM2_HOME: home })
  const pm2: Pm2 = {
    home,
    async run (...args) {
      const { stdout } = await run(process.execPath, [cli, ...args], { env, timeout: 60_000 })
      return stdout
    },
    outLogs (name) {
      const logs = path.join(home, 'logs')
      return readdirSync(logs).filter((file) => file.startsWith(`${name}-out`)).map((file) => path.join(logs, file))
    }
  }
  t.teardown(async () => {
    await pm2.run('kill').catch(() => {})
    rmSync(home, { recursive: true, force: true })
  })
  return pm2
}
