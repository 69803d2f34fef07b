/**
 * Guest-to-host mapping (QEMU's qcow2-cluster.c): L1/L2 lookup, allocation of clusters for
 * writes with copy-on-write of partially written clusters, discard and zeroing. The loop
 * structure follows QEMU closely because it decides the order in which L2 tables and data
 * clusters are allocated, and therefore the file layout.
 *
 * Write ordering (crash safety): data clusters are allocated (refcounts raised in the
 * refcount cache), guest data and COW data are written, and only then do L2 entries point
 * to them; the L2 cache depends on the refcount cache and, after COW, on a storage flush.
 * A new L2 table is written and flushed before the L1 entry that references it.
 */
import { Errno, ErrnoError } from '../errno.ts';
import type { CacheEntry } from './cache.ts';
import { HEADER_OFF_L1_SIZE, HI_COMPRESSED, HI_COPIED, INT_MAX, LO_ZERO, QCOW_MAX_L1_SIZE, REQUEST_MAX_BYTES } from './constants.ts';
import {
  CT_COMPRESSED,
  CT_NORMAL,
  CT_UNALLOCATED,
  CT_ZERO_ALLOC,
  CT_ZERO_PLAIN,
  SC_COMPRESSED,
  SC_INVALID,
  SC_NORMAL,
  SC_UNALLOCATED_ALLOC,
  SC_UNALLOCATED_PLAIN,
  SC_ZERO_ALLOC,
  SC_ZERO_PLAIN,
  clusterType,
  cto32,
  ctz32,
  entryOffset,
  getBmHi,
  getBmLo,
  getHi,
  getLo,
  isAllocatedType,
  offsetHi,
  offsetLo,
  rangeMask,
  setBitmap,
  setEntry,
  subclusterType,
} from './entries.ts';
import { hexp } from './format.ts';
import { flushStorage, put32, put64, writeAt, writeSync, zeroAt } from './io.ts';
import { invalidateMetadata, noteL2Moved, OL_ACTIVE_L1, preWriteOverlapCheck } from './metadata.ts';
import {
  allocBytes,
  allocClusters,
  allocClustersAt,
  freeAnyCluster,
  freeClusters,
  processDiscards,
} from './refcount.ts';
import type { DiscardType, State } from './state.ts';
import { DISCARD_ALWAYS, DISCARD_NEVER, DISCARD_OTHER, DISCARD_REQUEST } from './state.ts';
import { readGuest } from './rw.ts';

const INV = -1;

/** qcow2_write_l1_entry(): one entry, written synchronously. */
export function writeL1Entry(s: State, l1Index: number): void {
  const buf = new Uint8Array(8);
  put32(buf, 0, s.l1Hi[l1Index]!);
  put32(buf, 4, s.l1Lo[l1Index]!);
  const at = s.l1TableOffset + 8 * l1Index;
  preWriteOverlapCheck(s, [OL_ACTIVE_L1], at, 8, false);
  writeSync(s.file, at, buf);
}

function l1Bytes(s: State, size: number): Uint8Array {
  const buf = new Uint8Array(size * 8);
  for (let i = 0; i < Math.min(size, s.l1Size); i++) {
    put32(buf, 8 * i, s.l1Hi[i]!);
    put32(buf, 8 * i + 4, s.l1Lo[i]!);
  }
  return buf;
}

/** qcow2_grow_l1_table(): move the L1 table to a larger allocation. */
export function growL1Table(s: State, minSize: number, exactSize: boolean): void {
  if (minSize <= s.l1Size) return;
  if (minSize > Math.floor(INT_MAX / 8)) throw new ErrnoError(Errno.EFBIG);
  let newSize: number;
  if (exactSize) {
    newSize = minSize;
  } else {
    newSize = Math.max(s.l1Size, 1);
    while (minSize > newSize) newSize = Math.ceil((newSize * 3) / 2);
  }
  if (newSize > QCOW_MAX_L1_SIZE / 8) throw new ErrnoError(Errno.EFBIG);
  const table = l1Bytes(s, newSize);
  const newOffset = allocClusters(s, newSize * 8);
  try {
    s.refblockCache.flush();
    preWriteOverlapCheck(s, [], newOffset, newSize * 8, false);
    writeSync(s.file, newOffset, table);
    const data = new Uint8Array(12);
    put32(data, 0, newSize);
    put64(data, 4, newOffset);
    writeSync(s.file, HEADER_OFF_L1_SIZE, data);
  } catch (err) {
    freeClusters(s, newOffset, newSize * 8, DISCARD_OTHER);
    throw err;
  }
  const oldOffset = s.l1TableOffset;
  const oldSize = s.l1Size;
  const hi = new Uint32Array(newSize);
  const lo = new Uint32Array(newSize);
  hi.set(s.l1Hi.subarray(0, oldSize));
  lo.set(s.l1Lo.subarray(0, oldSize));
  s.l1Hi = hi;
  s.l1Lo = lo;
  s.hdr.l1TableOffset = newOffset;
  s.hdr.l1Size = newSize;
  invalidateMetadata(s);
  freeClusters(s, oldOffset, oldSize * 8, DISCARD_OTHER);
}

