import { Writable } from 'node:stream'

/** A logger destination that keeps every line, parsed: give `stream` to Fastify's `logger` option. */
export function logCapture (): { stream: Writable, lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      lines.push(JSON.parse(chunk.toString()))
      callback()
    }
  })
  return { stream, lines }
}
