/**
 * Test support: run real QEMU 7.2 tools (the oracle) and the engine on the same operation
 * sequences. Only used by vitest files; skips cleanly when qemu-img is absent.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';

/** Whether `program --version` runs (a tool on PATH, or the path given). */
export function hasProgram(program: string): boolean {
  try {
    execFileSync(program, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

let available: boolean | undefined;
export function haveQemu(): boolean {
  if (available === undefined) {
    const r = spawnSync('qemu-img', ['--version'], { encoding: 'utf8' });
    const q = spawnSync('qemu-io', ['--version'], { encoding: 'utf8' });
    available = r.status === 0 && q.status === 0;
  }
  return available;
}

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], cwd?: string): RunResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd, maxBuffer: 64 << 20 });
  return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export function qemuImg(args: string[]): RunResult {
  return run('qemu-img', args);
}

export function qemuIo(args: string[]): RunResult {
  return run('qemu-io', args);
}

export function mapJson(file: string, extra: string[] = []): unknown {
  const out = execFileSync('qemu-img', ['map', '--output=json', ...extra, file], { encoding: 'utf8' });
  return JSON.parse(out);
}

export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `qtest-${prefix}-`));
}
