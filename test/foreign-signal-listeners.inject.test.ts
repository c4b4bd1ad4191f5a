import { test, type Test } from 'tap'
import { appWithShutdown, listenLocally } from './helpers/app'
import { logCapture } from './helpers/log-capture'

/** The test runner listens for signals itself: set its listeners aside so the process looks like an app's. */
function withoutRunnerListeners (t: Test): void {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const runners = process.listeners(signal)
    for (const listener of runners) process.removeListener(signal, listener)
    t.teardown(() => { for (const listener of runners) process.on(signal, listener) })
  }
}

/** An app listening beside `listener` on SIGTERM (the runner's own set aside); resolves with its warnings. */
async function warningsBeside (t: Test, listener: (...args: unknown[]) => unknown): Promise<Record<string, unknown>[]> {
  withoutRunnerListeners(t)
  process.on('SIGTERM', listener)
  t.teardown(() => process.removeListener('SIGTERM', listener))
  const { stream, lines } = logCapture()
  const { app } = await appWithShutdown(t, { handleSignals: true }, { logger: { level: 'warn', stream } })
  await listenLocally(app)
  return lines.filter((line) => line.plugin === 'fastify-shutdown' && line.level === 40)
}

test('another SIGTERM listener, such as fastify-cli\'s close-with-grace, is named in a warning at listen', async (t) => {
  function onSignal (): void {}
  const warnings = await warningsBeside(t, onSignal)
  t.equal(warnings.length, 1)
  t.match(warnings[0], {
    signal: 'SIGTERM',
    listeners: ['onSignal'],
    msg: /another SIGTERM listener is installed and may end the process before the drain finishes/
  })
})

test('no warning when the plugin is alone, or when the app owns its signals', async (t) => {
  withoutRunnerListeners(t)
  for (const handleSignals of [true, false]) {
    const { stream, lines } = logCapture()
    const { app } = await appWithShutdown(t, { handleSignals }, { logger: { level: 'warn', stream } })
    await listenLocally(app)
    await app.close()
    t.same(lines.filter((line) => line.level === 40), [], `handleSignals: ${handleSignals}`)
  }
})

test('a SIGTERM listener that shuts an SDK down, as OpenTelemetry\'s register script does, gets its own warning', async (t) => {
  const sdk = { shutdown: async () => {} }
  // The shape of @opentelemetry/auto-instrumentations-node/register's listener.
  async function shutdown (): Promise<void> {
    await sdk.shutdown()
  }
  t.match(await warningsBeside(t, shutdown), [{
    signal: 'SIGTERM',
    listeners: ['shutdown'],
    msg: /another SIGTERM listener shuts telemetry down at once.*pass the SDK as the `telemetry` option instead/
  }])
})
