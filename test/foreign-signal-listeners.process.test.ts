import { test } from 'tap'
import { startFixture } from './helpers/child'

test('a SIGTERM listener installed after listen, as fastify-cli does, is named in a warning when the signal arrives', async (t) => {
  const child = await startFixture(t, 'app', { foreignSignalListener: true })
  child.signal('SIGTERM')
  const warning = await child.log('another SIGTERM listener is installed and may end the process before the drain finishes; see "Other signal handlers" in the fastify-shutdown README')
  t.match(warning, { level: 40, signal: 'SIGTERM' })
  // Children of the test runner carry its own anonymous listener too; the one that matters must be named.
  t.ok((warning.listeners as string[]).includes('fastifyCliCloseWithGrace'), `named: ${JSON.stringify(warning.listeners)}`)
  t.equal((await child.exited()).code, 0, 'the drain itself goes on')
})
