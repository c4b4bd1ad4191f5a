/**
 * What the plugin notes about a request, so a report can name a request that held the drain and the force
 * path can end its spans: on its response with HTTP/1, on its stream with HTTP/2. Both are the request's own:
 * once answered, nothing reachable holds them (Node drops a finished response from its socket), so neither
 * does the note. Its Fastify reply, noted as its handler starts, only with `telemetry` and @fastify/otel.
 */
export const kNotedReply = Symbol('fastify-shutdown.notedReply')
/** On an HTTP/2 stream: its request, which the stream does not keep. */
export const kNotedRequest = Symbol('fastify-shutdown.notedRequest')
/**
 * On an HTTP/2 stream: when its request arrived, in `Date.now()` milliseconds. An HTTP/1 response needs none:
 * the request a report names on a connection is its newest, which arrived at the connection's `kLastRequestAt`.
 */
export const kArrivedAt = Symbol('fastify-shutdown.arrivedAt')
/** The OpenTelemetry context that request ran in, noted only when `telemetry` is configured. */
export const kNotedContext = Symbol('fastify-shutdown.notedContext')
/**
 * On an HTTP/1 connection: when its last request arrived, in `Date.now()` milliseconds, so the drain can tell
 * a connection in use from one long idle without holding the request.
 */
export const kLastRequestAt = Symbol('fastify-shutdown.lastRequestAt')
/**
 * On an HTTP/1 socket: the newest response pipelined behind the one being written, held weakly so that it
 * does not outlive its answer on an idle keep-alive connection.
 */
export const kPipelineTail = Symbol('fastify-shutdown.pipelineTail')
/** Marks a raw response (and its HTTP/2 stream) that answered 503 because the server was shutting down. */
export const kRejected = Symbol('fastify-shutdown.rejected')
/** On a request: the AbortControllers behind its `wrapUpSignal` and `shutdownSignal`, made on first read. */
export const kRequestSignals = Symbol('fastify-shutdown.requestSignals')
