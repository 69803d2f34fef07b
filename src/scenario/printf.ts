/**
 * bash's printf builtin: backslash escapes in the format (\n, \xHH, \NNN, ...), conversions
 * %d %i %u %o %x %X %c %s %b %% with flags, width and precision (length modifiers such as ll are
 * accepted and ignored), numbers read as bash reads them (0x.., 0.. octal, 'c), 64-bit, and the
 * format reused while arguments remain. The result is bytes: `\xff` is the byte 0xff, which is
 * what poke_file writes into an image.
 */
import { parseIntegerLiteral } from './expr.ts';

/** Largest field width or precision: keeps a format from producing an absurd amount of text. */
const MAX_FIELD = 1_000_000;

export class PrintfError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PrintfError';
  }
}

const SIMPLE_ESCAPES: Record<string, number> = { a: 7, b: 8, e: 27, E: 27, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, '"': 34, "'": 39, '?': 63 };

/** Appends the bytes of `text` with backslash escapes decoded; `octalZero` is %b's \0NNN form. */
function escapes(text: string, out: number[], octalZero: boolean): void {
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c !== '\\' || i + 1 >= text.length) {
      pushText(c, out);
      i++;
      continue;
    }
    const n = text[i + 1]!;
    if (n in SIMPLE_ESCAPES) {
      out.push(SIMPLE_ESCAPES[n]!);
      i += 2;
      continue;
    }
    if (n === 'x') {
      const m = /^[0-9a-fA-F]{1,2}/.exec(text.slice(i + 2));
      if (m) {
        out.push(parseInt(m[0], 16));
        i += 2 + m[0].length;
        continue;
      }
    }
    if (n === 'u' || n === 'U') {
      const m = (n === 'u' ? /^[0-9a-fA-F]{1,4}/ : /^[0-9a-fA-F]{1,8}/).exec(text.slice(i + 2));
      if (m) {
        pushText(String.fromCodePoint(parseInt(m[0], 16)), out);
        i += 2 + m[0].length;
        continue;
      }
    }
    const octal = (octalZero ? /^0[0-7]{0,3}/ : /^[0-7]{1,3}/).exec(text.slice(i + 1));
    if (octal) {
      out.push(parseInt(octal[0], 8) & 0xff);
      i += 1 + octal[0].length;
      continue;
    }
    // An unknown escape is kept as written.
    out.push(92);
    i++;
  }
}

function pushText(text: string, out: number[]): void {
  for (const b of Buffer.from(text, 'utf8')) out.push(b);
}

