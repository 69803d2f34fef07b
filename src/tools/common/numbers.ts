/**
 * Number and size parsing the way QEMU 7.2's util/cutils.c does it (qemu_strtosz and friends),
 * shared by the qemu-io and qemu-img front ends. Results are BigInt-exact up to UINT64_MAX and
 * returned as a tagged result, because the callers word the errors differently.
 */
import { Errno } from '../../errno.ts';

export type ParseResult =
  | { ok: true; value: bigint; warning?: string }
  | { ok: false; errno: number };

const UINT64_MAX = (1n << 64n) - 1n;
export const INT64_MAX = (1n << 63n) - 1n;
export const INT_MAX = 2147483647n;

function isSpace(c: string | undefined): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';
}

function digitValue(ch: string | undefined): number {
  if (ch === undefined) return 99;
  const code = ch.charCodeAt(0);
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 122) return code - 87;
  if (code >= 65 && code <= 90) return code - 55;
  return 99;
}

interface StrtoullResult {
  /** Index just past the parsed text; equals the start when nothing was parsed. */
  end: number;
  /** The value as C returns it: wrapped modulo 2^64 for a minus sign, UINT64_MAX on overflow. */
  value: bigint;
  overflow: boolean;
}

/**
 * glibc strtoull on text from `start`: whitespace, sign, then digits; base 0 takes 0x (hex)
 * and 0 (octal) prefixes, base 16 an optional 0x.
 */
function strtoull(text: string, start: number, base: 0 | 10 | 16): StrtoullResult {
  let i = start;
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
  let overflow = false;
  while (digitValue(text[i]) < b) {
    value = value * BigInt(b) + BigInt(digitValue(text[i]));
    if (value > UINT64_MAX) overflow = true;
    i++;
  }
  if (i === digitsStart) return { end: start, value: 0n, overflow: false };
  if (overflow) return { end: i, value: UINT64_MAX, overflow };
  return { end: i, value: negative ? -value & UINT64_MAX : value, overflow };
}

/** qemu_strtou64 with an end pointer: the value and where parsing stopped, or an errno. */
function strtou64Prefix(text: string, start: number, base: 0 | 10 | 16): { end: number; value: bigint; errno: number } {
  const r = strtoull(text, start, base);
  if (r.end === start) return { end: start, value: 0n, errno: Errno.EINVAL };
  if (r.overflow) return { end: r.end, value: UINT64_MAX, errno: Errno.ERANGE };
  return { end: r.end, value: r.value, errno: 0 };
}

export type NumberResult = { ok: true; value: bigint } | { ok: false; errno: 'EINVAL' | 'ERANGE' };

/**
 * qemu_strtou64(text, NULL, base): the whole text must be a number (check_strtox_error:
 * nothing parsed or text left over is EINVAL before an overflow's ERANGE).
 */
export function qemuStrtou64(text: string, base: 0 | 10 | 16): NumberResult {
  const r = strtoull(text, 0, base);
  if (r.end === 0 || r.end < text.length) return { ok: false, errno: 'EINVAL' };
  if (r.overflow) return { ok: false, errno: 'ERANGE' };
  return { ok: true, value: r.value };
}

function suffixMultiplier(c: string | undefined, unit: bigint): bigint {
  switch (c?.toUpperCase()) {
    case 'B':
      return 1n;
    case 'K':
      return unit;
    case 'M':
      return unit ** 2n;
    case 'G':
      return unit ** 3n;
    case 'T':
      return unit ** 4n;
    case 'P':
      return unit ** 5n;
    case 'E':
      return unit ** 6n;
    default:
      return -1n;
  }
}

/** strtod on a text starting with '.', as qemu_strtod_finite sees it: [end, value] or null. */
function parseFraction(text: string, start: number): { end: number; value: number } | null {
  const m = /^\.(\d*)([eE][+-]?\d+)?/.exec(text.slice(start));
  if (!m || m[1] === '') return null;
  return { end: start + m[0].length, value: Number(`0${m[0]}`) };
}

export interface StrtoszOptions {
  /** Suffix assumed when none is given: 'B' (qemu_strtosz) or 'M' (qemu_strtosz_MiB). */
  defaultSuffix?: 'B' | 'M';
  /** 1024 for binary units, 1000 for qemu_strtosz_metric. */
  unit?: 1000 | 1024;
}

/**
 * qemu_strtosz (7.2): decimal integer with optional fraction, or hex integer, then an optional
 * B/K/M/G/T/P/E suffix; the whole text must be consumed. A fraction needs a scaling suffix.
 * Hex with a suffix works but warns (deprecated in 7.2).
 */
