// Node's cluster module: a primary that runs WORKERS copies of server.mjs on one port, each with
// fastify-shutdown, and replaces them one by one without losing a request.
//   WORKERS=2 node example-app/cluster.mjs         then: kill -HUP <primary pid>   (a rolling restart)
//                                                   and:  kill -TERM <primary pid>  (every worker drains, then exit)
// The primary stops a worker with a signal to its process, never with worker.disconnect() or worker.kill():
// both make the worker close its server behind the plugin's back (Node's cluster child calls server.close()
// and waits for every connection to end), so nothing tells kept-alive clients to leave and a busy one holds
// the worker until keepAliveTimeout; worker.kill() only signals once that is over.
import cluster from 'node:cluster'
import { once } from 'node:events'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'

const WORKERS = Number(process.env.WORKERS ?? availableParallelism())

// The primary holds the listening socket and hands each new connection to a worker. A worker that stops
// keeps serving for this long, with `Connection: close` on every response, so its keep-alive clients
// reconnect (to the other workers) before its listener closes. Passed to the workers through config.mjs.
const workerEnv = { PRE_STOP_DELAY_MS: process.env.PRE_STOP_DELAY_MS ?? '1000' }

cluster.setupPrimary({ exec: fileURLToPath(new URL('./server.mjs', import.meta.url)) })

/** Workers being stopped on purpose, with their exit codes to come: their exit is not a crash to replace. */
const stopping = new Map()
let shuttingDown = false
let restarting = Promise.resolve()

function log (fields, msg) {
  process.stdout.write(JSON.stringify({ level: 30, time: Date.now(), pid: process.pid, role: 'primary', ...fields, msg }) + '\n')
}

async function startWorker () {
  const worker = cluster.fork(workerEnv)
  const [address] = await Promise.race([
    once(worker, 'listening'),
    once(worker, 'exit').then(([code]) => { throw new Error(`worker ${worker.process.pid} exited with ${code} before it listened`) })
  ])
  log({ worker: worker.process.pid, port: address.port }, 'worker listening')
  return { worker, port: address.port }
}

/** Sends the worker's plugin the signal that starts its drain; resolves with its exit code once it is gone. */
function stopWorker (worker, signal = 'SIGTERM') {
  if (!stopping.has(worker)) {
    const exited = once(worker, 'exit').then(([code, exitSignal]) => {
      log({ worker: worker.process.pid, code, signal: exitSignal }, 'worker exited')
      return code ?? 1
    })
    stopping.set(worker, exited)
    worker.process.kill(signal)
  }
  return stopping.get(worker)
}

/** Each worker in turn: its replacement listens first, then it drains and exits. */
async function rollingRestart () {
  for (const old of Object.values(cluster.workers)) {
    if (shuttingDown) return
    await startWorker()
    if (shuttingDown) return
    await stopWorker(old)
  }
  log({ workers: Object.keys(cluster.workers).length }, 'rolling restart done')
  if (process.send) process.send({ type: 'restarted' })
}

cluster.on('exit', (worker, code, signal) => {
  if (stopping.delete(worker) || shuttingDown) return
  log({ worker: worker.process.pid, code, signal }, 'worker died, replacing it')
  startWorker().catch((err) => log({ err: err.message }, 'could not replace a worker'))
})

process.on('SIGHUP', () => {
  restarting = restarting.then(rollingRestart)
})

// The same signal goes to every worker: a terminal's Ctrl-C also reaches them directly (one process group),
// and the plugin takes the same signal twice within duplicateSignalWindow as one. A second signal to the
// primary is forwarded too, and forces the workers' shutdown.
let exitCodes = null
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    shuttingDown = true
    const workers = Object.values(cluster.workers)
    if (exitCodes !== null) {
      for (const worker of workers) worker.process.kill(signal)
      return
    }
    log({ signal, workers: workers.length }, 'stopping every worker')
    exitCodes = Promise.all(workers.map((worker) => stopWorker(worker, signal)))
    exitCodes.then((codes) => process.exit(Math.max(0, ...codes)))
  })
}

const started = await Promise.all(Array.from({ length: WORKERS }, startWorker))
log({ workers: WORKERS, port: started[0].port }, 'primary ready')
if (process.send) process.send({ type: 'ready', port: started[0].port })
