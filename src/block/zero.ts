/**
 * Fast whole-buffer tests and fills for the I/O paths (pattern checks, zero detection): the
 * comparisons run as native memcmp over chunks instead of per-byte JavaScript loops, which
 * dominate the run time of large requests otherwise.
 */
import { alignedBytes } from '../storage/aligned.ts';

const CHUNK = 1 << 20;
const zeroChunk = Buffer.alloc(CHUNK);
const patternChunks = new Map<number, Buffer>();

function patternChunk(byte: number): Buffer {
  if (byte === 0) return zeroChunk;
  let chunk = patternChunks.get(byte);
  if (!chunk) {
    chunk = Buffer.alloc(CHUNK, byte);
    patternChunks.set(byte, chunk);
  }
  return chunk;
}

/** Whether every byte of buf[start, end) equals `byte`. */
export function isFilledWith(buf: Uint8Array, byte: number, start = 0, end = buf.length): boolean {
  const b = byte & 0xff;
  // Data that is not the pattern usually differs in its first bytes: answer without creating
  // Buffer views (convert asks this for every 512-byte sector it copies).
  const probeEnd = Math.min(end, start + 16);
  for (let i = start; i < probeEnd; i++) if (buf[i] !== b) return false;
  if (probeEnd === end) return true;
  const ref = patternChunk(b);
  for (let pos = start; pos < end; pos += CHUNK) {
    const n = Math.min(CHUNK, end - pos);
    const view = Buffer.from(buf.buffer, buf.byteOffset + pos, n);
    if (!view.equals(n === CHUNK ? ref : ref.subarray(0, n))) return false;
  }
  return true;
}

/** Whether buf[start, end) holds only zero bytes (buffer_is_zero). */
export function isZeroRange(buf: Uint8Array, start = 0, end = buf.length): boolean {
  return isFilledWith(buf, 0, start, end);
}

/** A new buffer of `len` bytes, all `byte` (page-aligned when large, see alignedBytes). */
export function filledBuffer(len: number, byte: number): Uint8Array {
  const buf = alignedBytes(len);
  return byte === 0 ? buf : buf.fill(byte);
}

/** Whether a[aStart, aStart + len) equals b[bStart, bStart + len) (memcmp). */
export function rangesEqual(a: Uint8Array, aStart: number, b: Uint8Array, bStart: number, len: number): boolean {
  return Buffer.from(a.buffer, a.byteOffset + aStart, len).equals(Buffer.from(b.buffer, b.byteOffset + bStart, len));
}

const SECTOR = 512;

/**
 * qemu-img's compare_buffers over a[start..] and b[start..]: whether the first sector
 * differs, and how many bytes (whole sectors, or the rest) share that state.
 */
export function compareSectors(a: Uint8Array, b: Uint8Array, start: number, bytes: number): [boolean, number] {
  if (rangesEqual(a, start, b, start, bytes)) return [false, bytes];
  let i = Math.min(bytes, SECTOR);
  const res = !rangesEqual(a, start, b, start, i);
  while (i < bytes) {
    const len = Math.min(bytes - i, SECTOR);
    if (!rangesEqual(a, start + i, b, start + i, len) !== res) break;
    i += len;
  }
  return [res, i];
}

/** qemu-img's find_nonzero: the offset of the first sector of buf[0, n) with a nonzero byte, or -1. */
export function findNonzeroSector(buf: Uint8Array, n: number): number {
  if (isZeroRange(buf, 0, n)) return -1;
  const end = n - (n % SECTOR);
  let i = 0;
  for (; i < end; i += SECTOR) if (!isZeroRange(buf, i, i + SECTOR)) return i;
  if (i < n && !isZeroRange(buf, i, n)) return i;
  return -1;
}
