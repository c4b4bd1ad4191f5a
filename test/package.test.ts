// The published package, checked as a consumer gets it: `npm pack` the repo and install the tarball into a
// fresh project beside fastify, typescript and @types/node (test/helpers/packed-package.ts), then list
// what the tarball ships, load it with `require` and `import`, type-check a consumer with `nodenext`
// against the installed declarations only, and drain a request in flight in the ES module app on SIGTERM.
// A file left out of `files`, a broken `exports` map or a type that resolves only inside this repository
// fails here. `npm run lint` judges the same tarball with publint and @arethetypeswrong/cli.
import t from 'tap'
import { existsSync } from 'node:fs'
import { readFile, realpath } from 'node:fs/promises'
import { join, relative, sep } from 'node:path'
import { STATE } from '../lib/states'
import { keepAliveAgent, get } from './helpers/http'
import { ConsumerProject, expectedTarballFiles, ROOT, type Manifest } from './helpers/packed-package'

let project: ConsumerProject

t.before(async () => {
  if (!existsSync(join(ROOT, 'dist', 'index.js'))) throw new Error('no build: run `npm run build` first')
  project = await ConsumerProject.create(t)
  await project.copy(
    'package-consumer.cjs',
    'package-consumer.mjs',
    'package-consumer.mts',
    'package-consumer.cts',
    'package-consumer-drain.mjs'
  )
})

