/**
 * Guest I/O paths: read (qcow2_co_preadv_part), write (qcow2_co_pwritev_part), compressed
 * write, and the block layer's splitting of write-zeroes and discard requests that QEMU
 * performs before the driver sees them (bdrv_co_do_pwrite_zeroes, bdrv_co_pdiscard), because
 * that splitting decides which clusters end up as zero flags and which get explicit zeroes.
 */
import { Errno, ErrnoError } from '../errno.ts';
import {
  allocCompressedClusterOffset,
  allocClusterAbort,
  allocHostOffset,
  clusterDiscard,
  getHostOffset,
  handleAllocSpace,
  linkL2,
  mergeCow,
  subclusterZeroize,
} from './cluster.ts';
import { compressCluster, decompressCluster } from './compress.ts';
import { INT_MAX } from './constants.ts';
import {
  SC_COMPRESSED,
  SC_NORMAL,
  SC_UNALLOCATED_ALLOC,
  SC_UNALLOCATED_PLAIN,
  SC_ZERO_ALLOC,
  SC_ZERO_PLAIN,
} from './entries.ts';
import { readAt, writeAt } from './io.ts';
import { preWriteOverlapCheck } from './metadata.ts';
import { freeClusters, parseCompressed } from './refcount.ts';
import type { State } from './state.ts';
import { DISCARD_NEVER, DISCARD_REQUEST } from './state.ts';

/** Last decompressed cluster, keyed by its descriptor; cleared by every modification. */
let lastCompressed: { state: State; hi: number; lo: number; data: Uint8Array } | null = null;

export function invalidateReadCache(): void {
  lastCompressed = null;
}

function readCompressed(s: State, hi: number, lo: number): Uint8Array {
  if (lastCompressed && lastCompressed.state === s && lastCompressed.hi === hi && lastCompressed.lo === lo) {
    return lastCompressed.data;
  }
  const { offset, size } = parseCompressed(s, hi, lo);
  const src = new Uint8Array(size);
  readAt(s.file, offset, src);
  const out = decompressCluster(s.hdr.compressionType, src, s.clusterSize);
  if (!out) throw new ErrnoError(Errno.EIO);
  lastCompressed = { state: s, hi, lo, data: out };
  return out;
}

/** Read through the backing node; past its end the block layer reads zeroes. */
function readBacking(s: State, offset: number, buf: Uint8Array): void {
  const b = s.backing!;
  const len = b.length();
  if (offset >= len) {
    buf.fill(0);
    return;
  }
  const n = Math.min(buf.length, len - offset);
  b.read(offset, n === buf.length ? buf : buf.subarray(0, n));
  if (n < buf.length) buf.fill(0, n);
}

/** qcow2_co_preadv_part(): guest read of [offset, offset+buf.length). */
export function readGuest(s: State, offset: number, buf: Uint8Array): void {
  s.assertAlive();
  let pos = 0;
  while (pos < buf.length) {
    const cur = Math.min(buf.length - pos, INT_MAX);
    const m = getHostOffset(s, offset + pos, cur);
    const part = buf.subarray(pos, pos + m.bytes);
    switch (m.type) {
      case SC_ZERO_PLAIN:
      case SC_ZERO_ALLOC:
        part.fill(0);
        break;
      case SC_UNALLOCATED_PLAIN:
      case SC_UNALLOCATED_ALLOC:
        if (s.backing) readBacking(s, offset + pos, part);
        else part.fill(0);
        break;
      case SC_COMPRESSED: {
        const data = readCompressed(s, m.compHi, m.compLo);
        const oic = s.offsetIntoCluster(offset + pos);
        part.set(data.subarray(oic, oic + m.bytes));
        break;
      }
      case SC_NORMAL:
        readAt(s.dataFile, m.hostOffset, part);
        break;
      default:
        throw new ErrnoError(Errno.EIO);
    }
    pos += m.bytes;
  }
}

export function assertWritable(s: State): void {
  s.assertAlive();
  if (s.readOnly) throw new ErrnoError(Errno.EACCES, 'Block node is read-only');
}

