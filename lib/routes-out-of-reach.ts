import type { FastifyInstance } from 'fastify'

/** `├── /users (GET, HEAD)`: a node of the route tree, at the depth its indent gives. */
const NODE = /^((?:│ {3}| {4})*)[├└]── (.*)$/
/** What follows a node's path: its methods, then any constraints. */
const METHODS = / \(([A-Z]+(?:, [A-Z]+)*)\)(?: \{.*\})?$/
const META = /^• \((\w+)\) (.*)$/

interface RouteGroup {
  readonly path: string
  readonly methods: string
  onRequest: string
}

/**
 * Fastify registers the plugin's `onRequest` hook on the context the plugin was registered in: a route
 * registered outside it (on a parent, or in a sibling plugin) never runs it, so it would be neither refused
 * nor told to close while draining. Fastify composes each route's hooks when it gets ready, and only its
 * route tree lists them (`printRoutes`, the one public view of every route); the tree is read here.
 *
 * Returns the routes whose `onRequest` hooks do not include `hookName`, as `METHOD /path`, in the tree's order.
 */
export function routesOutOfReach (fastify: FastifyInstance, hookName: string): string[] {
  const tree = fastify.printRoutes({ commonPrefix: false, includeHooks: true })
  const hook = `"${hookName}()"`
  const pathAt: string[] = []
  const groups: RouteGroup[] = []
  let current: RouteGroup | null = null
  for (const line of tree.split('\n')) {
    const node = NODE.exec(line)
    let rest: string
    if (node !== null) {
      const depth = node[1].length / 4
      pathAt.length = depth
      const methods = METHODS.exec(node[2])
      const key = methods === null ? node[2] : node[2].slice(0, methods.index)
      pathAt.push((pathAt[depth - 1] ?? '') + key)
      rest = methods === null ? '' : node[2]
    } else {
      rest = line.replace(/^(?:│ {3}| {4})*/, '')
    }
    const meta = META.exec(rest)
    if (meta !== null) {
      if (current !== null && meta[1] === 'onRequest') current.onRequest = meta[2]
      continue
    }
    const methods = METHODS.exec(rest)
    if (methods === null) continue
    current = { path: pathAt[pathAt.length - 1], methods: methods[1], onRequest: '' }
    groups.push(current)
  }
  const outOfReach = new Set(groups
    .filter((group) => !group.onRequest.includes(hook))
    .flatMap((group) => group.methods.split(', ').map((method) => `${method} ${group.path}`)))
  // Fastify adds a HEAD route for each GET route: name the one the app wrote.
  return [...outOfReach].filter((route) => !(route.startsWith('HEAD ') && outOfReach.has(`GET ${route.slice(5)}`)))
}
