/**
 * The open image's state, shared by the modules that implement the format (refcount.ts,
 * cluster.ts, snapshot.ts, check.ts, ...). It plays the role of QEMU's BDRVQcow2State:
 * the modules are free functions over it, which keeps them close to the format's logic.
 */
import type { Storage } from '../storage/types.ts';
import { Errno, ErrnoError } from '../errno.ts';
import { TableCache } from './cache.ts';
import {
  AUTOCLEAR_DATA_FILE_RAW,
  COMPAT_LAZY_REFCOUNTS,
  HI_OFFSET_MASK,
  INCOMPAT_CORRUPT,
  INCOMPAT_DIRTY,
  INCOMPAT_EXTL2,
  LO_OFFSET_MASK,
  SUBCLUSTERS_PER_CLUSTER,
  TWO32,
} from './constants.ts';
import type { CorruptionEvent } from './errors.ts';
import { Qcow2CorruptionError } from './errors.ts';
import type { HeaderState } from './header.ts';
import type { Snapshot } from './snapshot-types.ts';

/** What a backing node must offer: guest-visible reads (and, optionally, zero detection). */
export interface GuestReader {
  /** Guest-visible length; reads past it return zeroes (the block layer pads them). */
  length(): number;
  read(offset: number, buf: Uint8Array): void;
  /**
   * Whether [offset, offset+length) reads as zeroes according to block status of the whole
   * chain (bdrv_block_status_above ZERO). Used by unaligned write-zeroes; when absent the
   * engine assumes "not known to be zero" and writes explicit zeroes, as QEMU's fallback does.
   */
  isZero?(offset: number, length: number): boolean;
  /**
   * Whether any layer of the backing chain may describe part of [offset, offset+length)
   * (bdrv_is_allocated_above from the backing node down, true when its first status run is
   * shorter than the range). Used to skip COW of new clusters; when absent the engine
   * assumes "allocated" and copies.
   */
  isAllocated?(offset: number, length: number): boolean;
}

export const DISCARD_NEVER = 0;
export const DISCARD_ALWAYS = 1;
export const DISCARD_REQUEST = 2;
export const DISCARD_SNAPSHOT = 3;
export const DISCARD_OTHER = 4;
export type DiscardType = 0 | 1 | 2 | 3 | 4;

export class State {
  file: Storage;
  /** The storage holding guest data: the external data file, or `file` itself. */
  dataFile: Storage;
  hasDataFile: boolean;
  readOnly: boolean;

  // Geometry
  version = 3;
  clusterBits = 16;
  clusterSize = 65536;
  extL2 = false;
  l2EntrySize = 8;
  l2Bits = 13;
  l2Size = 8192;
  l2SliceSize = 8192;
  subclustersPerCluster = 1;
  subclusterSize = 65536;
  subclusterBits = 16;
  refcountOrder = 4;
  refcountBits = 16;
  refcountBlockBits = 15;
  refcountBlockSize = 32768;
  refcountMax = 65535;
  csizeShift = 54;
  csizeMask = 255;

  /** Header fields and names, serialised by updateHeader(). */
  hdr: HeaderState;

  // Active L1 table, split into high and low 32-bit words of each entry.
  l1Hi: Uint32Array = new Uint32Array(0);
  l1Lo: Uint32Array = new Uint32Array(0);
  l1VmStateIndex = 0;

  // Refcount table (raw entries). A float cannot hold the low bits of an entry at or beyond
  // 2^53 (only damaged tables have them), so those entries are also kept exactly, for check's
  // reserved-bit and alignment verdicts and QEMU's corruption messages.
  refcountTable: Float64Array = new Float64Array(0);
  refcountTableHuge = new Map<number, bigint>();
  /** The header's refcount table offset when past 2^53 (check opens such images; its messages print it exactly). */
  refcountTableOffsetExact: bigint | null = null;
  refcountTableSize = 0;
  maxRefcountTableIndex = 0;
  freeClusterIndex = 0;
  freeByteOffset = 0;
  /**
   * Clusters freed since the metadata was last flushed: their old references may still be in
   * the file, so they are not handed out for new data before a flush (see allocClustersNoref).
   * Past FREED_TRACK_MAX entries only the lowest index is kept.
   */
  freedSinceFlush = new Set<number>();
  freedLowestOverflow: number | null = null;