/** qcow2_shrink_l1_table(): drop the L2 tables past exactSize entries (the size stays). */
export function shrinkL1Table(s: State, exactSize: number): void {
  if (exactSize >= s.l1Size) return;
  try {
    zeroAt(s.file, s.l1TableOffset + exactSize * 8, (s.l1Size - exactSize) * 8, false);
    flushStorage(s.file);
  } catch (err) {
    for (let i = exactSize; i < s.l1Size; i++) s.setL1(i, 0, false);
    throw err;
  }
  for (let i = s.l1Size - 1; i > exactSize - 1; i--) {
    const off = s.l1Offset(i);
    if (off === 0) continue;
    freeClusters(s, off, s.clusterSize, DISCARD_ALWAYS);
    s.setL1(i, 0, false);
  }
  invalidateMetadata(s);
}

/** l2_allocate(): new L2 table for l1Index, copying the old one (COW of a shared table). */
function l2Allocate(s: State, l1Index: number): void {
  const oldOffset = s.l1Offset(l1Index);
  const oldHi = s.l1Hi[l1Index]!;
  const oldLo = s.l1Lo[l1Index]!;
  const l2Offset = allocClusters(s, s.l2Size * s.l2EntrySize);
  try {
    if (l2Offset === 0) throw s.signalCorruption(true, 'Preventing invalid allocation of L2 table at offset 0');
    s.refblockCache.flush();
    const e = s.l2Cache.getEmpty(l2Offset);
    if (oldOffset === 0) {
      e.data.fill(0);
    } else {
      e.data.set(s.l2Cache.get(oldOffset).data);
    }
    s.l2Cache.markDirty(e);
    s.l2Cache.flush();
    s.setL1(l1Index, l2Offset, true);
    noteL2Moved(s, l2Offset, oldOffset);
    writeL1Entry(s, l1Index);
  } catch (err) {
    s.l1Hi[l1Index] = oldHi;
    s.l1Lo[l1Index] = oldLo;
    invalidateMetadata(s);
    if (l2Offset > 0) {
      s.l2Cache.discard(l2Offset);
      freeClusters(s, l2Offset, s.clusterSize, DISCARD_ALWAYS);
    }
    throw err;
  }
}

export interface ClusterTable {
  entry: CacheEntry;
  /** Index of the guest offset's entry in the (whole) L2 table. */
  index: number;
  /** Entries left in the current L2 slice, starting at index. */
  sliceLeft: number;
}

/** get_cluster_table(): the L2 table for offset, allocated (or COWed) if needed. */
export function getClusterTable(s: State, offset: number): ClusterTable {
  const l1Index = s.offsetToL1Index(offset);
  if (l1Index >= s.l1Size) growL1Table(s, l1Index + 1, false);
  let l2Offset = s.l1Offset(l1Index);
  if (s.offsetIntoCluster(l2Offset)) {
    throw s.signalCorruption(true, `L2 table offset ${hexp(l2Offset)} unaligned (L1 index: ${hexp(l1Index)})`);
  }
  if (!s.l1Copied(l1Index)) {
    l2Allocate(s, l1Index);
    if (l2Offset) freeClusters(s, l2Offset, s.l2Size * s.l2EntrySize, DISCARD_OTHER);
    l2Offset = s.l1Offset(l1Index);
  }
  const entry = s.l2Cache.get(l2Offset);
  return { entry, index: s.offsetToL2Index(offset), sliceLeft: s.l2SliceSize - s.offsetToL2SliceIndex(offset) };
}

/** Result of getHostOffset(). */
export interface HostMapping {
  /** Bytes from the queried offset with the same subcluster type (and contiguous host data). */
  bytes: number;
  type: number;
  /** Host offset of the queried byte (normal / zero-alloc / unallocated-alloc). */
  hostOffset: number;
  /** Raw entry words for compressed clusters. */
  compHi: number;
  compLo: number;
}

/** qcow2_get_subcluster_range_type() */
function subclusterRange(s: State, hi: number, lo: number, bmHi: number, bmLo: number, scFrom: number): { n: number; type: number } {
  const type = subclusterType(s, hi, lo, bmHi, bmLo, scFrom);
  if (type === SC_INVALID) return { n: -1, type };
  if (!s.extL2 || type === SC_COMPRESSED) return { n: s.subclustersPerCluster - scFrom, type };
  let val: number;
  switch (type) {
    case SC_NORMAL:
      val = (bmLo | rangeMask(0, scFrom)) >>> 0;
      return { n: cto32(val) - scFrom, type };
    case SC_ZERO_PLAIN:
    case SC_ZERO_ALLOC:
      val = (bmHi | rangeMask(0, scFrom)) >>> 0;
      return { n: cto32(val) - scFrom, type };
    default:
      val = ((bmHi | bmLo) & ~rangeMask(0, scFrom)) >>> 0;
      return { n: ctz32(val) - scFrom, type };
  }
}

