import type { FastifyPluginCallback } from 'fastify'
import type { AddressInfo } from 'node:net'

declare module 'fastify' {
  interface FastifyInstance {
    /** Shutdown state and controls added by fastify-shutdown. */
    shutdown: fastifyShutdown.ShutdownController
  }
  interface FastifyRequest {
    /**
     * Aborts when the shutdown's force path starts (drain deadline or second signal), with an error whose
     * code is `FST_SHUTDOWN_ABORTED`: pass it to fetch, database drivers and timers so blocked I/O lets go.
     * Made on first read: free for requests that never read it.
     */
    readonly shutdownSignal: AbortSignal
    /**
     * Aborts when draining starts (code `FST_SHUTDOWN_WRAP_UP`): long-polls and streams answer early and
     * end at a clean boundary instead of being cut later.
     */
    readonly wrapUpSignal: AbortSignal
  }
}

type FastifyShutdown = FastifyPluginCallback<fastifyShutdown.FastifyShutdownOptions>

declare namespace fastifyShutdown {
  /** Every state a shutdown passes through, in order; `forcing` only on the force path. */
  export const STATE: {
    readonly SERVING: 'serving'
    readonly PRE_STOP: 'pre-stop'
    readonly DRAINING: 'draining'
    readonly CLOSING: 'closing'
    readonly FORCING: 'forcing'
    readonly CLOSED: 'closed'
  }
  export type ShutdownState = typeof STATE[keyof typeof STATE]

  export type ExitFunction = (code: number) => void

  /**
   * What the plugin shuts down last: a started `NodeSDK`, a tracer, meter or logger provider, or anything with
   * an async `shutdown()`.
   */
  export interface TelemetryTarget {
    shutdown (): Promise<unknown>
    forceFlush? (): Promise<unknown>
  }

  export interface WebSocketShutdownOptions {
    /**
     * The reason sent with the close frame (code 1001, Going Away).
     * @default 'server shutting down'
     */
    reason?: string
    /**
     * A message sent on every open socket just before the close frame; `undefined` sends none.
     */
    goodbye?: string
    /**
     * Time a socket has to finish the closing handshake before it is terminated.
     * @default 1000
     */
    closeTimeout?: number
  }

  export type ProbeLogLevel = 'silent' | 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'

  export interface ProbeRouteOptions {
    /** The route's URL, e.g. `/readyz`. */
    path: string
    /**
     * Log level of the route's requests.
     * @default 'silent' (no log line per probe)
     */
    logLevel?: ProbeLogLevel
  }

  export interface PreStopRouteOptions extends ProbeRouteOptions {
    /**
     * Callers must send this header with this value (Kubernetes: the preStop `httpGet` `httpHeaders`).
     * `header` or `allow` is required: an open endpoint would let any client stop the service.
     */
    header?: { name: string, value: string }
    /**
     * Or call from one of these addresses. Unsafe alone on the app's port: behind a NodePort or LoadBalancer
     * Service with `externalTrafficPolicy: Cluster` (or a host-network ingress, or an in-pod proxy) outside
     * traffic arrives from a node's (or the proxy's) address too, so `register` warns. Use `header`, and
     * serve the route with `probeServer`.
     */
    allow?: readonly string[]
  }

  export interface ProbeServerOptions {
    /**
     * The port of the probe server: one the app does not listen on and the Service does not expose, so only
     * what reaches the pod directly (the kubelet) can call it. 0 takes any free port (tests).
     */
    port: number
    /**
     * The address to listen on.
     * @default every interface (`::`, or `0.0.0.0` without IPv6), as `net.Server.listen()` without a host:
     * the kubelet calls the pod's IP
     */
    host?: string
  }

