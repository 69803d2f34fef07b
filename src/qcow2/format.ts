/** printf("%#" PRIx64): "0x…" in lower case, but plain "0" for zero. */
export function hexp(v: number | bigint): string {
  return v === 0 || v === 0n ? '0' : `0x${v.toString(16)}`;
}
