/**
 * qemu-io's result lines: the statistics pair after each I/O command (print_report), the hex
 * dump of -v (dump_buffer), and the number/pattern parsing messages.
 */
import { formatFixed } from '../common/cformat.ts';
import { durationFromNanos, durationSeconds, humanSize, timeString, type Duration } from '../common/human.ts';
import { strtolFull } from '../common/numbers.ts';

/** A monotonic timestamp (CLOCK_MONOTONIC, as qemu-io uses). */
export function now(): bigint {
  return process.hrtime.bigint();
}

export function elapsed(t1: bigint, t2: bigint): Duration {
  return durationFromNanos(t2 - t1);
}

/** print_report(): two lines, or one comma-separated line with -C. */
export function report(op: string, t: Duration, offset: number, count: number, total: number, cnt: number, machine: boolean): string {
  const secs = durationSeconds(t);
  const ts = timeString(t, machine);
  if (!machine) {
    return (
      `${op} ${total}/${count} bytes at offset ${offset}\n` +
      `${humanSize(total)}, ${cnt} ops; ${ts} (${humanSize(total / secs)}/sec and ${formatFixed(cnt / secs, 4)} ops/sec)\n`
    );
  }
  return `${total},${cnt},${ts},${formatFixed(total / secs, 3)},${formatFixed(cnt / secs, 3)}\n`;
}

function isAlnum(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/** dump_buffer(): 16 bytes per line, hex then the alphanumeric characters. */
export function dumpBuffer(buf: Uint8Array, offset: number): string {
  let out = '';
  for (let i = 0; i < buf.length; i += 16) {
    const line = buf.subarray(i, Math.min(i + 16, buf.length));
    out += `${(offset + i).toString(16).padStart(8, '0')}:  `;
    for (const b of line) out += `${b.toString(16).padStart(2, '0')} `;
    out += ' ';
    for (const b of line) out += isAlnum(b) ? String.fromCharCode(b) : '.';
    out += '\n';
  }
  return out;
}

/** parse_pattern(): a byte value in C integer syntax, or null (caller prints the error). */
export function parsePattern(arg: string): number | null {
  // strtol("") parses nothing and leaves an empty tail: C accepts it as 0.
  const v = arg === '' ? 0 : strtolFull(arg);
  if (v === null || v < 0 || v > 255) return null;
  return v;
}
