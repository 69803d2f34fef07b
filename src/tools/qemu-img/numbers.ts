/**
 * qemu-img's number handling on top of the shared parsers in tools/common: cvtnum_full's
 * messages, and the C strtoull(base 0) rules QemuOpts uses for number options and qemu-img
 * uses for counts (qemu_strtoul).
 */
import { Errno } from '../../errno.ts';
import { qemuStrtosz } from '../common/numbers.ts';

export const INT64_MAX = (1n << 63n) - 1n;
export const INT_MAX = 2147483647n;
const U64_MAX = (1n << 64n) - 1n;

function isSpace(ch: string | undefined): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\v' || ch === '\f' || ch === '\r';
}

function digitValue(ch: string | undefined): number {
  if (ch === undefined) return 99;
  const code = ch.charCodeAt(0);
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 122) return code - 87;
  if (code >= 65 && code <= 90) return code - 55;
  return 99;
}

export type NumberResult = { ok: true; value: bigint } | { ok: false; errno: 'EINVAL' | 'ERANGE' };

/**
 * qemu_strtou64(text, NULL, base): C strtoull (whitespace, sign, 0x/0 prefixes for base 0)
 * with the whole text consumed; a minus sign wraps modulo 2^64 as strtoull does.
 */
export function qemuStrtou64(text: string, base: 0 | 10 | 16): NumberResult {
  let i = 0;
  while (isSpace(text[i])) i++;
  let negative = false;
  if (text[i] === '+' || text[i] === '-') {
    negative = text[i] === '-';
    i++;
  }
  let b: number = base;
  if ((b === 0 || b === 16) && text[i] === '0' && (text[i + 1] === 'x' || text[i + 1] === 'X') && digitValue(text[i + 2]) < 16) {
    i += 2;
    b = 16;
  } else if (b === 0) {
    b = text[i] === '0' ? 8 : 10;
  }
  const digitsStart = i;
  let value = 0n;
  let range = false;
  while (digitValue(text[i]) < b) {
    value = value * BigInt(b) + BigInt(digitValue(text[i]));
    if (value > U64_MAX) range = true;
    i++;
  }
  if (i === digitsStart) return { ok: false, errno: 'EINVAL' };
  if (range) return { ok: false, errno: 'ERANGE' };
  if (i < text.length) return { ok: false, errno: 'EINVAL' };
  if (negative && value !== 0n) value = (1n << 64n) - value;
  return { ok: true, value };
}

/** Outcome of cvtnum: the value, or QEMU's error lines (each printed with error_report). */
export type CvtnumResult = { ok: true; value: bigint; warning?: string } | { ok: false; messages: string[] };

/** qemu-img's cvtnum_full(name, value, min, max). */
export function cvtnumFull(name: string, value: string, min: bigint, max: bigint): CvtnumResult {
  const r = qemuStrtosz(value);
  if (!r.ok && r.errno !== Errno.ERANGE) {
    return {
      ok: false,
      messages: [
        `Invalid ${name} specified. You may use k, M, G, T, P or E suffixes for`,
        'kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.',
      ],
    };
  }
  if (!r.ok || r.value > max || r.value < min) {
    return { ok: false, messages: [`Invalid ${name} specified. Must be between ${min} and ${max}.`] };
  }
  return r.warning === undefined ? { ok: true, value: r.value } : { ok: true, value: r.value, warning: r.warning };
}

export function cvtnum(name: string, value: string): CvtnumResult {
  return cvtnumFull(name, value, 0n, INT64_MAX);
}
