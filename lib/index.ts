import type { FastifyPluginCallback } from 'fastify'
import type { Server } from 'node:http'
import fp from 'fastify-plugin'
import type { FastifyShutdownOptions, ResolvedShutdownOptions, ShutdownController, ShutdownReport, ShutdownTrigger } from '../types'
import { ConnectionTracker } from './connections'
import type { DrainParticipant } from './drain-participant'
import { ERR_ALREADY_REGISTERED, messageOf } from './errors'
import { fastifyCliListeners, warnAboutFastifyCli } from './fastify-cli'
import { warnAboutForeignListeners } from './foreign-signal-listeners'
import { http2Sessions } from './http2-sessions'
import { resolveOptions } from './options'
import { onPm2ShutdownMessage, pm2Process, tellPm2Ready, warnIfPm2KillsFirst } from './pm2'
import { warnIfPreStopGuardedByAddressAlone } from './probe-answers'
import { addProbeRoutes, isProbeRouteOptions } from './probe-routes'
import { ProbeServer } from './probe-server'
import { ProcessExit } from './process-exit'
import { DuplicateSignalWindow, signalHub, type SignalParticipant } from './process-signals'
import { HandlerNotes } from './handler-notes'
import { RequestGate } from './request-gate'
import { RequestSignals } from './request-signals'
import { ResponseWatcher } from './response-watcher'
import { RouteNames } from './route-names'
import { RUNTIME, warnAboutRuntime } from './runtime'
import { logThatNeverThrows } from './safe-log'
import { ShutdownSequence } from './sequence'
import { warnIfBudgetIsTight } from './shutdown-budget'
import { ShutdownTasks } from './shutdown-tasks'
import { RejectionTelemetry, ShutdownTelemetry } from './shutdown-telemetry'
import { STATE } from './states'
import { webSocketParticipant } from './websocket-drain'

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
  // Told of failures and finished responses once they are made, further down.
  const log = logThatNeverThrows(fastify.log.child({ plugin: 'fastify-shutdown' }), (err) => { sequence.logFailed(err) })
  const failed = (err: unknown, during: string): void => { sequence.internalError(err, during) }
  const servers = new Set<Server>()
  const responses = new ResponseWatcher(
    servers,
    (socket, response) => { connections.responseFinished(socket, response) },
    failed,
    RUNTIME.publishesResponseFinish ? null : { owed: () => connections.responsesOwed() }
  )
  const routes = new RouteNames(fastify)
  const probePaths = new Set<string>()
  fastify.addHook('onRoute', (route) => {
    if (isProbeRouteOptions(route)) probePaths.add(route.url)
  })
  const http2 = http2Sessions(fastify, log, responses, routes)
  const connections = new ConnectionTracker(servers, options.idleCloseDelay, failed, routes, http2)
  connections.addServer(fastify.server)
  const webSockets = webSocketParticipant(fastify, options.websocket, log)
  const ownTelemetry = options.telemetry.length > 0 ? ShutdownTelemetry.create() : null
  const requestSignals = new RequestSignals()
  const tasks = new ShutdownTasks(options.drainTimeout, log)
  const participants: DrainParticipant[] = [requestSignals, tasks]
  if (webSockets !== null) participants.push(webSockets)
  if (http2 !== null) participants.push(http2)
  const sequence = new ShutdownSequence({ fastify, options, connections, responses, log, ownTelemetry, participants })
  const probeServer = options.probeServer === false
    ? null
    : new ProbeServer(options.probeServer, options, sequence, () => startWith({ type: 'prestop-route' }), log)
  const pm2 = pm2Process()
  const processExit = new ProcessExit(options.exit, log, pm2)
  let started: Promise<ShutdownReport> | null = null
  let forced: Promise<ShutdownReport> | null = null

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
    await processExit.once(report.exitCode)
    return report
  }

  const duplicates = new DuplicateSignalWindow(options.duplicateSignalWindow)
  const participant: SignalParticipant = {
    signals: options.signals,
    run (trigger) {
      duplicates.started(trigger)
      return sequence.run(trigger)
    },
    force (trigger) {
      const sinceFirstMs = duplicates.duplicate(trigger)
      if (trigger.type === 'signal' && sinceFirstMs !== null) {
        log.info({ signal: trigger.signal, sinceFirstMs: Math.round(sinceFirstMs) }, 'the same signal again, within duplicateSignalWindow: ignored')
        return
      }
      void sequence.force('second-signal', trigger)
    },
    exit: processExit.once,
    fatalDuringShutdown (err) {
      log.fatal({ err, state: sequence.state, openRequests: connections.openRequests(Date.now()) }, 'fatal error while shutting down, forcing')
      void sequence.force('fatal-error', { type: 'error', error: err }, `fatal error while shutting down: ${messageOf(err)}`)
    },
    warnForeignListeners (signal) {
      warnAboutForeignListeners(log, [signal], expectedListeners())
    }
  }

  fastify.decorate('shutdown', controller)
  fastify.decorateRequest('shutdownSignal', { getter () { return requestSignals.shutdownSignal(this) } })
  fastify.decorateRequest('wrapUpSignal', { getter () { return requestSignals.wrapUpSignal(this) } })
  let rejections: RejectionTelemetry | null | undefined
  const gate = new RequestGate(
    sequence,
    options.retryAfter,
    probePaths,
    log,
    // Loaded with the first refusal: an app that never shuts down never loads it.
    () => rejections === undefined ? (rejections = RejectionTelemetry.create()) : rejections,
    ownTelemetry && (() => ownTelemetry.activeContext()),
    fastify.initialConfig.disableRequestLogging !== true,
    failed
  )
  gate.attach(fastify.server)
  const handlerNotes = ownTelemetry === null ? null : new HandlerNotes(failed)
  if (probeServer === null) {
    try {
      addProbeRoutes(fastify, options, sequence, () => startWith({ type: 'prestop-route' }))
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
  warnAboutRuntime(log, RUNTIME, http2 !== null)
  warnIfPreStopGuardedByAddressAlone(log, options)
  fastify.addHook('onListen', (hookDone) => {
    connections.addSecondaryServers(fastify, log)
    for (const server of servers) gate.attach(server)
    hookDone()
  })
  if (pm2 !== null) {
    warnIfPm2KillsFirst(log, options, pm2)
    fastify.addHook('onListen', (hookDone) => {
      tellPm2Ready(pm2)
      hookDone()
    })
  }

  let stopPm2Messages = (): void => {}
  if (options.handleSignals) {
    signalHub.join(participant)
    if (pm2 !== null) stopPm2Messages = onPm2ShutdownMessage(() => { void startWith({ type: 'manual', reason: 'PM2 shutdown message' }) })
    fastify.addHook('onListen', (hookDone) => {
      // fastify-cli installs its close-with-grace once the app has loaded: it is there by now.
      const fastifyCli = fastifyCliListeners(signalHub.isOurs)
      if (fastifyCli.size > 0) warnAboutFastifyCli(log, options)
      warnAboutForeignListeners(log, options.signals, expectedListeners(fastifyCli))
      hookDone()
    })
  }

  fastify.addHook('onReady', (hookDone) => {
    // Only @fastify/otel keeps a request's span where the Fastify request alone reaches it; once every plugin
    // has loaded, its request decorator tells whether the app has it.
    if (handlerNotes !== null && fastify.hasRequestDecorator('opentelemetry')) handlerNotes.subscribe()
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
    const released = reporting === null ? Promise.resolve() : reporting.then(() => exits ? processExit.settled : undefined)
    void released.then(() => {
      connections.detach()
      gate.detach()
      handlerNotes?.unsubscribe()
      sequence.dispose()
      const running = sequence.finished
      if (options.handleSignals) {
        // A shutdown under way keeps its signal listener until the report is out: a later signal must force
        // it, not meet the default handler and kill the process mid-flush.
        const leave = (): void => {
          signalHub.leave(participant)
          stopPm2Messages()
        }
        if (running) void running.then(leave)
        else leave()
      }
      if (probeServer === null) {
        hookDone()
        return
      }
      // Liveness answers for as long as a shutdown of ours runs, past its own fastify.close(): until the report
      // is out. A direct fastify.close() has reported by now, and closes it before resolving.
      if (exits && running) {
        void running.then(() => probeServer.close())
        hookDone()
      } else {
        void probeServer.close().then(() => hookDone())
      }
    })
  })

  done()
}

/** Ours, and fastify-cli's close-with-grace, which has its own warning with the delay that fits. */
function expectedListeners (fastifyCli = fastifyCliListeners(signalHub.isOurs)): (listener: unknown) => boolean {
  return (listener) => signalHub.isOurs(listener) || fastifyCli.has(listener as Function)
}

const fastifyShutdown = fp(plugin, { fastify: '5.x', name: 'fastify-shutdown' })

module.exports = fastifyShutdown
module.exports.default = fastifyShutdown
module.exports.fastifyShutdown = fastifyShutdown
module.exports.STATE = STATE
// Without `export =`, TypeScript marks the build `__esModule`, and that marker beside `.default` is what
// publint warns about: some bundlers then take `.default` for the default import. TypeScript emits
// `export =` last, so the names are assigned above, where Node's CommonJS lexer finds them for
// `import { STATE } from 'fastify-shutdown'`.
export = fastifyShutdown
