// The plugin from its TypeScript source (so coverage counts it), typed by the published declarations: the
// source assigns module.exports directly, which TypeScript does not read as an export.
import type FastifyShutdown = require('../../types')

const fastifyShutdown: typeof FastifyShutdown = require('../../lib/index')

export default fastifyShutdown
