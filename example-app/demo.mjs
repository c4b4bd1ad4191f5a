// Starts example-app/server.mjs as a real child process with OpenTelemetry on, drives real keep-alive traffic
// at it, sends SIGTERM in the middle of three slow requests and prints what happened, in milliseconds from
// the SIGTERM. The server exports its traces, metrics and logs to a small OTLP/HTTP receiver in this process.
// Exits 0 when the server exited 0, every slow request was answered 200, the spans of the slow requests and
// the shutdown's own span arrived, and the report says the telemetry flush was confirmed; 1 otherwise.
import { fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

const PRE_STOP_DELAY_MS = 300
const DRAIN_TIMEOUT_MS = 5000
const SLOW_MS = [400, 800, 1200]
const CLIENTS = 3 // concurrent request loops sharing one keep-alive agent
const MAX_REQUESTS = 2000 // the traffic loop's hard bound, whatever happens
const PACE_MS = 5 // pause between two requests of one loop
const WARMUP_MS = 200 // traffic before the slow requests start
const HEALTH_EVERY_MS = 25 // a load balancer's readiness probe, much faster than a real one
const REQUEST_TIMEOUT_MS = 3000
const DEMO_TIMEOUT_MS = 9000 // past it the child is killed and the demo fails
const EXPORT_GAP_MS = 50 // exports arriving closer together than this are one flush or batch in the timeline

const serverPath = fileURLToPath(new URL('./server.mjs', import.meta.url))
const telemetryPath = fileURLToPath(new URL('./telemetry.mjs', import.meta.url))
const startedAt = Date.now()
process.exitCode = 1 // until the demo has passed: a run that dies or stalls on the way must not report success
// Events in one millisecond keep cause before effect: SIGTERM, then the server's lines, then what the client saw.
const RANK = { signal: -1, server: 0, client: 1, report: 2, exit: 3 }
const events = [] // { at: epoch ms, text, rank }
const note = (text, at = Date.now(), rank = RANK.client) => events.push({ at, text, rank })
const serverNote = (text, at) => note(text, at, RANK.server)

const OTLP_PATHS = ['/v1/traces', '/v1/metrics', '/v1/logs']
const METRIC_TYPES = ['sum', 'gauge', 'histogram', 'exponentialHistogram', 'summary']
const exportsReceived = [] // { at, path, spans: [{ name, scope, traceId, kind }], dataPoints, logRecords }
const receiverErrors = []

/**
 * An OTLP/HTTP receiver, JSON only: keeps what each export carried and when it arrived, and answers 200 `{}`
 * (an empty Export*ServiceResponse). Enough to see what the server's telemetry flush delivered.
 */
const receiver = http.createServer((req, res) => {
  const chunks = []
  req.on('data', (chunk) => chunks.push(chunk))
  req.on('end', () => {
    let body
    try {
      if (req.method !== 'POST' || !OTLP_PATHS.includes(req.url)) throw new Error('not an OTLP/HTTP endpoint')
      if (!/^application\/json\b/.test(req.headers['content-type'] ?? '')) throw new Error(`content type ${req.headers['content-type']}, expected application/json`)
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch (err) {
      receiverErrors.push(`${req.method} ${req.url}: ${err.message}`)
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ message: err.message }))
      return
    }
    const received = { at: Date.now(), path: req.url, spans: [], dataPoints: 0, logRecords: 0 }
    for (const { scopeSpans = [] } of body.resourceSpans ?? []) {
      for (const { scope, spans = [] } of scopeSpans) {
        for (const { name, traceId, kind } of spans) received.spans.push({ name, scope: scope?.name, traceId, kind })
      }
    }
    for (const { scopeMetrics = [] } of body.resourceMetrics ?? []) {
      for (const { metrics = [] } of scopeMetrics) {
        for (const metric of metrics) received.dataPoints += METRIC_TYPES.reduce((n, type) => n + (metric[type]?.dataPoints?.length ?? 0), 0)
      }
    }
    for (const { scopeLogs = [] } of body.resourceLogs ?? []) {
      for (const { logRecords = [] } of scopeLogs) received.logRecords += logRecords.length
    }
    exportsReceived.push(received)
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
  })
})
await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve))
const otlpEndpoint = `http://127.0.0.1:${receiver.address().port}`

