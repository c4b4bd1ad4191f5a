// PM2: `pm2 start example-app/ecosystem.config.cjs`, then `pm2 reload orders-api` to replace the workers one
// by one without losing a request. test/runners/pm2.test.ts runs exactly this file, and test/runner-configs.test.ts
// checks that its timings agree with the plugin's configuration (example-app/config.mjs).
module.exports = {
  apps: [{
    name: 'orders-api',
    script: 'server.mjs',
    cwd: __dirname,
    // Cluster mode: `pm2 reload` starts a new worker before it stops an old one; in fork mode a reload is a
    // restart, and the port is closed in between.
    exec_mode: 'cluster',
    instances: 2,
    // PM2 stops a worker with SIGINT and SIGKILLs it kill_timeout later (1600 ms by default). Here:
    // PRE_STOP_DELAY_MS + DRAIN_TIMEOUT_MS + the plugin's forceTimeout (3000) + 2000 ms margin.
    // PM2 passes kill_timeout on to the app, and the plugin warns at start when the budget does not fit it.
    kill_timeout: 16000,
    // A reload stops the old worker once the new one says 'ready': the plugin sends it when the server
    // listens. listen_timeout is PM2's fallback when it never comes.
    wait_ready: true,
    listen_timeout: 10000,
    env: {
      PORT: '3000',
      HOST: '127.0.0.1',
      // A keep-alive connection that gets a response during this window gets `Connection: close` with it,
      // and its client reconnects, to a worker that is not stopping, before the listener closes.
      PRE_STOP_DELAY_MS: '1000',
      DRAIN_TIMEOUT_MS: '10000'
    }
  }]
}
