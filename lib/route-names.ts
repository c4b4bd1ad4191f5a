import FindMyWay = require('find-my-way')
import type { FastifyInstance } from 'fastify'

/** `├── /users (GET, HEAD)`: a node of the route tree, at the depth its indent gives. */
const NODE = /^((?:│ {3}| {4})*)[├└]── (.*)$/
/** What follows a node's path: its methods, then any constraints. */
const METHODS = / \(([A-Z]+(?:, [A-Z]+)*)\)(?: \{.*\})?$/

/** The router options that decide which route a URL matches, as Fastify's `initialConfig` holds them. */
const MATCHING = ['caseSensitive', 'ignoreTrailingSlash', 'ignoreDuplicateSlashes', 'maxParamLength', 'useSemicolonDelimiter'] as const

type Router = FindMyWay.Instance<FindMyWay.HTTPVersion.V1>

/**
 * The route a request matched, by its method and URL, for a report to name the route of a request that held
 * the drain. The request gate sees raw requests only, and noting each request's Fastify route as it runs would
 * cost every request a Fastify hook. So the first time a report asks, the routes are read from Fastify's route
 * tree (`printRoutes`, the one public view of every route, whichever context and whenever added) into a router
 * of their own (find-my-way, Fastify's own router package), which only reports consult.
 */
export class RouteNames {
  private router: Router | null | undefined

  constructor (private readonly fastify: FastifyInstance) {}

  /** The route's URL as registered (`/users/:id`), or undefined when none matches without constraints. */
  of (method: string | undefined, url: string | undefined): string | undefined {
    if (method === undefined || url === undefined) return undefined
    this.router ??= this.read()
    try {
      const found = this.router?.find(method as FindMyWay.HTTPMethod, url)
      return (found?.store as { url?: string } | undefined)?.url
    } catch {
      return undefined
    }
  }

  /** Null when the tree cannot be read: the report then names requests by their URL alone. */
  private read (): Router | null {
    try {
      const config = this.fastify.initialConfig as Record<string, unknown> & { routerOptions?: Record<string, unknown> }
      const options: Record<string, unknown> = {}
      for (const key of MATCHING) options[key] = config.routerOptions?.[key] ?? config[key]
      const router = FindMyWay(options)
      for (const { path, methods } of routesIn(this.fastify.printRoutes())) {
        for (const method of methods) {
          try {
            router.on(method as FindMyWay.HTTPMethod, path, noop, { url: path })
          } catch {
            // The same path again with other constraints: its name is known already.
          }
        }
      }
      return router
    } catch {
      return null
    }
  }
}

/** Each route of the tree `printRoutes()` draws (each node a piece of the path), with its methods, in the tree's order. */
export function routesIn (tree: string): { path: string, methods: string[] }[] {
  const pathAt: string[] = []
  const routes: { path: string, methods: string[] }[] = []
  for (const line of tree.split('\n')) {
    const node = NODE.exec(line)
    if (node === null) {
      // A node's next group of methods (other constraints) comes on a line of its own, under the node.
      const methods = METHODS.exec(line.replace(/^(?:│ {3}| {4})*/, ''))
      if (methods !== null && pathAt.length > 0) routes.push({ path: pathAt[pathAt.length - 1], methods: methods[1].split(', ') })
      continue
    }
    const depth = node[1].length / 4
    pathAt.length = depth
    const methods = METHODS.exec(node[2])
    const path = (pathAt[depth - 1] ?? '') + (methods === null ? node[2] : node[2].slice(0, methods.index))
    pathAt.push(path)
    if (methods !== null) routes.push({ path, methods: methods[1].split(', ') })
  }
  return routes
}

function noop (): void {}
