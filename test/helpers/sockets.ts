import type { Test } from 'tap'
import type { Child } from './child'
import { get, keepAliveAgent, type Response } from './http'

/**
 * A client holding three keep-alive sockets on the fixture: one idle, one busy with `/slow/1` (waiting for
 * its release), one busy with `/stream/2` whose headers already went out, so they cannot say `close`.
 */
export async function holdIdleAndBusySockets (t: Test, child: Child): Promise<{
  idleSocket: import('node:net').Socket
  /** Lets both busy requests finish; resolves with their responses, busy first. */
  release (): Promise<[Response, Response]>
}> {
  const agent = keepAliveAgent(t)
  // Sent together, so each gets its own socket; /fast leaves its socket idle in the agent.
  const idle = get(agent, child.port, '/fast')
  const busy = get(agent, child.port, '/slow/1')
  const streaming = get(agent, child.port, '/stream/2')
  const idleSocket = (await idle.response).socket
  await child.message((m) => m.type === 'handling' && m.id === '1', 'the handler of /slow/1')
  await streaming.headers
  t.equal(Object.values(agent.freeSockets).flat().length, 1, 'the client keeps one idle socket open')
  t.equal(Object.values(agent.sockets).flat().length, 2, 'and two busy ones')
  return {
    idleSocket,
    release () {
      child.send({ type: 'release', id: '1' })
      child.send({ type: 'release', id: '2' })
      return Promise.all([busy.response, streaming.response])
    }
  }
}
