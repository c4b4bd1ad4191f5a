import { test } from 'tap'
import Fastify from 'fastify'
import { RouteNames, routesIn } from '../lib/route-names'

test('a request\'s route is read from Fastify\'s route tree, wherever and whenever the route was added', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.get('/stuck/:id', async () => 'stuck')
  app.get('/users', { constraints: { version: '1.0.0' } }, async () => 'v1')
  app.get('/users', async () => 'users')
  app.post('/users', async () => 'created')
  app.get('/a/:id/b/*', async () => 'wild')
  app.register(async (child) => {
    child.get('/x/*', async () => 'x')
    child.get('/', async () => 'api')
  }, { prefix: '/api' })
  await app.ready()
  const routes = new RouteNames(app)
  const cases: [string, string, string | undefined][] = [
    ['GET', '/stuck/42?verbose=1', '/stuck/:id'],
    ['HEAD', '/stuck/42', '/stuck/:id'],
    ['GET', '/users', '/users'],
    ['POST', '/users', '/users'],
    ['GET', '/a/1/b/c/d', '/a/:id/b/*'],
    ['GET', '/api/x/y', '/api/x/*'],
    ['GET', '/api', '/api'],
    ['GET', '/nowhere', undefined],
    ['DELETE', '/users', undefined],
    ['GET', '/%E0%A4%A', undefined]
  ]
  for (const [method, url, route] of cases) t.equal(routes.of(method, url), route, `${method} ${url}`)
  t.equal(routes.of(undefined, '/users'), undefined)
})

test('the router options that decide a match are Fastify\'s own', async (t) => {
  const app = Fastify({ routerOptions: { ignoreTrailingSlash: true, caseSensitive: false } })
  t.teardown(() => app.close())
  app.get('/Items/:id', async () => 'item')
  await app.ready()
  const routes = new RouteNames(app)
  t.equal(routes.of('GET', '/items/1/'), '/items/:id', 'Fastify stores a case-insensitive route in lower case')
})

test('routesIn reads each route of the tree with its methods, a node\'s second group of methods included', async (t) => {
  const tree = [
    '└── /',
    '    ├── stuck/',
    '    │   └── :id (GET, HEAD)',
    '    └── users (GET, HEAD) {"version":"1.0.0"}',
    '        users (GET, HEAD, POST)',
    ''
  ].join('\n')
  t.same(routesIn(tree), [
    { path: '/stuck/:id', methods: ['GET', 'HEAD'] },
    { path: '/users', methods: ['GET', 'HEAD'] },
    { path: '/users', methods: ['GET', 'HEAD', 'POST'] }
  ])
})

test('a tree that cannot be read names no route, and never throws', async (t) => {
  const routes = new RouteNames({ initialConfig: {}, printRoutes () { throw new Error('no tree') } } as never)
  t.equal(routes.of('GET', '/anything'), undefined)
})
