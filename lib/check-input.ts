import { readdirSync, readFileSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { isMap, isScalar, LineCounter, parseAllDocuments } from 'yaml'
import { ERR_CHECK_INPUT, ERR_CHECK_USAGE, messageOf } from './errors'

/** How standard input is named in messages. */
export const STDIN = '<stdin>'

/** One document of a YAML (or JSON) file, as plain values, with the line each of its nodes starts on. */
export interface YamlDocument {
  readonly file: string
  readonly value: unknown
  lineOf (at: readonly (string | number)[]): number | undefined
}

export type Input =
  | { readonly format: 'yaml', readonly file: string, readonly documents: readonly YamlDocument[] }
  | { readonly format: 'systemd', readonly file: string, readonly text: string }
  | { readonly format: 'dockerfile', readonly file: string, readonly text: string }
  /** A JavaScript file: a PM2 ecosystem file, loaded as PM2 loads it. */
  | { readonly format: 'module', readonly file: string, readonly value: unknown }

const DOCKERFILE_NAME = /^(?:Dockerfile|Containerfile)(?:\..+)?$|\.(?:Dockerfile|Containerfile)$/i
const SYSTEMD_TEXT = /^(?:\s*[#;][^\n]*\n)*\s*\[(?:Unit|Service|Install)\]/
const DOCKERFILE_TEXT = /^(?:\s*#[^\n]*\n)*\s*(?:ARG\s[^\n]*\n\s*)*FROM\s/i

/** Reads a file, or fails with what keeps it from being read. */
export function read<T> (file: string, reading: () => T): T {
  try {
    return reading()
  } catch (err) {
    const { code } = err as { code?: string }
    throw new ERR_CHECK_INPUT(file, code === 'ENOENT' ? 'no such file' : messageOf(err))
  }
}

function yamlDocuments (file: string, text: string): YamlDocument[] {
  const lineCounter = new LineCounter()
  const documents = parseAllDocuments(text, { lineCounter, merge: true })
  const found: YamlDocument[] = []
  for (const document of documents) {
    const [error] = document.errors
    if (error !== undefined) {
      const [at] = error.linePos ?? []
      throw new ERR_CHECK_INPUT(at === undefined ? file : `${file}:${at.line}:${at.col}`, error.message.replace(/ at line \d+, column \d+:[\s\S]*$/, ''))
    }
    if (document.contents === null) continue
    let value: unknown
    try {
      value = document.toJS()
    } catch (err) {
      throw new ERR_CHECK_INPUT(file, messageOf(err))
    }
    found.push({
      file,
      value,
      lineOf (at) {
        // A mapping's entry starts at its key: `api:`, not the first line of its value.
        const parent = at.length === 0 ? undefined : document.getIn(at.slice(0, -1), true)
        const node = isMap(parent)
          ? parent.items.find(({ key }) => (isScalar(key) ? key.value : key) === at.at(-1))?.key as { range?: [number, number, number] } | undefined
          : document.getIn(at, true) as { range?: [number, number, number] } | undefined
        return node?.range === undefined ? undefined : lineCounter.linePos(node.range[0]).line
      }
    })
  }
  return found
}

/** PM2 requires an ecosystem file; an ES module one is imported where `require` cannot load it (before Node 20.19, or with top-level await). */
async function loadModule (file: string): Promise<unknown> {
  const absolute = path.resolve(file)
  const imported = async (): Promise<unknown> => (await import(pathToFileURL(absolute).href)).default
  try {
    if (/\.mjs$/i.test(file)) return await imported()
    try {
      const loaded = createRequire(absolute)(absolute)
      // Node 20.19 and later require an ES module too, and give its namespace.
      return loaded?.[Symbol.toStringTag] === 'Module' ? loaded.default : loaded
    } catch (err) {
      const { code } = err as { code?: string }
      if (code !== 'ERR_REQUIRE_ESM' && code !== 'ERR_REQUIRE_ASYNC_MODULE') throw err
      return await imported()
    }
  } catch (err) {
    throw new ERR_CHECK_INPUT(file, `could not be loaded: ${messageOf(err)}`)
  }
}

function fromText (file: string, text: string): Input {
  if (SYSTEMD_TEXT.test(text)) return { format: 'systemd', file, text }
  if (DOCKERFILE_TEXT.test(text)) return { format: 'dockerfile', file, text }
  return { format: 'yaml', file, documents: yamlDocuments(file, text) }
}

async function fromPath (file: string): Promise<Input[]> {
  if (read(file, () => statSync(file).isDirectory())) {
    // As `kubectl apply -f <dir>`: the manifests directly in it.
    const names = read(file, () => readdirSync(file)).filter((name) => /\.(?:ya?ml|json)$/i.test(name)).sort()
    return names.map((name) => path.join(file, name))
      .map((inside) => ({ format: 'yaml', file: inside, documents: yamlDocuments(inside, read(inside, () => readFileSync(inside, 'utf8'))) }))
  }
  const name = path.basename(file)
  if (/\.[cm]?js$/i.test(name)) return [{ format: 'module', file, value: await loadModule(file) }]
  const text = read(file, () => readFileSync(file, 'utf8'))
  if (/\.service$/i.test(name)) return [{ format: 'systemd', file, text }]
  if (DOCKERFILE_NAME.test(name)) return [{ format: 'dockerfile', file, text }]
  return [{ format: 'yaml', file, documents: yamlDocuments(file, text) }]
}

async function readAll (stream: NodeJS.ReadableStream): Promise<string> {
  let text = ''
  stream.setEncoding('utf8')
  for await (const chunk of stream) text += chunk as string
  return text
}

/**
 * Reads every input: files, directories (their YAML and JSON files) and `-`, standard input, whose format is
 * told from its text (the output of `helm template` or `kustomize build`, a unit, a Dockerfile).
 */
export async function readInputs (paths: readonly string[], stdin: NodeJS.ReadableStream): Promise<Input[]> {
  if (paths.filter((file) => file === '-').length > 1) throw new ERR_CHECK_USAGE('`-` (standard input) can be given once')
  const inputs: Input[] = []
  for (const file of paths) {
    inputs.push(...(file === '-' ? [fromText(STDIN, await readAll(stdin))] : await fromPath(file)))
  }
  return inputs
}
