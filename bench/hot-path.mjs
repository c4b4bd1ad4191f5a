// Hot path: what the plugin costs each request while serving, against bare Fastify and @fastify/under-pressure,
// all variants of bench/hot-path-server.cjs on a hello-world route, interleaved round by round.
//   - instructions per request, counted by callgrind (bench/instructions.mjs): nearly deterministic;
//   - requests/s under autocannon (keep-alive connections), the servers without valgrind: wall clock, noisy.
//
//   npm run build && node bench/hot-path.mjs [--smoke] [--part instructions|throughput]
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { instructionsPerRequest } from './instructions.mjs'
import { count, differenceSpread, markdown, paired, roundOrder, spread, summarize } from './lib-rounds.mjs'

const SERVER = new URL('hot-path-server.cjs', import.meta.url).pathname

const VARIANTS = [
  { variant: 'bare', label: 'bare Fastify' },
  { variant: 'shutdown', label: 'fastify-shutdown, default options' },
  { variant: 'shutdown-in-use', label: 'fastify-shutdown, readiness + liveness routes, handler reads request.shutdownSignal' },
  { variant: 'under-pressure', label: '@fastify/under-pressure (reference)' }
]

const SETTINGS = {
  // V8 still compiles well past the first few thousand requests (node --trace-opt on this server: the last
  // functions reach an optimizing tier near request 11,000 on Node 22, 13,000 on Node 20 and 16,000 on Node
  // 24), and a window that counts compilation counts one-off work, not the cost of a request.
  full: { instructionRounds: 2, n1: 17_000, n2: 21_000, throughputRounds: 5, durationS: 3, warmUpS: 2, connections: 10 },
  // autocannon ends a run on its once-a-second tick: 1 s is its shortest.
  smoke: { instructionRounds: 1, n1: 20, n2: 40, throughputRounds: 1, durationS: 1, warmUpS: 0, connections: 10 }
}

const PARTS = ['instructions', 'throughput']

/** The most the plugin with default options may add to bare Fastify's instructions per request, in %. */
const BUDGET_PERCENT = 2

const isVariant = (variant) => (run) => run.variant === variant
const percentOver = (a, b) => (a / b - 1) * 100

/** A column of `figure` per variant, and one of its difference from bare's in the same round, in %. */
function rowsAgainstBare (runs, rounds, figure) {
  return VARIANTS.map(({ variant, label }) => [
    label,
    spread(summarize(runs.filter(isVariant(variant)).map(figure)), ''),
    variant === 'bare' ? '—' : differenceSpread(paired(runs, rounds, [isVariant(variant), isVariant('bare')], figure, percentOver), '%')
  ])
}

/** How far apart bare's rounds are: (max − min) / median, as a sentence for the notes. */
function bareNoise (runs, figure, what, digits) {
  const { median, min, max, n } = summarize(runs.filter(isVariant('bare')).map(figure))
  if (n === 1) return 'one round only, no spread to tell the noise by'
  return `${what} spread over rounds by ${((max - min) / median * 100).toFixed(digits)} % of their median`
}

async function measureInstructions ({ instructionRounds: rounds, n1, n2 }, log) {
  const runs = []
  for (let round = 0; round < rounds; round++) {
    for (const { variant } of roundOrder(VARIANTS, round)) {
      const run = { round, ...await instructionsPerRequest(variant, n1, n2) }
      runs.push(run)
      log(`instructions, round ${round + 1}/${rounds}: ${variant} ${count(Math.round(run.perRequest))} per request`)
    }
  }

  const perRequest = (run) => run.perRequest
  return {
    overBare: paired(runs, rounds, [isVariant('shutdown'), isVariant('bare')], perRequest, percentOver),
    table: {
      title: `Instructions per request (callgrind, requests ${count(n1 + 1)} to ${count(n2)}, ${rounds} round${rounds > 1 ? 's' : ''})`,
      columns: ['variant', 'instructions / request: median (min–max)', 'vs bare, same round: median (min to max)'],
      rows: rowsAgainstBare(runs, rounds, perRequest),
      notes: [
        'Each count is one server under valgrind --tool=callgrind, node --predictable: uninstrumented through start-up and ' +
          `${count(n1)} requests (JIT warm-up), then callgrind_control turns counting on for ${count(n2 - n1)} more, one at a time on one keep-alive socket, ` +
          'and dumps the count. Every round counts each variant once, the order reversed every other round.',
        `Noise: ${bareNoise(runs, perRequest, 'the bare counts', 2)}; two identical servers agree to about 0.3 % on Node 20 and 24. ` +
          `Budget for the plugin with default options: at most +${BUDGET_PERCENT} % (a full run fails when every round is past it). ` +
          'On Node 22 a count can move by up to 5 % from run to run whatever the variant: V8 leaves some of Node\'s own timer code (timers\' insert, setUnrefTimeout) in baseline code in some runs, as callgrind_annotate on the dumps shows (CALLGRIND_KEEP in bench/instructions.mjs).',
        'The shutdownSignal variant\'s handler reads request.shutdownSignal (made on first read: an AbortController per request, tracked until the ' +
          'request closes) and the app has the two probe routes.',
        'Callgrind runs a server about 100 times slower than normal, so under-pressure\'s sampleInterval and maxEventLoopDelay are scaled by 100 for ' +
          'this count (1 s and 1,000 ms at full speed); its 10 ms event-loop timer is fixed, and weighs more per request here than at full speed.'
      ]
    },
    raw: runs
  }
}