/** count_contiguous_subclusters(); -1 with badIndex set on an invalid entry. */
function countContiguousSubclusters(
  s: State,
  t: Uint8Array,
  index: number,
  nbClusters: number,
  scIndex: number,
  bad: { index: number },
): number {
  let count = 0;
  let checkOffset = false;
  let expectedOffset = 0;
  let expectedType = SC_NORMAL;
  for (let i = 0; i < nbClusters; i++) {
    const firstSc = i === 0 ? scIndex : 0;
    const hi = getHi(s, t, index + i);
    const lo = getLo(s, t, index + i);
    const r = subclusterRange(s, hi, lo, getBmHi(s, t, index + i), getBmLo(s, t, index + i), firstSc);
    if (r.n < 0) {
      bad.index = index + i;
      return -1;
    }
    if (i === 0) {
      if (r.type === SC_COMPRESSED) return r.n;
      expectedType = r.type;
      expectedOffset = entryOffset(hi, lo);
      checkOffset = r.type === SC_NORMAL || r.type === SC_ZERO_ALLOC || r.type === SC_UNALLOCATED_ALLOC;
    } else if (r.type !== expectedType) {
      break;
    } else if (checkOffset) {
      expectedOffset += s.clusterSize;
      if (expectedOffset !== entryOffset(hi, lo)) break;
    }
    count += r.n;
    if (firstSc + r.n < s.subclustersPerCluster) break;
  }
  return count;
}

/** qcow2_get_host_offset(): map a guest range to its subcluster type and host offset. */
export function getHostOffset(s: State, offset: number, bytes: number): HostMapping {
  const offsetInCluster = s.offsetIntoCluster(offset);
  let bytesNeeded = bytes + offsetInCluster;
  let bytesAvailable = (s.l2SliceSize - s.offsetToL2SliceIndex(offset)) * s.clusterSize;
  if (bytesNeeded > bytesAvailable) bytesNeeded = bytesAvailable;
  const res: HostMapping = { bytes: 0, type: SC_UNALLOCATED_PLAIN, hostOffset: 0, compHi: 0, compLo: 0 };
  const l1Index = s.offsetToL1Index(offset);
  let type = SC_UNALLOCATED_PLAIN;
  out: {
    if (l1Index >= s.l1Size) break out;
    const l2Offset = s.l1Offset(l1Index);
    if (!l2Offset) break out;
    if (s.offsetIntoCluster(l2Offset)) {
      throw s.signalCorruption(true, `L2 table offset ${hexp(l2Offset)} unaligned (L1 index: ${hexp(l1Index)})`);
    }
    const t = s.l2Cache.get(l2Offset).data;
    const l2Index = s.offsetToL2Index(offset);
    const scIndex = s.offsetToScIndex(offset);
    const hi = getHi(s, t, l2Index);
    const lo = getLo(s, t, l2Index);
    const nbClusters = s.sizeToClusters(bytesNeeded);
    type = subclusterType(s, hi, lo, getBmHi(s, t, l2Index), getBmLo(s, t, l2Index), scIndex);
    const sliceIdx = s.offsetToL2SliceIndex(offset);
    if (s.version < 3 && (type === SC_ZERO_PLAIN || type === SC_ZERO_ALLOC)) {
      throw s.signalCorruption(
        true,
        `Zero cluster entry found in pre-v3 image (L2 offset: ${hexp(l2Offset)}, L2 index: ${hexp(sliceIdx)})`,
      );
    }
    switch (type) {
      case SC_COMPRESSED:
        if (s.hasDataFile) {
          throw s.signalCorruption(
            true,
            `Compressed cluster entry found in image with external data file (L2 offset: ${hexp(l2Offset)}, L2 index: ${hexp(sliceIdx)})`,
          );
        }
        res.compHi = hi;
        res.compLo = lo;
        break;
      case SC_ZERO_ALLOC:
      case SC_NORMAL:
      case SC_UNALLOCATED_ALLOC: {
        const hostCluster = entryOffset(hi, lo);
        res.hostOffset = hostCluster + offsetInCluster;
        if (s.offsetIntoCluster(hostCluster)) {
          throw s.signalCorruption(
            true,
            `Cluster allocation offset ${hexp(hostCluster)} unaligned (L2 offset: ${hexp(l2Offset)}, L2 index: ${hexp(sliceIdx)})`,
          );
        }
        if (s.hasDataFile && res.hostOffset !== offset) {
          throw s.signalCorruption(
            true,
            `External data file host cluster offset ${hexp(hostCluster)} does not match guest cluster offset: ${hexp(offset - offsetInCluster)}, L2 index: ${hexp(sliceIdx)})`,
          );
        }
        break;
      }
      default:
        break;
    }
    const bad = { index: 0 };
    const sc = countContiguousSubclusters(s, t, l2Index, nbClusters, scIndex, bad);
    if (sc < 0) {
      throw s.signalCorruption(
        true,
        `Invalid cluster entry found  (L2 offset: ${hexp(l2Offset)}, L2 index: ${hexp(bad.index % s.l2SliceSize)})`,
      );
    }
    bytesAvailable = (sc + scIndex) * s.subclusterSize;
  }
  if (bytesAvailable > bytesNeeded) bytesAvailable = bytesNeeded;
  res.bytes = bytesAvailable - offsetInCluster;
  res.type = type;
  return res;
}

