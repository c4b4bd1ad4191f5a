// A `node --test` reporter that writes one JSON line per test verdict: the file, the names from the outermost
// test down to this one, and pass / fail / cancelled (never ran: a test before it held the file) / skip / todo. Subtests are named through their parents, so two tests
// of the same name in different suites stay apart.
import { relative } from 'node:path'

export default async function * verdicts (source) {
  const stacks = new Map()
  for await (const { type, data } of source) {
    if (type !== 'test:start' && type !== 'test:pass' && type !== 'test:fail') continue
    const file = data.file === undefined ? '' : relative(process.cwd(), data.file)
    const stack = stacks.get(file) ?? []
    stacks.set(file, stack)
    // A file that fails outside any test is reported as a test named by its absolute path.
    const name = data.file !== undefined && data.name === data.file ? '(the file itself)' : data.name
    if (type === 'test:start') {
      stack.length = data.nesting
      stack.push(name)
      continue
    }
    const path = [...stack.slice(0, data.nesting), name]
    const verdict = type === 'test:pass'
      ? (data.skip !== undefined ? 'skip' : data.todo !== undefined ? 'todo' : 'pass')
      : (data.details?.error?.failureType === 'cancelledByParent' ? 'cancelled' : 'fail')
    yield JSON.stringify({ file, path, verdict }) + '\n'
  }
}
