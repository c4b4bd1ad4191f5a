// The import graph of lib/, as docs/how-it-works.md ("The parts") describes it: no cycle, and the request
// hot path (the request gate and everything it imports) never reaching the process-level parts, and the plugin
// (lib/index.ts and everything it imports) never reaching the `fastify-shutdown check` command or its YAML parser.
import { test } from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import ts from 'typescript'

type Graph = ReadonlyMap<string, readonly string[]>

const LIB = path.join(__dirname, '..', 'lib')

/** What runs on every request: the gate in front of Fastify's handler. */
const HOT_PATH_ROOT = 'request-gate'

/** The parts that act on the whole process: its signals and fatal errors, its exit, the app's telemetry SDK. */
const PROCESS_LEVEL = ['process-signals', 'process-exit', 'sdk-shutdown', 'foreign-signal-listeners', 'log-flush', 'pm2']

/** The `fastify-shutdown check` command: its entry and its parts, which the plugin never loads. */
const isCommandPart = (name: string): boolean => name === 'cli' || name === 'check' || name.startsWith('check-')

/** Packages only the command loads: the plugin's own `require` cost and dependencies stay as they are without them. */
const COMMAND_ONLY_PACKAGES = ['yaml']

/** The packages a lib/ module imports (`yaml`, `node:net`), type-only imports included. */
function packagesOf (module: string): string[] {
  const { importedFiles } = ts.preProcessFile(readFileSync(path.join(LIB, `${module}.ts`), 'utf8'), true, true)
  return importedFiles.map(({ fileName }) => fileName).filter((name) => !name.startsWith('.'))
}

/** Every lib/ module, named without its extension, with the lib/ modules it imports, type-only imports included. */
function libGraph (): Graph {
  const graph = new Map<string, string[]>()
  for (const file of readdirSync(LIB).filter((name) => name.endsWith('.ts'))) {
    const { importedFiles } = ts.preProcessFile(readFileSync(path.join(LIB, file), 'utf8'), true, true)
    const local = importedFiles
      .map(({ fileName }) => fileName)
      .filter((name) => name.startsWith('./'))
      .map((name) => name.slice(2).replace(/\.(?:ts|js)$/, ''))
    graph.set(file.slice(0, -3), [...new Set(local)])
  }
  return graph
}

/** Each cycle once, as the path that closes it: `a -> b -> a`. */
function cyclesOf (graph: Graph): string[] {
  const cycles: string[] = []
  const done = new Set<string>()
  const stack: string[] = []
  const visit = (node: string): void => {
    stack.push(node)
    for (const next of graph.get(node) ?? []) {
      const at = stack.indexOf(next)
      if (at !== -1) cycles.push([...stack.slice(at), next].join(' -> '))
      else if (!done.has(next)) visit(next)
    }
    stack.pop()
    done.add(node)
  }
  for (const node of graph.keys()) if (!done.has(node)) visit(node)
  return cycles
}

/** Every module `root` imports, directly or not, with the chain that leads to it. */
function reachedFrom (graph: Graph, root: string): Map<string, string> {
  const reached = new Map<string, string>([[root, root]])
  const queue = [root]
  for (let node = queue.shift(); node !== undefined; node = queue.shift()) {
    for (const next of graph.get(node) ?? []) {
      if (reached.has(next)) continue
      reached.set(next, `${reached.get(node)!} -> ${next}`)
      queue.push(next)
    }
  }
  return reached
}

test('the checks find what they look for', async (t) => {
  const cyclic: Graph = new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['d']], ['e', []]])
  t.same(cyclesOf(cyclic), ['a -> b -> c -> a', 'd -> d'])
  t.same(cyclesOf(new Map([['a', ['b', 'c']], ['b', ['c']], ['c', []]])), [], 'a diamond is no cycle')
  t.same(reachedFrom(cyclic, 'a').get('c'), 'a -> b -> c')
  t.notOk(reachedFrom(cyclic, 'a').has('e'))
})

test('the graph is read from lib/', async (t) => {
  const graph = libGraph()
  t.ok(graph.get('index')!.includes('sequence'), 'index imports the sequence')
  t.ok(graph.get('sequence')!.includes('request-gate'), 'a type-only import counts')
  for (const [module, imports] of graph) {
    for (const name of imports) t.ok(graph.has(name), `${module} imports ./${name}, a lib/ module`)
  }
})

test('lib/ has no import cycle, type-only imports included', async (t) => {
  t.same(cyclesOf(libGraph()), [])
})

test('the request hot path imports nothing process-level', async (t) => {
  const graph = libGraph()
  for (const name of PROCESS_LEVEL) t.ok(graph.has(name), `${name} is a lib/ module`)
  const reached = reachedFrom(graph, HOT_PATH_ROOT)
  const processLevel = PROCESS_LEVEL.filter((name) => reached.has(name)).map((name) => reached.get(name))
  t.same(processLevel, [], 'chains from the request gate to a process-level module')
})

test('the plugin reaches neither the check command nor the packages only the command needs', async (t) => {
  const graph = libGraph()
  const reached = reachedFrom(graph, 'index')
  t.ok([...graph.keys()].some(isCommandPart), 'the command\'s parts are lib/ modules')
  t.ok(packagesOf('check-input').includes('yaml'), 'the command imports yaml')
  t.same([...reached.keys()].filter(isCommandPart).map((name) => reached.get(name)), [], 'chains from index to the command')
  const loading = [...reached.keys()].filter((name) => packagesOf(name).some((pkg) => COMMAND_ONLY_PACKAGES.includes(pkg)))
  t.same(loading.map((name) => reached.get(name)), [], 'chains from index to a module that imports a package only the command needs')
})

/** The rows of the first table after `heading` in a markdown file, as arrays of cells. */
function tableAfter (markdown: string, heading: string): string[][] {
  const start = markdown.indexOf(`\n${heading}\n`)
  if (start === -1) return []
  const rows: string[][] = []
  for (const line of markdown.slice(start + heading.length + 2).split('\n')) {
    if (line.startsWith('|')) rows.push(line.split('|').slice(1, -1).map((cell) => cell.trim()))
    else if (rows.length > 0) break
  }
  return rows.slice(2)
}

test('docs/how-it-works.md "The parts" names every lib/ file once, and a SIGTERM\'s path through at most five', async (t) => {
  const markdown = readFileSync(path.join(__dirname, '..', 'docs', 'how-it-works.md'), 'utf8')
  const graph = libGraph()
  const named = tableAfter(markdown, '## The parts').map(([file]) => /^`lib\/([\w-]+)\.ts`$/.exec(file)?.[1])
  t.same([...named].sort(), [...graph.keys()].sort(), 'one row per lib/*.ts file')

  const journey = tableAfter(markdown, '### A SIGTERM, from signal to exit').map(([file]) => /^`lib\/([\w-]+)\.ts`$/.exec(file)?.[1])
  t.ok(journey.length > 0 && journey.length <= 5, `at most five files, got ${journey.length}`)
  for (const file of journey) t.ok(file !== undefined && graph.has(file), `${String(file)} is a lib/ file`)
  t.equal(journey[0], 'process-signals', 'it starts where the signal arrives')
  t.equal(journey.at(-1), 'process-exit', 'it ends at the exit')
})
