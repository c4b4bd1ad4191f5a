import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import diagnostics from 'node:diagnostics_channel'
import http from 'node:http'
import { once } from 'node:events'
import type { Socket } from 'node:net'
import v8 from 'node:v8'
import vm from 'node:vm'
import fastifyShutdown from './helpers/plugin'
import { faultTest } from './helpers/fault-matrix'
import { fromTestRunner } from './helpers/warnings'
import { bounded } from './helpers/wait'

/** A closed server's handle is released in the close phase of the next loop turn: let two turns pass. */
async function settled (): Promise<string[]> {
  await new Promise(setImmediate)
  await new Promise(setImmediate)
  return process.getActiveResourcesInfo().sort()
}

test('100 apps registered and closed leave no listener, handle, subscriber or warning behind', async (t) => {
  const events = ['SIGTERM', 'SIGINT', 'uncaughtException', 'unhandledRejection', 'beforeExit'] as const
  const listenersBefore = events.map((event) => process.listenerCount(event))
  const resourcesBefore = await settled()
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { if (!fromTestRunner(warning)) warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => process.removeListener('warning', onWarning))

  const apps: FastifyInstance[] = []
  for (let i = 0; i < 100; i++) {
    const app = Fastify()
    await app.register(fastifyShutdown, { exit: false })
    await app.listen({ port: 0, host: '127.0.0.1' })
    apps.push(app)
  }
  t.equal(process.listenerCount('SIGTERM'), listenersBefore[0]! + 1, 'one listener serves every app')
  await Promise.all(apps.slice(0, 50).map((app) => app.close()))
  await Promise.all(apps.slice(50).map((app) => app.shutdown.start()))

  t.same(events.map((event) => process.listenerCount(event)), listenersBefore)
  t.notOk(diagnostics.hasSubscribers('http.server.response.finish'))
  t.same(await settled(), resourcesBefore, 'no handle outlives close()')
  t.same(warnings.map(String), [])
})

v8.setFlagsFromString('--expose-gc')
const collectGarbage = vm.runInNewContext('gc') as () => void

/**
 * JIT code: V8 keeps compiling hot functions for thousands of cycles (code space grows ~400 bytes a cycle
 * between cycles 200 and 1000 with bare Fastify too, and levels off later), so it is left out. Whatever a
 * leak retains (objects, closures, strings, arrays) lives in the other spaces.
 */
const CODE_SPACES = new Set(['code_space', 'code_large_object_space', 'read_only_space'])

/** The heap's objects after full collections, once closed handles have been released. */
async function objectHeapAfterGc (): Promise<{ objects: number, heapUsed: number }> {
  await settled()
  collectGarbage()
  collectGarbage()
  const objects = v8.getHeapSpaceStatistics()
    .filter((space) => !CODE_SPACES.has(space.space_name))
    .reduce((sum, space) => sum + space.space_used_size, 0)
  return { objects, heapUsed: process.memoryUsage().heapUsed }
}

/** One keep-alive request; resolves with the socket it went over and whether the agent reused it. */
function keptAliveGet (agent: http.Agent, port: number): Promise<{ socket: Socket, reused: boolean, body: string }> {
  return bounded(new Promise((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/hello', agent }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { body += chunk })
      response.on('end', () => resolve({ socket: request.socket!, reused: request.reusedSocket, body }))
    })
    request.on('error', reject)
  }), 'a keep-alive GET /hello')
}

/** Theil–Sen: the median of the slopes between every two samples, which one outlying sample cannot move. */
function medianSlope (points: readonly [x: number, y: number][]): number {
  const slopes: number[] = []
  for (let i = 0; i < points.length; i++) {
    for (let j = i + 1; j < points.length; j++) slopes.push((points[j]![1] - points[i]![1]) / (points[j]![0] - points[i]![0]))
  }
  slopes.sort((a, b) => a - b)
  return slopes[Math.floor(slopes.length / 2)]!
}

