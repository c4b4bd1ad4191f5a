// Types of the busy keep-alive clients (lib-busy-clients.mjs), for the TypeScript tests.

export type ClientKind = 'node-agent' | 'undici-pool' | 'autocannon'
export const CLIENT_KINDS: readonly ClientKind[]

/** A refused connection once the listener has closed: the one error a shutdown may cause. */
export const REFUSED: 'ECONNREFUSED'

export interface Tally {
  /** Answers by status code. */
  readonly statuses: Record<string, number>
  /** Failed requests by error code. */
  readonly errors: Record<string, number>
}

export interface BusyLoad {
  /** Paths, one client each, e.g. six on a fast route and six on a slow one. */
  readonly paths: readonly string[]
  readonly port: number
  /** `performance.now()` after which no client starts a new request. */
  readonly until: number
  /** Called on every answer, whatever its status. */
  readonly answered?: () => void
}

/** Runs one client of `kind` per path until `until` or until the server refuses a connection. */
export function runBusyClients (kind: ClientKind, load: BusyLoad): Promise<Tally>

/** Failed requests other than a refused connection after the listener closed, by code. */
export function clientVisibleErrorsByCode (tally: Tally): Record<string, number>

/** How many requests a client lost: the failed requests other than a refused connection. */
export function clientVisibleErrors (tally: Tally): number