// The server's environment: the demo's settings, and no OTEL_* variable of the shell's that could send the
// telemetry elsewhere.
const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('OTEL_')))
const child = fork(serverPath, [], {
  // The SDK starts before server.mjs loads fastify: instrumentations patch modules as they are loaded.
  execArgv: ['--import', telemetryPath],
  env: {
    ...inherited,
    OTEL_EXPORTER_OTLP_ENDPOINT: otlpEndpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    PORT: '0',
    HOST: '127.0.0.1',
    PRE_STOP_DELAY_MS: String(PRE_STOP_DELAY_MS),
    DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS),
    LOG_LEVEL: 'info'
  },
  stdio: ['ignore', 'pipe', 'pipe', 'ipc']
})

let stderr = ''
child.stderr.setEncoding('utf8').on('data', (chunk) => { stderr += chunk })

// The server's pino log, one JSON object a line: keep what tells the shutdown's story.
let report = null
const slowArrivals = []
const onSlowArrival = new Set()
let listenerClosed
const listenerClosedSeen = new Promise((resolve) => { listenerClosed = resolve }) // or the server exited
createInterface({ input: child.stdout }).on('line', (line) => {
  let entry
  try { entry = JSON.parse(line) } catch { return note(`server (not JSON): ${line.slice(0, 60)}`) }
  if (entry.msg === 'incoming request' && entry.req?.url?.startsWith('/reports/slow')) {
    slowArrivals.push(entry.time)
    for (const wake of onSlowArrival) wake()
  }
  if (entry.level >= 40) serverNote(`server ${entry.level >= 50 ? 'ERROR' : 'warn'}: ${entry.msg}`, entry.time)
  else if (entry.msg === 'database closed') serverNote(`server: database closed (onClose hook, ${entry.orders} orders)`, entry.time)
  else if (entry.plugin !== 'fastify-shutdown') return

  if (entry.msg === 'shutdown started') {
    serverNote(`server: shutdown started, state pre-stop (${entry.inFlight} in flight)`, entry.time)
  } else if (entry.msg === 'listener closed, draining') {
    listenerClosed()
    serverNote(`server: listener closed, draining (${entry.inFlight} in flight, ${entry.connections} connections)`, entry.time)
  } else if (entry.msg === 'drained') {
    serverNote(`server: drained (${entry.drainMs} ms after the listener closed)`, entry.time)
  } else if (entry.msg === 'shutdown complete' || entry.msg === 'shutdown forced') {
    report = entry
    const phases = Object.entries(entry.phases).map(([name, ms]) => `${name.replace(/Ms$/, '')} ${ms}`).join(' + ')
    // Last of the server's lines whatever order they reach us in: pino writes stdout asynchronously and the
    // exit flushes this line synchronously, sometimes ahead of the line before it (see the README).
    note(`server: ${entry.msg}, exitCode ${entry.exitCode} (${phases} ms)`, entry.time, RANK.report)
  }
})

let exit = null
const exited = new Promise((resolve) => {
  child.on('exit', (code, signal) => {
    exit = { code, signal, at: Date.now() }
    listenerClosed()
    note(signal ? `server killed by ${signal}` : `server process exited with code ${code}`, exit.at, RANK.exit)
  })
  child.on('close', resolve) // after 'exit', once its stdout has been read to the end
})

// Never hang: whatever goes wrong, the child dies and the demo fails within DEMO_TIMEOUT_MS. Killing the child
// ends every request and wait below; should one still hang, the timeline is printed a second later anyway.
let timedOut = false
let backstop = null
const hardBound = setTimeout(() => {
  timedOut = true
  note(`demo timed out after ${DEMO_TIMEOUT_MS} ms: killing the server`)
  child.kill('SIGKILL')
  backstop = setTimeout(() => {
    finish()
    process.exit()
  }, 1000)
}, DEMO_TIMEOUT_MS)

const agent = new http.Agent({ keepAlive: true })
let port = 0
let lastResponseAt = 0

/** One request; resolves (never rejects) with what came back. */
function send (method, path, body, headers = {}) {
  return new Promise((resolve) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = http.request({
      agent,
      host: '127.0.0.1',
      port,
      method,
      path,
      timeout: REQUEST_TIMEOUT_MS,
      headers: payload === undefined ? headers : { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
    }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => { text += chunk })
      res.on('end', () => {
        lastResponseAt = Date.now()
        resolve({ status: res.statusCode, connection: res.headers.connection ?? '-', retryAfter: res.headers['retry-after'], reused: req.reusedSocket, body: text, at: lastResponseAt })
      })
      res.on('error', (err) => resolve({ error: err.code ?? err.message, reused: req.reusedSocket, at: Date.now() }))
    })
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })))
    req.on('error', (err) => resolve({ error: err.code ?? err.message, reused: req.reusedSocket, at: Date.now() }))
    req.end(payload)
  })
}

