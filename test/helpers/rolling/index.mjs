// The rolling-restart harness, shared by the tests in test/rolling/ and bench/rolling-restart.mjs.
// Plain ESM so that the bench runs under plain Node, without the test runner's TypeScript loader.
export { CHECK_INTERVAL_MS, LIVENESS_PATH, READINESS_PATH, haproxyVersion, startHaproxy } from './haproxy.mjs'
export { NGINX_SETTINGS, nginxVersion } from './nginx.mjs'
export { APPS } from './replica.mjs'
export { DEFAULTS, NGINX_DEFAULTS, defaultsFor, formatTable, runRollingRestart } from './scenario.mjs'
export { startLoad } from './load.mjs'
