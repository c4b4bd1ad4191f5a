import { test } from 'tap'
import { fastifyCliCloseGraceDelay } from '../lib/fastify-cli'

const cli = (...args: string[]): string[] => ['/usr/bin/node', '/app/node_modules/fastify-cli/cli.js', 'start', ...args, 'app.js']

test('fastify-cli\'s --close-grace-delay is read where fastify-cli reads it', async (t) => {
  t.equal(fastifyCliCloseGraceDelay(cli(), {}), 500, 'its default')
  t.equal(fastifyCliCloseGraceDelay(cli('-g', '20000'), {}), 20_000)
  t.equal(fastifyCliCloseGraceDelay(cli('--close-grace-delay', '20000'), {}), 20_000)
  t.equal(fastifyCliCloseGraceDelay(cli('--close-grace-delay=20000'), {}), 20_000)
  t.equal(fastifyCliCloseGraceDelay(cli('--closeGraceDelay', '20000'), {}), 20_000)
  t.equal(fastifyCliCloseGraceDelay(cli(), { FASTIFY_CLOSE_GRACE_DELAY: '16000' }), 16_000, 'the environment')
  t.equal(fastifyCliCloseGraceDelay(cli('-g', '20000'), { FASTIFY_CLOSE_GRACE_DELAY: '16000' }), 20_000, 'the command line first')
  t.equal(fastifyCliCloseGraceDelay([...cli(), '--', '-g', '1'], {}), 500, 'what follows -- is the app\'s')
  t.equal(fastifyCliCloseGraceDelay(cli('-c', 'config.js'), {}), null, 'a config file may set it: unknown')
  t.equal(fastifyCliCloseGraceDelay(cli('-g', 'soon'), {}), null, 'not a number: unknown')
  t.equal(fastifyCliCloseGraceDelay(null, {}), null, 'a command line that is gone: unknown')
  t.equal(fastifyCliCloseGraceDelay(null, { FASTIFY_CLOSE_GRACE_DELAY: '16000' }), 16_000, 'but the environment is still there')
})