const stats = { sent: 0, ok: 0, s503: 0, other: 0, errors: {}, health: 0 }
let sigtermAt = null
let stopTraffic = false
let orderCount = 0
const firsts = new Set()
const first = (key, text, at) => { if (!firsts.has(key)) { firsts.add(key); note(text, at) } }
const first503 = (text, at) => first('503', text, at)

function record (r) {
  if (r.error) {
    stats.errors[r.error] = (stats.errors[r.error] ?? 0) + 1
    if (r.error === 'ECONNREFUSED') {
      first('refused', 'first ECONNREFUSED on a new connection: traffic stops', r.at)
      stopTraffic = true
    } else {
      first(`error ${r.error}`, `first ${r.error} (${r.reused ? 'kept-alive' : 'new'} socket)`, r.at)
    }
    return
  }
  if (r.status >= 200 && r.status < 300) stats.ok++
  else if (r.status === 503) stats.s503++
  else stats.other++
  if (sigtermAt === null) return
  if (r.status < 300 && r.connection === 'close') first('2xx close', 'first 2xx with Connection: close (pre-stop still serves)', r.at)
  if (r.status === 503 && r.reused) first503(`first 503 on a kept-alive socket (Connection: ${r.connection}, Retry-After: ${r.retryAfter})`, r.at)
  if (r.status === 503 && !r.reused) first('503 new', 'first 503 on a new connection (accepted just before the listener closed)', r.at)
}

const trafficOn = () => !stopTraffic && exit === null && stats.sent < MAX_REQUESTS

async function clientLoop (n) {
  for (let i = 0; trafficOn(); i++) {
    stats.sent++
    const r = (i + n) % 4 === 0 || orderCount === 0
      ? await send('POST', '/orders', { item: `widget-${n}`, quantity: 1 + (i % 5) })
      : await send('GET', `/orders/${1 + ((i * 7 + n) % orderCount)}`)
    if (r.status === 201) orderCount++
    record(r)
    await sleep(PACE_MS)
  }
}

async function healthProbe () {
  while (trafficOn()) {
    const r = await send('GET', '/health')
    stats.health++
    if (r.status === 503) first('health', `/health answers 503 ${r.body} (readiness fails at once)`, r.at)
    if (r.error === 'ECONNREFUSED') return
    await sleep(HEALTH_EVERY_MS)
  }
}

/**
 * A slow request in a trace of its own: the demo sends W3C `traceparent` with a trace id it knows, the
 * server's spans for the request join that trace, and the summary looks for them among what was exported.
 */
