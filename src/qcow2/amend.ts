/**
 * `qemu-img amend` for qcow2 (qcow2_amend_options): compat up/downgrade, refcount width,
 * lazy refcounts, data file name, data_file_raw, size; plus the helpers it needs
 * (zero cluster expansion for v2, refcount order change) and qcow2_change_backing_file.
 */
import { Errno, ErrnoError } from '../errno.ts';
import {
  AUTOCLEAR_DATA_FILE_RAW,
  COMPAT_LAZY_REFCOUNTS,
  COMPRESSION_ZLIB,
  HI_COMPRESSED,
  HI_COPIED,
  INCOMPAT_COMPRESSION,
  INCOMPAT_DIRTY,
  QCOW_MAX_L1_SIZE,
  QCOW_MAX_REFTABLE_SIZE,
} from './constants.ts';
import { CT_ZERO_ALLOC, CT_ZERO_PLAIN, clusterType, entryOffset, getHi, getLo, offsetHi, offsetLo, setEntry } from './entries.ts';
import { Qcow2Error, errnoOf, withErrno } from './errors.ts';
import { hexp } from './format.ts';
import { be32, put64, readAt, writeAt, zeroAt } from './io.ts';
import { invalidateMetadata, preWriteOverlapCheck } from './metadata.ts';
import {
  allocClusters,
  flushCaches,
  freeClusters,
  getRefcount,
  getRefcountEntry,
  getRefcountEntryBig,
  reftableOffset,
  setRefcountEntry,
  unalignedRefblockOffset,
  updateClusterRefcount,
  updateMaxRefcountTableIndex,
} from './refcount.ts';
import { snapshotL1Offset, validateTable, writeSnapshots } from './snapshot.ts';
import type { State } from './state.ts';
import { DISCARD_ALWAYS, DISCARD_NEVER, DISCARD_OTHER } from './state.ts';

/** Options `qemu-img amend -o` accepts for qcow2 (absent = unchanged). */
export interface Qcow2AmendOptions {
  /** '0.10', '1.1', 'v2' or 'v3'; anything else is refused. */
  compat?: string;
  size?: number;
  backingFile?: string;
  backingFormat?: string;
  lazyRefcounts?: boolean;
  refcountBits?: number;
  /** A new name for the external data file; '' removes the name (the feature bit stays). */
  dataFile?: string;
  dataFileRaw?: boolean;
  /**
   * Progress callback (qemu-img amend -p): work done and total work so far, with QEMU's
   * numbers (the total may grow, so the ratio can go down).
   */
  onProgress?: (done: number, total: number) => void;
  /** Problems QEMU error_report()s on the way before the amend fails (no prefix). */
  onReport?: (message: string) => void;
}

/** BlockDriverAmendStatusCB of one operation: offset and total work size of that operation. */
type StatusCb = (offset: number, workSize: number) => void;

const OP_UPGRADE = 1;
const OP_REFCOUNT_ORDER = 3;
const OP_DOWNGRADE = 4;

/**
 * qcow2_amend_helper_cb: joins the operations' own progress into one, projecting the work
 * of the operations still to come from the ones seen so far.
 */
class AmendProgress {
  private readonly sink: ((done: number, total: number) => void) | undefined;
  private readonly totalOperations: number;
  current = 0;
  private last = 0;
  private completed = 0;
  private offsetCompleted = 0;
  private lastWorkSize = 0;

  constructor(sink: ((done: number, total: number) => void) | undefined, totalOperations: number) {
    this.sink = sink;
    this.totalOperations = totalOperations;
  }

  /** The status callback of operation `op`. */
  for(op: number): StatusCb {
    return (offset, workSize) => {
      this.current = op;
      this.report(offset, workSize);
    };
  }

  private report(offset: number, workSize: number): void {
    if (this.current !== this.last) {
      if (this.last !== 0) {
        this.offsetCompleted += this.lastWorkSize;
        this.completed++;
      }
      this.last = this.current;
    }
    this.lastWorkSize = workSize;
    const currentWork = this.offsetCompleted + workSize;
    const projected = Math.trunc((currentWork * (this.totalOperations - this.completed - 1)) / (this.completed + 1));
    this.sink?.(this.offsetCompleted + offset, currentWork + projected);
  }
}

export interface AmendHooks {
  updateHeader(): void;
  markClean(): void;
  resize(size: number): void;
}

