import http from 'node:http'
import type net from 'node:net'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { gunzipSync } from 'node:zlib'
import protobuf from 'protobufjs'
import { WAIT_LIMIT_MS } from '../wait'

/**
 * `normal` answers every export 200; `refuse` is a port where nothing listens, so exporters meet
 * ECONNREFUSED; `hang` reads every request and never answers (its sockets are destroyed on close);
 * `unavailable` answers every export 503, which exporters retry.
 */
export type ReceiverMode = 'normal' | 'refuse' | 'hang' | 'unavailable'
export type Signal = 'traces' | 'metrics' | 'logs'
export type Encoding = 'json' | 'protobuf'
export type Attributes = Record<string, unknown>

/** One POST as it arrived; in `hang` mode none is ever answered. */
export interface ReceivedRequest {
  readonly signal: Signal
  readonly encoding: Encoding
  readonly bytes: number
  /** Spans, data points or log records it carried; 0 until decoded, or when it could not be. */
  readonly items: number
  /** performance.now() in this process once the whole body was in. */
  readonly at: number
  readonly answered: boolean
}

interface Received {
  readonly resource: Attributes
  /** The instrumentation scope's name, e.g. `@fastify/otel` or `fastify-shutdown`. */
  readonly scope: string
  readonly encoding: Encoding
  /** When the request that carried it arrived (performance.now() in this process). */
  readonly at: number
}

export interface ReceivedSpan extends Received {
  readonly name: string
  readonly traceId: string
  readonly spanId: string
  /** Undefined for a root span. */
  readonly parentSpanId: string | undefined
  /** 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number
  /** code: 0 unset, 1 ok, 2 error. */
  readonly status: { readonly code: number, readonly message: string }
  readonly attributes: Attributes
  readonly events: readonly { readonly name: string, readonly attributes: Attributes }[]
  readonly startTimeUnixNano: string
  readonly endTimeUnixNano: string
  /** The same times as milliseconds since the epoch, to compare with Date.now() and pino's `time`. */
  readonly startMs: number
  readonly endMs: number
}

export type MetricType = 'sum' | 'gauge' | 'histogram' | 'exponentialHistogram' | 'summary'

export interface ReceivedDataPoint extends Received {
  readonly metric: string
  readonly type: MetricType
  readonly unit: string
  /** Sums and gauges. */
  readonly value?: number
  /** Histograms and summaries. */
  readonly count?: number
  readonly sum?: number
  readonly min?: number
  readonly max?: number
  /** Sums: 1 delta, 2 cumulative. */
  readonly temporality?: number
  readonly monotonic?: boolean
  readonly attributes: Attributes
  readonly timeUnixNano: string
}

export interface ReceivedLog extends Received {
  readonly body: unknown
  readonly severityNumber: number
  readonly severityText: string
  readonly attributes: Attributes
  readonly traceId: string | undefined
  readonly spanId: string | undefined
  readonly timeUnixNano: string
}

interface Teardown {
  teardown (fn: () => void | Promise<void>): void
}

interface Waiter {
  readonly check: () => boolean
  readonly resolve: () => void
}

const SIGNALS: Record<string, Signal> = { '/v1/traces': 'traces', '/v1/metrics': 'metrics', '/v1/logs': 'logs' }
const METRIC_TYPES: readonly MetricType[] = ['sum', 'gauge', 'histogram', 'exponentialHistogram', 'summary']

const root = protobuf.loadSync(path.join(__dirname, 'otlp.proto'))
const REQUEST_TYPES: Record<Signal, protobuf.Type> = {
  traces: root.lookupType('otlp.ExportTraceServiceRequest'),
  metrics: root.lookupType('otlp.ExportMetricsServiceRequest'),
  logs: root.lookupType('otlp.ExportLogsServiceRequest')
}
/** Decoded protobuf in the shape of OTLP/JSON: 64-bit numbers as decimal strings, bytes as buffers. */
const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: Number, defaults: false, arrays: true }

