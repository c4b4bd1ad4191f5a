// A stand-in for a database client: in-memory, but every call is asynchronous like a real one, and it must be
// closed. The app closes it from an `onClose` hook, which fastify-shutdown runs only after the last in-flight
// request has finished, so no request ever meets a closed database.
import { setTimeout as sleep } from 'node:timers/promises'

export function createDb ({ latencyMs = 2 } = {}) {
  const orders = new Map()
  let nextId = 1
  let closed = false

  async function query (fn) {
    if (closed) throw new Error('database is closed')
    await sleep(latencyMs)
    return fn()
  }

  return {
    getOrder: (id) => query(() => orders.get(id) ?? null),

    createOrder: ({ item, quantity }) => query(() => {
      const order = { id: nextId++, item, quantity, createdAt: new Date().toISOString() }
      orders.set(order.id, order)
      return order
    }),

    countOrders: () => query(() => orders.size),

    /** Resolves once pending writes are flushed; later calls fail. */
    async close () {
      if (closed) return { orders: orders.size }
      closed = true
      await sleep(50) // flushing, closing the pool...
      return { orders: orders.size }
    }
  }
}
