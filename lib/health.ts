import { timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { ResolvedShutdownOptions, ShutdownReport } from '../types'
import { PRESTOP_FORBIDDEN_CODE } from './errors'
import type { ShutdownSequence } from './sequence'

/** Route config flag: the drain hook lets these through, so a probe on an open socket still gets a true answer. */
export const PROBE_ROUTE = 'fastifyShutdownProbe'

const FORBIDDEN_BODY = JSON.stringify({
  statusCode: 403,
  code: PRESTOP_FORBIDDEN_CODE,
  error: 'Forbidden',
  message: 'This caller may not stop the server'
})

export function isProbeRoute (request: FastifyRequest): boolean {
  return (request.routeOptions.config as unknown as Record<string, unknown>)[PROBE_ROUTE] === true
}

/** The routes asked for: readiness, liveness, and the guarded preStop endpoint. */
export function addHealthRoutes (
  fastify: FastifyInstance,
  options: ResolvedShutdownOptions,
  sequence: ShutdownSequence,
  startFromPreStopRoute: () => Promise<ShutdownReport>
): void {
  const { readiness, liveness, preStopRoute } = options

  if (readiness) {
    fastify.get(readiness.path, { logLevel: readiness.logLevel, config: { [PROBE_ROUTE]: true } }, (_request, reply) => {
      if (sequence.serving) return reply.send({ status: 'ready' })
      return reply.code(503).send({ status: sequence.state })
    })
  }

  if (liveness) {
    fastify.get(liveness.path, { logLevel: liveness.logLevel, config: { [PROBE_ROUTE]: true } }, (_request, reply) => {
      return reply.send({ status: 'alive' })
    })
  }

  if (preStopRoute) {
    const allowed = preStopRoute.allow ? new Set(preStopRoute.allow.flatMap(addressForms)) : null
    const secret = preStopRoute.header ? Buffer.from(preStopRoute.header.value) : null

    const authorized = (request: FastifyRequest): boolean => {
      if (allowed !== null && allowed.has(request.socket.remoteAddress ?? '')) return true
      if (secret === null) return false
      const sent = request.headers[preStopRoute.header!.name]
      const given = Buffer.from(typeof sent === 'string' ? sent : '')
      return given.length === secret.length && timingSafeEqual(given, secret)
    }

    fastify.get(preStopRoute.path, { logLevel: preStopRoute.logLevel, config: { [PROBE_ROUTE]: true } }, async (request, reply) => {
      if (!authorized(request)) {
        request.log.warn({ remoteAddress: request.socket.remoteAddress }, 'preStop route refused a caller')
        return reply.code(403).type('application/json; charset=utf-8').send(FORBIDDEN_BODY)
      }
      void startFromPreStopRoute()
      await sequence.preStopOver
      return { status: sequence.state }
    })
  }
}

/** An IPv4 address also arrives as its IPv4-mapped IPv6 form on a dual-stack listener. */
function addressForms (address: string): string[] {
  return address.includes(':') ? [address] : [address, `::ffff:${address}`]
}