/** qcow2_co_pwritev_part(): guest write, allocating and COWing clusters as needed. */
export function writeGuest(s: State, offset: number, data: Uint8Array): void {
  lastCompressed = null;
  let pos = 0;
  while (pos < data.length) {
    const cur = Math.min(data.length - pos, INT_MAX);
    const a = allocHostOffset(s, offset + pos, cur);
    const chunk = data.subarray(pos, pos + a.bytes);
    let linked = 0;
    try {
      preWriteOverlapCheck(s, [], a.hostOffset, a.bytes, true);
      handleAllocSpace(s, a.metas);
      if (!mergeCow(offset + pos, a.bytes, chunk, a.metas)) writeAt(s.dataFile, a.hostOffset, chunk);
      for (const m of a.metas) {
        linkL2(s, m);
        linked++;
      }
    } catch (err) {
      for (const m of a.metas.slice(linked)) allocClusterAbort(s, m);
      throw err;
    }
    pos += a.bytes;
  }
}

/** Is the range known to read as zeroes, counting the backing chain (is_zero()). */
function isZero(s: State, offset: number, bytes: number): boolean {
  let off = offset;
  let len = Math.min(bytes, s.size - offset);
  while (len > 0) {
    const m = getHostOffset(s, off, len);
    const n = m.bytes;
    if (m.type === SC_ZERO_PLAIN || m.type === SC_ZERO_ALLOC) {
      // zero
    } else if (m.type === SC_UNALLOCATED_PLAIN || m.type === SC_UNALLOCATED_ALLOC) {
      if (s.backing) {
        const blen = s.backing.length();
        if (off < blen) {
          const within = Math.min(n, blen - off);
          if (!s.backing.isZero || !s.backing.isZero(off, within)) return false;
        }
      }
    } else {
      return false;
    }
    off += n;
    len -= n;
  }
  return true;
}

/** qcow2_co_pwrite_zeroes(); ENOTSUP means "write explicit zeroes instead". */
function driverWriteZeroes(s: State, offset: number, bytes: number, mayUnmap: boolean): void {
  const head = offset % s.subclusterSize;
  let tail = Math.ceil((offset + bytes) / s.subclusterSize) * s.subclusterSize - (offset + bytes);
  if (offset + bytes === s.size) tail = 0;
  let off = offset;
  let len = bytes;
  if (head || tail) {
    if (!(isZero(s, offset - head, head) && isZero(s, offset + bytes, tail))) throw new ErrnoError(Errno.ENOTSUP);
    off = offset - head;
    len = s.subclusterSize;
    const m = getHostOffset(s, off, len);
    if (
      m.type !== SC_UNALLOCATED_PLAIN &&
      m.type !== SC_UNALLOCATED_ALLOC &&
      m.type !== SC_ZERO_PLAIN &&
      m.type !== SC_ZERO_ALLOC
    ) {
      throw new ErrnoError(Errno.ENOTSUP);
    }
  }
  subclusterZeroize(s, off, len, mayUnmap);
}

/** bdrv_co_do_pwrite_zeroes() around the driver: aligned bulk as zero flags, fallback writes. */
export function writeZeroesGuest(s: State, offset: number, bytes: number, mayUnmap: boolean, noFallback = false): void {
  lastCompressed = null;
  const align = s.subclusterSize;
  let head = offset % align;
  const tail = (offset + bytes) % align;
  const maxZeroes = Math.floor(INT_MAX / align) * align;
  // QEMU 7.2 clears MAY_UNMAP for v2 images (supported_zero_flags = 0).
  const unmap = s.version >= 3 && mayUnmap;
  let off = offset;
  let left = bytes;
  while (left > 0) {
    let num = left;
    if (head) {
      num = Math.min(left, align - head);
      head = (head + num) % align;
    } else if (tail && num > align) {
      num -= tail;
    }
    if (num > maxZeroes) num = maxZeroes;
    try {
      driverWriteZeroes(s, off, num, unmap);
    } catch (err) {
      if (!(err instanceof ErrnoError) || err.errno !== Errno.ENOTSUP || noFallback) throw err;
      writeZeroBuffer(s, off, num);
    }
    off += num;
    left -= num;
  }
}

const ZERO_CHUNK = 16 * 1024 * 1024;
function writeZeroBuffer(s: State, offset: number, bytes: number): void {
  let off = offset;
  let left = bytes;
  while (left > 0) {
    const n = Math.min(left, ZERO_CHUNK);
    writeGuest(s, off, new Uint8Array(n));
    off += n;
    left -= n;
  }
}