async function startServer (variant) {
  const child = fork(SERVER, [variant], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  const [message] = await Promise.race([
    once(child, 'message'),
    once(child, 'exit').then(([code]) => { throw new Error(`${variant} server exited with ${code} before it was listening`) })
  ])
  return { child, url: `http://127.0.0.1:${message.port}/` }
}

async function load (url, { connections, durationS }) {
  const result = await autocannon({ url, connections, duration: durationS })
  return {
    requests: result.requests.total,
    durationS: result.duration,
    perSecond: result.requests.total / result.duration,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts
  }
}

async function measureThroughput ({ throughputRounds: rounds, durationS, warmUpS, connections }, log) {
  const servers = {}
  try {
    for (const { variant } of VARIANTS) servers[variant] = await startServer(variant)
    if (warmUpS > 0) {
      for (const { variant } of VARIANTS) await load(servers[variant].url, { connections, durationS: warmUpS })
    }
    const runs = []
    for (let round = 0; round < rounds; round++) {
      for (const { variant } of roundOrder(VARIANTS, round)) {
        const run = { round, variant, ...await load(servers[variant].url, { connections, durationS }) }
        if (run.non2xx + run.errors + run.timeouts > 0) {
          throw new Error(`${variant}: ${run.non2xx} non-2xx responses, ${run.errors} errors, ${run.timeouts} timeouts: not a hello-world's figure`)
        }
        runs.push(run)
        log(`requests/s, round ${round + 1}/${rounds}: ${variant} ${count(Math.round(run.perSecond))}`)
      }
    }

    const perSecond = (run) => run.perSecond
    return {
      table: {
        title: `Requests per second (autocannon, ${connections} keep-alive connections, ${rounds} round${rounds > 1 ? 's' : ''} of ${durationS} s per variant)`,
        columns: ['variant', 'requests/s: median (min–max)', 'vs bare, same round: median (min to max)'],
        rows: rowsAgainstBare(runs, rounds, perSecond),
        notes: [
          `The same server modules without valgrind, all four started at once${warmUpS > 0 ? ` and warmed up for ${warmUpS} s each` : ''}, then loaded ` +
            'in turn, each once a round, the order reversed every other round. autocannon runs in the bench\'s own process: client and server share ' +
            'the machine\'s cores.',
          `Noise: ${bareNoise(runs, perSecond, 'bare\'s requests/s', 1)}; a difference smaller than that says nothing. The instruction counts are ` +
            'the figure to compare.'
        ]
      },
      raw: runs
    }
  } finally {
    await Promise.all(Object.values(servers).map(async ({ child }) => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = once(child, 'exit')
      child.kill('SIGKILL')
      await exited
    }))
  }
}

export const suite = {
  name: 'hot-path',
  title: 'Hot path: cost per request',
  async run ({ smoke = false, log = () => {}, parts = PARTS } = {}) {
    const settings = smoke ? SETTINGS.smoke : SETTINGS.full
    const tables = []
    const raw = { settings }
    if (parts.includes('instructions')) {
      const { table, raw: counts, overBare } = await measureInstructions(settings, log)
      tables.push(table)
      raw.instructions = counts
      // A smoke run's windows are far too short to say anything. A cost of the plugin's shows in every round;
      // on Node 22, V8 leaves some of Node's own timer code unoptimized in some runs and not others (callgrind
      // names it: timers' insert and setUnrefTimeout in baseline code), which moves one count by up to 5 %.
      if (!smoke && overBare.min > BUDGET_PERCENT) {
        throw new Error(`the plugin with default options costs +${overBare.median.toFixed(2)} % instructions per request over bare Fastify ` +
          `(rounds: ${overBare.min.toFixed(2)} to ${overBare.max.toFixed(2)} %), past its budget of +${BUDGET_PERCENT} % in every round\n${markdown([table])}`)
      }
    }
    if (parts.includes('throughput')) {
      const { table, raw: runs } = await measureThroughput(settings, log)
      tables.push(table)
      raw.throughput = runs
    }
    return { tables, raw }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { smoke: { type: 'boolean', default: false }, part: { type: 'string' } } })
  if (values.part !== undefined && !PARTS.includes(values.part)) throw new TypeError(`Expected --part to be ${PARTS.join(' or ')}, got "${values.part}"`)
  const { tables } = await suite.run({ smoke: values.smoke, log: (line) => console.error(line), parts: values.part === undefined ? PARTS : [values.part] })
  console.log(markdown(tables))
}
