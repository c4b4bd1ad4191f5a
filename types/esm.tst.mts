// The import checks of index.tst.ts from an ES module: under `nodenext` an ESM consumer's default import of
// this CommonJS package is `module.exports` itself, so it must be the callable plugin with every export on it.
import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import fastifyShutdown, { fastifyShutdown as named, STATE, type ShutdownReport, type ShutdownState } from 'fastify-shutdown'
import * as namespace from 'fastify-shutdown'

test('default import is the plugin, carrying the named exports', () => {
  expect(fastifyShutdown).type.toBeAssignableTo(named)
  expect(fastifyShutdown.default).type.toBe(named)
  expect(fastifyShutdown.fastifyShutdown).type.toBe(named)
  expect(fastifyShutdown.STATE).type.toBe(STATE)
  expect(namespace.default).type.toBe(fastifyShutdown)
  expect(namespace.STATE.CLOSED).type.toBe<'closed'>()
})

test('register and the decorator', async () => {
  const app = Fastify()
  expect(app.register).type.toBeCallableWith(fastifyShutdown, { handleSignals: false, exit: false })
  expect(app.register).type.toBeCallableWith(named, { handleSignals: false, exit: false })
  expect(app.register).type.not.toBeCallableWith(fastifyShutdown, { drainTimeout: '10s' })
  expect(app.shutdown.state).type.toBe<ShutdownState>()
  expect(await app.shutdown.start('test')).type.toBe<ShutdownReport>()
})
