import type { Test } from 'tap'
import type { Child, Exit } from './child'
import { get, keepAliveAgent, slowBody, type Response } from './http'

/**
 * A handler stuck on `/stuck/<id>`, a first signal, and a second one once the listener has closed: the
 * force path. Resolves when the child has exited, with when the second signal was sent.
 */
export async function secondSignalWhileStuck (
  t: Test,
  child: Child,
  id: string,
  [first, second]: [NodeJS.Signals, NodeJS.Signals] = ['SIGTERM', 'SIGTERM'],
  notBeforeMs = 0
): Promise<{ secondAt: number, exit: Exit }> {
  const stuck = get(keepAliveAgent(t), child.port, `/stuck/${id}`)
  await child.message((m) => m.type === 'handling' && m.id === id, `the handler of /stuck/${id}`)
  child.signal(first)
  await child.log('listener closed, draining')
  // A deliberate second signal comes later than a duplicate delivery: past the plugin's window, if asked.
  // The child noted the first signal before it logged that line, so from here it sees the whole wait.
  if (notBeforeMs > 0) await new Promise((resolve) => setTimeout(resolve, notBeforeMs))
  const secondAt = child.signal(second)
  await t.rejects(stuck.response, { code: 'ECONNRESET' }, 'the stuck request is cut off')
  return { secondAt, exit: await child.exited() }
}

/**
 * A request to `/slow/<id>` in flight when `begin` starts the shutdown (SIGTERM unless told otherwise),
 * released once the listener has closed: it must complete whole, with `Connection: close`.
 */
export async function slowRequestThroughDrain (
  t: Test,
  child: Child,
  id: string,
  begin: () => void = () => { child.signal('SIGTERM') }
): Promise<Response> {
  const slow = get(keepAliveAgent(t), child.port, `/slow/${id}`)
  await child.message((m) => m.type === 'handling' && m.id === id, `the handler of /slow/${id}`)
  begin()
  await child.log('listener closed, draining')
  child.send({ type: 'release', id })
  const response = await slow.response
  t.equal(response.status, 200)
  t.equal(response.headers.connection, 'close')
  t.equal(response.body, slowBody(id), 'the whole body')
  return response
}
