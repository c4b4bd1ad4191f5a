// Memory: heap and RSS per open keep-alive connection and per in-flight request, bare Fastify against the plugin
// with default options (bench/memory-server.cjs), one server after the other, round by round. Each server
// measures itself after a full collection: at rest, with N keep-alive connections open and idle (each has
// served one request), then with a request in flight on each of them.
//
//   npm run build && node bench/memory.mjs [--smoke]
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { parseArgs } from 'node:util'
import { bounded } from './lib-child.mjs'
import { amount, count, differenceSpread, markdown, minus, paired, roundOrder, spread, summarize } from './lib-rounds.mjs'
import { CONNECT_BATCH, destroyAll, openConnections } from './lib-sockets.mjs'

const SERVER = new URL('memory-server.cjs', import.meta.url).pathname

const VARIANTS = [
  { variant: 'bare', label: 'bare Fastify' },
  { variant: 'shutdown', label: 'fastify-shutdown, default options' }
]

const SETTINGS = {
  // ulimit -n is 20,000 here: the bench and the server each hold one end of every connection.
  full: { rounds: 3, connections: 10_000, warmUp: 250 },
  smoke: { rounds: 1, connections: 500, warmUp: 50 }
}

/** Each figure: the difference between two of a server's snapshots, divided by the number of connections. */
const FIGURES = [
  { name: 'heap per idle connection', from: 'rest', to: 'idle', field: 'heapUsed' },
  { name: 'heap per request in flight', from: 'idle', to: 'inFlight', field: 'heapUsed' },
  { name: 'heap per busy connection (both)', from: 'rest', to: 'inFlight', field: 'heapUsed' },
  { name: 'RSS per idle connection', from: 'rest', to: 'idle', field: 'rss' },
  { name: 'RSS per request in flight', from: 'idle', to: 'inFlight', field: 'rss' },
  { name: 'RSS per busy connection (both)', from: 'rest', to: 'inFlight', field: 'rss' }
]

/** A memory server with --expose-gc: `message(type)` is its next message of that type, or its exit. */
async function startServer (variant) {
  const child = fork(SERVER, [variant], { execArgv: ['--expose-gc'], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk) => { stderr = (stderr + chunk).slice(-4000) })
  const message = (type, describe) => bounded(new Promise((resolve, reject) => {
    const onMessage = (m) => { if (m.type === type) settle(resolve, m) }
    const onExit = (code, signal) => settle(reject, new Error(`the ${variant} server exited (${signal ?? code}) before ${describe}\n${stderr}`))
    const settle = (fn, value) => {
      child.off('message', onMessage).off('exit', onExit)
      fn(value)
    }
    child.on('message', onMessage).on('exit', onExit)
  }), describe)
  const { port } = await message('listening', 'listening')
  return {
    port,
    /** process.memoryUsage() in the server after a full collection. */
    measure () {
      child.send({ type: 'measure' })
      return message('measured', 'a measurement')
    },
    /** Resolves once the server counts exactly this many open connections and held requests. */
    reach (connections, held) {
      child.send({ type: 'await', connections, held })
      return message('reached', `${connections} connections open and ${held} requests held`)
    },
    release () {
      child.send({ type: 'release' })
    },
    async stop () {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = once(child, 'exit')
      child.kill('SIGKILL')
      await exited
    }
  }
}

/** Holds a request on each connection; resolves once the server has them all, with a release for them. */
async function holdRequests (server, connections) {
  const responses = Promise.all(connections.map((connection) => connection.request('/hold')))
  // Awaited after the release; should the wait for the server fail first, its exit fails these too.
  responses.catch(() => {})
  await server.reach(connections.length, connections.length)
  return async () => {
    server.release()
    const statuses = (await bounded(responses, `${connections.length} held responses`)).map((response) => response.status)
    if (statuses.some((status) => status !== 200)) throw new Error(`held requests answered ${[...new Set(statuses)].join(', ')}`)
  }
}

/** `total` keep-alive connections left idle, each having served one GET / with a 200. */
async function openIdleConnections (server, total) {
  const connections = await openConnections(server.port, total, { path: '/', awaitResponse: true })
  const statuses = new Set(await Promise.all(connections.map(async (connection) => (await connection.pending).status)))
  if (statuses.size !== 1 || !statuses.has(200)) throw new Error(`GET / answered ${[...statuses].join(', ')}`)
  return connections
}