t.test('the tarball holds the manifest, LICENSE, README, the build of each lib/ module and the declarations', async (t) => {
  // A build file no lib/ module makes is left over from an older build: `rm -rf dist && npm run build`.
  t.same(project.files, await expectedTarballFiles(), 'exactly the expected files')

  const entry = project.manifest.exports?.['.'] as Record<string, string>
  const pointers = { main: project.manifest.main, types: project.manifest.types, 'exports types': entry.types, 'exports default': entry.default }
  for (const [field, target] of Object.entries(pointers)) {
    t.ok(target !== undefined && project.files.includes(target.replace(/^\.\//, '')), `${field} (${target}) is in the tarball`)
  }

  const license = await readFile(join(project.dir, 'node_modules', 'fastify-shutdown', 'LICENSE'), 'utf8')
  t.equal(project.manifest.license, 'MIT')
  t.match(license, /^MIT License\n\nCopyright \(c\) \d{4} fastify-shutdown contributors\n/, 'the MIT licence text, with its copyright line')
})

t.test("the README's links work on the registry page", async (t) => {
  const { repository, bugs, homepage } = project.manifest as Required<Manifest>
  const repo = repository.url.replace(/^git\+/, '').replace(/\.git$/, '')
  t.match(repo, /^https:\/\/github\.com\/[^/]+\/fastify-shutdown$/, 'repository is the git URL of the repository')
  t.equal(bugs.url, `${repo}/issues`, 'bugs: its issues')
  t.equal(homepage, `${repo}#readme`, 'homepage: its README')

  // The registry page has the tarball's README and nothing else of the repository: a relative link leads
  // nowhere unless the file is in the tarball; the rest points into the repository on GitHub.
  const readme = await readFile(join(project.dir, 'node_modules', 'fastify-shutdown', 'README.md'), 'utf8')
  const links = [...readme.matchAll(/\]\(([^)\s]+)\)/g)].map((match) => match[1])
  const inRepository = new RegExp(`^${repo.replace(/[.]/g, '\\.')}/(blob|tree)/main/`)
  t.ok(links.some((link) => inRepository.test(link)), 'the README links into the repository')
  for (const link of links) {
    const [target, anchor] = link.split('#')
    if (inRepository.test(target)) {
      const file = target.replace(inRepository, '')
      t.ok(existsSync(join(ROOT, file)), `${link}: ${file} is in the repository`)
      if (anchor !== undefined) t.ok(headingAnchors(await readFile(join(ROOT, file), 'utf8')).includes(anchor), `${link}: ${file} has that heading`)
    } else if (target === '') {
      t.ok(headingAnchors(readme).includes(anchor), `${link}: a heading of the README`)
    } else if (!/^https?:\/\//.test(target)) {
      t.ok(project.files.includes(target), `${link}: a relative link to a file in the tarball`)
    }
  }
})

t.test('require() gives the plugin with .default, .fastifyShutdown and .STATE', async (t) => {
  const seen = await project.node('package-consumer.cjs')
  const dir = await realpath(project.dir)
  t.equal(seen.type, 'function')
  t.equal(seen.defaultIsSame, true, '.default is the export itself')
  t.equal(seen.namedIsSame, true, '.fastifyShutdown is the export itself')
  t.equal(seen.draining, 'draining', '.STATE.DRAINING')
  t.same(seen.states, STATE, '.STATE holds every state of lib/states.ts (the build is not stale)')
  t.equal(seen.entry, join(dir, 'node_modules', 'fastify-shutdown', 'dist', 'index.js'), 'loaded from the installed tarball')
  for (const dependency of seen.dependencies as string[]) {
    t.ok(relative(join(dir, 'node_modules'), dependency).split(sep)[0] !== '..', `${dependency} was installed into the fresh project`)
  }
  t.equal(seen.outcome, 'completed', 'shutdown.start() resolves with a completed report')
  t.same(seen.trigger, { type: 'manual', reason: 'test' })
  t.equal(seen.state, 'closed')
})

t.test('import gives the same plugin as default and named exports, and STATE', async (t) => {
  const seen = await project.node('package-consumer.mjs')
  const dir = await realpath(project.dir)
  t.equal(seen.type, 'function')
  t.equal(seen.namedType, 'function')
  t.equal(seen.namedIsSame, true, 'the named export is the default export')
  t.equal(seen.defaultIsSame, true, '.default is the default export itself')
  t.equal(seen.stateIsSame, true, 'the named STATE is .STATE')
  t.equal(seen.draining, 'draining', 'STATE.DRAINING')
  t.same(seen.states, STATE, 'STATE holds every state of lib/states.ts')
  t.equal(seen.entry, `file://${join(dir, 'node_modules', 'fastify-shutdown', 'dist', 'index.js')}`, 'loaded from the installed tarball')
  t.equal(seen.outcome, 'completed', 'shutdown.start() resolves with a completed report')
  t.same(seen.trigger, { type: 'manual', reason: 'test' })
  t.equal(seen.state, 'closed')
})

t.test('a TypeScript consumer type-checks with nodenext, strict, and the declarations checked too', async (t) => {
  await project.write('tsconfig.json', JSON.stringify({
    compilerOptions: {
      module: 'nodenext',
      moduleResolution: 'nodenext',
      target: 'es2022',
      strict: true,
      // Every declaration file is checked (ours, fastify's, @types/node) but TypeScript's own lib files.
      skipLibCheck: false,
      skipDefaultLibCheck: true,
      noEmit: true
    },
    files: ['package-consumer.mts', 'package-consumer.cts']
  }))
  // tsc prints its errors on stdout and exits non-zero: the rejection carries them.
  await t.resolves(project.run('tsc', ['-p', 'tsconfig.json']), 'no error, and every @ts-expect-error met')
})

t.test('the ES module app drains a request in flight on SIGTERM: 200, then exit 0', async (t) => {
  const app = project.fork(t, 'package-consumer-drain.mjs')
  const { port } = await app.message((message) => message.type === 'ready', 'the ready message')
  const request = get(keepAliveAgent(t), port as number, '/held')
  await app.log('held request started')

  app.signal('SIGTERM')
  await app.log('listener closed, draining')
  app.send({ type: 'release' })

  const response = await request.response
  t.equal(response.status, 200)
  t.same(JSON.parse(response.body), { released: true })
  t.equal(response.headers.connection, 'close', 'the response closes its keep-alive connection')
  const report = await app.report()
  t.match(report, { outcome: 'completed', trigger: { type: 'signal', signal: 'SIGTERM' }, completedRequests: 1, exitCode: 0 })
  const { code, signal } = await app.exited()
  t.same({ code, signal }, { code: 0, signal: null }, 'exit 0')
})

/** The anchors GitHub makes for a Markdown file's headings. */
function headingAnchors (markdown: string): string[] {
  return [...markdown.matchAll(/^#+ (.+)$/gm)].map((match) =>
    match[1].trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-'))
}

t.test('the package\'s command runs from the tarball: `fastify-shutdown check` passes the example app\'s files', async (t) => {
  const example = (file: string): string => join(ROOT, 'example-app', file)
  const report = JSON.parse(await project.run('fastify-shutdown', [
    'check', '--json', '--options', example('config.mjs'),
    example('k8s'), example('compose.yaml'), example('fastify-shutdown-example.service'), example('ecosystem.config.cjs')
  ])) as { findings: unknown[] }
  t.same(report.findings, [], 'no finding, exit 0')
})
