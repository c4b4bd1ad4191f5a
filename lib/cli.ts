#!/usr/bin/env node
// `npx fastify-shutdown check`: the package's command. The plugin never loads this file, nor what it imports.
import { parseArgs } from 'node:util'
import { check } from './check'
import { jsonReport, textReport } from './check-report'
import { ERR_CHECK_USAGE, messageOf } from './errors'

const USAGE = `Usage: fastify-shutdown check [--options <file>[#export]] [--only <name>]... [--telemetry] [--json] <file|dir|->...

Checks a deployment against fastify-shutdown's options before it ships: Kubernetes manifests (helm template
and kustomize build output too), Compose files, systemd units, PM2 ecosystem files and Dockerfiles.

  --options <file>  the plugin's options: JSON, or a .js/.cjs/.mjs module exporting them, or exporting a
                    function of the environment, called with each container's, service's or app's own
  --only <name>     check only this container, Compose service or PM2 app (repeatable)
  --telemetry       the app hands the plugin an OpenTelemetry SDK: telemetryTimeout counts in the budget
  --json            the report as JSON
  -                 read standard input (e.g. helm template ... | fastify-shutdown check -)

Exit code: 0 when nothing is wrong (warnings allowed), 1 on any error, 2 on bad usage or an unreadable input.
`

async function main (args: string[]): Promise<{ out: string, code: number }> {
  let parsed
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        options: { type: 'string' },
        only: { type: 'string', multiple: true },
        telemetry: { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      }
    })
  } catch (err) {
    throw new ERR_CHECK_USAGE(messageOf(err))
  }
  const { values, positionals: [command, ...inputs] } = parsed
  if (values.help === true) return { out: USAGE, code: 0 }
  if (command !== 'check') throw new ERR_CHECK_USAGE(command === undefined ? 'no command given' : `unknown command \`${command}\``)
  const result = await check({ inputs, options: values.options, only: values.only, telemetry: values.telemetry, stdin: process.stdin })
  return { out: values.json === true ? jsonReport(result) : textReport(result), code: result.errors > 0 ? 1 : 0 }
}

// The exit waits for stdout to be written, and does not wait for anything an options or ecosystem module left running.
main(process.argv.slice(2)).then(
  ({ out, code }) => { process.stdout.write(out, () => process.exit(code)) },
  (err: unknown) => {
    const { code } = err as { code?: unknown }
    const usage = code === 'FST_SHUTDOWN_CHECK_USAGE' ? '\nRun `fastify-shutdown --help` for the usage.' : ''
    process.stderr.write(`fastify-shutdown check: ${typeof code === 'string' ? `${code}: ` : ''}${messageOf(err)}${usage}\n`, () => process.exit(2))
  }
)
