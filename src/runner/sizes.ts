/** Sizes as coreutils' `truncate -s` reads them: bytes, or K/M/G/T meaning powers of 1024. */
export function parseTruncateSize(text: string): number {
  const m = /^(\d+)([KMGT]?)$/.exec(text);
  if (!m) throw new Error(`invalid size '${text}'`);
  const shift = { '': 0, K: 10, M: 20, G: 30, T: 40 }[m[2] as '' | 'K' | 'M' | 'G' | 'T'];
  return Number(m[1]) * 2 ** shift;
}
