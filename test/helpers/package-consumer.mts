// Fixture for test/package.test.ts, type-checked in the fresh project that installed the packed tarball
// (`module: nodenext`, `strict`, `skipLibCheck: false`): what an ES module written in TypeScript uses.
// Each `@ts-expect-error` must meet an error, so declarations that fell back to `any` fail the check too.
import Fastify from 'fastify'
import fastifyShutdown, {
  fastifyShutdown as named,
  STATE,
  type FastifyShutdownOptions,
  type ShutdownReport,
  type ShutdownState
} from 'fastify-shutdown'

const options: FastifyShutdownOptions = {
  preStopDelay: 5_000,
  drainTimeout: 15_000,
  readiness: { path: '/readyz' },
  probeServer: { port: 9000 },
  telemetry: { shutdown: async () => {} }
}

const fastify = Fastify()
await fastify.register(fastifyShutdown, options)
await fastify.register(named, { exit: (code: number) => { process.exitCode = code } })
// @ts-expect-error times are milliseconds, as numbers
await fastify.register(fastifyShutdown, { drainTimeout: '10s' })

fastify.get('/', async (request) => {
  const signal: AbortSignal = request.wrapUpSignal
  return { aborted: signal.aborted || request.shutdownSignal.aborted }
})

const state: ShutdownState = fastify.shutdown.state
const draining: typeof STATE.DRAINING = 'draining'
const report: Promise<ShutdownReport> = fastify.shutdown.start('deploy')
const inFlight: number = fastify.shutdown.inFlight
// @ts-expect-error the controller has no stop(); start() begins a shutdown
fastify.shutdown.stop()

export { state, draining, report, inFlight }
