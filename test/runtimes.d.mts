export interface RuntimePackage { name: string, package: string, version: string, binary: string }
export interface Skip { runtimes: string[], file?: string, test?: string, reason: string }
export const RUNTIMES: Record<'bun' | 'deno', RuntimePackage>
export const APP_PROCESS_TESTS: string[]
export const SKIPPED: Skip[]
export function skippedOn (runtime: string): { files: Skip[], tests: Skip[] }
export function fileMatches (pattern: string, file: string): boolean
export function testPattern (names: string[]): string
