import type * as OtelApi from '@opentelemetry/api'
import type * as OtelLogsApi from '@opentelemetry/api-logs'
import type { IncomingMessage } from 'node:http'
import type { FastifyRequest } from 'fastify'
import type { ShutdownReport, ShutdownTrigger } from '../types'

/** Set on the spans of requests that the force path cut off. */
export const CUT_ATTRIBUTE = 'fastify_shutdown.cut'
/** Set on the span of a request the gate answered 503 because the server was shutting down. */
export const REFUSED_ATTRIBUTE = 'fastify_shutdown.refused'
const REFUSED_REASON = 'the server is shutting down'

/**
 * Where instrumentation-http keeps the request's SERVER span in the context (@opentelemetry/core's
 * RPC metadata key; context keys are `Symbol.for` their description, so no dependency on core is needed).
 */
const RPC_METADATA = Symbol.for('OpenTelemetry SDK Context Key RPC_METADATA')

/** An optional peer dependency, when the app has it: the SDK brings both the API and the logs API. */
function optional<T> (name: string): T | null {
  try {
    return require(name) as T
  } catch {
    return null
  }
}

/**
 * Makes a request the gate refused visible in its trace. Inside instrumentation-http's server span (the
 * gate runs in the server's `request` event, which it wraps) that span gets the attributes and an event;
 * without one, a server span of the plugin's own, in the trace the request's headers carry.
 */
export class RejectionTelemetry {
  private readonly tracer: OtelApi.Tracer

  private constructor (private readonly api: typeof OtelApi) {
    this.tracer = api.trace.getTracer('fastify-shutdown')
  }

  /** Null when the OpenTelemetry API is not installed. */
  static create (): RejectionTelemetry | null {
    const api = optional<typeof OtelApi>('@opentelemetry/api')
    return api === null ? null : new RejectionTelemetry(api)
  }

  refused (request: IncomingMessage, path: string, state: string): void {
    const attributes = { [REFUSED_ATTRIBUTE]: true, 'fastify_shutdown.state': state, 'fastify_shutdown.reason': REFUSED_REASON }
    const server = this.api.trace.getActiveSpan()
    if (server?.isRecording() === true) {
      server.setAttributes(attributes)
      server.addEvent('fastify_shutdown.refused', attributes)
      return
    }
    const parent = this.api.propagation.extract(this.api.context.active(), request.headers)
    const span = this.tracer.startSpan('fastify-shutdown refused', {
      kind: this.api.SpanKind.SERVER,
      attributes: {
        'http.request.method': request.method ?? '',
        'url.path': path,
        'http.response.status_code': 503,
        ...attributes
      }
    }, parent)
    span.setStatus({ code: this.api.SpanStatusCode.ERROR, message: `refused: ${REFUSED_REASON}` })
    span.end()
  }
}

/** What a request left for the force path: the context its spans live in, and its Fastify request. */
export interface RequestTelemetry {
  readonly context: OtelApi.Context | undefined
  readonly request: FastifyRequest | undefined
}

/**
 * The shutdown as telemetry: a `fastify-shutdown` span with a child span per phase, and metrics, all
 * recorded before the final flush so they leave with it.
 */
export class ShutdownTelemetry {
  private root: OtelApi.Span | null = null
  private phase: OtelApi.Span | null = null
  private readonly tracer: OtelApi.Tracer
  private readonly inFlight: OtelApi.Gauge
  private readonly rejected: OtelApi.Counter
  private readonly forced: OtelApi.Counter
  private readonly duration: OtelApi.Histogram
  private readonly drainDuration: OtelApi.Histogram

  private constructor (private readonly api: typeof OtelApi, private readonly logsApi: typeof OtelLogsApi | null) {
    this.tracer = api.trace.getTracer('fastify-shutdown')
    const meter = api.metrics.getMeter('fastify-shutdown')
    this.inFlight = meter.createGauge('fastify_shutdown.requests.in_flight', { unit: '{request}', description: 'Requests being handled when a shutdown phase began' })
    this.rejected = meter.createCounter('fastify_shutdown.requests.rejected', { unit: '{request}', description: 'Requests answered 503 because they arrived while draining' })
    this.forced = meter.createCounter('fastify_shutdown.forced', { unit: '{shutdown}', description: 'Shutdowns that ended on the force path' })
    this.duration = meter.createHistogram('fastify_shutdown.duration', { unit: 's', description: 'From the start of a shutdown to its report' })
    this.drainDuration = meter.createHistogram('fastify_shutdown.drain.duration', { unit: 's', description: 'From the listener closing to the last in-flight request finishing' })
  }

  /** Null when the OpenTelemetry API is not installed: then there is nothing to observe with. */
  static create (): ShutdownTelemetry | null {
    const api = optional<typeof OtelApi>('@opentelemetry/api')
    return api === null ? null : new ShutdownTelemetry(api, optional<typeof OtelLogsApi>('@opentelemetry/api-logs'))
  }