  export interface FastifyShutdownOptions {
    /**
     * Time to keep serving normally after the shutdown starts (readiness already failing) before the
     * listener closes, so load balancers stop routing here first. Use 0 when a Kubernetes preStop
     * `sleep` already waits.
     * @default 0
     */
    preStopDelay?: number
    /**
     * Deadline, from the moment the listener closes, for in-flight requests to finish and for
     * `fastify.close()` to run its hooks. Past it the force path runs.
     * @default 10000
     */
    drainTimeout?: number
    /**
     * Bound for the force path (second signal or drain deadline): the process exits non-zero within it.
     * @default 3000
     */
    forceTimeout?: number
    /**
     * A keep-alive connection that carried a request within this time when draining starts (or a response
     * since) is kept open for the rest of it: a request its client was already sending gets a 503 with
     * `Connection: close` instead of a reset, and the connection closes when the time is up. One idle longer
     * is closed at once. Part of the drain, so at most `drainTimeout`; the default shrinks to a shorter one.
     * @default 1000
     */
    idleCloseDelay?: number
    /**
     * Time the platform allows between the first signal and SIGKILL (Kubernetes'
     * `terminationGracePeriodSeconds` × 1000). `preStopDelay + drainTimeout + forceTimeout` (+ `telemetryTimeout`
     * with `telemetry`) must fit in it.
     * `Infinity` when nothing will kill the process.
     * @default 30000
     */
    gracePeriod?: number
    /**
     * Signals that start the shutdown; any further one forces it, except the first one again within
     * `duplicateSignalWindow`.
     * @default ['SIGTERM', 'SIGINT']
     */
    signals?: readonly NodeJS.Signals[]
    /**
     * A repeat of the first signal within this time is the same signal delivered twice, not a request to
     * force: one Ctrl-C reaches the process from the terminal and again from `npm run`, tsx or nodemon,
     * which forward it. 0 forces on any repeat.
     * @default 100
     */
    duplicateSignalWindow?: number
    /**
     * Listen for `signals`, uncaught exceptions and unhandled rejections. `false` when the app owns them and
     * calls `fastify.shutdown.start()` itself.
     * @default true
     */
    handleSignals?: boolean
    /**
     * Called with the exit code once the shutdown ends. `false` never exits the process: `start()` just
     * resolves with the report.
     * @default process.exit
     */
    exit?: ExitFunction | false
    /**
     * Seconds sent in `Retry-After` on the 503 answered to requests that arrive while draining.
     * @default 5
     */
    retryAfter?: number
    /**
     * A readiness route: 200 `{ "status": "ready" }` while serving, 503 `{ "status": <state> }` from the first
     * moment of a shutdown. `false` adds no route.
     * @default false
     */
    readiness?: ProbeRouteOptions | false
    /**
     * A liveness route: 200 `{ "status": "alive" }` until the process exits, so a pod draining on purpose is
     * never restarted. `false` adds no route.
     * @default false
     */
    liveness?: ProbeRouteOptions | false
    /**
     * A route for a Kubernetes preStop `httpGet` hook: starts the shutdown (readiness fails), waits out
     * `preStopDelay`, then answers, so the SIGTERM that follows drains at once. `false` adds no route.
     * @default false
     */
    preStopRoute?: PreStopRouteOptions | false
    /**
     * Serve `readiness`, `liveness` and `preStopRoute` from a small server of the plugin's own on this port,
     * not on the app's: there they are absent. It starts when the app listens, is never drained or refused by
     * the shutdown, answers until the report is out (right before exit), and closes with `fastify.close()`.
     * A port the app listens on too is refused when the app listens (`FST_SHUTDOWN_PROBE_PORT_CONFLICT`).
     * `false` keeps the routes on the app's port.
     * @default false
     */
    probeServer?: ProbeServerOptions | false
    /**
     * Telemetry to shut down once the drain and `fastify.close()` are over, so the spans, metrics and logs of
     * the last requests and of the shutdown itself are exported. On the force path it is exported first.
     * @default []
     */
    telemetry?: TelemetryTarget | readonly TelemetryTarget[]
    /**
     * Bound on shutting `telemetry` down on the scheduled path; past it the process exits anyway and the
     * report says what was not confirmed.
     * @default 5000
     */
    telemetryTimeout?: number
    /**
     * With `@fastify/websocket`: when draining starts, every open socket gets a close frame 1001 (Going Away),
     * and is terminated if the handshake does not finish within `closeTimeout`. `false` leaves them alone.
     * @default { reason: 'server shutting down', closeTimeout: 1000 }
     */
    websocket?: WebSocketShutdownOptions | false
  }

