export interface Run { code: number | null, output: string }
export function tally (types: Run, suites: Run[]): { passed: number, failed: number, skipped: number, line: string }
