// The plugin's options, from the environment the pod spec (example-app/k8s/) sets. The manifest test reads
// the same function, so the manifests and the app cannot drift apart.

/** A number (milliseconds, a port) from an environment variable; unset means the plugin's default. A value that
 * is not a number is passed on as it is, for the plugin's own validation to reject with the value in its message. */
function envNumber (env, name) {
  const value = env[name]
  if (value === undefined || value === '') return undefined
  const ms = Number(value)
  return Number.isNaN(ms) ? value : ms
}

/**
 * @param env the environment: PRE_STOP_DELAY_MS, DRAIN_TIMEOUT_MS, TELEMETRY_TIMEOUT_MS, PRESTOP_TOKEN, PROBE_PORT,
 *   PROBE_HOST
 * @param telemetry the started OpenTelemetry SDK (telemetry.mjs), shut down last; null when telemetry is off
 */
export function shutdownOptions (env = process.env, telemetry = null) {
  return {
    preStopDelay: envNumber(env, 'PRE_STOP_DELAY_MS'),
    drainTimeout: envNumber(env, 'DRAIN_TIMEOUT_MS'),
    // Only with an SDK: then the flush's bound is part of the shutdown's budget (see the k8s manifests).
    ...(telemetry === null ? {} : { telemetry, telemetryTimeout: envNumber(env, 'TELEMETRY_TIMEOUT_MS') }),
    readiness: { path: '/readyz' },
    // server.mjs's WebSocket clients learn why their socket closes (close code 1001 says only "going away").
    websocket: { goodbye: JSON.stringify({ type: 'bye', reason: 'server shutting down' }) },
    liveness: { path: '/livez' },
    // Kubernetes way (c): a preStop httpGet hook that sends this token. Off unless the pod spec sets one.
    preStopRoute: env.PRESTOP_TOKEN ? { path: '/prestop', header: { name: 'x-prestop-token', value: env.PRESTOP_TOKEN } } : false,
    // The routes above on a port of their own, which the Service does not expose (see SECURITY.md); on every
    // interface unless PROBE_HOST says otherwise. Unset (a laptop, the tests): on the app's port.
    probeServer: env.PROBE_PORT
      ? { port: envNumber(env, 'PROBE_PORT'), ...(env.PROBE_HOST ? { host: env.PROBE_HOST } : {}) }
      : false
  }
}
