/** Bound on any one wait: far above anything a passing test waits for, far below tap's file timeout. */
export const WAIT_LIMIT_MS = 10_000

/**
 * Bounds a wait on an event, so a broken shutdown fails the test with a message instead of hanging it.
 * The timer is a deadline for the failure, never what a test waits for.
 */
export function bounded<T> (promise: Promise<T>, describe: string, details: () => string = () => ''): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      const more = details()
      reject(new Error(`timed out after ${WAIT_LIMIT_MS} ms waiting for ${describe}${more === '' ? '' : `\n${more}`}`))
    }, WAIT_LIMIT_MS)
  })
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer))
}