/** qcow2_co_pdiscard(): only whole clusters, or the image's partial last cluster. */
function driverDiscard(s: State, offset: number, bytes: number): void {
  // Without zero flags (v2), discarding could expose stale backing data.
  if (s.version < 3 && s.backing) return;
  if (s.offsetIntoCluster(offset) || s.offsetIntoCluster(bytes)) {
    if (s.offsetIntoCluster(offset) || offset + bytes !== s.size) return;
  }
  clusterDiscard(s, offset, bytes, DISCARD_REQUEST, false);
}

/** bdrv_co_pdiscard(): split into an unaligned head, the aligned bulk and the tail. */
export function discardGuest(s: State, offset: number, bytes: number): void {
  lastCompressed = null;
  const align = s.clusterSize;
  let head = offset % align;
  const tail = (offset + bytes) % align;
  let off = offset;
  let left = bytes;
  while (left > 0) {
    let num = left;
    if (head) {
      num = Math.min(left, align - head);
      head = (head + num) % align;
    } else if (tail && num > align) {
      num -= tail;
    }
    driverDiscard(s, off, num);
    off += num;
    left -= num;
  }
}

/** qcow2_co_pwritev_compressed_part(): whole clusters (or the image's last partial one). */
export function writeCompressedGuest(s: State, offset: number, data: Uint8Array): void {
  lastCompressed = null;
  if (s.hasDataFile) throw new ErrnoError(Errno.ENOTSUP);
  if (data.length === 0) return;
  if (s.offsetIntoCluster(offset)) throw new ErrnoError(Errno.EINVAL);
  if (s.offsetIntoCluster(data.length) && offset + data.length !== s.size) throw new ErrnoError(Errno.EINVAL);
  for (let pos = 0; pos < data.length; pos += s.clusterSize) {
    const chunk = data.subarray(pos, Math.min(pos + s.clusterSize, data.length));
    let buf = chunk;
    if (chunk.length !== s.clusterSize) {
      // The image's partial last cluster compresses as a whole cluster padded with zeroes.
      buf = new Uint8Array(s.clusterSize);
      buf.set(chunk);
    }
    const out = compressCluster(s.hdr.compressionType, buf, s.clusterSize - 1);
    if (!out) {
      writeGuest(s, offset + pos, chunk);
      continue;
    }
    const host = allocCompressedClusterOffset(s, offset + pos, out.length);
    try {
      preWriteOverlapCheck(s, [], host, out.length, true);
      writeAt(s.file, host, out);
    } catch (err) {
      freeClusters(s, host, out.length, DISCARD_NEVER);
      throw err;
    }
  }
}

/** One run of uniform mapping, as qcow2_co_block_status reports it. */
export interface Qcow2BlockStatus {
  /** Bytes from the queried offset sharing this status (> 0). */
  length: number;
  /**
   * unallocated: falls through to the backing file (or reads zeroes without one);
   * zero: zero flag without host cluster; zero-alloc: zero flag, host cluster kept;
   * data: stored as-is at hostOffset; compressed: stored compressed;
   * unallocated-alloc: extended-L2 subcluster of an allocated cluster that is not written.
   */
  kind: 'unallocated' | 'unallocated-alloc' | 'zero' | 'zero-alloc' | 'data' | 'compressed';
  /** Valid for data, zero-alloc and unallocated-alloc (BDRV_BLOCK_OFFSET_VALID). */
  hostOffset?: number;
  /** hostOffset is an offset in the external data file rather than the image file. */
  inDataFile: boolean;
}

const KINDS: Qcow2BlockStatus['kind'][] = ['unallocated', 'unallocated-alloc', 'zero', 'zero-alloc', 'data', 'compressed'];

export function blockStatusGuest(s: State, offset: number, length: number): Qcow2BlockStatus {
  s.assertAlive();
  const m = getHostOffset(s, offset, Math.min(INT_MAX, length));
  const kind = KINDS[m.type]!;
  const res: Qcow2BlockStatus = { length: m.bytes, kind, inDataFile: s.hasDataFile };
  if (m.type === SC_NORMAL || m.type === SC_ZERO_ALLOC || m.type === SC_UNALLOCATED_ALLOC) res.hostOffset = m.hostOffset;
  return res;
}
