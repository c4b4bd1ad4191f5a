'use strict'

const neostandard = require('neostandard')

module.exports = [
  ...neostandard({
    ts: true,
    ignores: ['dist/', 'coverage/', '.tap/', 'bench/.smoke/', 'bench/.snapshot/']
  }),
  {
    rules: {
      // `void promise` marks a promise left unawaited on purpose (a timer or listener cannot await it).
      'no-void': ['error', { allowAsStatement: true }]
    }
  },
  {
    files: ['**/*.ts'],
    rules: {
      // `for (const _socket of ...)` counts without using the item.
      '@typescript-eslint/no-unused-vars': ['error', { varsIgnorePattern: '^_', args: 'none', ignoreRestSiblings: true }]
    }
  },
  {
    // Bad input on purpose: holes in arrays and boxed primitives are option values register must refuse.
    files: ['test/options.inject.test.ts', 'test/option-fuzz.inject.test.ts'],
    rules: { 'no-sparse-arrays': 'off', 'no-new-wrappers': 'off' }
  }
]