  l2Cache: TableCache;
  refblockCache: TableCache;

  discardPassthrough: boolean[] = [false, true, true, true, false];
  discards: { offset: number; bytes: number }[] = [];
  cacheDiscards = false;

  useLazyRefcounts = false;
  snapshots: Snapshot[] = [];
  snapshotsSize = 0;

  backing: GuestReader | null = null;
  signaledCorruption = false;
  /** Set after a fatal corruption: QEMU drops the driver, every request gets ENOMEDIUM. */
  dead = false;
  onCorruption: ((ev: CorruptionEvent) => void) | null = null;
  /** Writes the whole header cluster (set by the image). */
  updateHeader: () => void = () => {};
  /** Metadata ranges for the overlap check, rebuilt on demand. */
  metadataClusters: Map<number, number> | null = null;
  /** Kinds of metadata the overlap check protects, as 1 << OL_* (QEMU's "cached" template). */
  overlapCheck = 0x17f;

  constructor(file: Storage, dataFile: Storage | null, readOnly: boolean, hdr: HeaderState) {
    this.file = file;
    this.dataFile = dataFile ?? file;
    this.hasDataFile = dataFile !== null;
    this.readOnly = readOnly;
    this.hdr = hdr;
    this.setGeometry();
    this.l2Cache = new TableCache(file, this.clusterSize, 16);
    this.refblockCache = new TableCache(file, this.clusterSize, 64);
  }

  /** Derive every size from cluster bits, refcount order and the extended-L2 bit. */
  setGeometry(): void {
    const h = this.hdr;
    this.version = h.version;
    this.clusterBits = h.clusterBits;
    this.clusterSize = 2 ** h.clusterBits;
    this.extL2 = (h.incompatibleFeatures & INCOMPAT_EXTL2) !== 0n;
    this.l2EntrySize = this.extL2 ? 16 : 8;
    this.l2Bits = this.clusterBits - (this.extL2 ? 4 : 3);
    this.l2Size = 2 ** this.l2Bits;
    this.l2SliceSize = this.l2Size;
    this.subclustersPerCluster = this.extL2 ? SUBCLUSTERS_PER_CLUSTER : 1;
    this.subclusterSize = this.clusterSize / this.subclustersPerCluster;
    this.subclusterBits = Math.log2(this.subclusterSize);
    this.refcountOrder = h.refcountOrder;
    this.refcountBits = 2 ** h.refcountOrder;
    this.refcountBlockBits = this.clusterBits - (h.refcountOrder - 3);
    this.refcountBlockSize = 2 ** this.refcountBlockBits;
    // 64-bit refcounts cannot be represented exactly; no real image gets near that.
    this.refcountMax = this.refcountBits >= 53 ? Number.MAX_SAFE_INTEGER : 2 ** this.refcountBits - 1;
    this.csizeShift = 62 - (this.clusterBits - 8);
    this.csizeMask = 2 ** (this.clusterBits - 8) - 1;
  }

  /** read_cache_sizes(): L2 cache capacity and slice size follow the virtual size. */
  configureCaches(): void {
    const maxEntries = Math.ceil(this.hdr.size / this.clusterSize);
    const maxL2Cache = Math.ceil((maxEntries * this.l2EntrySize) / this.clusterSize) * this.clusterSize;
    const l2CacheSize = Math.min(maxL2Cache, 32 * 1024 * 1024);
    const entrySize = l2CacheSize < maxL2Cache ? Math.min(this.clusterSize, 4096) : this.clusterSize;
    this.l2SliceSize = entrySize / this.l2EntrySize;
    this.l2Cache.setCapacity(Math.ceil(Math.max(l2CacheSize, 2 * this.clusterSize) / this.clusterSize));
  }

