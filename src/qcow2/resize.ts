/**
 * Resize (qcow2_co_truncate) and metadata/data preallocation (preallocate_co and the
 * falloc/full path), following QEMU's allocation order.
 */
import { Errno, ErrnoError } from '../errno.ts';
import { allocHostOffset, clusterDiscard, growL1Table, linkL2, shrinkL1Table, subclusterZeroize } from './cluster.ts';
import { HEADER_OFF_SIZE } from './constants.ts';
import { Qcow2Error, errnoOf, withErrno } from './errors.ts';
import { put64, sizeOf, truncateTo, writeAt, writeSync } from './io.ts';
import {
  allocClustersAt,
  freeClusters,
  getRefcount,
  getRefcountEntryBig,
  processDiscards,
  refcountArea,
  reftableOffset,
  setRefcountEntry,
  setRefcountEntryBig,
  writeCaches,
} from './refcount.ts';
import { writeGuest } from './rw.ts';
import type { State } from './state.ts';
import { DISCARD_ALWAYS, DISCARD_OTHER } from './state.ts';
import { invalidateMetadata } from './metadata.ts';
import type { L2Meta } from './cluster.ts';
import type { Storage } from '../storage/types.ts';

export type Prealloc = 'off' | 'metadata' | 'falloc' | 'full';

function fail(message: string, err: unknown): never {
  const e = errnoOf(err);
  throw new Qcow2Error(e, withErrno(message, e));
}

/** Grow a storage to size with the given preallocation (file-posix semantics). */
function growStorage(storage: Storage, size: number, mode: Prealloc): void {
  if (size <= sizeOf(storage)) {
    truncateTo(storage, size);
    return;
  }
  truncateTo(storage, size, mode === 'metadata' ? 'off' : mode);
}

/** preallocate_co(): allocate clusters and L2 entries for [offset, newLength). */
function preallocate(s: State, offset: number, newLength: number, mode: Prealloc): void {
  let bytes = newLength - offset;
  let off = offset;
  let hostOffset = 0;
  let curBytes = 0;
  while (bytes) {
    curBytes = Math.min(bytes, Math.floor(0x7fffffff / s.clusterSize) * s.clusterSize);
    let a;
    try {
      a = allocHostOffset(s, off, curBytes);
    } catch (err) {
      fail('Allocating clusters failed', err);
    }
    curBytes = a.bytes;
    hostOffset = a.hostOffset;
    try {
      for (const m of a.metas) {
        m.prealloc = true;
        linkL2(s, m);
      }
    } catch (err) {
      fail('Mapping clusters failed', err);
    }
    bytes -= curBytes;
    off += curBytes;
  }
  const fileLength = sizeOf(s.dataFile);
  if (hostOffset + curBytes > fileLength) {
    growStorage(s.dataFile, hostOffset + curBytes, mode);
  }
}

/** qcow2_get_last_cluster() */
function getLastCluster(s: State, size: number): number {
  for (let i = s.sizeToClusters(size) - 1; i >= 0; i--) {
    if (getRefcount(s, i) > 0) return i;
  }
  throw s.signalCorruption(true, 'There are no references in the refcount table.');
}

/** qcow2_shrink_reftable(): drop refcount blocks that no longer count anything. */
function shrinkReftable(s: State): void {
  const tmp = new Float64Array(s.refcountTableSize);
  for (let i = 0; i < s.refcountTableSize; i++) {
    const off = reftableOffset(s.refcountTable[i]!);
    if (!off) continue;
    const data = s.refblockCache.get(off).data;
    let unused: boolean;
    if (i === Math.floor(off / s.clusterSize / s.refcountBlockSize)) {
      const bi = (off / s.clusterSize) % s.refcountBlockSize;
      const rc = getRefcountEntryBig(data, bi, s.refcountOrder);
      setRefcountEntry(data, bi, s.refcountOrder, 0);
      unused = data.every((b) => b === 0);
      setRefcountEntryBig(data, bi, s.refcountOrder, rc);
    } else {
      unused = data.every((b) => b === 0);
    }
    tmp[i] = unused ? 0 : s.refcountTable[i]!;
  }
  const buf = new Uint8Array(s.refcountTableSize * 8);
  for (let i = 0; i < s.refcountTableSize; i++) if (tmp[i]) put64(buf, 8 * i, tmp[i]!);
  let ok = true;
  let failure: unknown = null;
  try {
    writeSync(s.file, s.refcountTableOffset, buf);
  } catch (err) {
    ok = false;
    failure = err;
  }
  for (let i = 0; i < s.refcountTableSize; i++) {
    if (s.refcountTable[i] && !tmp[i]) {
      if (ok) {
        try {
          discardRefcountBlock(s, reftableOffset(s.refcountTable[i]!));
        } catch (err) {
          ok = false;
          failure = err;
        }
      }
      s.refcountTable[i] = 0;
    }
  }
  invalidateMetadata(s);
  if (!s.cacheDiscards) processDiscards(s, ok);
  if (failure) throw failure;
}

