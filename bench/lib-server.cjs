'use strict'

// What the stop and force servers share: they listen on loopback, say their port over IPC, and write the
// moment they exit.

const { writeSync } = require('node:fs')
const { performance } = require('node:perf_hooks')

function listenAndTimeExit (app) {
  // Written synchronously from the last JavaScript that runs: the bench sets it against the moment it
  // signalled, with no delay of its own event loop in between.
  process.on('exit', () => {
    writeSync(1, `${JSON.stringify({ benchExitAt: performance.timeOrigin + performance.now() })}\n`)
  })

  app.listen({ port: 0, host: '127.0.0.1' }).then(() => {
    process.send({ type: 'ready', port: app.server.address().port })
  }, (err) => {
    console.error(err)
    process.exit(99)
  })
}

module.exports = { listenAndTimeExit }
