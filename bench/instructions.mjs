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
    // V8 compiles and collects garbage on background threads, and schedules some of it by the clock, at
    // moments that vary from run to run (two identical servers differed by up to 9 %); --predictable keeps
    // it all on the main thread in the same order (they agree to 0.2 %).
    execArgv: ['--tool=callgrind', `--callgrind-out-file=${out}`, '--trace-children=no', process.execPath,
      ...(process.env.V8_FLAGS ?? '--predictable --hash-seed=1 --random-seed=1').split(' ')],
    stdio: ['ignore', 'ignore', 'ignore', 'ipc']
  })
  // A server that dies before it is ready must fail the run, not leave it waiting.
  const ready = await Promise.race([once(child, 'message'), once(child, 'exit').then(([code]) => { throw new Error(`${variant} server exited with ${code} before it was ready`) })])
  const [{ port }] = ready
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
  // Compilation settles within the first ~2,500 requests: a window that starts earlier counts the JIT.
  const n1 = Number(process.env.N1 ?? 3000)
  const n2 = Number(process.env.N2 ?? 6000)
  const results = []
  for (const variant of variants) {
    const perRequest = await instructionsPerRequest(variant, n1, n2)
    results.push([variant, perRequest])
    console.log(`${variant}: ${Math.round(perRequest)} instructions/request`)
  }
  const bare = results.filter(([variant]) => variant === 'bare').map(([, ir]) => ir)
  if (bare.length > 0) {
    const baseline = bare.reduce((a, b) => a + b, 0) / bare.length
    for (const [variant, ir] of results.filter(([variant]) => variant !== 'bare')) {
      console.log(`${variant} vs bare (mean of ${bare.length}): ${((ir / baseline - 1) * 100).toFixed(2)} %`)
    }
  }
}