/**
 * A real OTLP/HTTP endpoint on 127.0.0.1: POST /v1/traces, /v1/metrics and /v1/logs with
 * `application/json` or `application/x-protobuf` bodies (gzip too), each decoded and stored as plain
 * records, answered 200 with an empty export response of the same content type. Tests wait on what
 * arrives, never on time.
 */
export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = []
  readonly dataPoints: ReceivedDataPoint[] = []
  readonly logs: ReceivedLog[] = []
  readonly requests: ReceivedRequest[] = []
  /** Requests that could not be decoded, with why; a passing test expects none. */
  readonly errors: string[] = []

  private readonly waiters = new Set<Waiter>()
  private readonly sockets = new Set<net.Socket>()
  private closing: Promise<void> | null = null

  private constructor (readonly mode: ReceiverMode, readonly url: string, private readonly server: http.Server | null) {
    server?.on('connection', (socket) => {
      this.sockets.add(socket)
      socket.once('close', () => this.sockets.delete(socket))
    })
    server?.on('request', (req, res) => this.handle(req, res))
  }

  /** Starts a receiver, closed in teardown whatever happens. */
  static async start (t: Teardown, mode: ReceiverMode = 'normal'): Promise<OtlpReceiver> {
    const server = http.createServer()
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve())
    })
    const { port } = server.address() as net.AddressInfo
    const url = `http://127.0.0.1:${port}`
    if (mode === 'refuse') {
      // The port was free a moment ago and nothing listens on it now: connections to it are refused.
      await new Promise<void>((resolve) => server.close(() => resolve()))
      return new OtlpReceiver(mode, url, null)
    }
    const receiver = new OtlpReceiver(mode, url, server)
    t.teardown(() => receiver.close())
    return receiver
  }

  /** The URL an exporter for `signal` is given, e.g. `http://127.0.0.1:PORT/v1/traces`. */
  endpoint (signal: Signal): string {
    return `${this.url}/v1/${signal}`
  }

  /** Resolves once `check()` holds, at once if it already does; re-checked on every arrival. */
  waitFor (check: () => boolean, describe: string): Promise<void> {
    if (check()) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      // The bound is a deadline for a failure message, never what the test waits for.
      const timer = setTimeout(() => {
        this.waiters.delete(waiter)
        reject(new Error(`timed out after ${WAIT_LIMIT_MS} ms waiting for ${describe}\n${this.describe()}`))
      }, WAIT_LIMIT_MS)
      const waiter: Waiter = {
        check,
        resolve: () => {
          clearTimeout(timer)
          this.waiters.delete(waiter)
          resolve()
        }
      }
      this.waiters.add(waiter)
    })
  }

  /** Spans of one name, or every span that matches. */
  spansWhere (match: string | ((span: ReceivedSpan) => boolean)): ReceivedSpan[] {
    return this.spans.filter(typeof match === 'string' ? (span) => span.name === match : match)
  }

  /** Data points of one metric. */
  metric (name: string): ReceivedDataPoint[] {
    return this.dataPoints.filter((point) => point.metric === name)
  }

  /** For failure messages: what has arrived so far. */
  describe (): string {
    const count = (names: string[]): string => {
      const counts = new Map<string, number>()
      for (const name of names) counts.set(name, (counts.get(name) ?? 0) + 1)
      return [...counts].map(([name, n]) => `${name} ×${n}`).join(', ')
    }
    return [
      `receiver (${this.mode}) at ${this.url}: ${this.requests.length} requests`,
      `spans: ${this.spans.length} (${count(this.spans.map((span) => span.name))})`,
      `data points: ${this.dataPoints.length} (${count(this.dataPoints.map((point) => point.metric))})`,
      `log records: ${this.logs.length}`,
      ...(this.errors.length > 0 ? [`errors: ${this.errors.join('; ')}`] : [])
    ].join('\n')
  }

  /** Stops listening and destroys every connection, answered or held; resolves once the server is closed. */
  close (): Promise<void> {
    const server = this.server
    if (server === null) return Promise.resolve()
    this.closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve())
      for (const socket of this.sockets) socket.destroy()
    })
    return this.closing
  }

  private handle (req: http.IncomingMessage, res: http.ServerResponse): void {
    const signal = SIGNALS[req.url ?? '']
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim()
    const encoding: Encoding | undefined = contentType === 'application/json'
      ? 'json'
      : contentType === 'application/x-protobuf' ? 'protobuf' : undefined
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const at = performance.now()
      const raw = Buffer.concat(chunks)
      if (req.method !== 'POST' || signal === undefined) {
        this.fail(res, 404, `${req.method} ${req.url}: not an OTLP/HTTP endpoint`)
        return
      }
      if (encoding === undefined) {
        this.fail(res, 415, `${req.url}: unsupported content type ${JSON.stringify(req.headers['content-type'])}`)
        return
      }
      const answered = this.mode === 'normal'
      let items = 0
      try {
        const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw
        items = this.store(signal, encoding, body, at)
      } catch (err) {
        this.requests.push({ signal, encoding, bytes: raw.length, items: 0, at, answered })
        this.fail(res, 400, `${req.url} (${encoding}): ${(err as Error).message}`)
        return
      }
      this.requests.push({ signal, encoding, bytes: raw.length, items, at, answered })
      if (answered) {
        // An empty Export*ServiceResponse: `{}` in JSON, zero bytes in protobuf.
        const payload = encoding === 'json' ? '{}' : Buffer.alloc(0)
        res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) })
        res.end(payload)
      } else if (this.mode === 'unavailable') {
        res.writeHead(503, { 'content-type': 'text/plain' })
        res.end('unavailable')
      }
      this.settle()
    })
  }

  private fail (res: http.ServerResponse, status: number, message: string): void {
    this.errors.push(message)
    res.writeHead(status, { 'content-type': 'text/plain' })
    res.end(message)
    this.settle()
  }

  /** Decodes one export request and stores what it carried; returns how many items that was. */
  private store (signal: Signal, encoding: Encoding, body: Buffer, at: number): number {
    const request = encoding === 'json'
      ? JSON.parse(body.toString('utf8')) as Otlp
      : REQUEST_TYPES[signal].toObject(REQUEST_TYPES[signal].decode(body), TO_OBJECT) as Otlp
    const before = signal === 'traces' ? this.spans.length : signal === 'metrics' ? this.dataPoints.length : this.logs.length
    const scoped = { encoding, at }
    switch (signal) {
      case 'traces':
        for (const resourceSpans of list(request.resourceSpans)) {
          const resource = attributes(resourceSpans.resource?.attributes)
          for (const scopeSpans of list(resourceSpans.scopeSpans)) {
            const scope = String(scopeSpans.scope?.name ?? '')
            for (const span of list(scopeSpans.spans)) this.spans.push(toSpan(span, { ...scoped, resource, scope }))
          }
        }
        return this.spans.length - before
      case 'metrics':
        for (const resourceMetrics of list(request.resourceMetrics)) {
          const resource = attributes(resourceMetrics.resource?.attributes)
          for (const scopeMetrics of list(resourceMetrics.scopeMetrics)) {
            const scope = String(scopeMetrics.scope?.name ?? '')
            for (const metric of list(scopeMetrics.metrics)) this.dataPoints.push(...toDataPoints(metric, { ...scoped, resource, scope }))
          }
        }
        return this.dataPoints.length - before
      case 'logs':
        for (const resourceLogs of list(request.resourceLogs)) {
          const resource = attributes(resourceLogs.resource?.attributes)
          for (const scopeLogs of list(resourceLogs.scopeLogs)) {
            const scope = String(scopeLogs.scope?.name ?? '')
            for (const record of list(scopeLogs.logRecords)) this.logs.push(toLog(record, { ...scoped, resource, scope }))
          }
        }
        return this.logs.length - before
    }
  }

  private settle (): void {
    for (const waiter of [...this.waiters]) {
      if (waiter.check()) waiter.resolve()
    }
  }
}

