/**
 * printf-style number formatting as glibc does it. JavaScript's toFixed() rounds exact ties
 * away from zero, glibc rounds them to even (0.0625 -> "0.062"), and the tools' output is
 * compared byte for byte, so the rounding is done here on the exact decimal expansion.
 */

/** The exact decimal expansion of a finite double, as [integer digits, fraction digits]. */
function exactDecimal(x: number): [string, string] {
  // Every double is m * 2^e; its expansion has at most -e fraction digits (e >= -1074).
  const text = x.toFixed(100);
  const dot = text.indexOf('.');
  let intPart = text.slice(0, dot);
  let frac = text.slice(dot + 1);
  // toFixed(100) is exact when the expansion needs <= 100 fraction digits: every double of
  // magnitude >= 2^-40 has its lowest mantissa bit at 2^-92 or above.
  if (x !== 0 && Math.abs(x) < 2 ** -40) {
    // Tiny magnitudes need more than 100 digits; compute exactly with BigInt.
    [intPart, frac] = bigExpansion(x);
  }
  return [intPart, frac.replace(/0+$/, '')];
}

function bigExpansion(x: number): [string, string] {
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat64(0, Math.abs(x));
  const bits = buf.getBigUint64(0);
  const expBits = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & ((1n << 52n) - 1n);
  let exp: number;
  if (expBits === 0) {
    exp = -1074;
  } else {
    mant |= 1n << 52n;
    exp = expBits - 1075;
  }
  if (exp >= 0) return [(mant << BigInt(exp)).toString(), ''];
  const scale = -exp;
  // mant / 2^scale = mant * 5^scale / 10^scale
  const digits = (mant * 5n ** BigInt(scale)).toString().padStart(scale + 1, '0');
  return [digits.slice(0, digits.length - scale), digits.slice(digits.length - scale)];
}

function incrementDecimal(digits: string): string {
  const arr = digits.split('');
  let i = arr.length - 1;
  for (; i >= 0; i--) {
    if (arr[i] === '9') {
      arr[i] = '0';
    } else {
      arr[i] = String.fromCharCode(arr[i]!.charCodeAt(0) + 1);
      return arr.join('');
    }
  }
  return `1${arr.join('')}`;
}

/** C's `%.<precision>f` (glibc: exact value, ties to even). Handles inf/nan like glibc. */
export function formatFixed(x: number, precision: number): string {
  if (Number.isNaN(x)) return x < 0 ? '-nan' : 'nan';
  if (!Number.isFinite(x)) return x < 0 ? '-inf' : 'inf';
  const negative = x < 0 || Object.is(x, -0);
  const [intPart, frac] = exactDecimal(x);
  const padded = frac.padEnd(precision + 1, '0');
  let kept = intPart + padded.slice(0, precision);
  const next = padded.charCodeAt(precision) - 48;
  const rest = padded.slice(precision + 1);
  let roundUp = false;
  if (next > 5) roundUp = true;
  else if (next === 5) {
    if (/[1-9]/.test(rest)) roundUp = true;
    else roundUp = (kept.charCodeAt(kept.length - 1) - 48) % 2 === 1;
  }
  if (roundUp) kept = incrementDecimal(kept);
  const intLen = kept.length - precision;
  let out = kept.slice(0, intLen).replace(/^0+(?=\d)/, '');
  if (out === '') out = '0';
  if (precision > 0) out += `.${kept.slice(intLen)}`;
  return negative ? `-${out}` : out;
}

/** C's `%0<width>.<precision>f` for non-negative values. */
export function formatFixedZeroPad(x: number, width: number, precision: number): string {
  return formatFixed(x, precision).padStart(width, '0');
}
