import diagnostics = require('node:diagnostics_channel')
import type { Http2ServerResponse } from 'node:http2'
import type { FastifyReply } from 'fastify'
import type { RequestNotes } from './connections'
import { kNotedReply } from './symbols'

/** Fastify publishes here as each request's handler starts, with its request and reply, while subscribed. */
const HANDLER_START = 'tracing:fastify.request.handler:start'

/**
 * Notes each request's Fastify reply on its raw response (its stream with HTTP/2) as its handler starts, for
 * the force path to end the spans of requests still open: @fastify/otel keeps its request span where only
 * the Fastify request reaches it (`request.opentelemetry()`). Only with `telemetry` configured and
 * @fastify/otel registered: the subscription costs every request Fastify's channel publish
 * (docs/benchmarks.md), next to which @fastify/otel's own spans cost many times more.
 */
export class HandlerNotes {
  private subscribed = false

  constructor (
    /** Called with what this code throws inside Fastify's publish, which it never lets escape. */
    private readonly failed: (err: unknown, during: string) => void
  ) {}

  subscribe (): void {
    if (this.subscribed) return
    this.subscribed = true
    diagnostics.subscribe(HANDLER_START, this.note)
  }

  unsubscribe (): void {
    if (!this.subscribed) return
    this.subscribed = false
    diagnostics.unsubscribe(HANDLER_START, this.note)
  }

  private readonly note = (message: unknown): void => {
    try {
      const reply = (message as { reply: FastifyReply }).reply
      const raw = reply.raw as RequestNotes & { stream?: Http2ServerResponse['stream'] }
      const notes: RequestNotes = (raw.stream as RequestNotes | undefined) ?? raw
      notes[kNotedReply] = reply
    } catch (err) {
      this.failed(err, 'noting a request as its handler started')
    }
  }
}