/** Amend an open image; throws Qcow2Error with QEMU's message. */
export function amend(s: State, o: Qcow2AmendOptions, hooks: AmendHooks): void {
  const oldVersion = s.version;
  let newVersion = oldVersion;
  if (o.compat !== undefined) {
    if (o.compat === '0.10' || o.compat === 'v2') newVersion = 2;
    else if (o.compat === '1.1' || o.compat === 'v3') newVersion = 3;
    else throw new Qcow2Error(Errno.EINVAL, `Unknown compatibility level ${o.compat}`);
  }
  const refcountBits = o.refcountBits ?? s.refcountBits;
  if (o.refcountBits !== undefined) {
    const rb = o.refcountBits;
    if (!(rb > 0 && rb <= 64 && Number.isInteger(rb) && (rb & (rb - 1)) === 0)) {
      throw new Qcow2Error(Errno.EINVAL, 'Refcount width must be a power of two and may not exceed 64 bits');
    }
  }
  if (o.dataFile !== undefined && !s.hasDataFile) {
    throw new Qcow2Error(Errno.EINVAL, 'data-file can only be set for images that use an external data file');
  }
  const dataFileRaw = o.dataFileRaw ?? s.dataFileRaw;
  if (o.dataFileRaw && !s.dataFileRaw) throw new Qcow2Error(Errno.EINVAL, 'data-file-raw cannot be set on existing images');
  const lazy = o.lazyRefcounts ?? s.useLazyRefcounts;
  const progress = new AmendProgress(o.onProgress, Number(newVersion !== oldVersion) + Number(s.refcountBits !== refcountBits));

  if (newVersion > oldVersion) upgrade(s, hooks, progress.for(OP_UPGRADE));

  if (s.refcountBits !== refcountBits) {
    if (newVersion < 3 && refcountBits !== 16) {
      throw new Qcow2Error(
        Errno.EINVAL,
        'Refcount widths other than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)',
      );
    }
    changeRefcountOrder(s, Math.log2(refcountBits), hooks, progress.for(OP_REFCOUNT_ORDER));
  }

  if (dataFileRaw) s.hdr.autoclearFeatures |= AUTOCLEAR_DATA_FILE_RAW;
  else s.hdr.autoclearFeatures &= ~AUTOCLEAR_DATA_FILE_RAW;
  if (o.dataFile !== undefined) s.hdr.dataFile = o.dataFile === '' ? undefined : o.dataFile;
  headerOrFail(hooks);

  if (o.backingFile !== undefined || o.backingFormat !== undefined) {
    if (o.backingFile !== s.hdr.backingFile || o.backingFormat !== s.hdr.backingFormat) {
      // QEMU adds the hint "You can use 'qemu-img rebase' instead."
      throw new Qcow2Error(Errno.EINVAL, 'Cannot amend the backing file');
    }
  }

  if (s.useLazyRefcounts !== lazy) {
    if (lazy) {
      if (newVersion < 3) {
        throw new Qcow2Error(
          Errno.EINVAL,
          'Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)',
        );
      }
      s.hdr.compatibleFeatures |= COMPAT_LAZY_REFCOUNTS;
      try {
        hooks.updateHeader();
      } catch (err) {
        s.hdr.compatibleFeatures &= ~COMPAT_LAZY_REFCOUNTS;
        throw new Qcow2Error(errnoOf(err), withErrno('Failed to update the image header', errnoOf(err)));
      }
      s.useLazyRefcounts = true;
    } else {
      try {
        hooks.markClean();
      } catch (err) {
        throw new Qcow2Error(errnoOf(err), withErrno('Failed to make the image clean', errnoOf(err)));
      }
      s.hdr.compatibleFeatures &= ~COMPAT_LAZY_REFCOUNTS;
      try {
        hooks.updateHeader();
      } catch (err) {
        s.hdr.compatibleFeatures |= COMPAT_LAZY_REFCOUNTS;
        throw new Qcow2Error(errnoOf(err), withErrno('Failed to update the image header', errnoOf(err)));
      }
      s.useLazyRefcounts = false;
    }
  }

  if (o.size) hooks.resize(o.size);

  if (newVersion < oldVersion) downgrade(s, hooks, progress.for(OP_DOWNGRADE), o.onReport);
}

