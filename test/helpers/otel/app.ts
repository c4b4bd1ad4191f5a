import type http from 'node:http'
import { startFixture, type Child, type ReportLine } from '../child'
import { get, type PendingRequest } from '../http'
import type { Encoding, OtlpReceiver, ReceivedDataPoint, ReceivedSpan } from './receiver'

export type Instrumentation = '@fastify/otel' | '@opentelemetry/instrumentation-fastify'
export const INSTRUMENTATIONS: readonly Instrumentation[] = ['@fastify/otel', '@opentelemetry/instrumentation-fastify']

interface Teardown {
  teardown (fn: () => void | Promise<void>): void
}

export interface OtelAppOptions {
  readonly protocol: Encoding
  readonly instrumentation?: Instrumentation
  /** The exporters' own bound on one export (`timeoutMillis`); the SDK's default, 10 s, otherwise. */
  readonly exporterTimeout?: number
  /** Pass the started NodeSDK to the plugin as `telemetry`. */
  readonly telemetry?: boolean
  /** Without the `telemetry` option: the plugin's `exit` shuts the SDK down, then exits. */
  readonly flushOnExit?: boolean
  /** The plugin's options. */
  readonly shutdown?: Record<string, unknown>
}

/** Forks test/fixtures/otel-app.js exporting to `receiver`; see startFixture. */
export function startOtelApp (t: Teardown, receiver: OtlpReceiver, options: OtelAppOptions): Promise<Child> {
  const { protocol, instrumentation = '@fastify/otel', exporterTimeout, ...rest } = options
  return startFixture(t, 'otel-app', { otel: { url: receiver.url, protocol, instrumentation, exporterTimeout }, ...rest })
}

/** The report line with what the `telemetry` option adds to it. */
export interface TelemetryReportLine extends ReportLine {
  readonly durationMs: number
  readonly phases: ReportLine['phases'] & { telemetryMs?: number }
  readonly telemetry?: {
    readonly confirmed: boolean
    readonly targets: number
    readonly failed: string[]
    readonly timedOut: boolean
    readonly cutSpans: number
  }
}

export async function telemetryReport (child: Child): Promise<TelemetryReportLine> {
  return await child.report() as TelemetryReportLine
}

/** The server span instrumentation-http starts for each request: the root of the request's trace. */
export function serverSpan (receiver: OtlpReceiver, path: string): ReceivedSpan | undefined {
  return receiver.spans.find((span) =>
    span.scope === '@opentelemetry/instrumentation-http' && span.kind === 2 && span.attributes['url.path'] === path)
}

const HANDLER_TYPE: Record<Instrumentation, string> = {
  '@fastify/otel': 'request-handler',
  '@opentelemetry/instrumentation-fastify': 'request_handler'
}

/** The framework instrumentation's span around the route handler, in the trace of `server`. */
export function handlerSpan (receiver: OtlpReceiver, instrumentation: Instrumentation, server: ReceivedSpan): ReceivedSpan | undefined {
  return receiver.spans.find((span) =>
    span.traceId === server.traceId && span.scope === instrumentation && span.attributes['fastify.type'] === HANDLER_TYPE[instrumentation])
}

/** Data points of a metric whose attributes include `attributes`, the newest first (cumulative: the total). */
export function points (receiver: OtlpReceiver, metric: string, attributes: Record<string, unknown> = {}): ReceivedDataPoint[] {
  return receiver.metric(metric)
    .filter((point) => Object.entries(attributes).every(([key, value]) => point.attributes[key] === value))
    .sort((a, b) => (BigInt(b.timeUnixNano) > BigInt(a.timeUnixNano) ? 1 : -1))
}

/** Log records whose body is `message`. */
export function logRecords (receiver: OtlpReceiver, message: string): OtlpReceiver['logs'] {
  return receiver.logs.filter((record) => record.body === message)
}

export interface HeldRequests {
  readonly ids: string[]
  readonly requests: PendingRequest[]
  /** Lets every held handler answer (`{"id": ...}`), those of requests still to come included. */
  release (): void
}

/**
 * Sends `count` requests to the fixture's `/held/:id` (ids `${prefix}0`...), each on its own keep-alive
 * socket, and resolves once every handler is running: they all wait for one release over IPC.
 */
export async function holdRequests (child: Child, agent: http.Agent, count: number, prefix = ''): Promise<HeldRequests> {
  const ids = Array.from({ length: count }, (_, i) => `${prefix}${i}`)
  const requests = ids.map((id) => get(agent, child.port, `/held/${id}`))
  await Promise.all(ids.map((id) => child.message((m) => m.type === 'handling' && m.route === '/held/:id' && m.id === id, `the handler of /held/${id}`)))
  return { ids, requests, release: () => child.send({ type: 'release-held' }) }
}