  get size(): number {
    return this.hdr.size;
  }
  get l1Size(): number {
    return this.hdr.l1Size;
  }
  get l1TableOffset(): number {
    return this.hdr.l1TableOffset;
  }
  get refcountTableOffset(): number {
    return this.hdr.refcountTableOffset;
  }
  get dataFileRaw(): boolean {
    return (this.hdr.autoclearFeatures & AUTOCLEAR_DATA_FILE_RAW) !== 0n;
  }
  get dirty(): boolean {
    return (this.hdr.incompatibleFeatures & INCOMPAT_DIRTY) !== 0n;
  }
  get corrupt(): boolean {
    return (this.hdr.incompatibleFeatures & INCOMPAT_CORRUPT) !== 0n;
  }
  get lazyRefcountsBit(): boolean {
    return (this.hdr.compatibleFeatures & COMPAT_LAZY_REFCOUNTS) !== 0n;
  }
  /** qcow2_need_accurate_refcounts() */
  get needAccurateRefcounts(): boolean {
    return !this.dirty;
  }

  // Geometry helpers (offsets can exceed 2^32, so no bit shifts on them).
  offsetIntoCluster(offset: number): number {
    return offset % this.clusterSize;
  }
  startOfCluster(offset: number): number {
    return offset - (offset % this.clusterSize);
  }
  sizeToClusters(size: number): number {
    return Math.ceil(size / this.clusterSize);
  }
  offsetToL1Index(offset: number): number {
    return Math.floor(offset / (this.clusterSize * this.l2Size));
  }
  offsetToL2Index(offset: number): number {
    return Math.floor(offset / this.clusterSize) % this.l2Size;
  }
  offsetToL2SliceIndex(offset: number): number {
    return Math.floor(offset / this.clusterSize) % this.l2SliceSize;
  }
  offsetToScIndex(offset: number): number {
    return Math.floor(offset / this.subclusterSize) % this.subclustersPerCluster;
  }
  sizeToL1(size: number): number {
    return Math.ceil(size / (this.clusterSize * this.l2Size));
  }

  l1Offset(i: number): number {
    return (this.l1Hi[i]! & HI_OFFSET_MASK) * TWO32 + ((this.l1Lo[i]! & LO_OFFSET_MASK) >>> 0);
  }
  l1Copied(i: number): boolean {
    return (this.l1Hi[i]! & 0x80000000) !== 0;
  }
  l1Raw(i: number): bigint {
    return (BigInt(this.l1Hi[i]!) << 32n) | BigInt(this.l1Lo[i]!);
  }
  setL1(i: number, offset: number, copied: boolean): void {
    this.l1Hi[i] = (Math.floor(offset / TWO32) | (copied ? 0x80000000 : 0)) >>> 0;
    this.l1Lo[i] = offset >>> 0;
  }

  assertAlive(): void {
    if (this.dead) throw new ErrnoError(Errno.ENOMEDIUM);
  }

  /**
   * qcow2_signal_corruption(): report once, and for a fatal corruption of a writable image
   * set the corrupt bit and make the image unusable. Returns the error the request fails with.
   */
  signalCorruption(fatal: boolean, message: string, offset?: number, size?: number): Qcow2CorruptionError {
    const isFatal = fatal && !this.readOnly;
    if (!(this.signaledCorruption && (!isFatal || this.corrupt))) {
      this.onCorruption?.({ message, fatal: isFatal, offset, size });
      if (isFatal) {
        this.hdr.incompatibleFeatures |= INCOMPAT_CORRUPT;
        try {
          this.updateHeader();
        } catch {
          // Marking corrupt is best effort, as in QEMU.
        }
        this.dead = true;
      }
      this.signaledCorruption = true;
    }
    return new Qcow2CorruptionError(message, isFatal);
  }
}