function headerOrFail(hooks: AmendHooks): void {
  try {
    hooks.updateHeader();
  } catch (err) {
    throw new Qcow2Error(errnoOf(err), withErrno('Failed to update the image header', errnoOf(err)));
  }
}

/** qcow2_upgrade(): v2 → v3, rewriting snapshot entries that lack v3's extra data. */
function upgrade(s: State, hooks: AmendHooks, status: StatusCb): void {
  status(0, 2);
  if (s.snapshots.some((sn) => sn.extraDataSize < 16)) {
    try {
      writeSnapshots(s);
    } catch (err) {
      throw new Qcow2Error(errnoOf(err), withErrno('Failed to update the snapshot table', errnoOf(err)));
    }
  }
  status(1, 2);
  const old = s.hdr.version;
  s.hdr.version = 3;
  s.version = 3;
  try {
    hooks.updateHeader();
  } catch (err) {
    s.hdr.version = old;
    s.version = old;
    throw new Qcow2Error(errnoOf(err), withErrno('Failed to update the image header', errnoOf(err)));
  }
  status(2, 2);
}

/** qcow2_downgrade(): v3 → v2; incompatible features must be gone first. */
function downgrade(s: State, hooks: AmendHooks, status: StatusCb, report: ((message: string) => void) | undefined): void {
  if (s.refcountOrder !== 4) throw new Qcow2Error(Errno.ENOTSUP, 'compat=0.10 requires refcount_bits=16');
  if (s.hasDataFile) throw new Qcow2Error(Errno.ENOTSUP, 'Cannot downgrade an image with a data file');
  for (const sn of s.snapshots) {
    if (sn.vmStateSize > 0xffffffff || sn.diskSize !== s.size) {
      throw new Qcow2Error(Errno.ENOTSUP, 'Internal snapshots prevent downgrade of image');
    }
  }
  if (s.hdr.incompatibleFeatures & INCOMPAT_DIRTY) {
    try {
      hooks.markClean();
    } catch (err) {
      throw new Qcow2Error(errnoOf(err), withErrno('Failed to make the image clean', errnoOf(err)));
    }
  }
  const rest = s.hdr.incompatibleFeatures & ~INCOMPAT_COMPRESSION;
  if (rest) {
    throw new Qcow2Error(Errno.ENOTSUP, `Cannot downgrade an image with incompatible features ${hexp(rest)} set`);
  }
  s.hdr.compatibleFeatures = 0n;
  s.hdr.autoclearFeatures = 0n;
  try {
    expandZeroClusters(s, status, report);
  } catch (err) {
    throw new Qcow2Error(errnoOf(err), withErrno('Failed to turn zero into data clusters', errnoOf(err)));
  }
  if (s.hdr.incompatibleFeatures & INCOMPAT_COMPRESSION) {
    if (hasCompressedClusters(s)) {
      throw new Qcow2Error(
        Errno.ENOTSUP,
        'Cannot downgrade an image with zstd compression type and existing compressed clusters',
      );
    }
    s.hdr.incompatibleFeatures &= ~INCOMPAT_COMPRESSION;
    s.hdr.compressionType = COMPRESSION_ZLIB;
  }
  const old = s.hdr.version;
  s.hdr.version = 2;
  s.version = 2;
  try {
    hooks.updateHeader();
  } catch (err) {
    s.hdr.version = old;
    s.version = old;
    throw new Qcow2Error(errnoOf(err), withErrno('Failed to update the image header', errnoOf(err)));
  }
}

function hasCompressedClusters(s: State): boolean {
  for (let i = 0; i < s.l1Size; i++) {
    const off = s.l1Offset(i);
    if (!off) continue;
    const t = s.l2Cache.get(off).data;
    for (let j = 0; j < s.l2Size; j++) if (getHi(s, t, j) & HI_COMPRESSED) return true;
  }
  return false;
}

/** Progress of the zero cluster expansion: L1 entries visited over all L1 tables. */
interface L1Progress {
  visited: number;
  total: number;
  status: StatusCb;
}