/** qcow2_discard_refcount_block() */
function discardRefcountBlock(s: State, blockOffset: number): void {
  const ci = blockOffset / s.clusterSize;
  const index = Math.floor(ci / s.refcountBlockSize);
  const covering = index < s.refcountTableSize ? reftableOffset(s.refcountTable[index]!) : 0;
  if (!covering) {
    throw s.signalCorruption(true, `Refblock at 0x${blockOffset.toString(16)} is not covered by the refcount structures`);
  }
  const e = s.refblockCache.get(covering);
  const bi = ci % s.refcountBlockSize;
  const rc = getRefcountEntryBig(e.data, bi, s.refcountOrder);
  if (rc !== 1n) {
    s.signalCorruption(
      true,
      `Invalid refcount: refblock offset 0x${covering.toString(16)}, reftable index ${index}, block offset 0x${blockOffset.toString(16)}, refcount 0x${rc.toString(16)}`,
    );
    throw new ErrnoError(Errno.EINVAL);
  }
  setRefcountEntry(e.data, bi, s.refcountOrder, 0);
  s.refblockCache.markDirty(e);
  if (ci < s.freeClusterIndex) s.freeClusterIndex = ci;
  s.refblockCache.discard(blockOffset);
  if (s.discardPassthrough[DISCARD_OTHER]) s.discards.push({ offset: blockOffset, bytes: s.clusterSize });
}

export interface ResizeOptions {
  prealloc?: Prealloc;
  /** Refuse nothing here; the tool checks --shrink. */
  shrink?: boolean;
  /** Zero the new area (BDRV_REQ_ZERO_WRITE), e.g. when a longer backing file would show through. */
  zeroNewArea?: boolean;
}

/** qcow2_co_truncate() */
export function resize(s: State, offset: number, opts: ResizeOptions, afterResize: () => void): void {
  let prealloc: Prealloc = opts.prealloc ?? 'off';
  if (offset % 512) throw new Qcow2Error(Errno.EINVAL, 'The new size must be a multiple of 512');
  if (s.snapshots.length && s.version < 3) throw new Qcow2Error(Errno.ENOTSUP, "Can't resize a v2 image which has snapshots");
  if (s.hdr.bitmaps) throw new Qcow2Error(Errno.ENOTSUP, "Can't resize an image which has bitmaps");
  const oldLength = s.size;
  const newL1Size = s.sizeToL1(offset);

  if (offset < oldLength) {
    if (prealloc !== 'off') throw new Qcow2Error(Errno.EINVAL, "Preallocation can't be used for shrinking an image");
    const from = Math.ceil(offset / s.clusterSize) * s.clusterSize;
    try {
      clusterDiscard(s, from, oldLength - from, DISCARD_ALWAYS, true);
    } catch (err) {
      fail('Failed to discard cropped clusters', err);
    }
    try {
      shrinkL1Table(s, newL1Size);
    } catch (err) {
      fail('Failed to reduce the number of L2 tables', err);
    }
    try {
      shrinkReftable(s);
    } catch (err) {
      fail('Failed to discard unused refblocks', err);
    }
    const oldFileSize = sizeOf(s.file);
    let last: number;
    try {
      last = getLastCluster(s, oldFileSize);
    } catch (err) {
      fail('Failed to find the last cluster', err);
    }
    if ((last + 1) * s.clusterSize < oldFileSize) {
      try {
        truncateTo(s.file, (last + 1) * s.clusterSize);
      } catch {
        // QEMU only warns: "Failed to truncate the tail of the image"
      }
    }
  } else {
    try {
      growL1Table(s, newL1Size, true);
    } catch (err) {
      fail('Failed to grow the L1 table', err);
    }
    if (s.dataFileRaw && prealloc === 'off') prealloc = 'metadata';
  }

  switch (prealloc) {
    case 'off':
      if (s.hasDataFile) truncateTo(s.dataFile, offset);
      break;
    case 'metadata':
      preallocate(s, oldLength, offset, prealloc);
      break;
    case 'falloc':
    case 'full':
      if (s.hasDataFile) {
        preallocate(s, oldLength, offset, prealloc);
        break;
      }
      preallocateData(s, oldLength, offset, prealloc);
      break;
  }

  if (opts.zeroNewArea && offset > oldLength) {
    const zeroStart = Math.ceil(oldLength / s.subclusterSize) * s.subclusterSize;
    if (offset > zeroStart) {
      try {
        subclusterZeroizeAll(s, zeroStart, offset - zeroStart);
      } catch (err) {
        fail('Failed to zero out new clusters', err);
      }
    }
    if (zeroStart > oldLength) {
      const len = Math.min(zeroStart, offset) - oldLength;
      try {
        writeGuest(s, oldLength, new Uint8Array(len));
      } catch (err) {
        fail('Failed to zero out the new area', err);
      }
    }
  }

  if (prealloc !== 'off') {
    try {
      writeCaches(s);
    } catch (err) {
      fail('Failed to flush the preallocated area to disk', err);
    }
  }
  s.hdr.size = offset;
  const buf = new Uint8Array(8);
  put64(buf, 0, offset);
  try {
    writeSync(s.file, HEADER_OFF_SIZE, buf);
  } catch (err) {
    fail('Failed to update the image size', err);
  }
  s.l1VmStateIndex = newL1Size;
  afterResize();
}