  /** The active context, noted per request by the request gate. */
  activeContext (): OtelApi.Context {
    return this.api.context.active()
  }

  started (trigger: ShutdownTrigger, inFlight: number): void {
    this.root = this.tracer.startSpan('fastify-shutdown', {
      root: true,
      attributes: { 'fastify_shutdown.trigger': trigger.type, ...(trigger.type === 'signal' ? { 'fastify_shutdown.signal': trigger.signal } : {}) }
    })
    this.enterPhase('pre-stop', inFlight)
  }

  enterPhase (name: string, inFlight: number): void {
    if (this.root === null) return
    this.phase?.end()
    this.phase = this.tracer.startSpan(`fastify-shutdown ${name}`, {}, this.api.trace.setSpan(this.api.context.active(), this.root))
    this.inFlight.record(inFlight, { 'fastify_shutdown.phase': name })
  }

  /** Ends, as errors marked cut by the shutdown, the spans of requests still open: otherwise they are never exported. */
  cut (open: readonly RequestTelemetry[]): number {
    const spans = new Set<OtelApi.Span>()
    for (const { context, request } of open) {
      const fromContext = context === undefined ? undefined : this.api.trace.getSpan(context)
      const server = (context?.getValue(RPC_METADATA) as { span?: OtelApi.Span } | undefined)?.span
      const fastifyOtel = (request as { opentelemetry?: () => { span?: OtelApi.Span | null } } | undefined)?.opentelemetry?.().span
      for (const span of [fromContext, server, fastifyOtel]) {
        if (span?.isRecording()) spans.add(span)
      }
    }
    for (const span of spans) {
      span.setAttribute(CUT_ATTRIBUTE, true)
      span.setStatus({ code: this.api.SpanStatusCode.ERROR, message: 'cut off by the shutdown\'s force path' })
      span.end()
    }
    return spans.size
  }

  finished (report: Omit<ShutdownReport, 'telemetry' | 'connections' | 'unreadConnections'>): void {
    if (this.root === null) return
    const forced = report.outcome === 'forced'
    this.duration.record(report.durationMs / 1000, { 'fastify_shutdown.outcome': report.outcome })
    if (report.phases.drainMs !== undefined) this.drainDuration.record(report.phases.drainMs / 1000)
    this.rejected.add(report.rejectedRequests)
    if (forced) this.forced.add(1, { 'fastify_shutdown.forced_by': report.forcedBy! })
    this.inFlight.record(report.openRequests.length, { 'fastify_shutdown.phase': 'end' })

    this.phase?.end()
    this.root.setAttributes({
      'fastify_shutdown.outcome': report.outcome,
      'fastify_shutdown.exit_code': report.exitCode,
      'fastify_shutdown.requests.completed': report.completedRequests,
      'fastify_shutdown.requests.rejected': report.rejectedRequests,
      'fastify_shutdown.requests.open': report.openRequests.length,
      ...(forced ? { 'fastify_shutdown.forced_by': report.forcedBy! } : {})
    })
    for (const open of report.openRequests) {
      this.root.addEvent('open request', { 'http.request.method': open.method, 'url.path': open.url, 'http.route': open.route ?? '', 'fastify_shutdown.age_ms': open.ageMs })
    }
    if (forced) this.root.setStatus({ code: this.api.SpanStatusCode.ERROR, message: `forced: ${report.forcedBy}` })
    this.emitReportRecord(report)
    this.root.end()
    this.root = null
  }

  /**
   * The report as a log record, emitted before the final flush so it leaves with it. The pino line comes
   * after the flush (it carries the flush's outcome), too late for any log bridge to export.
   */
  private emitReportRecord (report: Omit<ShutdownReport, 'telemetry' | 'connections' | 'unreadConnections'>): void {
    if (this.logsApi === null || this.root === null) return
    const { trigger, phases, openRequests, errors, ...fields } = report
    this.logsApi.logs.getLogger('fastify-shutdown').emit({
      severityNumber: report.outcome === 'forced' ? this.logsApi.SeverityNumber.WARN : this.logsApi.SeverityNumber.INFO,
      severityText: report.outcome === 'forced' ? 'WARN' : 'INFO',
      body: report.outcome === 'forced' ? 'shutdown forced' : 'shutdown complete',
      context: this.api.trace.setSpan(this.api.context.active(), this.root),
      attributes: {
        ...Object.fromEntries(Object.entries(fields).map(([key, value]) => [`fastify_shutdown.${key}`, value as string | number])),
        'fastify_shutdown.trigger': trigger.type,
        ...Object.fromEntries(Object.entries(phases).map(([key, value]) => [`fastify_shutdown.phases.${key}`, value])),
        'fastify_shutdown.open_requests': openRequests.map((open) => `${open.method} ${open.url} (${open.route ?? 'no route'}, ${open.ageMs} ms)`),
        'fastify_shutdown.errors': [...errors]
      }
    })
  }
}