/** One region of an allocation that needs its L2 entries updated (QCowL2Meta). */
export interface L2Meta {
  offset: number;
  allocOffset: number;
  nbClusters: number;
  keepOldClusters: boolean;
  cowStart: { offset: number; nbBytes: number };
  cowEnd: { offset: number; nbBytes: number };
  skipCow: boolean;
  prealloc: boolean;
  /** Guest data merged into the COW write (merge_cow). */
  data: Uint8Array | null;
}

/** calculate_l2_meta() */
function calculateL2Meta(
  s: State,
  hostClusterOffset: number,
  guestOffset: number,
  bytes: number,
  t: Uint8Array,
  index: number,
  metas: L2Meta[],
  keepOld: boolean,
): void {
  const cowStartTo = s.offsetIntoCluster(guestOffset);
  const cowEndFrom = cowStartTo + bytes;
  const nbClusters = s.sizeToClusters(cowEndFrom);
  let skipCow = keepOld;
  for (let i = 0; i < nbClusters; i++) {
    const hi = getHi(s, t, index + i);
    const lo = getLo(s, t, index + i);
    const bmHi = getBmHi(s, t, index + i);
    const bmLo = getBmLo(s, t, index + i);
    let type: number;
    if (skipCow) {
      const writeFrom = Math.max(cowStartTo, i * s.clusterSize);
      const writeTo = Math.min(cowEndFrom, (i + 1) * s.clusterSize);
      const firstSc = s.offsetToScIndex(writeFrom);
      const lastSc = s.offsetToScIndex(writeTo - 1);
      const r = subclusterRange(s, hi, lo, bmHi, bmLo, firstSc);
      type = r.type;
      if (type !== SC_NORMAL || firstSc + r.n <= lastSc) skipCow = false;
    } else {
      type = subclusterType(s, hi, lo, bmHi, bmLo, 0);
    }
    if (type === SC_INVALID) {
      const l1Index = s.offsetToL1Index(guestOffset);
      throw s.signalCorruption(
        true,
        `Invalid cluster entry found (L2 offset: ${hexp(s.l1Offset(l1Index))}, L2 index: ${hexp((index + i) % s.l2SliceSize)})`,
      );
    }
  }
  if (skipCow) return;

  let hi = getHi(s, t, index);
  let lo = getLo(s, t, index);
  let bmHi = getBmHi(s, t, index);
  let bmLo = getBmLo(s, t, index);
  let scIndex = s.offsetToScIndex(guestOffset);
  let type = subclusterType(s, hi, lo, bmHi, bmLo, scIndex);
  let cowStartFrom: number;
  if (!keepOld) {
    switch (type) {
      case SC_COMPRESSED:
        cowStartFrom = 0;
        break;
      case SC_NORMAL:
      case SC_ZERO_ALLOC:
      case SC_UNALLOCATED_ALLOC:
        cowStartFrom = s.extL2 ? Math.min(scIndex, ctz32(bmLo)) * s.subclusterSize : 0;
        break;
      default:
        cowStartFrom = scIndex * s.subclusterSize;
    }
  } else {
    cowStartFrom = type === SC_NORMAL ? cowStartTo : scIndex * s.subclusterSize;
  }

  const lastIndex = index + nbClusters - 1;
  hi = getHi(s, t, lastIndex);
  lo = getLo(s, t, lastIndex);
  bmHi = getBmHi(s, t, lastIndex);
  bmLo = getBmLo(s, t, lastIndex);
  scIndex = s.offsetToScIndex(guestOffset + bytes - 1);
  type = subclusterType(s, hi, lo, bmHi, bmLo, scIndex);
  let cowEndTo: number;
  const roundUp = (v: number, a: number): number => Math.ceil(v / a) * a;
  if (!keepOld) {
    switch (type) {
      case SC_COMPRESSED:
        cowEndTo = roundUp(cowEndFrom, s.clusterSize);
        break;
      case SC_NORMAL:
      case SC_ZERO_ALLOC:
      case SC_UNALLOCATED_ALLOC:
        cowEndTo = roundUp(cowEndFrom, s.clusterSize);
        if (s.extL2) {
          cowEndTo -= Math.min(s.subclustersPerCluster - scIndex - 1, Math.clz32(bmLo >>> 0)) * s.subclusterSize;
        }
        break;
      default:
        cowEndTo = roundUp(cowEndFrom, s.subclusterSize);
    }
  } else {
    cowEndTo = type === SC_NORMAL ? cowEndFrom : roundUp(cowEndFrom, s.subclusterSize);
  }

  metas.unshift({
    offset: s.startOfCluster(guestOffset),
    allocOffset: hostClusterOffset,
    nbClusters,
    keepOldClusters: keepOld,
    cowStart: { offset: cowStartFrom, nbBytes: cowStartTo - cowStartFrom },
    cowEnd: { offset: cowEndFrom, nbBytes: cowEndTo - cowEndFrom },
    skipCow: false,
    prealloc: false,
    data: null,
  });
}

