import type { FastifyBaseLogger, FastifyInstance, FastifyPluginCallback } from 'fastify'
import type { Server } from 'node:http'
import fp from 'fastify-plugin'
import type { FastifyShutdownOptions, ResolvedShutdownOptions, ShutdownController, ShutdownReport, ShutdownTrigger } from '../types'
import { CompletionWatcher } from './completions'
import { ConnectionTracker } from './connections'
import { warnAboutForeignListeners } from './conflicts'
import { warnIfBudgetIsTight } from './budget'
import { createDrainHook } from './drain-hook'
import { ERR_ALREADY_REGISTERED, ERR_ROUTES_OUT_OF_REACH, messageOf } from './errors'
import { isFastifyCliListener, warnAboutFastifyCli } from './fastify-cli'
import { addHealthRoutes } from './health'
import { http2Sessions } from './http2'
import { secondaryServers } from './internals'
import { logWritesSettled } from './log-drain'
import { ShutdownObservability } from './observability'
import { pm2LogWritten, pm2Process, tellPm2Ready, warnIfPm2KillsFirst } from './pm2'
import { resolveOptions } from './options'
import { routesOutOfReach } from './reach'
import type { DrainParticipant } from './participants'
import { ProbeServer } from './probe-server'
import { warnIfPreStopGuardedByAddressAlone } from './probes'
import { RequestSignals } from './request-signals'
import { ShutdownSequence } from './sequence'
import { ShutdownTasks } from './tasks'
import { signalHub, type SignalParticipant } from './signals'
import { STATE } from './states'
import { webSocketParticipant } from './websocket'

