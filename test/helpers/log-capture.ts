import { Writable } from 'node:stream'
import { bounded } from './wait'

type Line = Record<string, unknown>

export interface LogCapture {
  readonly stream: Writable
  readonly lines: Line[]
  /** Resolves with the first line (already written or to come) with this message. */
  line (msg: string): Promise<Line>
}

/** A logger destination that keeps every line, parsed: give `stream` to Fastify's `logger` option. */
export function logCapture (): LogCapture {
  const lines: Line[] = []
  const waiters = new Set<() => void>()
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      lines.push(JSON.parse(chunk.toString()))
      for (const waiter of [...waiters]) waiter()
      callback()
    }
  })
  function line (msg: string): Promise<Line> {
    const find = (): Line | undefined => lines.find((candidate) => candidate.msg === msg)
    const found = find()
    if (found !== undefined) return Promise.resolve(found)
    let waiter!: () => void
    const arrived = new Promise<Line>((resolve) => {
      waiter = () => {
        const match = find()
        if (match === undefined) return
        waiters.delete(waiter)
        resolve(match)
      }
      waiters.add(waiter)
    })
    return bounded(arrived, `log line ${JSON.stringify(msg)}`, () => JSON.stringify(lines.slice(-5))).finally(() => waiters.delete(waiter))
  }
  return { stream, lines, line }
}
