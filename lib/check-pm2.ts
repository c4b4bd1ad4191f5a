import path from 'node:path'
import { checkCommand, commandWords } from './check-command'
import type { Subject } from './check-rules'
import { checkBudget, type CheckContext, checkStopSignal, type Deadline, optionsIn } from './check-runner'
import { ERR_CHECK_INPUT } from './errors'
import { pm2Process } from './pm2'

interface Pm2App {
  name?: string
  script?: string
  args?: string | string[]
  exec_mode?: string
  instances?: number | string
  kill_timeout?: number | string
  shutdown_with_message?: boolean
  env?: Record<string, unknown>
}

/** An ecosystem file's apps: `{ apps: [...] }`, as PM2 documents it, or the array itself. */
export function ecosystemApps (value: unknown): Pm2App[] | null {
  const apps = Array.isArray(value) ? value : (value as { apps?: unknown } | null)?.apps
  return Array.isArray(apps) ? apps.filter((app) => typeof app === 'object' && app !== null) : null
}

/** PM2's own choice (Common.js `determineExecMode`): `instances` alone means cluster mode, for node. */
function execMode (app: Pm2App): 'fork' | 'cluster' {
  if (app.exec_mode !== undefined) return /^cluster(?:_mode)?$/.test(app.exec_mode) ? 'cluster' : 'fork'
  return app.instances === undefined ? 'fork' : 'cluster'
}

/**
 * Each app of a PM2 ecosystem file: its `kill_timeout` against the budget, the stop signal (SIGINT), cluster
 * mode and a pre-stop window for reloads, and what `script` runs. `lineOf` gives lines in a JSON or YAML file.
 */
export async function checkPm2 (context: CheckContext, file: string, value: unknown, lineOf: (at: readonly (string | number)[]) => number | undefined = () => undefined): Promise<void> {
  const { record, source } = context
  const apps = ecosystemApps(value)
  if (apps === null) throw new ERR_CHECK_INPUT(file, 'not a PM2 ecosystem file: it exports no `apps` array')
  for (const [index, app] of apps.entries()) {
    const name = app.name ?? (app.script === undefined ? String(index) : path.basename(app.script))
    const subject: Subject = { file, line: lineOf(['apps', index]), object: `app ${name}` }
    if (!context.selected(subject, name)) continue
    const env = Object.fromEntries(Object.entries(app.env ?? {}).map(([key, setting]) => [key, String(setting)]))
    const options = await optionsIn(record, subject, source, env)
    if (options === null) continue

    const mode = execMode(app)
    const pm2 = pm2Process({ pm_id: '0', exec_mode: `${mode}_mode`, ...(app.kill_timeout === undefined ? {} : { kill_timeout: String(app.kill_timeout) }) })!
    const deadline: Deadline = {
      ms: pm2.killTimeoutMs,
      setting: pm2.killTimeoutFrom === 'default' ? 'kill_timeout (PM2\'s default)' : `kill_timeout ${pm2.killTimeoutMs}`,
      fitting: (ms) => `kill_timeout: ${ms}`
    }
    checkBudget(record, subject, options, deadline)
    // With shutdown_with_message PM2 sends the IPC message 'shutdown', which the plugin takes like its signal.
    if (app.shutdown_with_message !== true) checkStopSignal(record, subject, options, 'SIGINT', 'PM2\'s stop, restart and reload')

    record.rule(subject, 'pm2-fork-mode', mode === 'fork' && {
      message: 'fork mode: pm2 reload stops the old process before the new one listens, and the port is closed in between',
      fix: 'exec_mode: \'cluster\' (with wait_ready: true)'
    })
    record.rule(subject, 'pm2-prestop-delay', mode === 'cluster' && options.preStopDelay === 0 && {
      message: 'cluster mode with preStopDelay 0: a stopping worker closes its kept-alive connections at once, and a request crossing the close is reset',
      fix: 'preStopDelay: 1000, so kept-alive clients get Connection: close and reconnect to another worker first'
    })
    if (app.script !== undefined) {
      const args = app.args === undefined ? [] : typeof app.args === 'string' ? commandWords(app.args) : app.args
      checkCommand(record, subject, [app.script, ...args], options, env, 'script')
    }
  }
}
