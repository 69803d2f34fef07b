/** Runs `bin/qtest.js` as a user would, with the folders pointed wherever a test needs. */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export function qtest(args: string[], env: Record<string, string> = {}): CliResult {
  const started = performance.now();
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/qtest.js'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', ...env },
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - started };
}
