// An OTLP/HTTP trace receiver on loopback that counts what arrives, by span name: enough for the force
// benchmark, which asks only how many of the queued spans made it out. JSON payloads only (the benchmark's
// exporter is @opentelemetry/exporter-trace-otlp-http); test/helpers/otel/receiver.ts decodes everything.
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import { gunzipSync } from 'node:zlib'
import { bounded } from './lib-child.mjs'

export class OtlpReceiver {
  /** Spans received, by name. */
  spans = new Map()
  requests = 0
  errors = []
  lastArrivalAt = null
  #inProgress = 0
  #idle = []

  static async start () {
    const receiver = new OtlpReceiver()
    await new Promise((resolve, reject) => {
      receiver.server.once('error', reject)
      receiver.server.listen(0, '127.0.0.1', resolve)
    })
    return receiver
  }

  constructor () {
    this.server = http.createServer((req, res) => this.#receive(req, res))
  }

  get url () {
    return `http://127.0.0.1:${this.server.address().port}/v1/traces`
  }

  count (name) {
    return this.spans.get(name) ?? 0
  }

  get total () {
    let total = 0
    for (const n of this.spans.values()) total += n
    return total
  }

  /** Resolves once no export is being read: what is counted then is all that arrived. */
  settled () {
    if (this.#inProgress === 0) return Promise.resolve()
    return bounded(new Promise((resolve) => this.#idle.push(resolve)), 'the receiver to finish reading the exports under way')
  }

  async close () {
    this.server.closeAllConnections()
    await new Promise((resolve) => this.server.close(resolve))
  }

  #receive (req, res) {
    this.#inProgress++
    const chunks = []
    req.on('data', (chunk) => chunks.push(chunk))
    req.on('end', () => {
      this.#count(req, Buffer.concat(chunks))
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
    // Also when the sender exits mid-export: that request never ends, and counts as nothing.
    req.on('close', () => {
      if (--this.#inProgress === 0) for (const resolve of this.#idle.splice(0)) resolve()
    })
  }

  #count (req, body) {
    try {
      if (!String(req.headers['content-type']).startsWith('application/json')) throw new Error(`not JSON: ${req.headers['content-type']}`)
      const payload = JSON.parse((req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body).toString('utf8'))
      for (const { scopeSpans = [] } of payload.resourceSpans ?? []) {
        for (const { spans = [] } of scopeSpans) {
          for (const { name } of spans) this.spans.set(name, (this.spans.get(name) ?? 0) + 1)
        }
      }
      this.requests++
      this.lastArrivalAt = performance.now()
    } catch (err) {
      this.errors.push(err.message)
    }
  }
}
