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
  /** stdout then stderr. */
  output: string;
  /** Each stream's first OUTPUT_CAP bytes, one character per byte (latin1), so names that are
   * not UTF-8 compare as the bytes they are. */
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** How much of each stream is kept: a damaged image can make check print megabytes. */
export const OUTPUT_CAP = 65536;

/** Collects a stream's first OUTPUT_CAP characters and counts the rest. */
export class CappedText {
  text = '';
  dropped = 0;
  add(t: string): void {
    const room = OUTPUT_CAP - this.text.length;
    if (room > 0) this.text += t.length <= room ? t : t.slice(0, room);
    this.dropped += Math.max(0, t.length - Math.max(room, 0));
  }
  toString(): string {
    return this.dropped ? `${this.text}\n[${this.dropped} more characters]` : this.text;
  }
}

/** Real `qemu-img check -f qcow2 FILE` in `cwd` (relative backing/data file names resolve there). */
export function qemuCheck(cwd: string, file: string, timeoutMs = 30_000, repair?: 'leaks' | 'all'): Promise<QemuCheck> {
  const args = ['check', '-f', 'qcow2', ...(repair ? ['-r', repair] : []), file];
  return new Promise((resolve) => {
    const child = spawn('qemu-img', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout = new CappedText();
    const stderr = new CappedText();
    child.stdout.setEncoding('latin1').on('data', (d: string) => stdout.add(d));
    child.stderr.setEncoding('latin1').on('data', (d: string) => stderr.add(d));
    const result = (exit: number | null): QemuCheck => ({
      exit,
      output: `${stdout}${stderr}`,
      stdout: stdout.text,
      stderr: stderr.text,
      timedOut,
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ exit: null, output: String(err), stdout: '', stderr: String(err), timedOut: false });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(result(timedOut ? null : code));
    });
  });
}
