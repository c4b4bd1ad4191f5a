/** The Fastify request behind a raw request, set on arrival so a report can name its route and age. */
export const kFastifyRequest = Symbol('fastify-shutdown.request')
/** When the request arrived, in `Date.now()` milliseconds. */
export const kArrivedAt = Symbol('fastify-shutdown.arrivedAt')
/** Marks a raw response that answered 503 because the server was draining. */
export const kRejected = Symbol('fastify-shutdown.rejected')
