// Canaries under the runtime the apps run on (Node on the Node lines, Bun or Deno on theirs, test/runtimes.mjs):
// the internals lib/internals.ts reads, as that runtime has them. test/internals.inject.test.ts checks Node's in
// the test process; this checks them where the apps run, Bun's native server included, which only Bun has.
import { test } from 'tap'
import { appRuntime, startFixture } from './helpers/child'

test('the runtime keeps the connection internals the drain reads, and the drain stops its listener without reaping', async (t) => {
  const runtime = appRuntime()?.name ?? 'node'
  const child = await startFixture(t, 'internals-canary')
  const seen = child.messages.find((m) => m.type === 'ready')!.seen as Record<string, unknown>
  t.equal(seen.owedWhileResponding, true, `${runtime}: socket._httpMessage is the response being written (internal changed: socket._httpMessage)`)
  t.equal(seen.stateWhileResponding, 'responding')
  t.equal(seen.owedWhenIdle, null, `${runtime}: socket._httpMessage is null on an idle keep-alive connection (internal changed: socket._httpMessage)`)
  t.equal(seen.stateWhenIdle, 'idle', `${runtime}: an idle keep-alive connection has its parser (internal changed: socket.parser)`)
  t.equal(seen.nativeServer, runtime === 'bun', runtime === 'bun'
    ? 'bun: its node:http server runs on a native one under Symbol(::bunternal::) (internal changed: Bun\'s native server)'
    : `${runtime}: no native server behind node:http`)
  t.equal(seen.answeredAfterStop, true, `${runtime}: once stopListening() has run, an idle keep-alive connection still answers its next request (internal changed: ${runtime === 'bun' ? 'Bun\'s http.Server#close() and its native closeIdleConnections()' : 'http.Server#close()'})`)
  t.equal(seen.closedWhileConnected, false, 'the listener closes only once its last connection has ended')
  t.equal((await child.exited()).code, 0)
})
