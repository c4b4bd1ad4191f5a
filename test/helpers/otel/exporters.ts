import { ExportResultCode, type ExportResult } from '@opentelemetry/core'
import { OTLPLogExporter as JsonLogExporter } from '@opentelemetry/exporter-logs-otlp-http'
import { OTLPLogExporter as ProtobufLogExporter } from '@opentelemetry/exporter-logs-otlp-proto'
import { OTLPMetricExporter as JsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http'
import { OTLPMetricExporter as ProtobufMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto'
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { OTLPTraceExporter as ProtobufTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs'
import type { PushMetricExporter, ResourceMetrics } from '@opentelemetry/sdk-metrics'
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { performance } from 'node:perf_hooks'
import type { Encoding, OtlpReceiver } from './receiver'

export interface Exporters {
  readonly traces: JsonTraceExporter | ProtobufTraceExporter
  readonly metrics: PushMetricExporter
  readonly logs: JsonLogExporter | ProtobufLogExporter
}

/**
 * The real OTLP/HTTP exporters of one encoding (`json`: the -otlp-http packages, `protobuf`: -otlp-proto),
 * pointed at a receiver. `timeoutMillis` is the exporter's own bound on one export, retries included
 * (the SDK's default is 10 000).
 */
export function exportersFor (receiver: OtlpReceiver, encoding: Encoding, timeoutMillis?: number): Exporters {
  const config = (signal: 'traces' | 'metrics' | 'logs') => ({ url: receiver.endpoint(signal), ...(timeoutMillis === undefined ? {} : { timeoutMillis }) })
  return encoding === 'json'
    ? { traces: new JsonTraceExporter(config('traces')), metrics: new JsonMetricExporter(config('metrics')), logs: new JsonLogExporter(config('logs')) }
    : { traces: new ProtobufTraceExporter(config('traces')), metrics: new ProtobufMetricExporter(config('metrics')), logs: new ProtobufLogExporter(config('logs')) }
}

export interface Outcome {
  readonly result: ExportResult
  readonly succeeded: boolean
  /** From the call to the result. */
  readonly ms: number
}

type Exportable =
  | { export (items: ReadableSpan[], done: (result: ExportResult) => void): void }
  | { export (items: ResourceMetrics, done: (result: ExportResult) => void): void }
  | { export (items: ReadableLogRecord[], done: (result: ExportResult) => void): void }

/** One `export()` call, as a promise of its result and how long it took. */
export function exportOnce<E extends Exportable> (exporter: E, items: Parameters<E['export']>[0]): Promise<Outcome> {
  const start = performance.now()
  return new Promise((resolve) => {
    (exporter.export as (items: unknown, done: (result: ExportResult) => void) => void)(items, (result) => {
      resolve({ result, succeeded: result.code === ExportResultCode.SUCCESS, ms: performance.now() - start })
    })
  })
}