/** cluster_needs_new_alloc() */
function needsNewAlloc(s: State, hi: number, lo: number): boolean {
  const ct = clusterType(s, hi, lo);
  if (ct === CT_NORMAL || ct === CT_ZERO_ALLOC) return (hi & HI_COPIED) === 0;
  return true;
}

/** count_single_write_clusters() */
function countSingleWriteClusters(s: State, nb: number, t: Uint8Array, index: number, newAlloc: boolean): number {
  let expected = entryOffset(getHi(s, t, index), getLo(s, t, index));
  let i = 0;
  for (; i < nb; i++) {
    const hi = getHi(s, t, index + i);
    const lo = getLo(s, t, index + i);
    if (needsNewAlloc(s, hi, lo) !== newAlloc) break;
    if (!newAlloc) {
      if (expected !== entryOffset(hi, lo)) break;
      expected += s.clusterSize;
    }
  }
  return i;
}

interface Cursor {
  hostOffset: number;
  bytes: number;
}

/** handle_copied(): reuse clusters that may be overwritten in place. */
function handleCopied(s: State, guestOffset: number, cur: Cursor, metas: L2Meta[]): boolean {
  const oic = s.offsetIntoCluster(guestOffset);
  const ct = getClusterTable(s, guestOffset);
  let nb = s.sizeToClusters(oic + cur.bytes);
  nb = Math.min(nb, ct.sliceLeft, Math.floor(REQUEST_MAX_BYTES / s.clusterSize));
  const t = ct.entry.data;
  const hi = getHi(s, t, ct.index);
  const lo = getLo(s, t, ct.index);
  const clusterOffset = entryOffset(hi, lo);
  if (needsNewAlloc(s, hi, lo)) return false;
  if (s.offsetIntoCluster(clusterOffset)) {
    throw s.signalCorruption(
      true,
      `${lo & LO_ZERO ? 'Preallocated zero' : 'Data'} cluster offset ${hexp(clusterOffset)} unaligned (guest offset: ${hexp(guestOffset)})`,
    );
  }
  if (cur.hostOffset !== INV && clusterOffset !== cur.hostOffset) {
    cur.bytes = 0;
    return false;
  }
  const keep = countSingleWriteClusters(s, nb, t, ct.index, false);
  cur.bytes = Math.min(cur.bytes, keep * s.clusterSize - oic);
  calculateL2Meta(s, clusterOffset, guestOffset, cur.bytes, t, ct.index, metas, true);
  cur.hostOffset = clusterOffset + oic;
  return true;
}

/** handle_alloc(): allocate new clusters (identity-mapped in an external data file). */
function handleAlloc(s: State, guestOffset: number, cur: Cursor, metas: L2Meta[]): boolean {
  const oic = s.offsetIntoCluster(guestOffset);
  const ct = getClusterTable(s, guestOffset);
  let nb = s.sizeToClusters(oic + cur.bytes);
  nb = Math.min(nb, ct.sliceLeft, Math.floor(REQUEST_MAX_BYTES / s.clusterSize));
  const t = ct.entry.data;
  nb = countSingleWriteClusters(s, nb, t, ct.index, true);
  let allocOffset = cur.hostOffset === INV ? INV : s.startOfCluster(cur.hostOffset);
  if (s.hasDataFile) {
    allocOffset = s.startOfCluster(guestOffset);
  } else if (allocOffset === INV) {
    allocOffset = allocClusters(s, nb * s.clusterSize);
  } else {
    nb = allocClustersAt(s, allocOffset, nb);
  }
  if (nb === 0) {
    cur.bytes = 0;
    return false;
  }
  const requested = cur.bytes + oic;
  const avail = nb * s.clusterSize;
  const nbBytes = Math.min(requested, avail);
  cur.hostOffset = allocOffset + oic;
  cur.bytes = Math.min(cur.bytes, nbBytes - oic);
  try {
    calculateL2Meta(s, allocOffset, guestOffset, cur.bytes, t, ct.index, metas, false);
  } catch (err) {
    if (!s.hasDataFile) freeClusters(s, allocOffset, nb * s.clusterSize, DISCARD_NEVER);
    throw err;
  }
  return true;
}

export interface HostAllocation {
  bytes: number;
  hostOffset: number;
  metas: L2Meta[];
}

/**
 * qcow2_alloc_host_offset(): find or allocate host space for a guest range; the result is
 * contiguous on the host and may be shorter than requested.
 */