/** A decoded OTLP message: OTLP/JSON's field names, whichever encoding it came in. */
type Otlp = { readonly [field: string]: any }

function list (value: unknown): Otlp[] {
  return Array.isArray(value) ? value : []
}

/** Trace and span ids: hex in OTLP/JSON, bytes in protobuf; hex here, undefined when empty. */
function id (value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined
  const hex = typeof value === 'string' ? value : Buffer.from(value as Uint8Array).toString('hex')
  return hex === '' ? undefined : hex
}

/** fixed64 nanoseconds: a decimal string (or a number) in JSON, a decimal string from protobuf here. */
function nanos (value: unknown): string {
  return value === undefined || value === null ? '0' : String(value)
}

function millis (unixNano: string): number {
  return Number(BigInt(unixNano) / 1000n) / 1000
}

function number (value: unknown): number | undefined {
  return value === undefined || value === null ? undefined : Number(value)
}

function anyValue (value: Otlp | undefined): unknown {
  if (value === undefined || value === null) return undefined
  if ('stringValue' in value) return value.stringValue
  if ('boolValue' in value) return value.boolValue
  if ('intValue' in value) return Number(value.intValue)
  if ('doubleValue' in value) return Number(value.doubleValue)
  if ('arrayValue' in value) return list(value.arrayValue?.values).map(anyValue)
  if ('kvlistValue' in value) return attributes(value.kvlistValue?.values)
  if ('bytesValue' in value) {
    return typeof value.bytesValue === 'string' ? value.bytesValue : Buffer.from(value.bytesValue as Uint8Array).toString('base64')
  }
  return undefined
}