/** A numeric argument as bash's printf reads it. */
function number(arg: string | undefined): bigint {
  if (arg === undefined || arg === '') return 0n;
  if (/^['"]/.test(arg)) return BigInt(arg.codePointAt(1) ?? 0);
  const t = arg.trim();
  const neg = t.startsWith('-');
  const body = t.replace(/^[-+]/, '');
  const v = parseIntegerLiteral(body);
  if (v === null) {
    // bash: "printf: x: invalid number" and the value read so far; 64-bit overflow saturates.
    if (/^\d+$/.test(body)) return neg ? -(2n ** 63n) : 2n ** 63n - 1n;
    throw new PrintfError(`printf: ${arg}: invalid number`);
  }
  return BigInt.asIntN(64, neg ? -v : v);
}

interface Spec {
  flags: string;
  width?: number;
  precision?: number;
  conv: string;
}

function pad(body: string, spec: Spec, zeroAllowed: boolean, signLength = 0): string {
  const width = spec.width ?? 0;
  if (body.length >= width) return body;
  if (spec.flags.includes('-')) return body.padEnd(width, ' ');
  if (zeroAllowed && spec.flags.includes('0')) return body.slice(0, signLength) + body.slice(signLength).padStart(width - signLength, '0');
  return body.padStart(width, ' ');
}

function formatInteger(spec: Spec, value: bigint): string {
  const zeroOk = spec.precision === undefined;
  if (spec.conv === 'd' || spec.conv === 'i') {
    const neg = value < 0n;
    let digits = (neg ? -value : value).toString();
    if (spec.precision !== undefined) digits = spec.precision === 0 && value === 0n ? '' : digits.padStart(spec.precision, '0');
    const sign = neg ? '-' : spec.flags.includes('+') ? '+' : spec.flags.includes(' ') ? ' ' : '';
    return pad(sign + digits, spec, zeroOk, sign.length);
  }
  const u = BigInt.asUintN(64, value);
  const radix = spec.conv === 'o' ? 8 : spec.conv === 'u' ? 10 : 16;
  let digits = u.toString(radix);
  if (spec.conv === 'X') digits = digits.toUpperCase();
  if (spec.precision !== undefined) digits = spec.precision === 0 && u === 0n ? '' : digits.padStart(spec.precision, '0');
  let prefix = '';
  if (spec.flags.includes('#') && u !== 0n) {
    if (spec.conv === 'x') prefix = '0x';
    else if (spec.conv === 'X') prefix = '0X';
    else if (spec.conv === 'o' && !digits.startsWith('0')) prefix = '0';
  }
  return pad(prefix + digits, spec, zeroOk, prefix.length);
}

/** printf FORMAT ARGS... as bytes. */
export function printfBytes(format: string, args: readonly string[]): Buffer {
  const out: number[] = [];
  let argi = 0;
  const next = (): string | undefined => args[argi++];
  for (;;) {
    let conversions = 0;
    let i = 0;
    let literal = '';
    const flushLiteral = (): void => {
      escapes(literal, out, false);
      literal = '';
    };
    while (i < format.length) {
      const c = format[i]!;
      if (c !== '%') {
        literal += c;
        i++;
        continue;
      }
      if (format[i + 1] === '%') {
        literal += '%';
        i += 2;
        continue;
      }
      const m = /^%([-+ #0]*)(\*|\d+)?(?:\.(\*|\d*))?(hh|h|ll|l|j|z|t|L|q)?([diouxXcsbq])/.exec(format.slice(i));
      if (!m) throw new PrintfError(`printf: \`${format.slice(i, i + 2)}': invalid format character`);
      flushLiteral();
      conversions++;
      const width = m[2] === '*' ? Number(number(next())) : m[2] !== undefined ? Number(m[2]) : undefined;
      const precision = m[3] === '*' ? Number(number(next())) : m[3] !== undefined ? Number(m[3] || '0') : undefined;
      // bash would print a gigabyte for %999999999d; a scenario has no use for that.
      for (const v of [width, precision]) {
        if (v !== undefined && !(Math.abs(v) <= MAX_FIELD)) throw new PrintfError(`printf: field width or precision ${v} is too large (at most ${MAX_FIELD})`);
      }
      const spec: Spec = { flags: m[1]!, conv: m[5]!, ...(width !== undefined ? { width } : {}), ...(precision !== undefined ? { precision } : {}) };
      const arg = next();
      switch (spec.conv) {
        case 's':
        case 'q': {
          let s = arg ?? '';
          if (spec.precision !== undefined) s = s.slice(0, spec.precision);
          pushText(pad(s, spec, false), out);
          break;
        }
        case 'b': {
          const bytes: number[] = [];
          escapes(arg ?? '', bytes, true);
          const s = Buffer.from(bytes).toString('latin1');
          for (const ch of pad(spec.precision !== undefined ? s.slice(0, spec.precision) : s, spec, false)) out.push(ch.charCodeAt(0) & 0xff);
          break;
        }
        case 'c':
          pushText(pad((arg ?? '').slice(0, 1), spec, false), out);
          break;
        default:
          pushText(formatInteger(spec, number(arg)), out);
      }
      i += m[0].length;
    }
    flushLiteral();
    if (conversions === 0 || argi >= args.length) break;
  }
  return Buffer.from(out);
}

/** printf as text (the bytes read as UTF-8). */
export function printf(format: string, args: readonly string[]): string {
  return printfBytes(format, args).toString('utf8');
}