  export interface ResolvedShutdownOptions {
    readonly preStopDelay: number
    readonly drainTimeout: number
    readonly forceTimeout: number
    readonly idleCloseDelay: number
    readonly gracePeriod: number
    readonly signals: readonly NodeJS.Signals[]
    readonly duplicateSignalWindow: number
    readonly handleSignals: boolean
    readonly exit: ExitFunction | false
    readonly retryAfter: number
    readonly readiness: Readonly<Required<ProbeRouteOptions>> | false
    readonly liveness: Readonly<Required<ProbeRouteOptions>> | false
    readonly telemetry: readonly TelemetryTarget[]
    readonly telemetryTimeout: number
    readonly websocket: Readonly<Required<Omit<WebSocketShutdownOptions, 'goodbye'>> & Pick<WebSocketShutdownOptions, 'goodbye'>> | false
    readonly preStopRoute: Readonly<ProbeRouteOptions & Required<Pick<ProbeRouteOptions, 'logLevel'>> & Pick<PreStopRouteOptions, 'header' | 'allow'>> | false
    readonly probeServer: Readonly<ProbeServerOptions> | false
  }

  export type ShutdownTrigger =
    | { readonly type: 'signal', readonly signal: NodeJS.Signals }
    | { readonly type: 'error', readonly error: unknown }
    | { readonly type: 'manual', readonly reason?: string }
    | { readonly type: 'prestop-route' }

  export interface OpenRequest {
    readonly method: string
    readonly url: string
    /** The route pattern, e.g. `/users/:id`; undefined when no route matched. */
    readonly route: string | undefined
    /** Time since the request arrived, in milliseconds, when the report was taken. */
    readonly ageMs: number
  }

  export interface ShutdownPhases {
    /** Serving with readiness failing, before the listener closed. */
    readonly preStopMs?: number
    /** Listener closed until the last in-flight request finished. */
    readonly drainMs?: number
    /** `fastify.close()`: its preClose and onClose hooks. */
    readonly closeMs?: number
    /** The force path, from its start to the end. */
    readonly forceMs?: number
    /** Shutting the telemetry targets down, on the scheduled path. */
    readonly telemetryMs?: number
  }

  /** How the server's connections ended once the shutdown began. */
  export interface ConnectionsOutcome {
    /** Idle and not in use for `idleCloseDelay`: closed when draining started. */
    readonly closedIdle: number
    /** In use within `idleCloseDelay`: kept open for the rest of it, then closed, with no request sent. */
    readonly closedAfterGrace: number
    /** Ended by a response with `Connection: close` (a 503 among them), by the client, or by a WebSocket or HTTP/2 drain. */
    readonly closedAfterResponse: number
    /** Destroyed by the force path, or with a request still arriving once nothing else was left. */
    readonly destroyed: number
  }

  /** A connection destroyed with part of a request received: that request got no answer. */
  export interface UnreadConnection {
    readonly remoteAddress: string
    readonly remotePort: number
    /** Everything the connection had read, that request's first bytes included; -1 when it could not be read. */
    readonly bytesRead: number
  }

  export interface TelemetryOutcome {
    /** Every target's `shutdown()` resolved within its bound: everything recorded was exported. */
    readonly confirmed: boolean
    readonly targets: number
    /** Targets whose `shutdown()` rejected, with the reason. */
    readonly failed: readonly string[]
    /** The bound passed before every target had confirmed. */
    readonly timedOut: boolean
    /** Spans of requests still open when the force path ran, ended and marked `fastify_shutdown.cut`. */
    readonly cutSpans: number
  }

