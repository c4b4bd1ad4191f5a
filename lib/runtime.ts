import type { FastifyBaseLogger } from 'fastify'

/**
 * The runtime under the plugin, decided once at load: Node, or Bun or Deno, which run Fastify on `node:http`
 * implementations of their own that differ where the drain looks.
 */
export interface Runtime {
  readonly name: 'node' | 'bun' | 'deno'
  readonly version: string
  /** Whether `http.server.response.finish` is published on `diagnostics_channel` (Bun 1.4 does not). */
  readonly publishesResponseFinish: boolean
}

/** Bun and Deno say who they are in `process.versions`, beside the Node version they stand in for. */
export function runtimeOf (versions: NodeJS.ProcessVersions & { bun?: string, deno?: string }): Runtime {
  const { bun, deno, node } = versions
  if (bun !== undefined) return Object.freeze({ name: 'bun', version: bun, publishesResponseFinish: false })
  if (deno !== undefined) return Object.freeze({ name: 'deno', version: deno, publishesResponseFinish: true })
  return Object.freeze({ name: 'node', version: node, publishesResponseFinish: true })
}

export const RUNTIME: Runtime = runtimeOf(process.versions)

/** What the drain cannot do on a runtime, as the warning at `register` says it; README "Supported runtimes" too. */
export function unsupportedOn (runtime: Runtime, http2: boolean): string[] {
  if (runtime.name === 'bun') {
    return [
      'a request still arriving when draining starts cannot be told from a new connection (Bun counts no socket.bytesRead): its connection is closed after idleCloseDelay and the request cut, not answered 503',
      ...(http2 ? ['http2: a session the force path destroys ends with GOAWAY NO_ERROR, so clients are not told their streams were cut'] : [])
    ]
  }
  if (runtime.name === 'deno') {
    return [
      'a keep-alive connection closes as soon as a response on it finishes once the listener has closed: a response whose headers went out before the shutdown gets no idleCloseDelay, and a request its client sends at that moment sees a reset'
    ]
  }
  return []
}

/** At `register`, on Bun or Deno: what of the drain works differently there. */
export function warnAboutRuntime (log: FastifyBaseLogger, runtime: Runtime, http2: boolean): void {
  const unsupported = unsupportedOn(runtime, http2)
  if (unsupported.length === 0) return
  log.warn({ runtime: runtime.name, version: runtime.version, unsupported }, 'running on %s: part of the drain works differently than on node', runtime.name)
}
