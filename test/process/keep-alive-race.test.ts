import { test } from 'tap'
import { startFixture } from '../helpers/child'
import { CLIENT_KINDS, runBusyClients, unexpectedErrors, type Tally } from '../helpers/busy-clients'
import { faultTest } from '../helpers/fault-matrix'

const ROUNDS = 3
/** Answers the clients get before the SIGTERM: every connection is busy by then. */
const WARM_ANSWERS = 300
/** No client starts a request after this long: the rounds end by themselves. */
const LOAD_LIMIT_MS = 8_000
const PATHS = [...Array(6).fill('/fast'), ...Array(6).fill('/sleep/300')]

function add (into: Tally, from: Tally): void {
  for (const key of ['statuses', 'errors'] as const) {
    for (const [code, n] of Object.entries(from[key])) into[key][code] = (into[key][code] ?? 0) + n
  }
}

// Six connections on a fast route, six on a 300 ms one, each sending its next request the moment its last
// response ends: a connection that owes no response when draining starts is one whose next request is on
// its way. It must be answered (503, Connection: close), never reset.
test(faultTest('busy-keep-alive'), async (t) => {
  for (const kind of CLIENT_KINDS) {
    await t.test(kind, async (t) => {
      const total: Tally = { statuses: {}, errors: {} }
      for (let round = 1; round <= ROUNDS; round++) {
        const child = await startFixture(t, 'app')
        let answers = 0
        let warm!: () => void
        const warmedUp = new Promise<void>((resolve) => { warm = resolve })
        const load = runBusyClients(kind, {
          paths: PATHS,
          port: child.port,
          until: performance.now() + LOAD_LIMIT_MS,
          answered: () => { if (++answers === WARM_ANSWERS) warm() }
        })
        await warmedUp
        child.signal('SIGTERM')
        const tally = await load
        const exit = await child.exited()
        t.equal(exit.code, 0, `${kind}, round ${round}: exit 0`)
        const report = await child.report()
        t.match(report, { outcome: 'completed', openRequests: [], unreadConnections: [] }, `${kind}, round ${round}: completed`)
        t.equal(report.rejectedRequests, tally.statuses['503'] ?? 0, `${kind}, round ${round}: every 503 the server sent was received`)
        add(total, tally)
      }
      t.same(unexpectedErrors(total), {}, `${kind}: no ECONNRESET, EPIPE, hang-up or timeout in ${ROUNDS} rounds; only refused connections after the listener closed`)
      t.same(Object.keys(total.statuses).sort(), ['200', '503'], `${kind}: every request sent was answered, 200 or 503`)
      t.comment(`${kind}: ${JSON.stringify(total)}`)
    })
  }
})