export function allocHostOffset(s: State, offset: number, bytes: number): HostAllocation {
  const metas: L2Meta[] = [];
  let start = offset;
  let remaining = bytes;
  let clusterOffset = INV;
  let hostOffset = INV;
  let curBytes = 0;
  try {
    for (;;) {
      if (hostOffset === INV && clusterOffset !== INV) hostOffset = clusterOffset;
      start += curBytes;
      remaining -= curBytes;
      if (clusterOffset !== INV) clusterOffset += curBytes;
      if (remaining === 0) break;
      const cur: Cursor = { hostOffset: clusterOffset, bytes: remaining };
      if (handleCopied(s, start, cur, metas)) {
        clusterOffset = cur.hostOffset;
        curBytes = cur.bytes;
        continue;
      }
      if (cur.bytes === 0) break;
      if (handleAlloc(s, start, cur, metas)) {
        clusterOffset = cur.hostOffset;
        curBytes = cur.bytes;
        continue;
      }
      break;
    }
  } catch (err) {
    for (const m of metas) allocClusterAbort(s, m);
    throw err;
  }
  return { bytes: bytes - remaining, hostOffset, metas };
}

/** qcow2_alloc_cluster_abort(): the request failed; free what it allocated. */
export function allocClusterAbort(s: State, m: L2Meta): void {
  if (!s.hasDataFile && !m.keepOldClusters) {
    freeClusters(s, m.allocOffset, m.nbClusters * s.clusterSize, DISCARD_NEVER);
  }
}

/** merge_cow(): can the guest data be written together with the COW regions? */
export function mergeCow(offset: number, bytes: number, data: Uint8Array, metas: L2Meta[]): boolean {
  for (const m of metas) {
    if (m.cowStart.nbBytes === 0 && m.cowEnd.nbBytes === 0) continue;
    if (m.skipCow) continue;
    if (m.offset + m.cowStart.offset + m.cowStart.nbBytes !== offset) continue;
    if (m.offset + m.cowEnd.offset !== offset + bytes) continue;
    m.data = data;
    return true;
  }
  return false;
}

/**
 * is_unallocated(): neither this image nor any backing layer describes the range, judged by
 * one block-status run per layer as bdrv_is_allocated_above does (a shorter run counts as
 * "maybe allocated"). A backing reader that cannot tell makes the answer "allocated".
 */
function isUnallocated(s: State, offset: number, bytes: number): boolean {
  if (bytes === 0) return true;
  const m = getHostOffset(s, offset, bytes);
  if (m.type !== SC_UNALLOCATED_PLAIN && m.type !== SC_UNALLOCATED_ALLOC) return false;
  if (m.bytes < bytes) return false;
  if (!s.backing) return true;
  return s.backing.isAllocated !== undefined && !s.backing.isAllocated(offset, bytes);
}

/**
 * handle_alloc_space(): when both COW regions of a new allocation would only copy zeroes,
 * zero the host range from the first COW byte to the last with a write-zeroes request that
 * must not fall back to writing (fallocate on a host file), and skip the COW. ENOTSUP (no
 * native helper, a node that cannot) or EAGAIN leave the COW to perform_cow.
 */
export function handleAllocSpace(s: State, metas: L2Meta[]): void {
  if (s.hdr.cryptMethod !== 0) return;
  for (const m of metas) {
    if (m.cowStart.nbBytes === 0 && m.cowEnd.nbBytes === 0) continue;
    if (!isUnallocated(s, m.offset + m.cowStart.offset, m.cowStart.nbBytes)) continue;
    if (!isUnallocated(s, m.offset + m.cowEnd.offset, m.cowEnd.nbBytes)) continue;
    const start = m.allocOffset + m.cowStart.offset;
    const bytes = m.cowEnd.offset + m.cowEnd.nbBytes - m.cowStart.offset;
    preWriteOverlapCheck(s, [], start, bytes, true);
    try {
      zeroAt(s.dataFile, start, bytes, false, true);
    } catch (err) {
      if (err instanceof ErrnoError && (err.errno === Errno.ENOTSUP || err.errno === Errno.EAGAIN)) continue;
      throw err;
    }
    m.skipCow = true;
  }
}

/**
 * perform_cow(): copy the untouched parts of newly allocated clusters (unless
 * handleAllocSpace zeroed them already).
 */
function performCow(s: State, m: L2Meta): void {
  const start = m.cowStart;
  const end = m.cowEnd;
  const dataBytes = end.offset - (start.offset + start.nbBytes);
  if ((start.nbBytes === 0 && end.nbBytes === 0) || m.skipCow) return;
  const startBuf = new Uint8Array(start.nbBytes);
  const endBuf = new Uint8Array(end.nbBytes);
  if (start.nbBytes) readGuest(s, m.offset + start.offset, startBuf);
  if (end.nbBytes) readGuest(s, m.offset + end.offset, endBuf);
  if (m.data) {
    const all = new Uint8Array(start.nbBytes + dataBytes + end.nbBytes);
    all.set(startBuf, 0);
    all.set(m.data.subarray(0, dataBytes), start.nbBytes);
    all.set(endBuf, start.nbBytes + dataBytes);
    const at = m.allocOffset + start.offset;
    preWriteOverlapCheck(s, [], at, all.length, true);
    writeData(s, at, all);
  } else {
    if (start.nbBytes) {
      preWriteOverlapCheck(s, [], m.allocOffset + start.offset, start.nbBytes, true);
      writeData(s, m.allocOffset + start.offset, startBuf);
    }
    if (end.nbBytes) {
      preWriteOverlapCheck(s, [], m.allocOffset + end.offset, end.nbBytes, true);
      writeData(s, m.allocOffset + end.offset, endBuf);
    }
  }
  // The COW data must be stable before an L2 entry exposes it.
  s.l2Cache.dependsOnFlush = true;
}

