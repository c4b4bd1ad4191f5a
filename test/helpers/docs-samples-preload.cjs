'use strict'
// Loaded with --require into a docs sample: whatever address the sample asks for, its server listens on
// loopback, on a port of the system's choosing, and tells the test over IPC once it does.
const net = require('node:net')

const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'object' && args[0] !== null) args[0] = { ...args[0], port: 0, host: '127.0.0.1' }
  else if (typeof args[0] === 'number' || typeof args[0] === 'string') args.splice(0, typeof args[1] === 'string' ? 2 : 1, 0, '127.0.0.1')
  this.once('listening', () => process.send({ type: 'listening', port: this.address().port }))
  return listen.apply(this, args)
}