async function slowRequest (ms) {
  const traceId = randomBytes(16).toString('hex')
  const r = await send('GET', `/reports/slow?ms=${ms}`, undefined, { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` })
  const outcome = r.error ? `failed: ${r.error}` : `${r.status}, Connection: ${r.connection}`
  note(`slow ${ms} ms request -> ${outcome}`, r.at)
  return { ...r, ms, traceId }
}

/**
 * A slow client on a kept-alive connection: one full request before the SIGTERM, then the next one's headers
 * in two halves, the second only once the listener has closed. Node's server.close() spares the connection
 * (a request is under way on it) and the plugin's request gate answers that request. An http.Agent never gets there: it
 * sends a request in one write, and pre-stop's `Connection: close` and server.close() end its sockets first.
 */
async function openSlowClient () {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  let buffered = ''
  socket.setEncoding('utf8').on('data', (chunk) => { buffered += chunk })
  const request = 'GET /orders/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n'

  async function response () {
    const deadline = Date.now() + REQUEST_TIMEOUT_MS
    while (Date.now() < deadline) {
      const end = buffered.indexOf('\r\n\r\n')
      const head = end === -1 ? [] : buffered.slice(0, end).split('\r\n')
      const headers = Object.fromEntries(head.slice(1).map((line) => line.split(/:\s*/, 2)).map(([k, v]) => [k.toLowerCase(), v]))
      const length = Number(headers['content-length'] ?? 0)
      if (end !== -1 && buffered.length >= end + 4 + length) {
        buffered = buffered.slice(end + 4 + length)
        lastResponseAt = Date.now()
        return { status: Number(head[0].split(' ')[1]), connection: headers.connection ?? '-', retryAfter: headers['retry-after'], at: lastResponseAt }
      }
      if (socket.destroyed) break // closed without (the rest of) a response
      await sleep(2)
    }
    return { error: socket.destroyed ? 'ECONNRESET' : 'ETIMEDOUT', at: Date.now() }
  }

  socket.write(request + '\r\n')
  const warmup = await response()
  if (warmup.status !== 200 || warmup.connection === 'close') note(`slow client's first request -> ${warmup.status ?? warmup.error}`)

  return async function lateRequest () {
    await sleep(PRE_STOP_DELAY_MS / 2) // pre-stop: start the next request, slowly
    socket.write(request)
    await listenerClosedSeen
    await sleep(10)
    socket.write('\r\n')
    const late = await response()
    socket.destroy()
    if (late.status === 503) {
      first503(`slow client's next request on its kept-alive socket -> 503, Connection: ${late.connection}, Retry-After: ${late.retryAfter}`, late.at)
    } else note(`slow client's late request on a kept-alive socket -> ${late.status ?? late.error}`, late.at)
  }
}

function waitForSlowArrivals (count, ms) {
  return new Promise((resolve) => {
    const check = () => {
      if (slowArrivals.length < count && exit === null) return
      onSlowArrival.delete(check)
      clearTimeout(timer)
      resolve(true)
    }
    const timer = setTimeout(() => { onSlowArrival.delete(check); resolve(false) }, ms)
    onSlowArrival.add(check)
    check()
  })
}

function fmt (ms) {
  return String(Math.round(ms)).padStart(6)
}

async function main () {
  const ready = await Promise.race([
    new Promise((resolve) => child.on('message', (m) => { if (m?.type === 'ready') resolve(m) })),
    exited.then(() => null)
  ])
  if (ready === null) return finish()
  port = ready.port
  console.log(`fastify-shutdown demo: server pid ${child.pid} on 127.0.0.1:${port}, PRE_STOP_DELAY_MS=${PRE_STOP_DELAY_MS}`)
  console.log(`traffic: ${CLIENTS} request loops and a /health probe on one keep-alive agent, slow requests of ${SLOW_MS.join(', ')} ms`)
  console.log(`telemetry: OTLP/HTTP JSON to the demo's receiver at ${otlpEndpoint}`)

  note('traffic started')
  const traffic = [...Array.from({ length: CLIENTS }, (_, n) => clientLoop(n)), healthProbe()]
  await sleep(WARMUP_MS)

  const lateRequest = await openSlowClient()
  note(`slow requests started (${SLOW_MS.join(', ')} ms)`)
  const slow = SLOW_MS.map(slowRequest)
  // Only once the server has them in hand: a request still on the wire would meet a closed listener.
  if (!await waitForSlowArrivals(SLOW_MS.length, 2000)) note('slow requests did not all arrive within 2 s')

  sigtermAt = Date.now()
  child.kill('SIGTERM')
  note('SIGTERM sent', sigtermAt, RANK.signal)

  const late = lateRequest()
  const slowResults = await Promise.all(slow)
  await Promise.all([...traffic, late])
  await exited
  return finish(slowResults)
}

/** Counts of what some exports carried, e.g. `512 spans, 25 data points`. */
function describeExports (list) {
  const spans = list.reduce((n, e) => n + e.spans.length, 0)
  const dataPoints = list.reduce((n, e) => n + e.dataPoints, 0)
  const logs = list.reduce((n, e) => n + e.logRecords, 0)
  return [[spans, 'spans'], [dataPoints, 'data points'], [logs, 'log records']].filter(([n]) => n > 0).map(([n, what]) => `${n} ${what}`).join(', ')
}

const isShutdownSpan = (span) => span.scope === 'fastify-shutdown' && span.name === 'fastify-shutdown'

/**
 * What the receiver got after the SIGTERM, into the timeline: one line per flush or batch (exports that
 * arrived together). The one with the plugin's own span is the final flush, the SDK's shutdown().
 */
function noteExports (after) {
  const groups = []
  for (const received of exportsReceived.filter((e) => e.at >= after).sort((a, b) => a.at - b.at)) {
    const group = groups.at(-1)
    if (group !== undefined && received.at - group.at(-1).at <= EXPORT_GAP_MS) group.push(received)
    else groups.push([received])
  }
  for (const group of groups) {
    const flush = group.some((e) => e.spans.some(isShutdownSpan))
    const posts = group.length === 1 ? `POST ${group[0].path}` : `${group.length} POSTs`
    note(`telemetry ${flush ? 'final flush' : 'batch'} received: ${describeExports(group)} (${posts})`, group[0].at)
  }
}

/** The slow requests whose trace lacks the HTTP server span or @fastify/otel's request span. */
function slowWithoutSpans (slowResults) {
  const spans = exportsReceived.flatMap((e) => e.spans)
  return slowResults.filter(({ traceId }) => {
    const trace = spans.filter((span) => span.traceId === traceId)
    const server = trace.some((span) => span.scope === '@opentelemetry/instrumentation-http' && span.kind === 2)
    const request = trace.some((span) => span.scope === '@fastify/otel' && span.name === 'request')
    return !(server && request)
  })
}

let finished = false
function finish (slowResults = []) {
  if (finished) return
  finished = true
  clearTimeout(hardBound)
  clearTimeout(backstop)
  agent.destroy()
  receiver.close()
  receiver.closeAllConnections()
  if (sigtermAt !== null) noteExports(sigtermAt)
  const zero = sigtermAt ?? startedAt
  console.log('')
  console.log(`    ms  event (ms from ${sigtermAt === null ? 'demo start' : 'SIGTERM'})`)
  for (const { at, text } of events.sort((a, b) => a.at - b.at || a.rank - b.rank)) console.log(`${fmt(at - zero)}  ${text}`)

  const slowOk = slowResults.filter((r) => r.status === 200).length
  const errors = Object.entries(stats.errors).map(([code, n]) => `${n} ${code}`).join(', ') || '0'
  const afterSigterm = sigtermAt === null ? [] : exportsReceived.filter((e) => e.at >= sigtermAt)
  const spansAfter = afterSigterm.flatMap((e) => e.spans)
  const shutdownSpans = spansAfter.filter((span) => span.scope === 'fastify-shutdown').length
  const shutdownSpanSeen = exportsReceived.some((e) => e.spans.some(isShutdownSpan))
  const slowMissing = slowWithoutSpans(slowResults)
  const telemetry = report?.telemetry
  const failures = [
    timedOut && 'the demo timed out',
    exit?.code !== 0 && (exit === null ? 'the server did not exit' : `the server ${exit.signal ? `was killed by ${exit.signal}` : `exited with ${exit.code}`}`),
    slowOk !== SLOW_MS.length && `${SLOW_MS.length - slowOk} slow requests did not get a 200`,
    slowResults.length > 0 && slowMissing.length > 0 && `no spans for the slow ${slowMissing.map((r) => r.ms).join(', ')} ms requests`,
    !shutdownSpanSeen && 'no fastify-shutdown span',
    telemetry?.confirmed !== true && 'the telemetry flush was not confirmed',
    receiverErrors.length > 0 && `receiver: ${receiverErrors.slice(0, 3).join('; ')}`
  ].filter(Boolean)
  const passed = failures.length === 0
  console.log('')
  console.log('summary')
  console.log(`  requests sent        ${stats.sent} (2xx ${stats.ok}, 503 ${stats.s503}, other ${stats.other}, connection errors: ${errors}), plus ${stats.health} health checks`)
  if (!firsts.has('503')) console.log('  503 on kept-alive    none seen')
  console.log(`  slow requests        ${slowOk}/${SLOW_MS.length} completed with 200`)
  if (report) {
    console.log(`  server report        outcome ${report.outcome}, completedRequests ${report.completedRequests}, rejectedRequests ${report.rejectedRequests}, openRequests ${report.openRequests.length}, durationMs ${report.durationMs}`)
    console.log(`  shutdown tasks       ${(report.tasks ?? []).map((task) => `${task.name}: ${task.outcome} (${task.durationMs} ms)`).join('; ') || 'none'}`)
  }
  console.log(`  telemetry exported   after SIGTERM: ${spansAfter.length} spans (${spansAfter.length - shutdownSpans} of requests, ${shutdownSpans} fastify-shutdown*), ` +
    `${afterSigterm.reduce((n, e) => n + e.dataPoints, 0)} metric data points, ${afterSigterm.reduce((n, e) => n + e.logRecords, 0)} log records`)
  console.log(`  telemetry checks     slow requests' spans ${slowResults.length - slowMissing.length}/${SLOW_MS.length}, fastify-shutdown span ${shutdownSpanSeen ? 'yes' : 'no'}, ` +
    `report: confirmed ${telemetry?.confirmed ?? 'none'}, telemetryMs ${report?.phases?.telemetryMs ?? 'none'}`)
  const exitText = exit === null ? 'none' : exit.signal ?? String(exit.code)
  const gap = exit && lastResponseAt ? `, ${exit.at - lastResponseAt} ms after the last response` : ''
  console.log(`  exit code            ${exitText}${gap}`)
  if (!passed && stderr.trim()) console.log(`  server stderr        ${stderr.trim().split('\n').slice(0, 5).join('\n                       ')}`)
  console.log(passed ? 'PASS: the server drained every slow request, exported their spans and its own, and exited 0' : `FAIL: ${failures.join('; ')}`)
  process.exitCode = passed ? 0 : 1
}

main().catch((err) => {
  console.error('demo failed:', err)
  clearTimeout(hardBound)
  child.kill('SIGKILL')
  receiver.close()
  receiver.closeAllConnections()
})