const plugin: FastifyPluginCallback<FastifyShutdownOptions> = function fastifyShutdown (fastify, opts, done) {
  let options: ResolvedShutdownOptions
  try {
    if (fastify.hasDecorator('shutdown')) throw new ERR_ALREADY_REGISTERED()
    options = resolveOptions(opts)
  } catch (err) {
    // avvio does not catch what a callback plugin throws: hand it to `done` so `register` rejects with it.
    done(err as Error)
    return
  }
  const log = fastify.log.child({ plugin: 'fastify-shutdown' })
  // Told of failures and finished responses once they are made, further down.
  const failed = (err: unknown, during: string): void => { sequence.internalError(err, during) }
  const servers = new Set<Server>()
  const completions = new CompletionWatcher(servers, (socket, response) => { connections.responseFinished(socket, response) }, failed)
  const http2 = http2Sessions(fastify, log, completions)
  const connections = new ConnectionTracker(servers, options.idleCloseDelay, failed, http2)
  connections.addServer(fastify.server)
  const webSockets = webSocketParticipant(fastify, options.websocket, log)
  const observability = options.telemetry.length > 0 ? ShutdownObservability.create() : null
  const requestSignals = new RequestSignals()
  const tasks = new ShutdownTasks(options.drainTimeout, log)
  const participants: DrainParticipant[] = [requestSignals, tasks]
  if (webSockets !== null) participants.push(webSockets)
  if (http2 !== null) participants.push(http2)
  const sequence = new ShutdownSequence(fastify, options, connections, completions, log, observability, requestSignals, tasks, participants)
  const probeServer = options.probeServer === false
    ? null
    : new ProbeServer(options.probeServer, options, sequence, () => startWith({ type: 'prestop-route' }), log)
  const pm2 = pm2Process()
  let exited = false
  let started: Promise<ShutdownReport> | null = null
  let forced: Promise<ShutdownReport> | null = null

  let exitDecided!: () => void
  /** Settles once the exit has been called (a real one never returns) or declined (`exit: false`). */
  const exitSettled = new Promise<void>((resolve) => { exitDecided = resolve })
  const exitOnce = async (code: number): Promise<boolean> => {
    const exit = options.exit
    if (exit === false) {
      exitDecided()
      return false
    }
    if (!exited) {
      exited = true
      await logWritesSettled(log)
      await pm2LogWritten(pm2)
      exit(code)
      exitDecided()
    }
    return true
  }

  const controller: ShutdownController = {
    get state () { return sequence.state },
    get ready () { return sequence.serving },
    get inFlight () { return connections.inFlight },
    get report () { return sequence.report },
    get probeAddress () { return probeServer?.address ?? null },
    start (reason?: string) {
      return startWith({ type: 'manual', reason })
    },
    force (reason?: string) {
      forced ??= sequence.force('manual', { type: 'manual', reason }).then(exitAfter)
      return forced
    },
    addTask (task) {
      tasks.add(task)
    }
  }

  function startWith (trigger: ShutdownTrigger): Promise<ShutdownReport> {
    started ??= sequence.run(trigger).then(exitAfter)
    return started
  }

  async function exitAfter (report: ShutdownReport): Promise<ShutdownReport> {
    await exitOnce(report.exitCode)
    return report
  }

  let firstSignal: { signal: NodeJS.Signals, at: number } | null = null
  const participant: SignalParticipant = {
    signals: options.signals,
    run (trigger) {
      if (trigger.type === 'signal') firstSignal ??= { signal: trigger.signal, at: performance.now() }
      return sequence.run(trigger)
    },
    force (trigger) {
      const sinceFirstMs = firstSignal === null ? Infinity : performance.now() - firstSignal.at
      if (trigger.type === 'signal' && trigger.signal === firstSignal?.signal && sinceFirstMs < options.duplicateSignalWindow) {
        log.info({ signal: trigger.signal, sinceFirstMs: Math.round(sinceFirstMs) }, 'the same signal again, within duplicateSignalWindow: ignored')
        return
      }
      void sequence.force('second-signal', trigger)
    },
    exit: exitOnce,
    fatalDuringShutdown (err) {
      log.fatal({ err, state: sequence.state, openRequests: connections.openRequests(Date.now()) }, 'fatal error while shutting down, forcing')
      void sequence.force('fatal-error', { type: 'error', error: err }, `fatal error while shutting down: ${messageOf(err)}`)
    },
    warnForeignListeners (signal) {
      warnAboutForeignListeners(log, [signal], isExpected)
    }
  }

  fastify.decorate('shutdown', controller)
  fastify.decorateRequest('shutdownSignal', { getter () { return requestSignals.shutdownSignal(this) } })
  fastify.decorateRequest('wrapUpSignal', { getter () { return requestSignals.wrapUpSignal(this) } })
  const drainHook = createDrainHook(sequence, options.retryAfter, observability && (() => observability.activeContext()), http2 !== null)
  fastify.addHook('onRequest', drainHook)
  if (probeServer === null) {
    try {
      addHealthRoutes(fastify, options, sequence, () => startWith({ type: 'prestop-route' }))
    } catch (err) {
      // Fastify throws FST_ERR_DUPLICATED_ROUTE at once when the app already has a route on a probe's path.
      done(err as Error)
      return
    }
  } else {
    // On listen, not onReady: the app's own port is known only then, and an app that is only ever
    // injected (`ready()` in its tests) opens no port. listen() has resolved by now, so a probe server that
    // cannot start takes the app down with it, as a fatal error would: running unprobed, it would only be
    // restarted by its failing liveness probe.
    fastify.addHook('onListen', (hookDone) => {
      probeServer.listen(fastify.addresses()).then(
        () => { log.info({ address: probeServer.address }, 'probe server listening') },
        (err: Error) => {
          log.error({ err }, 'the probe server could not start: shutting down')
          void startWith({ type: 'error', error: err })
        }
      ).finally(hookDone)
    })
  }
  warnIfBudgetIsTight(log, options)
  warnIfPreStopGuardedByAddressAlone(log, options)
  fastify.addHook('onListen', (hookDone) => {
    trackSecondaryServers(fastify, connections, log)
    hookDone()
  })
  if (pm2 !== null) {
    warnIfPm2KillsFirst(log, options, pm2)
    fastify.addHook('onListen', (hookDone) => {
      tellPm2Ready(pm2)
      hookDone()
    })
  }

  if (options.handleSignals) {
    signalHub.join(participant)
    fastify.addHook('onListen', (hookDone) => {
      // fastify-cli installs its close-with-grace once the app has loaded: it is there by now.
      if (process.listeners('SIGTERM').some(isFastifyCliListener)) warnAboutFastifyCli(log, options)
      warnAboutForeignListeners(log, options.signals, isExpected)
      hookDone()
    })
  }

  const registeredAtRoot = Object.getPrototypeOf(fastify) === Object.prototype
  fastify.addHook('onReady', (hookDone) => {
    // Fastify gives each route its hooks only now, and a route outside this context may have been added
    // after the plugin: only now is it known whether the drain hook reaches every route. At the root it does.
    const outOfReach = registeredAtRoot ? [] : routesOutOfReach(fastify, drainHook.name)
    if (outOfReach.length > 0) {
      hookDone(new ERR_ROUTES_OUT_OF_REACH(outOfReach.join(', ')))
      return
    }
    sequence.markBooted()
    hookDone()
  })
  fastify.addHook('preClose', (hookDone) => {
    void sequence.closingDirectly().then(() => hookDone())
  })
  fastify.addHook('onClose', (_instance, hookDone) => {
    // A shutdown of ours (a signal, start()) ends by exiting with the report's code: whoever called
    // fastify.close() first (fastify-cli exits 0 once it resolves) must not exit ahead of it.
    const exits = sequence.finished !== null
    const reporting = sequence.reachOnClose()
    const released = reporting === null ? Promise.resolve() : reporting.then(() => exits ? exitSettled : undefined)
    void released.then(() => {
      connections.detach()
      sequence.dispose()
      const running = sequence.finished
      if (options.handleSignals) {
        // A shutdown under way keeps its signal listener until the report is out: a later signal must force
        // it, not meet the default handler and kill the process mid-flush.
        if (running) void running.then(() => signalHub.leave(participant))
        else signalHub.leave(participant)
      }
      if (probeServer === null) {
        hookDone()
        return
      }
      // Liveness answers for as long as the shutdown runs, past its own fastify.close(): until the report is out.
      if (running) {
        void running.then(() => probeServer.close())
        hookDone()
      } else {
        void probeServer.close().then(() => hookDone())
      }
    })
  })

  done()
}

/** fastify-cli's close-with-grace has its own warning, with the delay that fits. */
function isExpected (listener: unknown): boolean {
  return signalHub.isOurs(listener) || isFastifyCliListener(listener)
}

/** The servers Fastify opened for the other addresses of the host name it listens on drain like the first. */
function trackSecondaryServers (fastify: FastifyInstance, connections: ConnectionTracker, log: FastifyBaseLogger): void {
  const secondary = secondaryServers(fastify)
  if (secondary !== null) {
    for (const server of secondary) connections.addServer(server)
    return
  }
  const addresses = fastify.addresses()
  if (addresses.length > 1) {
    log.warn({ addresses }, 'fastify listens on several addresses and this version hides their servers: only fastify.server drains; listen on one host')
  }
}

const fastifyShutdown = fp(plugin, { fastify: '5.x', name: 'fastify-shutdown' })

module.exports = fastifyShutdown
module.exports.default = fastifyShutdown
module.exports.fastifyShutdown = fastifyShutdown
module.exports.STATE = STATE
