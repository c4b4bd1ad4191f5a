// The orders API: the routes the example app serves, and the rolling-restart baseline serves too, so the
// two are compared on the same work.
import { setTimeout as sleep } from 'node:timers/promises'

export function orderRoutes (app, db) {
  app.get('/orders/:id', {
    schema: { params: { type: 'object', properties: { id: { type: 'integer', minimum: 1 } }, required: ['id'] } }
  }, async (request, reply) => {
    const order = await db.getOrder(request.params.id)
    if (order === null) return reply.code(404).send({ error: 'Not Found', message: `no order ${request.params.id}` })
    return order
  })

  app.post('/orders', {
    schema: {
      body: {
        type: 'object',
        properties: {
          item: { type: 'string', minLength: 1 },
          quantity: { type: 'integer', minimum: 1 }
        },
        required: ['item', 'quantity'],
        additionalProperties: false
      }
    }
  }, async (request, reply) => {
    const order = await db.createOrder(request.body)
    return reply.code(201).send(order)
  })

  // Stands in for an expensive report: the kind of request a shutdown must let finish.
  app.get('/reports/slow', {
    schema: {
      querystring: {
        type: 'object',
        properties: { ms: { type: 'integer', minimum: 0, maximum: 60000, default: 1000 } }
      }
    }
  }, async (request) => {
    const { ms } = request.query
    await sleep(ms)
    return { report: 'orders', tookMs: ms, orders: await db.countOrders() }
  })
}
