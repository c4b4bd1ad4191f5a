// Fixture for test/package.test.ts, copied into a fresh project that installed the packed tarball: loads
// the package the ES module way (default and named imports of the CommonJS build), runs a shutdown, and
// prints what it saw as one JSON line on stdout.
import Fastify from 'fastify'
import fastifyShutdown, { fastifyShutdown as named, STATE } from 'fastify-shutdown'

const app = Fastify()
await app.register(fastifyShutdown, { handleSignals: false, exit: false })
const report = await app.shutdown.start('test')

process.stdout.write(JSON.stringify({
  type: typeof fastifyShutdown,
  namedType: typeof named,
  namedIsSame: named === fastifyShutdown,
  defaultIsSame: fastifyShutdown.default === fastifyShutdown,
  stateIsSame: STATE === fastifyShutdown.STATE,
  draining: STATE.DRAINING,
  states: STATE,
  entry: import.meta.resolve('fastify-shutdown'),
  outcome: report.outcome,
  trigger: report.trigger,
  state: app.shutdown.state
}) + '\n')
