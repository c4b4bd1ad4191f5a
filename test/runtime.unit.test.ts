import { test } from 'tap'
import Fastify from 'fastify'
import { RUNTIME, runtimeOf, unsupportedOn, warnAboutRuntime } from '../lib/runtime'
import { logCapture } from './helpers/log-capture'

const NODE = { ...process.versions }
const BUN = { ...process.versions, bun: '1.4.4' }
const DENO = { ...process.versions, deno: '2.9.6' }

test('the runtime is told from process.versions', async (t) => {
  t.same(RUNTIME, { name: 'node', version: process.versions.node, publishesResponseFinish: true }, 'tap runs on Node')
  t.same(runtimeOf(BUN), { name: 'bun', version: '1.4.4', publishesResponseFinish: false }, 'Bun publishes no http.server.response.finish')
  t.same(runtimeOf(DENO), { name: 'deno', version: '2.9.6', publishesResponseFinish: true })
  t.ok(Object.isFrozen(runtimeOf(NODE)))
})

test('what the drain cannot do on each runtime, HTTP/2 only where the app uses it', async (t) => {
  t.same(unsupportedOn(runtimeOf(NODE), true), [], 'Node: everything')
  const bun = unsupportedOn(runtimeOf(BUN), false)
  t.equal(bun.length, 1)
  t.match(bun[0], /request still arriving/)
  t.match(unsupportedOn(runtimeOf(BUN), true), [/request still arriving/, /^http2: /])
  t.match(unsupportedOn(runtimeOf(DENO), true), [/keep-alive connection closes as soon as a response on it finishes/])
})

test('register warns once on Bun or Deno, naming what works differently, and says nothing on Node', async (t) => {
  const { stream, lines } = logCapture()
  const log = Fastify({ logger: { stream } }).log
  warnAboutRuntime(log, runtimeOf(NODE), true)
  t.same(lines, [], 'Node: no warning')
  warnAboutRuntime(log, runtimeOf(DENO), false)
  t.equal(lines.length, 1)
  t.match(lines[0], { level: 40, runtime: 'deno', version: '2.9.6', unsupported: unsupportedOn(runtimeOf(DENO), false), msg: 'running on deno: part of the drain works differently than on node' })
})
