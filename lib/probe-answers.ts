import { timingSafeEqual } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import type { ResolvedShutdownOptions, ShutdownReport } from '../types'
import { PRESTOP_FORBIDDEN_CODE } from './errors'
import type { ShutdownState } from './states'

/** What the probes read of the shutdown: whether it serves, its state, and when the pre-stop window ends. */
export interface ProbedShutdown {
  readonly serving: boolean
  readonly state: ShutdownState
  /** Settles when the pre-stop window ends: the listener closes, or the force path starts. */
  readonly preStopOver: Promise<void>
}

/** What a probe answers, whichever server it is on: the app's (lib/probe-routes.ts) or its own (lib/probe-server.ts). */
export interface ProbeAnswer {
  readonly statusCode: number
  readonly body: Readonly<Record<string, unknown>>
}

/** Who is calling: the socket's own address, never `X-Forwarded-For`, which any client can write. */
export interface ProbeCaller {
  readonly remoteAddress: string | undefined
  readonly headers: IncomingHttpHeaders
}

const READY: ProbeAnswer = Object.freeze({ statusCode: 200, body: Object.freeze({ status: 'ready' }) })
export const ALIVE: ProbeAnswer = Object.freeze({ statusCode: 200, body: Object.freeze({ status: 'alive' }) })
const FORBIDDEN: ProbeAnswer = Object.freeze({
  statusCode: 403,
  body: Object.freeze({ statusCode: 403, code: PRESTOP_FORBIDDEN_CODE, error: 'Forbidden', message: 'This caller may not stop the server' })
})

export function readinessAnswer (shutdown: ProbedShutdown): ProbeAnswer {
  return shutdown.serving ? READY : { statusCode: 503, body: { status: shutdown.state } }
}

/**
 * The preStop endpoint: a caller it admits starts the shutdown (readiness fails) and is answered once the
 * pre-stop window is over, so the SIGTERM that follows drains at once.
 */
export function preStopEndpoint (
  route: Exclude<ResolvedShutdownOptions['preStopRoute'], false>,
  shutdown: ProbedShutdown,
  start: () => Promise<ShutdownReport>
): (caller: ProbeCaller, log: FastifyBaseLogger) => Promise<ProbeAnswer> {
  const allowed = route.allow ? new Set(route.allow.flatMap(addressForms)) : null
  const secret = route.header ? Buffer.from(route.header.value) : null
  const headerName = route.header?.name

  const admits = (caller: ProbeCaller): boolean => {
    if (allowed !== null && allowed.has(caller.remoteAddress ?? '')) return true
    if (secret === null) return false
    const sent = caller.headers[headerName!]
    const given = Buffer.from(typeof sent === 'string' ? sent : '')
    return given.length === secret.length && timingSafeEqual(given, secret)
  }

  return async (caller, log) => {
    if (!admits(caller)) {
      log.warn({ remoteAddress: caller.remoteAddress }, 'preStop route refused a caller')
      return FORBIDDEN
    }
    void start()
    await shutdown.preStopOver
    return { statusCode: 200, body: { status: shutdown.state } }
  }
}

/** An IPv4 address also arrives as its IPv4-mapped IPv6 form on a dual-stack listener. */
function addressForms (address: string): string[] {
  return address.includes(':') ? [address] : [address, `::ffff:${address}`]
}

/**
 * An address tells the kubelet from the internet only where nothing rewrites it. On the app's port, behind
 * a NodePort or LoadBalancer Service with `externalTrafficPolicy: Cluster`, kube-proxy SNATs outside traffic
 * to a node's IP, the kubelet's own; a host-network ingress or an in-pod proxy does the same with its address.
 * Refusing it would break setups where it is sound (no such Service, `externalTrafficPolicy: Local`) and
 * apps upgrading in place: a warning at every start says why and what to do instead.
 */
export function warnIfPreStopGuardedByAddressAlone (log: FastifyBaseLogger, options: ResolvedShutdownOptions): void {
  const route = options.preStopRoute
  if (route === false || route.header !== undefined || options.probeServer !== false) return
  log.warn(
    { path: route.path, allow: route.allow },
    'the preStop route is on the app\'s port guarded by `allow` alone: behind a NodePort or LoadBalancer Service with ' +
      'externalTrafficPolicy Cluster (or a host-network ingress, or a proxy in the pod) outside traffic arrives from a ' +
      'node\'s or the proxy\'s address, as the kubelet\'s does, so anyone who reaches the Service can stop this pod; ' +
      'add `preStopRoute.header`, or serve the route with `probeServer` on a port the Service does not expose (see SECURITY.md in the fastify-shutdown repository)'
  )
}
