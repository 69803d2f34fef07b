/**
 * `qemu-img check` verdict classes and the real QEMU oracle. Exit statuses (QEMU 7.2's
 * img_check, verified against the binary): 0 no errors, 3 leaked clusters only, 2 corruptions
 * (leaks may come with them), 1 the image could not be opened or the check did not complete,
 * 63 the format has no check.
 */
import { spawn } from 'node:child_process';

export type Verdict = 'clean' | 'leaks' | 'corrupt' | 'cannot-open' | 'unsupported' | 'other';

export function verdictOf(exit: number | null): Verdict {
  switch (exit) {
    case 0:
      return 'clean';
    case 3:
      return 'leaks';
    case 2:
      return 'corrupt';
    case 1:
      return 'cannot-open';
    case 63:
      return 'unsupported';
    default:
      return 'other';
  }
}

export interface QemuCheck {
  exit: number | null;
  /** stdout then stderr, as captured. */
  output: string;
  timedOut: boolean;
}

/** Real `qemu-img check -f qcow2 FILE` in `cwd` (relative backing/data file names resolve there). */
export function qemuCheck(cwd: string, file: string, timeoutMs = 30_000, repair?: 'leaks' | 'all'): Promise<QemuCheck> {
  const args = ['check', '-f', 'qcow2', ...(repair ? ['-r', repair] : []), file];
  return new Promise((resolve) => {
    const child = spawn('qemu-img', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    // Only the beginning is kept: a damaged image can make check print megabytes.
    let output = '';
    let dropped = 0;
    const take = (d: Buffer): void => {
      if (output.length < 65536) output += d.toString();
      else dropped += d.length;
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ exit: null, output: String(err), timedOut: false });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (dropped) output += `\n[${dropped} more bytes]`;
      resolve({ exit: timedOut ? null : code, output, timedOut });
    });
  });
}
