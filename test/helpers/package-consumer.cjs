'use strict'
// Fixture for test/package.test.ts, copied into a fresh project that installed the packed tarball: loads
// the package the CommonJS way, runs a shutdown, and prints what it saw as one JSON line on stdout.
const Fastify = require('fastify')
const fastifyShutdown = require('fastify-shutdown')

async function main () {
  const app = Fastify()
  await app.register(fastifyShutdown, { handleSignals: false, exit: false })
  const report = await app.shutdown.start('test')
  return {
    type: typeof fastifyShutdown,
    defaultIsSame: fastifyShutdown.default === fastifyShutdown,
    namedIsSame: fastifyShutdown.fastifyShutdown === fastifyShutdown,
    draining: fastifyShutdown.STATE.DRAINING,
    states: fastifyShutdown.STATE,
    entry: require.resolve('fastify-shutdown'),
    dependencies: ['fastify-plugin', 'close-with-grace', '@fastify/error'].map((name) =>
      require.resolve(name, { paths: [require.resolve('fastify-shutdown')] })),
    outcome: report.outcome,
    trigger: report.trigger,
    state: app.shutdown.state
  }
}

main().then(
  (result) => { process.stdout.write(JSON.stringify(result) + '\n') },
  (err) => { process.stderr.write(`${err && err.stack}\n`); process.exitCode = 1 }
)
