// Instructions per request, counted by callgrind over a window: the server runs uninstrumented through start-up
// and the first N1 requests (JIT warm-up), callgrind_control switches counting on, N2 − N1 more requests go
// through, and a dump takes the count. Requests go one at a time on one keep-alive socket, so every run does
// the same work in the same order.
//
//   npm run build && node bench/instructions.mjs [variant ...]     (N1=3000 N2=6000 by default, from the env)
//
// CALLGRIND_KEEP=<dir> keeps each window's dump there as <variant>.callgrind, for
// `callgrind_annotate --inclusive=yes <dir>/shutdown.callgrind` to name where the instructions go.
import { execFile, fork } from 'node:child_process'
import { once } from 'node:events'
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { Agent, get } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const SERVER = new URL('hot-path-server.cjs', import.meta.url).pathname
// V8 compiles and collects garbage on background threads, and schedules some of it by the clock, at moments
// that vary from run to run (two identical servers differed by up to 9 %); --predictable keeps it all on the
// main thread in the same order (they agree to 0.2 %).
const V8_FLAGS = (process.env.V8_FLAGS ?? '--predictable --hash-seed=1 --random-seed=1').split(' ')

function request (port, path, agent) {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (chunk) => { body += chunk })
      res.on('end', () => res.statusCode === 200 ? resolve() : reject(new Error(`GET ${path} answered ${res.statusCode}: ${body}`)))
    }).on('error', reject)
  })
}

async function callgrindControl (pid, ...args) {
  const { stdout } = await promisify(execFile)('callgrind_control', [...args, String(pid)])
  if (!/OK\./.test(stdout)) throw new Error(`callgrind_control ${args.join(' ')} ${pid}: ${stdout}`)
}

/**
 * The instructions `variant` of bench/hot-path-server.cjs executes for requests n1 + 1 to n2, and per request.
 * A server that dies early fails the count rather than leave it waiting.
 */
export async function instructionsPerRequest (variant, n1, n2) {
  const dir = mkdtempSync(join(tmpdir(), 'callgrind-'))
  const out = join(dir, 'callgrind.out')
  const child = fork(SERVER, [variant], {
    execPath: 'valgrind',
    execArgv: ['--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${out}`, '--trace-children=no',
      process.execPath, ...V8_FLAGS],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    // Callgrind runs the server about 100 times slower than normal: see SLOWDOWN in the server.
    env: { ...process.env, BENCH_SLOWDOWN: '100' }
  })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk) => { stderr += chunk })
  const exited = once(child, 'exit')
  const died = exited.then(([code]) => { throw new Error(`${variant} server exited with ${code} before the count was taken\n${stderr.slice(-2000)}`) })
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  try {
    const count = async () => {
      const [{ port }] = await once(child, 'message')
      for (let i = 0; i < n1; i++) await request(port, '/', agent)
      await callgrindControl(child.pid, '--instr=on')
      for (let i = n1; i < n2; i++) await request(port, '/', agent)
      await callgrindControl(child.pid, '--dump=window')
      const instructions = Number(/^summary:\s+(\d+)/m.exec(readFileSync(`${out}.1`, 'utf8'))[1])
      if (process.env.CALLGRIND_KEEP) copyFileSync(`${out}.1`, join(process.env.CALLGRIND_KEEP, `${variant}.callgrind`))
      await request(port, '/exit', agent).catch(() => {})
      return instructions
    }
    const instructions = await Promise.race([count(), died])
    await exited
    return { variant, n1, n2, instructions, perRequest: instructions / (n2 - n1) }
  } finally {
    died.catch(() => {})
    agent.destroy()
    if (child.exitCode === null && child.signalCode === null) {
      // Not SIGKILL: valgrind removes its vgdb pipes from /tmp on the way out.
      child.kill('SIGTERM')
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const variants = process.argv.length > 2 ? process.argv.slice(2) : ['bare', 'shutdown']
  // Compilation settles within the first ~2,500 requests: a window that starts earlier counts the JIT.
  const n1 = Number(process.env.N1 ?? 3000)
  const n2 = Number(process.env.N2 ?? 6000)
  const results = []
  for (const variant of variants) {
    const { perRequest } = await instructionsPerRequest(variant, n1, n2)
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
