export const STATE = Object.freeze({
  SERVING: 'serving',
  /** Readiness fails, every route still serves: load balancers catch up before the listener closes. */
  PRE_STOP: 'pre-stop',
  DRAINING: 'draining',
  CLOSING: 'closing',
  FORCING: 'forcing',
  CLOSED: 'closed'
} as const)

export type ShutdownState = typeof STATE[keyof typeof STATE]
