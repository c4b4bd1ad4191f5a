// `npm run coverage` (test/coverage.mjs): every test covers lib/ only, in its own process (lib/*.ts through
// the TypeScript loader) and in the children it starts (dist/*.js, mapped back to lib/ by the source maps).
// Naming the files keeps the children from recording coverage of their dependencies, which costs them time.
export default () => ['lib/*.ts', 'dist/*.js']
