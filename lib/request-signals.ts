import type { FastifyRequest } from 'fastify'
import { ERR_ABORTED, ERR_WRAP_UP } from './errors'
import type { DrainParticipant, ReportPart } from './drain-participant'
import { kRequestSignals } from './symbols'

interface RequestSignalState {
  wrapUp?: AbortController
  shutdown?: AbortController
}

type SignalledRequest = FastifyRequest & { [kRequestSignals]?: RequestSignalState }

/**
 * `request.wrapUpSignal` aborts when draining starts, so long-polls and streams can answer early;
 * `request.shutdownSignal` aborts when the force path starts, so blocked I/O lets go. Both are made on
 * first read: a request that never reads them costs nothing.
 */
export class RequestSignals implements DrainParticipant {
  readonly name = 'request signals'
  /** Requests whose shutdownSignal the force path aborted. */
  aborted = 0
  private readonly live = new Set<SignalledRequest>()
  private wrappingUp = false
  private forcing = false

  wrapUpSignal (request: FastifyRequest): AbortSignal {
    const state = this.stateOf(request as SignalledRequest)
    state.wrapUp ??= this.controller(this.wrappingUp, () => new ERR_WRAP_UP())
    return state.wrapUp.signal
  }

  shutdownSignal (request: FastifyRequest): AbortSignal {
    const state = this.stateOf(request as SignalledRequest)
    if (state.shutdown === undefined) {
      state.shutdown = this.controller(this.forcing, () => new ERR_ABORTED())
      if (this.forcing) this.aborted++
    }
    return state.shutdown.signal
  }

  reportPart (): ReportPart {
    return { abortedRequests: this.aborted }
  }

  drainStarted (): void {
    this.wrappingUp = true
    for (const request of this.live) request[kRequestSignals]!.wrapUp?.abort(new ERR_WRAP_UP())
  }

  forced (): void {
    this.wrappingUp = true
    this.forcing = true
    for (const request of this.live) {
      const { wrapUp, shutdown } = request[kRequestSignals]!
      wrapUp?.abort(new ERR_WRAP_UP())
      if (shutdown !== undefined && !shutdown.signal.aborted) {
        this.aborted++
        shutdown.abort(new ERR_ABORTED())
      }
    }
  }

  private stateOf (request: SignalledRequest): RequestSignalState {
    let state = request[kRequestSignals]
    if (state === undefined) {
      state = {}
      request[kRequestSignals] = state
      this.live.add(request)
      // The raw request closes once its response has finished, or its client has gone.
      request.raw.once('close', () => this.live.delete(request))
    }
    return state
  }

  private controller (abortNow: boolean, reason: () => Error): AbortController {
    const controller = new AbortController()
    if (abortNow) controller.abort(reason())
    return controller
  }
}