function attributes (keyValues: unknown): Attributes {
  const result: Attributes = {}
  for (const { key, value } of list(keyValues)) result[key as string] = anyValue(value)
  return result
}

function toSpan (span: Otlp, received: Received): ReceivedSpan {
  const startTimeUnixNano = nanos(span.startTimeUnixNano)
  const endTimeUnixNano = nanos(span.endTimeUnixNano)
  return {
    ...received,
    name: String(span.name ?? ''),
    traceId: id(span.traceId) ?? '',
    spanId: id(span.spanId) ?? '',
    parentSpanId: id(span.parentSpanId),
    kind: Number(span.kind ?? 0),
    status: { code: Number(span.status?.code ?? 0), message: String(span.status?.message ?? '') },
    attributes: attributes(span.attributes),
    events: list(span.events).map((event) => ({ name: String(event.name ?? ''), attributes: attributes(event.attributes) })),
    startTimeUnixNano,
    endTimeUnixNano,
    startMs: millis(startTimeUnixNano),
    endMs: millis(endTimeUnixNano)
  }
}

function toDataPoints (metric: Otlp, received: Received): ReceivedDataPoint[] {
  const type = METRIC_TYPES.find((candidate) => metric[candidate] !== undefined && metric[candidate] !== null)
  if (type === undefined) return []
  const data = metric[type] as Otlp
  return list(data.dataPoints).map((point) => {
    const common = {
      ...received,
      metric: String(metric.name),
      type,
      unit: String(metric.unit ?? ''),
      attributes: attributes(point.attributes),
      timeUnixNano: nanos(point.timeUnixNano)
    }
    if (type === 'sum' || type === 'gauge') {
      return {
        ...common,
        value: Number(point.asInt ?? point.asDouble ?? 0),
        ...(type === 'sum' ? { temporality: Number(data.aggregationTemporality ?? 0), monotonic: Boolean(data.isMonotonic) } : {})
      }
    }
    return {
      ...common,
      count: Number(point.count ?? 0),
      sum: number(point.sum),
      min: number(point.min),
      max: number(point.max),
      temporality: number(data.aggregationTemporality)
    }
  })
}

function toLog (record: Otlp, received: Received): ReceivedLog {
  return {
    ...received,
    body: anyValue(record.body),
    severityNumber: Number(record.severityNumber ?? 0),
    severityText: String(record.severityText ?? ''),
    attributes: attributes(record.attributes),
    traceId: id(record.traceId),
    spanId: id(record.spanId),
    timeUnixNano: nanos(record.timeUnixNano)
  }
}
