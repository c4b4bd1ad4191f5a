/**
 * A warning the test runner itself causes, not the code under test: on Node 26 tap's loaders call
 * `module.register()`, deprecated there, and Node warns once per process, whenever the first test happens to
 * be listening.
 */
export function fromTestRunner (warning: Error): boolean {
  return warning.name === 'DeprecationWarning' && warning.message.startsWith('`module.register()` is deprecated')
}
