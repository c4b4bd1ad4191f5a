// Fixture for test/package.test.ts, type-checked beside package-consumer.mts: a CommonJS module written in
// TypeScript, which loads the package with `import = require`.
import Fastify = require('fastify')
import fastifyShutdown = require('fastify-shutdown')

const options: fastifyShutdown.FastifyShutdownOptions = { drainTimeout: 15_000, liveness: { path: '/livez' } }
const fastify = Fastify()
fastify.register(fastifyShutdown, options)
fastify.register(fastifyShutdown.default)
// @ts-expect-error STATE's values are literal types
const state: typeof fastifyShutdown.STATE.SERVING = 'ready'

export = { fastify, state }
