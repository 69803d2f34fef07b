/** Runs `bin/qtest.js` as a user would, with the folders pointed wherever a test needs. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll } from 'vitest';

export const ROOT = path.resolve(import.meta.dirname, '../..');

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs never write the project's own .qtest/ (last run, timings): unless a test points
 * QTEST_STATE somewhere, they share one throwaway folder per test file.
 */
const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-state-'));
afterAll(() => fs.rmSync(stateDir, { recursive: true, force: true }));

export function qtest(args: string[], env: Record<string, string> = {}): CliResult {
  const started = performance.now();
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/qtest.js'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', QTEST_STATE: stateDir, ...env },
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - started };
}
