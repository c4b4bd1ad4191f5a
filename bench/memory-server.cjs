// The server for the memory benchmark, bare or with the plugin (default options), run with --expose-gc.
// `GET /` answers at once; `GET /hold` waits until the benchmark sends 'release'. Over IPC it reports memory
// after a full collection, and tells when its open connections or held requests reach a number.
'use strict'
const Fastify = require('fastify')

const variant = process.argv[2]
if (variant !== 'bare' && variant !== 'shutdown') throw new TypeError(`Expected a variant (bare, shutdown), got "${variant}"`)

// Idle connections must stay open through the measurement, however slow the machine.
const app = Fastify({ keepAliveTimeout: 10 * 60_000 })
if (variant === 'shutdown') app.register(require(process.env.SHUTDOWN_MODULE ?? '..'))

let connections = 0
let held = 0
let gate = newGate()
let expected = null

function newGate () {
  let open
  const opened = new Promise((resolve) => { open = resolve })
  return { opened, open }
}

function tellIfReached () {
  if (expected !== null && connections === expected.connections && held === expected.held) {
    expected = null
    process.send({ type: 'reached', connections, held })
  }
}

app.server.on('connection', (socket) => {
  connections++
  socket.once('close', () => {
    connections--
    tellIfReached()
  })
  tellIfReached()
})

app.get('/', async () => ({ hello: 'world' }))
app.get('/hold', async () => {
  held++
  tellIfReached()
  await gate.opened
  held--
  return { hello: 'world' }
})

process.on('message', (message) => {
  if (message.type === 'measure') {
    // Twice: what the first collection frees can let go of more (weak references, finalizers).
    global.gc()
    global.gc()
    process.send({ type: 'measured', connections, held, ...process.memoryUsage() })
  } else if (message.type === 'await') {
    expected = message
    tellIfReached()
  } else if (message.type === 'release') {
    gate.open()
    gate = newGate()
  }
})

// The benchmark gone, the server has nothing left to do.
process.on('disconnect', () => process.exit(1))
app.listen({ port: 0, host: '127.0.0.1' }).then(() => process.send({ type: 'listening', port: app.server.address().port }))
