import type { Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { AddressInfo } from 'node:net'
import fastifyShutdown from './plugin'
import type { FastifyShutdownOptions } from '../../types'

export interface AppUnderTest {
  app: FastifyInstance
  /** The exit codes the plugin asked for, in order: the test's own process never exits. */
  exits: number[]
}

/**
 * A Fastify app with the plugin registered for an in-process test: the runner keeps its own signals, exits
 * are recorded instead of done, and the app is closed in teardown. `options` override the first two.
 */
export async function appWithShutdown (
  t: Test,
  options: FastifyShutdownOptions = {},
  serverOptions: FastifyServerOptions = {}
): Promise<AppUnderTest> {
  const exits: number[] = []
  const app = Fastify(serverOptions)
  await app.register(fastifyShutdown, { handleSignals: false, exit: (code) => { exits.push(code) }, ...options })
  t.teardown(() => app.close())
  return { app, exits }
}

/** Listens on a free port of 127.0.0.1 and resolves with it. */
export async function listenLocally (app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as AddressInfo).port
}
