// Types of the rolling-restart harness (index.mjs), for the TypeScript tests.

/** The path HAProxy's health check asks. */
export const READINESS_PATH: string
/** A path that answers 200 until the process exits: health checks that only notice a closed listener. */
export const LIVENESS_PATH: string
export const CHECK_INTERVAL_MS: number
/** Version line of the installed haproxy, or null when there is none. */
export function haproxyVersion (): string | null

/** A running HAProxy on 127.0.0.1, in front of `servers`. */
export interface Haproxy {
  /** Its frontend's port. */
  readonly port: number
  tail (lines?: number): string
  stop (): Promise<void>
}
/** Starts HAProxy with its config in `dir`; resolves once its frontend answers and every server is UP. */
export function startHaproxy (options: { dir: string, servers: readonly number[], slots: number, checkPath?: string, checkIntervalMs?: number }): Promise<Haproxy>

/** Version line of the installed nginx (`nginx version: nginx/1.22.1`), or null when there is none. */
export function nginxVersion (): string | null
/** nginx's settings in the scenario, as ingress-nginx sets them (nginx.mjs says which differ and why). */
export const NGINX_SETTINGS: Readonly<{
  workerProcesses: number
  upstreamKeepalive: number
  upstreamKeepaliveTimeoutS: number
  upstreamKeepaliveRequests: number
  keepaliveTimeoutS: number
  keepaliveRequests: number
  proxyConnectTimeoutS: number
  proxyTimeoutS: number
  proxyNextUpstream: string
  workerShutdownTimeoutS: number
}>
/** The scripts the two scenarios run. */
export const APPS: { readonly plugin: string, readonly baseline: string }

export type Scenario = 'plugin' | 'baseline'
export type Ingress = 'haproxy' | 'nginx'

export interface ScenarioOptions {
  /** The load balancer in front of the replicas. */
  ingress: Ingress
  replicas: number
  restarts: number
  preStopDelayMs: number
  drainTimeoutMs: number
  gracePeriodMs: number
  checkPath: string
  checkIntervalMs: number
  lagsMs: readonly number[]
  fastLoops: number
  slowLoops: number
  slowMs: readonly [number, number]
  longLoops: number
  longMs: readonly [number, number]
  warmRequests: number
  maxLoadMs: number
  maxRequests: number
  /** Width of the result's timeline buckets, ms. */
  timelineBucketMs: number
}

/** The scenario behind HAProxy. */
export const DEFAULTS: Readonly<ScenarioOptions>
/** The scenario behind nginx: two replicas, four restarts, a 1.5 s lag, 32 client connections. */
export const NGINX_DEFAULTS: Readonly<ScenarioOptions>
export function defaultsFor (ingress?: Ingress): Readonly<ScenarioOptions>

export interface RunOptions extends Partial<ScenarioOptions> {
  app: Scenario
  /** The scenario's name in the result and the table; `app` by default. */
  label?: string
  /** Another app script than the scenario's own, with the example app's contract. */
  script?: string
  /** Progress lines. */
  log?: (line: string) => void
  /** Keep the temporary directory (configs, replica logs) and name it in the result. */
  keepDir?: boolean
}

export interface ReplicaResult {
  name: string
  slot: string
  replacedBy: string
  lagMs: number
  sigtermToExitMs: number
  exitCode: number | null
  exitSignal: string | null
  killed: boolean
  removedAfterMs: number
  listenerClosedAfterMs: number | null
  inFlightAtListenerClose: number | null
  sigtermAtMs: number
  report: {
    msg: string
    outcome: string
    exitCode: number
    durationMs: number
    phases: Record<string, number>
    completedRequests: number
    rejectedRequests: number
    openRequests: unknown[]
  } | null
  stderr: string[]
}

export interface Failure {
  request: string
  kind: string
  status: number | null
  body: string | null
  reusedConnection: boolean
  startAtMs: number
  durationMs: number
  /**
   * What the load balancer logged of the request: HAProxy's log line (server, timers, termination state);
   * nginx's access-log line (worker, upstream, upstream status, the error-log line of the request), or,
   * for a request nginx never logged, the worker whose connection it was.
   */
  proxy: Record<string, unknown> | null
  /** The replica in that slot when the request started. */
  replica: string | null
  /** The replica whose SIGTERM the times below count from: `replica` when known, else the last one before. */
  sigtermOf?: string
  startAfterSigtermMs?: number
  endAfterSigtermMs?: number
  removedAfterSigtermMs?: number
}

export interface ScenarioResult {
  scenario: string
  options: ScenarioOptions
  requests: number
  non2xx: number
  /** Requests that ended without a response, reload resets left out. */
  connectionErrors: number
  /** Requests on a client connection that nginx's own reload closed under them; 0 behind HAProxy. */
  reloadResets: number
  failureKinds: Record<string, number>
  latencyMs: { p50: number, p99: number, max: number, fastP99: number, slowP99: number, longP99: number }
  durationMs: number
  loadStoppedBy: 'stop' | 'maxMs' | 'maxRequests'
  replicas: ReplicaResult[]
  /** Requests that ended in each `bucketMs` since the load started (`sigtermAtMs` counts from the same moment). */
  timeline: { bucketMs: number, ok: number[], failed: number[] }
  failures: Failure[]
  ingress: IngressReport
  /** The load balancer's log lines of abnormal requests (HAProxy) or at warn and above (nginx). */
  proxyLog: string[]
  dir?: string
}

export interface IngressReport {
  name: Ingress
  version: string | null
  /** Errors the load balancer logged, by kind: HAProxy's status and termination state; nginx's upstream errors. */
  proxyErrors: Record<string, number>
  /** nginx: every other error-log line at warn or above. */
  otherErrors?: string[]
  /** nginx: requests in its access log, by status. */
  statuses?: Record<string, number>
  /** nginx: each reload, what it changed, how long it took and the client connections it reset. */
  reloads: Array<{ change: string, atMs: number, tookMs: number, resets: number }>
}

export function runRollingRestart (options: RunOptions): Promise<ScenarioResult>
export function formatTable (results: readonly ScenarioResult[]): string

/** One request of the load (load.mjs). */
export interface LoadRecord {
  kind: 'fast' | 'slow' | 'long'
  method: string
  path: string
  start: number
  end: number
  status: number
  error: string | null
  body: string | null
  reused: boolean
  localPort: number
  /** Its rank among the requests sent on its connection, 1 for the first. */
  onConnection: number
}

export interface LoadOptions {
  port: number
  /** What the fast loops GET; `/orders/1` by default. */
  fastPath?: string
  fastLoops?: number
  slowLoops?: number
  slowMs?: readonly [number, number]
  longLoops?: number
  longMs?: readonly [number, number]
  maxMs?: number
  maxRequests?: number
}

export interface Load {
  readonly records: readonly LoadRecord[]
  warm (count: number): Promise<void>
  stop (): Promise<{ records: LoadRecord[], stoppedBy: 'stop' | 'maxMs' | 'maxRequests', startedAt: number, endedAt: number }>
}

/** Closed loops of keep-alive requests against the example app's routes, bounded by `maxMs` and `maxRequests`. */
export function startLoad (options: LoadOptions): Load