  export interface ShutdownReport {
    readonly trigger: ShutdownTrigger
    /** `completed`: everything finished in time; `forced`: the force path ran and cut work short. */
    readonly outcome: 'completed' | 'forced'
    /** Why the force path ran, when it did. */
    /**
     * Why the force path ran, when it did: `manual` only for `fastify.shutdown.force()`; `internal-error` when the
     * plugin's own sequence failed (a bug to report).
     */
    readonly forcedBy?: 'second-signal' | 'drain-timeout' | 'fatal-error' | 'manual' | 'internal-error'
    /** 0 when everything finished in time; 1 when forced, after a fatal error, or when `fastify.close()` failed. */
    readonly exitCode: number
    readonly startedAt: string
    readonly durationMs: number
    readonly phases: ShutdownPhases
    /** Requests whose responses finished after the shutdown started. */
    readonly completedRequests: number
    /** Requests answered 503 because they arrived while draining. */
    readonly rejectedRequests: number
    /** Requests still open when the force path cut them off; empty when none were. */
    readonly openRequests: readonly OpenRequest[]
    /** Requests whose `shutdownSignal` the force path aborted. */
    readonly abortedRequests: number
    /**
     * How connections ended once the shutdown began: `http` (see {@link ConnectionsOutcome}), and, when the app
     * has them, `websocket` (`closed` with a 1001 handshake, `terminated` after `closeTimeout` or by the force
     * path) and `http2` (sessions `closed` after GOAWAY, `destroyed` by the force path).
     */
    readonly connections: Readonly<{ http: ConnectionsOutcome } & Record<string, Readonly<Record<string, number>>>>
    /** Connections the plugin destroyed while a request was still arriving on them; empty when none were. */
    readonly unreadConnections: readonly UnreadConnection[]
    /** Every shutdown task, with how it ended; empty when there are none. */
    readonly tasks: readonly TaskOutcome[]
    /** How shutting the telemetry down went; absent when no `telemetry` was given. */
    readonly telemetry?: TelemetryOutcome
    /** Failures met on the way (an onClose hook that threw, ...); the shutdown went on. */
    readonly errors: readonly string[]
  }

  export interface ShutdownTask {
    /** Unique; names the task in logs and in the report. */
    name: string
    /**
     * Runs when draining starts; receives a signal that aborts at `timeout` or when the force path starts.
     */
    run (signal: AbortSignal): unknown
    /**
     * Tasks run phase by phase, lowest first, all of a phase at once: e.g. 0 stop consumers, 1 wait for
     * jobs. Pools are best closed in `onClose` hooks, which run after every phase.
     * @default 0
     */
    phase?: number
    /**
     * Bound for this task; the drain deadline bounds all of them.
     * @default drainTimeout
     */
    timeout?: number
  }

  export interface TaskOutcome {
    readonly name: string
    readonly phase: number
    /** `cut`: still running when the force path started. */
    readonly outcome: 'completed' | 'failed' | 'timed-out' | 'cut'
    readonly durationMs: number
    readonly error?: string
  }

  export interface ShutdownController {
    /** The current state; `serving` until a shutdown starts. */
    readonly state: ShutdownState
    /** True while serving; false from the first moment of a shutdown. */
    readonly ready: boolean
    /** Requests being handled right now on this server's connections. */
    readonly inFlight: number
    /** The report of the shutdown once it has ended, else null. */
    readonly report: ShutdownReport | null
    /** Where the probe server listens (its port when `probeServer.port` is 0); null without one, before listen and once closed. */
    readonly probeAddress: AddressInfo | null
    /** Begins a scheduled shutdown; calling it again returns the same promise. */
    start (reason?: string): Promise<ShutdownReport>
    /** Runs the force path at once (starting the shutdown if needed); resolves with the report. */
    force (reason?: string): Promise<ShutdownReport>
    /** Adds work the shutdown runs when draining starts and waits for before `fastify.close()`. */
    addTask (task: ShutdownTask): void
  }

  export const fastifyShutdown: FastifyShutdown
  export { fastifyShutdown as default }
}

declare function fastifyShutdown (...params: Parameters<FastifyShutdown>): ReturnType<FastifyShutdown>
export = fastifyShutdown