function writeData(s: State, offset: number, data: Uint8Array): void {
  writeAt(s.dataFile, offset, data);
}

/** qcow2_alloc_cluster_link_l2(): COW, then point the L2 entries at the new clusters. */
export function linkL2(s: State, m: L2Meta): void {
  performCow(s, m);
  if (s.useLazyRefcounts) markDirty(s);
  if (s.needAccurateRefcounts) s.l2Cache.setDependency(s.refblockCache);
  const ct = getClusterTable(s, m.offset);
  const t = ct.entry.data;
  s.l2Cache.markDirty(ct.entry);
  const old: [number, number][] = [];
  for (let i = 0; i < m.nbClusters; i++) {
    const idx = ct.index + i;
    const host = m.allocOffset + i * s.clusterSize;
    const ohi = getHi(s, t, idx);
    const olo = getLo(s, t, idx);
    if (ohi !== 0 || olo !== 0) old.push([ohi, olo]);
    setEntry(s, t, idx, (offsetHi(host) | HI_COPIED) >>> 0, offsetLo(host));
    if (s.extL2 && !m.prealloc) {
      let bmHi = getBmHi(s, t, idx);
      let bmLo = getBmLo(s, t, idx);
      const writtenFrom = Math.max(m.cowStart.offset, i * s.clusterSize);
      const writtenTo = Math.min(m.cowEnd.offset + m.cowEnd.nbBytes, (i + 1) * s.clusterSize);
      const firstSc = s.offsetToScIndex(writtenFrom);
      const lastSc = s.offsetToScIndex(writtenTo - 1);
      bmLo = (bmLo | rangeMask(firstSc, lastSc + 1)) >>> 0;
      bmHi = (bmHi & ~rangeMask(firstSc, lastSc + 1)) >>> 0;
      setBitmap(t, idx, bmHi, bmLo);
    }
  }
  if (!m.keepOldClusters) {
    for (const [ohi, olo] of old) freeAnyCluster(s, ohi, olo, DISCARD_NEVER);
  }
}

/** qcow2_mark_dirty(): set the dirty bit on disk before lazy refcounts go stale. */
export function markDirty(s: State): void {
  if (s.dirty) return;
  const buf = new Uint8Array(8);
  const v = s.hdr.incompatibleFeatures | 1n;
  put32(buf, 0, Number((v >> 32n) & 0xffffffffn));
  put32(buf, 4, Number(v & 0xffffffffn));
  writeSync(s.file, 72, buf);
  s.hdr.incompatibleFeatures = v;
}

/** qcow2_alloc_compressed_cluster_offset(): host bytes for one compressed cluster. */
export function allocCompressedClusterOffset(s: State, offset: number, compressedSize: number): number {
  const ct = getClusterTable(s, offset);
  const t = ct.entry.data;
  if (entryOffset(getHi(s, t, ct.index), getLo(s, t, ct.index)) !== 0) throw new ErrnoError(Errno.EIO);
  const clusterOffset = allocBytes(s, compressedSize);
  const nbCsectors = Math.floor((clusterOffset + compressedSize - 1) / 512) - Math.floor(clusterOffset / 512);
  const hiBits = s.csizeShift - 32;
  const hi = (HI_COMPRESSED | (nbCsectors * 2 ** hiBits) | Math.floor(clusterOffset / 2 ** 32)) >>> 0;
  s.l2Cache.markDirty(ct.entry);
  setEntry(s, t, ct.index, hi, clusterOffset >>> 0);
  if (s.extL2) setBitmap(t, ct.index, 0, 0);
  return clusterOffset;
}

/** discard_in_l2_slice() */
function discardInL2Slice(s: State, offset: number, nbClusters: number, type: DiscardType, fullDiscard: boolean): number {
  const ct = getClusterTable(s, offset);
  const t = ct.entry.data;
  const n = Math.min(nbClusters, ct.sliceLeft);
  for (let i = 0; i < n; i++) {
    const idx = ct.index + i;
    const ohi = getHi(s, t, idx);
    const olo = getLo(s, t, idx);
    const obmHi = getBmHi(s, t, idx);
    const obmLo = getBmLo(s, t, idx);
    let nhi = ohi;
    let nlo = olo;
    let nbmHi = obmHi;
    let nbmLo = obmLo;
    const ctype = clusterType(s, ohi, olo);
    if (fullDiscard) {
      nhi = nlo = nbmHi = nbmLo = 0;
    } else if (s.backing || isAllocatedType(ctype)) {
      if (s.extL2) {
        nhi = nlo = 0;
        nbmHi = 0xffffffff;
        nbmLo = 0;
      } else {
        nhi = 0;
        nlo = s.version >= 3 ? LO_ZERO : 0;
      }
    }
    if (nhi === ohi && nlo === olo && nbmHi === obmHi && nbmLo === obmLo) continue;
    s.l2Cache.markDirty(ct.entry);
    setEntry(s, t, idx, nhi, nlo);
    if (s.extL2) setBitmap(t, idx, nbmHi, nbmLo);
    freeAnyCluster(s, ohi, olo, type);
  }
  return n;
}