const CYCLES = 1_000
/** Fastify's lazy state and V8's feedback settle in the first cycles; the heap is measured after them. */
const WARM_UP_CYCLES = 200
const SAMPLE_EVERY = 50
/**
 * Growth allowed per cycle. Measured outside tap, cycles 200 to 1000: 258–316 bytes/cycle with the plugin,
 * 197–254 with bare Fastify (lazy bytecode and feedback, still settling), 1,338–1,391 with a 1 KB array
 * retained per cycle, 867–871 with 512 bytes.
 */
const MAX_GROWTH_PER_CYCLE = 700

test(faultTest('register-close-1000'), async (t) => {
  const events = ['SIGTERM', 'SIGINT', 'uncaughtException', 'unhandledRejection', 'beforeExit', 'warning'] as const
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { if (!fromTestRunner(warning)) warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => process.removeListener('warning', onWarning))
  const listenersBefore = events.map((event) => process.listenerCount(event))
  const resourcesBefore = await settled()
  const agent = new http.Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())

  const samples: { cycle: number, objects: number, heapUsed: number }[] = []
  const problems: string[] = []
  const startedAt = performance.now()
  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    const app = Fastify()
    // A short grace: the shutdowns below take the grace path (its timer included) without waiting 1 s each.
    await app.register(fastifyShutdown, { exit: false, idleCloseDelay: 10 })
    app.get('/hello', async () => ({ cycle }))
    await app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = app.server.address() as { port: number }
    const first = await keptAliveGet(agent, port)
    const second = await keptAliveGet(agent, port)
    if (!second.reused || second.socket !== first.socket || second.body !== `{"cycle":${cycle}}`) {
      problems.push(`cycle ${cycle}: the second request did not reuse the keep-alive socket`)
    }
    // The server, not the agent, must end the idle keep-alive socket.
    const socketClosed = once(first.socket, 'close')
    if (cycle % 2 === 0) await app.close()
    else await app.shutdown.start()
    await bounded(socketClosed, `cycle ${cycle}: the server to close the idle keep-alive socket`)

    const listenersNow = events.map((event) => process.listenerCount(event))
    if (listenersNow.some((count, i) => count !== listenersBefore[i])) problems.push(`cycle ${cycle}: listeners ${JSON.stringify(listenersNow)}`)
    if (cycle >= WARM_UP_CYCLES && cycle % SAMPLE_EVERY === 0) samples.push({ cycle, ...await objectHeapAfterGc() })
    if (problems.length >= 5) break
  }
  const elapsedMs = Math.round(performance.now() - startedAt)

  const growthPerCycle = medianSlope(samples.map(({ cycle, objects }) => [cycle, objects]))
  const kb = (bytes: number): string => `${(bytes / 1024).toFixed(0)} KB`
  const [warm, last] = [samples[0]!, samples.at(-1)!]
  t.comment(`${CYCLES} cycles in ${elapsedMs} ms; after GC at cycle ${warm.cycle} → ${last.cycle}: objects ${kb(warm.objects)} → ${kb(last.objects)}, heapUsed ${kb(warm.heapUsed)} → ${kb(last.heapUsed)}`)
  t.same(problems, [], 'every cycle reused its keep-alive socket, the server closed it, and the listeners came back')
  t.ok(growthPerCycle < MAX_GROWTH_PER_CYCLE, `the heap's objects grow ${growthPerCycle.toFixed(0)} bytes/cycle (limit ${MAX_GROWTH_PER_CYCLE})`)
  t.same(events.map((event) => process.listenerCount(event)), listenersBefore, 'SIGTERM, SIGINT, uncaughtException, unhandledRejection, beforeExit, warning')
  t.notOk(diagnostics.hasSubscribers('http.server.response.finish'), 'no diagnostics subscriber left')
  agent.destroy()
  t.same(await settled(), resourcesBefore, 'no handle outlives the cycles')
  t.same(warnings.map(String), [], 'no warning (MaxListenersExceededWarning included)')
})
