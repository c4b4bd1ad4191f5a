// Instructions per request, counted by callgrind: (Ir after N2 requests − Ir after N1) / (N2 − N1), which
// cancels start-up and exit. Requests go one at a time on one keep-alive socket, so every run does the
// same work in the same order.
import { fork } from 'node:child_process'
import { readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { Agent, get } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'

const here = new URL('.', import.meta.url).pathname

function request (port, path, agent) {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent }, (res) => { res.resume(); res.on('end', resolve) }).on('error', reject)
  })
}

export async function countInstructions (variant, requests) {
  const dir = mkdtempSync(join(tmpdir(), 'callgrind-'))
  const out = join(dir, 'callgrind.out')
  const child = fork(join(here, 'hot-path-server.cjs'), [variant], {
    execPath: 'valgrind',
    execArgv: ['--tool=callgrind', `--callgrind-out-file=${out}`, '--trace-children=no', process.execPath],
    stdio: ['ignore', 'ignore', 'ignore', 'ipc']
  })
  const [{ port }] = await once(child, 'message')
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  for (let i = 0; i < requests; i++) await request(port, '/', agent)
  await request(port, '/exit', agent).catch(() => {})
  await once(child, 'exit')
  agent.destroy()
  const summary = /^summary:\s+(\d+)/m.exec(readFileSync(out, 'utf8'))
  rmSync(dir, { recursive: true, force: true })
  return Number(summary[1])
}

export async function instructionsPerRequest (variant, n1, n2) {
  const low = await countInstructions(variant, n1)
  const high = await countInstructions(variant, n2)
  return (high - low) / (n2 - n1)
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const variants = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['bare', 'shutdown']
  const n1 = Number(process.env.N1 ?? 2000)
  const n2 = Number(process.env.N2 ?? 6000)
  const results = {}
  for (const variant of variants) {
    results[variant] = await instructionsPerRequest(variant, n1, n2)
    console.log(`${variant}: ${Math.round(results[variant])} instructions/request`)
  }
  if (results.bare) {
    for (const variant of variants.filter((name) => name !== 'bare')) {
      console.log(`${variant} vs bare: ${((results[variant] / results.bare - 1) * 100).toFixed(2)}%`)
    }
  }
}
