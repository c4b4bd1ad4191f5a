// The documented differences from Fastify's own suite (test/fastify-compat/differences.json, read by
// `npm run test:fastify`): each names a test that exists in the installed Fastify and links to the section of
// docs/fastify-compat.md that explains it.
import { test } from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

interface Difference { file: string, path: string[], reason: string, see: string, cancelsRest?: boolean }

const differences = JSON.parse(readFileSync(join(__dirname, 'fastify-compat', 'differences.json'), 'utf8')) as { tests: Difference[], excludedFiles: unknown[] }
const fastifyDir = dirname(require.resolve('fastify/package.json'))
const DOC = 'docs/fastify-compat.md'

/** GitHub's anchor for a Markdown heading. */
function anchorOf (heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-')
}

test('every documented difference names a test of the installed Fastify and links to its explanation', async (t) => {
  const anchors = new Set([...readFileSync(join(__dirname, '..', DOC), 'utf8').matchAll(/^#+ (.+)$/gm)].map(([, heading]) => anchorOf(heading)))
  t.ok(differences.tests.length > 0)
  for (const { file, path, reason, see } of differences.tests) {
    const name = `${file} › ${path.join(' › ')}`
    const source = join(fastifyDir, file)
    t.ok(existsSync(source), `${name}: the file is in Fastify's package`)
    if (existsSync(source)) t.ok(readFileSync(source, 'utf8').includes(path[0]), `${name}: the test is in its file`)
    t.ok(reason.length > 20, `${name}: has a reason`)
    const [page, anchor] = see.split('#')
    t.equal(page, DOC, `${name}: links to ${DOC}`)
    t.ok(anchors.has(anchor), `${name}: #${anchor} is a section of ${DOC}`)
  }
  t.same(differences.excludedFiles, [], 'no file of Fastify\'s suite is left out')
})
