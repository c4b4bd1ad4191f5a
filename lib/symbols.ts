/**
 * The reply of the newest request on a socket, noted on arrival. The socket outlives its requests, so after
 * a connection's first request noting this is a plain store, not a new property on every request object.
 */
export const kLatestReply = Symbol('fastify-shutdown.latestReply')
/** When that newest request arrived, in `Date.now()` milliseconds. */
export const kLatestArrivedAt = Symbol('fastify-shutdown.latestArrivedAt')
/** The OpenTelemetry context that newest request ran in, noted only when `telemetry` is configured. */
export const kLatestContext = Symbol('fastify-shutdown.latestContext')
/** Marks a raw response that answered 503 because the server was draining. */
export const kRejected = Symbol('fastify-shutdown.rejected')
