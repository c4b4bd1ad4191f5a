import type { FastifyInstance, FastifyReply, RouteOptions } from 'fastify'
import type { ResolvedShutdownOptions, ShutdownReport } from '../types'
import { ALIVE, preStopEndpoint, readinessAnswer, type ProbeAnswer, type ProbedShutdown } from './probe-answers'

/** Route config flag: the request gate lets these through, so a probe on an open socket still gets a true answer. */
export const PROBE_ROUTE = 'fastifyShutdownProbe'

export function isProbeRouteOptions (route: RouteOptions): boolean {
  return (route.config as Record<string, unknown> | undefined)?.[PROBE_ROUTE] === true
}

function send (reply: FastifyReply, { statusCode, body }: ProbeAnswer): FastifyReply {
  return reply.code(statusCode).send(body)
}

/** The routes asked for, on the app's own port: readiness, liveness, and the guarded preStop endpoint. */
export function addProbeRoutes (
  fastify: FastifyInstance,
  options: ResolvedShutdownOptions,
  shutdown: ProbedShutdown,
  startFromPreStopRoute: () => Promise<ShutdownReport>
): void {
  const { readiness, liveness, preStopRoute } = options

  if (readiness) {
    fastify.get(readiness.path, { logLevel: readiness.logLevel, config: { [PROBE_ROUTE]: true } }, (_request, reply) => {
      return send(reply, readinessAnswer(shutdown))
    })
  }

  if (liveness) {
    fastify.get(liveness.path, { logLevel: liveness.logLevel, config: { [PROBE_ROUTE]: true } }, (_request, reply) => {
      return send(reply, ALIVE)
    })
  }

  if (preStopRoute) {
    const preStop = preStopEndpoint(preStopRoute, shutdown, startFromPreStopRoute)
    fastify.get(preStopRoute.path, { logLevel: preStopRoute.logLevel, config: { [PROBE_ROUTE]: true } }, async (request, reply) => {
      return send(reply, await preStop({ remoteAddress: request.socket.remoteAddress, headers: request.headers }, request.log))
    })
  }
}