export function qemuStrtosz(text: string, opts: StrtoszOptions = {}): ParseResult {
  const unit = BigInt(opts.unit ?? 1024);
  const defaultSuffix = opts.defaultSuffix ?? 'B';
  let warning: string | undefined;

  const intPart = strtou64Prefix(text, 0, 10);
  if (intPart.errno) return { ok: false, errno: intPart.errno };
  let end = intPart.end;
  let value = intPart.value;
  if (text.slice(0, end).includes('-')) return { ok: false, errno: Errno.EINVAL };

  let hex = false;
  // 64.64 fixed-point fraction, as QEMU extracts it.
  let fraction = 0n;
  if (value === 0n && (text[end] === 'x' || text[end] === 'X')) {
    const hexPart = strtou64Prefix(text, 0, 16);
    if (hexPart.errno) return { ok: false, errno: hexPart.errno };
    end = hexPart.end;
    value = hexPart.value;
    if (text[end] === '.') return { ok: false, errno: Errno.EINVAL };
    hex = true;
  } else if (text[end] === '.') {
    const f = parseFraction(text, end);
    if (f === null) {
      end++;
    } else if (/[eE]/.test(text.slice(end, f.end))) {
      return { ok: false, errno: Errno.EINVAL };
    } else {
      end = f.end;
      // C converts fraction * 2^64 to uint64; a value that rounded to 1.0 does not fit, and
      // x86 yields 0 for it.
      const scaled = f.value * 2 ** 64;
      fraction = scaled >= 2 ** 64 ? 0n : BigInt(Math.trunc(scaled));
    }
  }

  let mul = suffixMultiplier(text[end], unit);
  if (mul > 0n) {
    if (hex) warning = `Using a multiplier suffix on hex numbers is deprecated: ${text}`;
    end++;
  } else {
    mul = suffixMultiplier(defaultSuffix, unit);
  }

  let result: bigint;
  if (mul === 1n) {
    if (fraction !== 0n) return { ok: false, errno: Errno.EINVAL };
    result = value;
  } else {
    const scaledFraction = fraction * mul;
    // Round 0.5 upward, on the fraction's lowest 64 bits.
    const round = (scaledFraction & UINT64_MAX) >> 63n;
    result = value * mul + (scaledFraction >> 64n) + round;
    if (result > UINT64_MAX) {
      return end < text.length ? { ok: false, errno: Errno.EINVAL } : { ok: false, errno: Errno.ERANGE };
    }
  }
  if (end < text.length) return { ok: false, errno: Errno.EINVAL };
  return warning === undefined ? { ok: true, value: result } : { ok: true, value: result, warning };
}

/**
 * qemu-io's cvtnum: qemu_strtosz limited to INT64_MAX. Returns a JS number (exact below 2^53,
 * which every offset the block layer accepts is).
 */
export function cvtnum(text: string): ParseResult {
  const r = qemuStrtosz(text);
  if (!r.ok) return r;
  if (r.value > INT64_MAX) return { ok: false, errno: Errno.ERANGE };
  return r;
}

/** Outcome of qemu-img's cvtnum: the value, or QEMU's error lines (each for error_report). */
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

/** qemu-img's cvtnum(name, value): cvtnum_full up to INT64_MAX. */
export function imgCvtnum(name: string, value: string): CvtnumResult {
  return cvtnumFull(name, value, 0n, INT64_MAX);
}

/** qemu-io's wording of a cvtnum failure (printed on stdout). */
export function cvtnumErrorText(errno: number, arg: string): string {
  if (errno === Errno.EINVAL) return `Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- ${arg}`;
  if (errno === Errno.ERANGE) return `Parsing error: argument too large -- ${arg}`;
  return `Parsing error: ${arg}`;
}

/**
 * C's strtol(arg, &end, 0) with a check that the whole text was consumed; base prefixes 0x
 * (hex) and 0 (octal) as C accepts them. Returns null when text remains or nothing parsed;
 * the value saturates at the long range like glibc.
 */
export function strtolFull(text: string): number | null {
  const m = /^[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)$/.exec(text);
  if (!m) return null;
  const sign = m[1] === '-' ? -1n : 1n;
  const body = m[2]!;
  let v: bigint;
  if (/^0[xX]/.test(body)) v = BigInt(body);
  else if (body.length > 1 && body.startsWith('0')) v = BigInt(`0o${body.slice(1)}`);
  else v = BigInt(body);
  v *= sign;
  const LONG_MAX = (1n << 63n) - 1n;
  const LONG_MIN = -(1n << 63n);
  if (v > LONG_MAX) v = LONG_MAX;
  if (v < LONG_MIN) v = LONG_MIN;
  return Number(v);
}