/** qcow2_cluster_discard() */
export function clusterDiscard(s: State, offset: number, bytes: number, type: DiscardType, fullDiscard: boolean): void {
  let nb = s.sizeToClusters(bytes);
  let off = offset;
  s.cacheDiscards = true;
  let ok = false;
  try {
    while (nb > 0) {
      const cleared = discardInL2Slice(s, off, nb, type, fullDiscard);
      nb -= cleared;
      off += cleared * s.clusterSize;
    }
    ok = true;
  } finally {
    s.cacheDiscards = false;
    processDiscards(s, ok);
  }
}

/** zero_in_l2_slice() */
function zeroInL2Slice(s: State, offset: number, nbClusters: number, mayUnmap: boolean): number {
  const ct = getClusterTable(s, offset);
  const t = ct.entry.data;
  const n = Math.min(nbClusters, ct.sliceLeft);
  for (let i = 0; i < n; i++) {
    const idx = ct.index + i;
    const ohi = getHi(s, t, idx);
    const olo = getLo(s, t, idx);
    const obmHi = getBmHi(s, t, idx);
    const obmLo = getBmLo(s, t, idx);
    const ctype = clusterType(s, ohi, olo);
    const unmap = ctype === CT_COMPRESSED || (mayUnmap && isAllocatedType(ctype));
    let nhi = unmap ? 0 : ohi;
    let nlo = unmap ? 0 : olo;
    let nbmHi = obmHi;
    let nbmLo = obmLo;
    if (s.extL2) {
      nbmHi = 0xffffffff;
      nbmLo = 0;
    } else {
      nlo = (nlo | LO_ZERO) >>> 0;
    }
    if (nhi === ohi && nlo === olo && nbmHi === obmHi && nbmLo === obmLo) continue;
    s.l2Cache.markDirty(ct.entry);
    setEntry(s, t, idx, nhi, nlo);
    if (s.extL2) setBitmap(t, idx, nbmHi, nbmLo);
    if (unmap) freeAnyCluster(s, ohi, olo, DISCARD_REQUEST);
  }
  return n;
}

/** zero_l2_subclusters(): zero part of one cluster (extended L2 only). */
function zeroL2Subclusters(s: State, offset: number, nbSubclusters: number): void {
  const sc = s.offsetToScIndex(offset);
  const ct = getClusterTable(s, offset);
  const t = ct.entry.data;
  const ctype = clusterType(s, getHi(s, t, ct.index), getLo(s, t, ct.index));
  if (ctype === CT_COMPRESSED) throw new ErrnoError(Errno.ENOTSUP);
  const oldHi = getBmHi(s, t, ct.index);
  const oldLo = getBmLo(s, t, ct.index);
  const bmHi = (oldHi | rangeMask(sc, sc + nbSubclusters)) >>> 0;
  const bmLo = (oldLo & ~rangeMask(sc, sc + nbSubclusters)) >>> 0;
  if (bmHi !== oldHi || bmLo !== oldLo) {
    setBitmap(t, ct.index, bmHi, bmLo);
    s.l2Cache.markDirty(ct.entry);
  }
}

/**
 * qcow2_subcluster_zeroize(): make a subcluster-aligned range read as zeroes through L2
 * flags (v3), or by discarding (v2 without backing). ENOTSUP when neither is possible.
 */
export function subclusterZeroize(s: State, offset: number, bytes: number, mayUnmap: boolean): void {
  if (s.dataFileRaw && s.hasDataFile) zeroAt(s.dataFile, offset, bytes, mayUnmap);
  if (s.version < 3) {
    if (!s.backing) {
      clusterDiscard(s, offset, bytes, DISCARD_REQUEST, false);
      return;
    }
    throw new ErrnoError(Errno.ENOTSUP);
  }
  let endOffset = offset + bytes;
  let off = offset;
  const head = Math.min(endOffset, Math.ceil(off / s.clusterSize) * s.clusterSize) - off;
  off += head;
  const tail = endOffset >= s.size ? 0 : endOffset - Math.max(off, s.startOfCluster(endOffset));
  endOffset -= tail;
  s.cacheDiscards = true;
  let ok = false;
  try {
    if (head) zeroL2Subclusters(s, off - head, Math.ceil(head / s.subclusterSize));
    let nb = s.sizeToClusters(endOffset - off);
    while (nb > 0) {
      const cleared = zeroInL2Slice(s, off, nb, mayUnmap);
      nb -= cleared;
      off += cleared * s.clusterSize;
    }
    if (tail) zeroL2Subclusters(s, endOffset, Math.ceil(tail / s.subclusterSize));
    ok = true;
  } finally {
    s.cacheDiscards = false;
    processDiscards(s, ok);
  }
}

export { CT_UNALLOCATED, CT_ZERO_PLAIN };