/** expand_zero_clusters_in_l1() for one L1 table (active when it is the live one). */
function expandZeroClustersInL1(s: State, hi: Uint32Array, lo: Uint32Array, size: number, active: boolean, progress: L1Progress): void {
  for (let i = 0; i < size; i++) {
    const l2Offset = entryOffset(hi[i]!, lo[i]!);
    if (!l2Offset) {
      progress.status(++progress.visited, progress.total);
      continue;
    }
    if (s.offsetIntoCluster(l2Offset)) {
      throw s.signalCorruption(true, `L2 table offset ${hexp(l2Offset)} unaligned (L1 index: ${hexp(i)})`);
    }
    const l2Refcount = getRefcount(s, l2Offset / s.clusterSize);
    let table: Uint8Array;
    if (active) {
      table = s.l2Cache.get(l2Offset).data;
    } else {
      table = new Uint8Array(s.clusterSize);
      readAt(s.file, l2Offset, table);
    }
    let dirty = false;
    for (let j = 0; j < s.l2Size; j++) {
      const ehi = getHi(s, table, j);
      const elo = getLo(s, table, j);
      const type = clusterType(s, ehi, elo);
      if (type !== CT_ZERO_PLAIN && type !== CT_ZERO_ALLOC) continue;
      let offset = entryOffset(ehi, elo);
      if (type === CT_ZERO_PLAIN) {
        if (!s.backing) {
          setEntry(s, table, j, 0, 0);
          dirty = true;
          continue;
        }
        offset = allocClusters(s, s.clusterSize);
        if (l2Refcount > 1) {
          updateClusterRefcount(s, offset / s.clusterSize, l2Refcount - 1, false, DISCARD_OTHER);
        }
      }
      if (s.offsetIntoCluster(offset)) {
        if (type === CT_ZERO_PLAIN) freeClusters(s, offset, s.clusterSize, DISCARD_ALWAYS);
        throw s.signalCorruption(
          true,
          `Cluster allocation offset ${hexp(offset)} unaligned (L2 offset: ${hexp(l2Offset)}, L2 index: ${hexp(j)})`,
        );
      }
      try {
        preWriteOverlapCheck(s, [], offset, s.clusterSize, true);
        zeroAt(s.dataFile, offset, s.clusterSize, false);
      } catch (err) {
        if (type === CT_ZERO_PLAIN) freeClusters(s, offset, s.clusterSize, DISCARD_ALWAYS);
        throw err;
      }
      const copied = l2Refcount === 1 ? HI_COPIED : 0;
      setEntry(s, table, j, (offsetHi(offset) | copied) >>> 0, offsetLo(offset));
      dirty = true;
    }
    if (dirty) {
      if (active) {
        const e = s.l2Cache.get(l2Offset);
        s.l2Cache.markDirty(e);
        s.l2Cache.dependsOnFlush = true;
      } else {
        preWriteOverlapCheck(s, [2, 7], l2Offset, s.clusterSize, false);
        writeAt(s.file, l2Offset, table);
      }
    }
    progress.status(++progress.visited, progress.total);
  }
}

/** qcow2_expand_zero_clusters(): v2 has no zero flag. */
function expandZeroClusters(s: State, status: StatusCb, report: ((message: string) => void) | undefined): void {
  const progress: L1Progress = { visited: 0, total: s.snapshots.reduce((n, sn) => n + sn.l1Size, s.l1Size), status };
  expandZeroClustersInL1(s, s.l1Hi, s.l1Lo, s.l1Size, true, progress);
  s.l2Cache.empty();
  for (const sn of s.snapshots) {
    try {
      validateTable(s, snapshotL1Offset(sn), sn.l1Size, 8, QCOW_MAX_L1_SIZE, 'Snapshot L1 table');
    } catch (err) {
      // QEMU reports the table's problem itself; the amend fails with the errno alone.
      if (err instanceof Error) report?.(err.message);
      throw err;
    }
    const buf = new Uint8Array(sn.l1Size * 8);
    readAt(s.file, sn.l1TableOffset, buf);
    const hi = new Uint32Array(sn.l1Size);
    const lo = new Uint32Array(sn.l1Size);
    for (let i = 0; i < sn.l1Size; i++) {
      hi[i] = be32(buf, 8 * i);
      lo[i] = be32(buf, 8 * i + 4);
    }
    expandZeroClustersInL1(s, hi, lo, sn.l1Size, false, progress);
  }
}

/** Runs `fn`; a failure becomes Qcow2Error "<what>: <strerror>" (error_setg_errno). */
function step<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof Qcow2Error) throw err;
    throw new Qcow2Error(errnoOf(err), withErrno(what, errnoOf(err)));
  }
}

