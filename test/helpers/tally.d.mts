export interface Run { code: number | null, output: string }
export function tally (types: Run, suites: Run[]): { passed: number, failed: number, skipped: number, line: string }
export function failures (output: string): Array<{ file: string, tests: string[] }>
export function rerunFailedFiles (
  first: { passed: number, failed: number, skipped: number },
  failedElsewhere: number,
  suites: Run[],
  runAlone: (files: string[]) => Promise<Run>
): Promise<{ passed: number, failed: number, skipped: number, verdicts: string[], line: string }>
