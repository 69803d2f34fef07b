/**
 * L2 entry decoding. Entries are handled as two 32-bit words (hi, lo) read from the
 * big-endian table bytes; extended L2 entries add a 64-bit subcluster bitmap (bmHi = "reads
 * as zero" bits, bmLo = "allocated" bits).
 */
import { HI_COMPRESSED, HI_COPIED, HI_OFFSET_MASK, LO_OFFSET_MASK, LO_ZERO, TWO32 } from './constants.ts';
import { be32, put32 } from './io.ts';
import type { State } from './state.ts';

export const CT_UNALLOCATED = 0;
export const CT_ZERO_PLAIN = 1;
export const CT_ZERO_ALLOC = 2;
export const CT_NORMAL = 3;
export const CT_COMPRESSED = 4;

export const SC_UNALLOCATED_PLAIN = 0;
export const SC_UNALLOCATED_ALLOC = 1;
export const SC_ZERO_PLAIN = 2;
export const SC_ZERO_ALLOC = 3;
export const SC_NORMAL = 4;
export const SC_COMPRESSED = 5;
export const SC_INVALID = 6;

export function entryOffset(hi: number, lo: number): number {
  return (hi & HI_OFFSET_MASK) * TWO32 + ((lo & LO_OFFSET_MASK) >>> 0);
}

function hasOffset(hi: number, lo: number): boolean {
  return (hi & HI_OFFSET_MASK) !== 0 || (lo & LO_OFFSET_MASK) !== 0;
}

/** qcow2_get_cluster_type() */
export function clusterType(s: State, hi: number, lo: number): number {
  if (hi & HI_COMPRESSED) return CT_COMPRESSED;
  if (lo & LO_ZERO && !s.extL2) return hasOffset(hi, lo) ? CT_ZERO_ALLOC : CT_ZERO_PLAIN;
  if (!hasOffset(hi, lo)) {
    // Offset 0 is a valid place in an external data file; COPIED tells it apart.
    return s.hasDataFile && hi & HI_COPIED ? CT_NORMAL : CT_UNALLOCATED;
  }
  return CT_NORMAL;
}

export function isAllocatedType(ct: number): boolean {
  return ct === CT_COMPRESSED || ct === CT_NORMAL || ct === CT_ZERO_ALLOC;
}

/** qcow2_get_subcluster_type() */
export function subclusterType(s: State, hi: number, lo: number, bmHi: number, bmLo: number, sc: number): number {
  const ct = clusterType(s, hi, lo);
  if (s.extL2) {
    switch (ct) {
      case CT_COMPRESSED:
        return SC_COMPRESSED;
      case CT_NORMAL:
        if (bmHi & bmLo) return SC_INVALID;
        if ((bmHi >>> sc) & 1) return SC_ZERO_ALLOC;
        if ((bmLo >>> sc) & 1) return SC_NORMAL;
        return SC_UNALLOCATED_ALLOC;
      default:
        if (bmLo) return SC_INVALID;
        if ((bmHi >>> sc) & 1) return SC_ZERO_PLAIN;
        return SC_UNALLOCATED_PLAIN;
    }
  }
  switch (ct) {
    case CT_COMPRESSED:
      return SC_COMPRESSED;
    case CT_ZERO_PLAIN:
      return SC_ZERO_PLAIN;
    case CT_ZERO_ALLOC:
      return SC_ZERO_ALLOC;
    case CT_NORMAL:
      return SC_NORMAL;
    default:
      return SC_UNALLOCATED_PLAIN;
  }
}

/** Read/write access to one L2 table buffer. */
export function getHi(s: State, t: Uint8Array, i: number): number {
  return be32(t, i * s.l2EntrySize);
}
export function getLo(s: State, t: Uint8Array, i: number): number {
  return be32(t, i * s.l2EntrySize + 4);
}
export function getBmHi(s: State, t: Uint8Array, i: number): number {
  return s.extL2 ? be32(t, i * 16 + 8) : 0;
}
export function getBmLo(s: State, t: Uint8Array, i: number): number {
  return s.extL2 ? be32(t, i * 16 + 12) : 0;
}
export function setEntry(s: State, t: Uint8Array, i: number, hi: number, lo: number): void {
  put32(t, i * s.l2EntrySize, hi >>> 0);
  put32(t, i * s.l2EntrySize + 4, lo >>> 0);
}
export function setBitmap(t: Uint8Array, i: number, bmHi: number, bmLo: number): void {
  put32(t, i * 16 + 8, bmHi >>> 0);
  put32(t, i * 16 + 12, bmLo >>> 0);
}

/** hi/lo words of a host offset with optional flags. */
export function offsetHi(offset: number): number {
  return Math.floor(offset / TWO32) >>> 0;
}
export function offsetLo(offset: number): number {
  return offset >>> 0;
}

/** QCOW_OFLAG_SUB_ALLOC_RANGE(x, y) as a 32-bit mask (bits x..y-1). */
export function rangeMask(x: number, y: number): number {
  if (y <= x) return 0;
  const upper = y >= 32 ? 0xffffffff : (2 ** y - 1) >>> 0;
  const lower = (2 ** x - 1) >>> 0;
  return (upper & ~lower) >>> 0;
}

/** Count trailing zeros / ones of a 32-bit value (ctz32, cto32, clz32 semantics). */
export function ctz32(v: number): number {
  v >>>= 0;
  if (v === 0) return 32;
  return 31 - Math.clz32(v & -v);
}
export function cto32(v: number): number {
  return ctz32(~v >>> 0);
}

export { HI_COPIED, HI_COMPRESSED, LO_ZERO };
