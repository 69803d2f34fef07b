import { Errno, ErrnoError } from '../errno.ts';
import type { GrowMode, Storage } from '../storage/types.ts';
import { asErrno } from './errors.ts';
import { delegateStorage } from '../storage/delegate.ts';

/**
 * Guarded Storage access for the engine. Header fields can name offsets far beyond what a
 * JS number holds exactly (or what any file can reach); QEMU reads such places as zeroes
 * (past EOF) and fails writes there, so do we, without handing absurd positions to Node.
 */
const LIMIT = Number.MAX_SAFE_INTEGER;
/**
 * BDRV_MAX_LENGTH (INT64_MAX aligned down to 1 GiB): the block layer fails requests that reach
 * past it, or start at a negative int64 (an entry with bit 63 set), with EIO before any driver
 * sees them. Found by the fuzzer: a refcount table entry 0x8000000000040000 must make
 * `check` report "Can't get refcount for cluster N: Input/output error", not refcount 0.
 */
const BDRV_MAX_LENGTH = 2 ** 63 - 2 ** 30;

function beyondBlockLayer(offset: number, length: number): boolean {
  return !(offset >= 0) || offset + length > BDRV_MAX_LENGTH;
}

export function readAt(storage: Storage, offset: number, buf: Uint8Array): void {
  if (buf.length === 0) return;
  if (beyondBlockLayer(offset, buf.length)) throw new ErrnoError(Errno.EIO);
  if (offset > LIMIT - buf.length) {
    buf.fill(0);
    return;
  }
  try {
    storage.read(offset, buf);
  } catch (err) {
    throw asErrno(err);
  }
}

export function writeAt(storage: Storage, offset: number, data: Uint8Array): void {
  if (data.length === 0) return;
  if (beyondBlockLayer(offset, data.length)) throw new ErrnoError(Errno.EIO);
  if (!(offset >= 0) || offset > LIMIT - data.length) throw new ErrnoError(Errno.EFBIG);
  try {
    storage.write(offset, data);
  } catch (err) {
    throw asErrno(err);
  }
}

export function zeroAt(storage: Storage, offset: number, length: number, unmap: boolean, noFallback = false): void {
  if (length <= 0) return;
  if (!(offset >= 0) || offset > LIMIT - length) throw new ErrnoError(Errno.EFBIG);
  try {
    storage.writeZeroes(offset, length, unmap, noFallback);
  } catch (err) {
    throw asErrno(err);
  }
}

export function discardAt(storage: Storage, offset: number, length: number): void {
  if (length <= 0 || !(offset >= 0) || offset > LIMIT - length) return;
  try {
    storage.discard(offset, length);
  } catch {
    // Discard is advisory; QEMU ignores its failures.
  }
}

export function sizeOf(storage: Storage): number {
  try {
    return storage.size();
  } catch (err) {
    throw asErrno(err);
  }
}

export function truncateTo(storage: Storage, size: number, prealloc: GrowMode = 'off'): void {
  try {
    storage.truncate(size, prealloc);
  } catch (err) {
    throw asErrno(err);
  }
}

export function flushStorage(storage: Storage): void {
  try {
    storage.flush();
  } catch (err) {
    throw asErrno(err);
  }
}

/** Write then flush: QEMU's bdrv_pwrite_sync(). */
export function writeSync(storage: Storage, offset: number, data: Uint8Array): void {
  writeAt(storage, offset, data);
  flushStorage(storage);
}

// Big-endian helpers on plain byte arrays (no DataView allocation per call).
export function be32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
export function be16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}
export function be64n(b: Uint8Array, o: number): bigint {
  return (BigInt(be32(b, o)) << 32n) | BigInt(be32(b, o + 4));
}
/** 64-bit value as a number; exact below 2^53. */
export function be64(b: Uint8Array, o: number): number {
  return be32(b, o) * 4294967296 + be32(b, o + 4);
}
export function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}
export function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}
export function put64(b: Uint8Array, o: number, v: number): void {
  put32(b, o, Math.floor(v / 4294967296) >>> 0);
  put32(b, o + 4, v >>> 0);
}
export function put64n(b: Uint8Array, o: number, v: bigint): void {
  put32(b, o, Number((v >> 32n) & 0xffffffffn));
  put32(b, o + 4, Number(v & 0xffffffffn));
}

/** BDRV_O_NO_FLUSH (cache=unsafe, and image creation): the storage is never flushed. */
export function withoutFlush(storage: Storage): Storage {
  return delegateStorage(storage, { flush: () => {} });
}