/**
 * qcow2_change_refcount_order(): write new refcount blocks of another width and a new
 * refcount table, then switch the header over and free the old structures. Like QEMU it
 * walks the refcount structures until allocating the new ones allocates nothing more (the
 * allocations themselves need refcounts), then once more to write them; the progress counts
 * reftable entries over all walks.
 */
function changeRefcountOrder(s: State, newOrder: number, hooks: AmendHooks, status: StatusCb): void {
  const newBits = 2 ** newOrder;
  const newBlockSize = 2 ** (s.clusterBits - (newOrder - 3));
  const newMax = newBits >= 53 ? Number.MAX_SAFE_INTEGER : 2 ** newBits - 1;
  const newTable: number[] = [];
  let newTableOffset = 0;
  let allocatedTableSize = 0;

  /** Called for every completed new refcount block (`empty`: all its refcounts are 0). */
  type FinishOp = (index: number, block: Uint8Array | null, empty: boolean) => void;

  /**
   * walk_over_reftable(): the old refcounts in order, packed into new-width blocks. With
   * `fill`, the blocks are built (an empty block is the shared zero buffer). Old refcount
   * blocks are read live from the cache: allocations made by `op` show up in the same walk,
   * as in QEMU, where the walk holds the cached block itself.
   */
  const walk = (op: FinishOp, fill: boolean, index: number, total: number): void => {
    let newIndex = 0;
    let blockIndex = 0;
    let empty = true;
    const block: Uint8Array | null = fill ? new Uint8Array(s.clusterSize) : null;
    const finish = (): void => {
      op(newIndex, block, empty);
      // Only non-empty blocks were written into; an empty one is still all zeroes.
      if (block && !empty) block.fill(0);
      newIndex++;
      blockIndex = 0;
      empty = true;
    };
    for (let r = 0; r < s.refcountTableSize; r++) {
      status(index * s.refcountTableSize + r, total * s.refcountTableSize);
      const off = reftableOffset(s.refcountTable[r]!);
      if (!off) {
        // No refcount block: all zero, advance in bulk.
        let remaining = s.refcountBlockSize;
        while (remaining > 0) {
          if (blockIndex >= newBlockSize) finish();
          const take = Math.min(remaining, newBlockSize - blockIndex);
          blockIndex += take;
          remaining -= take;
        }
        continue;
      }
      const unaligned = unalignedRefblockOffset(s, r);
      if (unaligned !== null) {
        s.signalCorruption(true, `Refblock offset ${hexp(unaligned)} unaligned (reftable index: ${hexp(r)})`);
        throw new Qcow2Error(Errno.EIO, 'Image is corrupt (unaligned refblock offset)');
      }
      let data = step('Failed to retrieve refblock', () => s.refblockCache.get(off).data);
      for (let i = 0; i < s.refcountBlockSize; i++) {
        if (blockIndex >= newBlockSize) {
          finish();
          data = step('Failed to retrieve refblock', () => s.refblockCache.get(off).data);
        }
        const rc = getRefcountEntry(data, i, s.refcountOrder);
        if (rc > newMax) {
          const at = (r * s.refcountBlockSize + i) * s.clusterSize;
          throw new Qcow2Error(
            Errno.EINVAL,
            `Cannot decrease refcount entry width to ${newBits} bits: Cluster at offset ${hexp(at)} has a refcount of ${getRefcountEntryBig(data, i, s.refcountOrder)}`,
          );
        }
        if (rc) {
          if (block) setRefcountEntry(block, blockIndex, newOrder, rc);
          empty = false;
        }
        blockIndex++;
      }
    }
    if (blockIndex > 0) finish();
    status((index + 1) * s.refcountTableSize, total * s.refcountTableSize);
  };

  /** alloc_refblock(): a cluster for every non-empty new block, the table grown to fit. */
  let newAllocation = false;
  const allocRefblock: FinishOp = (index, _block, empty) => {
    if (empty) return;
    if (index >= newTable.length) {
      const perCluster = s.clusterSize / 8;
      const n = Math.ceil((index + 1) / perCluster) * perCluster;
      if (n > QCOW_MAX_REFTABLE_SIZE / 8) {
        throw new Qcow2Error(
          Errno.ENOTSUP,
          'This operation would make the refcount table grow beyond the maximum size supported by QEMU, aborting',
        );
      }
      while (newTable.length < n) newTable.push(0);
    }
    if (!newTable[index]) {
      newTable[index] = step('Failed to allocate refblock', () => allocClusters(s, s.clusterSize));
      newAllocation = true;
    }
  };

  /** flush_refblock(): write a new block where the new table has a cluster for it. */
  const flushRefblock: FinishOp = (index, block) => {
    const at = index < newTable.length ? newTable[index]! : 0;
    if (!at) return;
    step('Overlap check failed', () => preWriteOverlapCheck(s, [], at, s.clusterSize, false));
    step('Failed to write refblock', () => writeAt(s.file, at, block!));
  };

  let walkIndex = 0;
  try {
    do {
      newAllocation = false;
      // This walk, the one that writes, and at least one more to find nothing new: 3.
      const totalWalks = Math.max(walkIndex + 2, 3);
      walk(allocRefblock, false, walkIndex++, totalWalks);
      if (newAllocation) {
        if (newTableOffset) freeClusters(s, newTableOffset, allocatedTableSize * 8, DISCARD_NEVER);
        newTableOffset = step('Failed to allocate the new reftable', () => allocClusters(s, newTable.length * 8));
        allocatedTableSize = newTable.length;
      }
    } while (newAllocation);

    walk(flushRefblock, true, walkIndex, walkIndex + 1);

    step('Overlap check failed', () => preWriteOverlapCheck(s, [], newTableOffset, newTable.length * 8, false));
    const tbl = new Uint8Array(newTable.length * 8);
    newTable.forEach((v, i) => put64(tbl, 8 * i, v));
    step('Failed to write the new reftable', () => writeAt(s.file, newTableOffset, tbl));
    step('Failed to flush the refblock cache', () => s.refblockCache.flush());
  } catch (err) {
    // Give back what was allocated for the new structures (best effort, as QEMU).
    try {
      for (const off of newTable) if (off) freeClusters(s, off, s.clusterSize, DISCARD_OTHER);
      if (newTableOffset > 0) freeClusters(s, newTableOffset, newTable.length * 8, DISCARD_OTHER);
    } catch {
      // the original error is the one to report
    }
    throw err;
  }

  const oldTable = s.refcountTable;
  const oldSize = s.refcountTableSize;
  const oldOffset = s.refcountTableOffset;
  const oldOrder = s.hdr.refcountOrder;
  const oldClusters = s.hdr.refcountTableClusters;
  s.hdr.refcountOrder = newOrder;
  s.hdr.refcountTableOffset = newTableOffset;
  s.hdr.refcountTableClusters = (newTable.length * 8) / s.clusterSize;
  try {
    hooks.updateHeader();
  } catch (err) {
    s.hdr.refcountOrder = oldOrder;
    s.hdr.refcountTableOffset = oldOffset;
    s.hdr.refcountTableClusters = oldClusters;
    try {
      for (const off of newTable) if (off) freeClusters(s, off, s.clusterSize, DISCARD_OTHER);
      freeClusters(s, newTableOffset, newTable.length * 8, DISCARD_OTHER);
    } catch {
      // the original error is the one to report
    }
    throw new Qcow2Error(errnoOf(err), withErrno('Failed to update the qcow2 header', errnoOf(err)));
  }
  s.refblockCache.clear();
  s.refcountTable = Float64Array.from(newTable);
  s.refcountTableSize = newTable.length;
  s.setGeometry();
  s.configureCaches();
  updateMaxRefcountTableIndex(s);
  invalidateMetadata(s);
  // The old refcount structures are now unused: free them through the new ones.
  for (let i = 0; i < oldSize; i++) {
    const off = reftableOffset(oldTable[i]!);
    if (off) freeClusters(s, off, s.clusterSize, DISCARD_OTHER);
  }
  freeClusters(s, oldOffset, oldSize * 8, DISCARD_OTHER);
  flushCaches(s);
}

/** qcow2_change_backing_file(): new names in the header (no data is touched). */
export function changeBackingFile(s: State, file: string | undefined, format: string | undefined, updateHeader: () => void): void {
  if (file !== undefined && s.dataFileRaw) throw new ErrnoError(Errno.EINVAL);
  if (file !== undefined && new TextEncoder().encode(file).length > 1023) throw new ErrnoError(Errno.EINVAL);
  s.hdr.backingFile = file;
  s.hdr.backingFormat = format;
  updateHeader();
}