async function closeAll (server, connections) {
  destroyAll(connections)
  await server.reach(0, 0)
}

/** One server's snapshots: at rest, with `connections` idle keep-alive connections, and a request held on each. */
async function measureServer (variant, { connections: total, warmUp }) {
  const server = await startServer(variant)
  let connections = []
  try {
    // Compiles the request paths and fills the server's caches before the first snapshot, so that neither
    // counts as the cost of the connections that follow.
    connections = await openIdleConnections(server, warmUp)
    await (await holdRequests(server, connections))()
    await closeAll(server, connections)

    const rest = await server.measure()
    connections = await openIdleConnections(server, total)
    await server.reach(total, 0)
    const idle = await server.measure()
    const release = await holdRequests(server, connections)
    const inFlight = await server.measure()
    await release()
    await closeAll(server, connections)
    return { rest, idle, inFlight }
  } finally {
    destroyAll(connections)
    await server.stop()
  }
}

export const suite = {
  name: 'memory',
  title: 'Memory per connection and per request in flight',
  async run ({ smoke = false, log = () => {} } = {}) {
    const settings = smoke ? SETTINGS.smoke : SETTINGS.full
    const { rounds, connections } = settings
    const runs = []
    for (let round = 0; round < rounds; round++) {
      for (const { variant } of roundOrder(VARIANTS, round)) {
        const snapshots = await measureServer(variant, settings)
        const figures = Object.fromEntries(FIGURES.map(({ name, from, to, field }) =>
          [name, (snapshots[to][field] - snapshots[from][field]) / connections]))
        runs.push({ round, variant, figures, snapshots })
        log(`round ${round + 1}/${rounds}, ${variant}: ${FIGURES.map(({ name }) => `${name} ${amount(figures[name], 'B')}`).join(', ')}`)
      }
    }

    const summaryOf = (variant, name) => summarize(runs.filter((run) => run.variant === variant).map((run) => run.figures[name]))
    const extraOf = (name) => paired(runs, rounds, [(run) => run.variant === 'shutdown', (run) => run.variant === 'bare'], (run) => run.figures[name], minus)
    const bareNoise = FIGURES.map(({ name }) => {
      const { median, min, max, n } = summaryOf('bare', name)
      return n > 1 ? `${name} ${Math.round((max - min) / Math.abs(median) * 100)} %` : null
    }).filter((text) => text !== null)

    return {
      tables: [{
        title: `Memory per open keep-alive connection and per request in flight (${count(connections)} of each, ${rounds} round${rounds > 1 ? 's' : ''})`,
        columns: ['figure', ...VARIANTS.map(({ label }) => `${label}: median (min–max)`), 'the plugin\'s extra, same round: median (min to max)'],
        rows: FIGURES.map(({ name }) => [
          name,
          ...VARIANTS.map(({ variant }) => spread(summaryOf(variant, name), 'B')),
          differenceSpread(extraOf(name), 'B')
        ]),
        notes: [
          'Each server runs with --expose-gc and reports process.memoryUsage() after two full collections: at rest (after a warm-up of ' +
            `${settings.warmUp} connections, closed again); with ${count(connections)} keep-alive connections open and idle, each having served one GET / ` +
            `(opened ${CONNECT_BATCH} at a time); then with a request in flight on each of them, its handler waiting for a release. ` +
            `Idle connection: (idle − rest) / ${count(connections)}. Request in flight: (in flight − idle) / ${count(connections)}, what a request adds to ` +
            `the connection it arrives on. Busy connection: (in flight − rest) / ${count(connections)}, the two together. Both servers count their ` +
            'connections for the bench with one close listener each: some hundred bytes in both figures alike.',
          'Servers alternate bare and plugin, the order reversed every other round; "extra" subtracts each round\'s bare figure from its plugin ' +
            'figure. Heap after a full collection is close to exact; RSS counts the pages the allocator keeps, and moves in steps. ' +
            (bareNoise.length > 0 ? `Noise: bare's figures spread over rounds by (max − min) / median: ${bareNoise.join(', ')}.` : 'One round: no spread to tell the noise by.')
        ]
      }],
      raw: { settings, runs }
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { smoke: { type: 'boolean', default: false } } })
  const { tables } = await suite.run({ smoke: values.smoke, log: (line) => console.error(line) })
  console.log(markdown(tables))
}
