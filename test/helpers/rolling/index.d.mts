// Types of the rolling-restart harness (index.mjs), for the TypeScript test.

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
/** The scripts the two scenarios run. */
export const APPS: { readonly plugin: string, readonly baseline: string }

export type Scenario = 'plugin' | 'baseline'

export interface ScenarioOptions {
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

export const DEFAULTS: Readonly<ScenarioOptions>

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
  /** From HAProxy's log line of the request, when it logged one. */
  haproxy: { server: string, timers: string, termination: string } | null
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
  connectionErrors: number
  failureKinds: Record<string, number>
  latencyMs: { p50: number, p99: number, max: number, fastP99: number, slowP99: number, longP99: number }
  durationMs: number
  loadStoppedBy: 'stop' | 'maxMs' | 'maxRequests'
  replicas: ReplicaResult[]
  /** Requests that ended in each `bucketMs` since the load started (`sigtermAtMs` counts from the same moment). */
  timeline: { bucketMs: number, ok: number[], failed: number[] }
  failures: Failure[]
  haproxyLog: string[]
  dir?: string
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
