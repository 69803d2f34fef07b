/**
 * Fast whole-buffer tests and fills for the I/O paths (pattern checks, zero detection): the
 * comparisons run as native memcmp over chunks instead of per-byte JavaScript loops, which
 * dominate the run time of large requests otherwise.
 */
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
  const ref = patternChunk(byte & 0xff);
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

/** A new buffer of `len` bytes, all `byte` (uninitialised memory is filled once, natively). */
export function filledBuffer(len: number, byte: number): Uint8Array {
  if (byte === 0 || len === 0) return new Uint8Array(len);
  // A plain Uint8Array over its own ArrayBuffer (no pool offset, Uint8Array's slice()).
  return new Uint8Array(Buffer.allocUnsafeSlow(len).fill(byte).buffer, 0, len);
}