function subclusterZeroizeAll(s: State, offset: number, bytes: number): void {
  const saved = s.hdr.size;
  s.hdr.size = offset + bytes;
  try {
    subclusterZeroize(s, offset, bytes, false);
  } finally {
    s.hdr.size = saved;
  }
}

/** The falloc/full branch of qcow2_co_truncate() for images without a data file. */
function preallocateData(s: State, oldLength: number, offset: number, mode: Prealloc): void {
  let oldFileSize = sizeOf(s.file);
  let last = -1;
  try {
    last = getLastCluster(s, oldFileSize);
  } catch {
    last = -1;
  }
  oldFileSize = last >= 0 ? (last + 1) * s.clusterSize : Math.ceil(oldFileSize / s.clusterSize) * s.clusterSize;
  let nbNewData = (Math.ceil(offset / s.clusterSize) * s.clusterSize - s.startOfCluster(oldLength)) / s.clusterSize;
  const nbNewL2 = Math.ceil(nbNewData / (s.clusterSize / s.l2EntrySize)) + 1;
  let allocationStart: number;
  try {
    allocationStart = refcountArea(s, oldFileSize, nbNewData + nbNewL2, true, 0, 0);
  } catch (err) {
    fail('Failed to resize refcount structures', err);
  }
  let allocated: number;
  try {
    allocated = allocClustersAt(s, allocationStart, nbNewData);
  } catch (err) {
    fail('Failed to allocate data clusters', err);
  }
  if (allocated !== nbNewData) throw new ErrnoError(Errno.EIO);
  const newFileSize = allocationStart + nbNewData * s.clusterSize;
  try {
    growStorage(s.file, newFileSize, mode);
  } catch (err) {
    freeClusters(s, allocationStart, nbNewData * s.clusterSize, DISCARD_OTHER);
    fail('Failed to resize underlying file', err);
  }
  let host = allocationStart;
  let guest = oldLength;
  while (nbNewData) {
    const n = Math.min(nbNewData, s.l2SliceSize - s.offsetToL2SliceIndex(guest));
    const cowStartLength = s.offsetIntoCluster(guest);
    guest = s.startOfCluster(guest);
    const m: L2Meta = {
      offset: guest,
      allocOffset: host,
      nbClusters: n,
      keepOldClusters: false,
      cowStart: { offset: 0, nbBytes: cowStartLength },
      cowEnd: { offset: n * s.clusterSize, nbBytes: 0 },
      skipCow: false,
      prealloc: true,
      data: null,
    };
    try {
      linkL2(s, m);
    } catch (err) {
      freeClusters(s, host, nbNewData * s.clusterSize, DISCARD_OTHER);
      fail('Failed to update L2 tables', err);
    }
    guest += n * s.clusterSize;
    host += n * s.clusterSize;
    nbNewData -= n;
  }
}

