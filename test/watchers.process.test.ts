import { test, type Test } from 'tap'
import http from 'node:http'
import { appendFile } from 'node:fs/promises'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import type { Child, LogLine } from './helpers/child'
import { bounded } from './helpers/wait'
import { DIST, NODE_MODULES, freePort, scratchDir, startRunner, writeFiles } from './helpers/runner-apps'

/**
 * The app a watcher restarts: fastify-shutdown with its defaults, and POST /upload, whose handler answers
 * once the client has sent the whole body. The test holds the body back, so the request is in flight (its
 * handler running) for as long as the test wants, whatever process sits between them. `watched.js` is the
 * file the test touches.
 */
const APP = `'use strict'
const Fastify = require('fastify')
require('./watched')

const app = Fastify({ logger: { base: { pid: process.pid } } })
app.register(require(${JSON.stringify(DIST)}), JSON.parse(process.env.SHUTDOWN_OPTIONS || '{}'))
app.addContentTypeParser('application/octet-stream', (request, payload, done) => done(null))
app.post('/upload', async (request) => {
  request.log.info('upload handler started')
  let bytes = 0
  for await (const chunk of request.raw) bytes += chunk.length
  return { bytes }
})
app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' }).then(() => app.log.info('fixture listening'))
`

interface Upload {
  /** Sends the rest of the body. */
  finish (): void
  readonly response: Promise<{ status: number, body: string, endAt: number }>
}

function upload (port: number): Upload {
  const req = http.request({ host: '127.0.0.1', port, path: '/upload', method: 'POST', agent: false, headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' } })
  const response = new Promise<{ status: number, body: string, endAt: number }>((resolve, reject) => {
    req.on('response', (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (chunk: string) => { body += chunk }).on('end', () => resolve({ status: res.statusCode!, body, endAt: performance.now() }))
    })
    req.on('error', reject)
  })
  response.catch(() => {})
  req.write('first half ')
  return {
    finish: () => req.end('second half'),
    get response () { return bounded(response, 'the upload\'s response') }
  }
}

async function watchedApp (t: Test, name: string): Promise<{ dir: string, port: number }> {
  const dir = await scratchDir(t, name)
  await writeFiles(dir, { 'app.js': APP, 'watched.js': '\'use strict\'\n' })
  return { dir, port: await freePort() }
}

const listening = (child: Child, after = -1): Promise<LogLine> =>
  child.log((line) => line.msg === 'fixture listening' && (line.pid as number) !== after, after === -1 ? 'the app listening' : 'the restarted app listening')

/**
 * One restart with an upload in flight: the request must complete, then the watcher starts the app again.
 * Returns the first process's report.
 */
async function restartWithUploadInFlight (t: Test, child: Child, dir: string, port: number, { touch = 'watched.js', whileDraining }: { touch?: string, whileDraining?: () => Promise<void> } = {}): Promise<LogLine> {
  const first = await listening(child)
  const inFlight = upload(port)
  await child.log('upload handler started')
  await appendFile(path.join(dir, touch), '// changed\n')
  await child.log((line) => line.msg === 'shutdown started' && line.pid === first.pid, 'the first app\'s shutdown')
  await whileDraining?.()
  inFlight.finish()

  const response = await inFlight.response
  t.equal(response.status, 200, 'the request in flight completes')
  t.same(JSON.parse(response.body), { bytes: 'first half second half'.length })
  const report = await child.log((line) => line.msg === 'shutdown complete' && line.pid === first.pid, 'the first app\'s report')
  t.match(report, { outcome: 'completed', exitCode: 0, completedRequests: 1, openRequests: [] })
  const restarted = await listening(child, first.pid as number)
  t.ok(restarted.at > report.at, 'the restart follows the report')
  t.equal(await fetchStatus(port), 200, 'the restarted app serves')
  return report
}

function fetchStatus (port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/upload', method: 'POST', agent: false, headers: { 'content-type': 'application/octet-stream' } }, (res) => {
      res.resume().on('end', () => resolve(res.statusCode!))
    })
    req.on('error', reject)
    req.end('x')
  })
}

const NODEMON_DUPLICATE_WINDOW_MS = 1_000

test('nodemon --signal SIGTERM: a restart waits for the request in flight', async (t) => {
  const { dir, port } = await watchedApp(t, 'nodemon')
  const child = startRunner(t, process.execPath, [path.join(NODE_MODULES, 'nodemon', 'bin', 'nodemon.js'), '--signal', 'SIGTERM', '--watch', 'watched.js', 'app.js'], dir, {
    PORT: String(port),
    // The documented configuration: nodemon's second signal comes as late as its \`ps\` takes on a busy machine.
    SHUTDOWN_OPTIONS: JSON.stringify({ duplicateSignalWindow: NODEMON_DUPLICATE_WINDOW_MS })
  })
  // nodemon signals the app, lists its sub-processes with \`ps\`, then signals it again: the second is a
  // duplicate, ignored within duplicateSignalWindow. The upload ends only after it has arrived.
  const report = await restartWithUploadInFlight(t, child, dir, port, {
    whileDraining: async () => {
      const duplicate = await child.log('the same signal again, within duplicateSignalWindow: ignored', 'nodemon\'s second SIGTERM')
      t.comment(`nodemon's second SIGTERM came ${duplicate.sinceFirstMs as number} ms after the first`)
    }
  })
  t.match(report, { trigger: { type: 'signal', signal: 'SIGTERM' } })
})

test('nodemon with its default SIGUSR2: the plugin does not handle it, and the request in flight is cut', async (t) => {
  const { dir, port } = await watchedApp(t, 'nodemon-usr2')
  const child = startRunner(t, process.execPath, [path.join(NODE_MODULES, 'nodemon', 'bin', 'nodemon.js'), '--watch', 'watched.js', 'app.js'], dir, { PORT: String(port) })
  const first = await listening(child)
  const inFlight = upload(port)
  await child.log('upload handler started')
  await appendFile(path.join(dir, 'watched.js'), '// changed\n')
  await t.rejects(inFlight.response, { code: 'ECONNRESET' })
  await listening(child, first.pid as number)
  t.notOk(child.logs.some((line) => line.msg === 'shutdown started'), 'no shutdown ran: SIGUSR2 killed the process')
})

test('tsx watch: a restart waits for the request in flight', async (t) => {
  const { dir, port } = await watchedApp(t, 'tsx')
  const child = startRunner(t, process.execPath, [path.join(NODE_MODULES, 'tsx', 'dist', 'cli.mjs'), 'watch', '--clear-screen=false', 'app.js'], dir, { PORT: String(port) })
  // tsx watches the entry from the start, the modules it requires only once the app has told it about them:
  // a change to those may come before tsx watches them.
  const report = await restartWithUploadInFlight(t, child, dir, port, { touch: 'app.js' })
  t.match(report, { trigger: { type: 'signal', signal: 'SIGTERM' } })
})

test('node --watch: a restart waits for the request in flight', async (t) => {
  const { dir, port } = await watchedApp(t, 'node-watch')
  // --watch-path: node watches the file from the start. With plain --watch it learns of watched.js only when
  // the app reports it over IPC, and on a loaded machine a change made before node has read that report is
  // lost (no restart: seen once in CI on Node 24). The restart itself, SIGTERM then a wait for the exit, is
  // the same either way.
  const child = startRunner(t, process.execPath, ['--watch-path=watched.js', '--watch-preserve-output', 'app.js'], dir, { PORT: String(port) })
  const report = await restartWithUploadInFlight(t, child, dir, port)
  t.match(report, { trigger: { type: 'signal', signal: 'SIGTERM' } })
})
