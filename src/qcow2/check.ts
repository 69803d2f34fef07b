/**
 * Consistency check and repair (QEMU's qcow2_co_check_locked / qcow2_check_refcounts):
 * rebuild the reference counts from L1/L2 tables, snapshots and metadata in memory,
 * compare with the on-disk refcounts, fix leaks and errors on request, rebuild the whole
 * refcount structure when it is beyond repair, and check the COPIED flags.
 *
 * The result carries the numbers `qemu-img check` prints and, in order, the lines QEMU
 * writes to stderr while checking (some through error_report, which prefixes the program
 * name; those are flagged).
 */
import { Errno } from '../errno.ts';
import {
  HEADER_OFF_REFTABLE_OFFSET,
  HEADER_OFF_SNAPSHOTS,
  HI_COPIED,
  INCOMPAT_CORRUPT,
  INT_MAX,
  L2_HI_RESERVED,
  L2_LO_RESERVED,
  L1_HI_RESERVED,
  L1_LO_RESERVED,
  QCOW_MAX_L1_SIZE,
  QCOW_MAX_SNAPSHOTS,
  SNAPSHOT_HEADER_SIZE,
} from './constants.ts';
import {
  CT_COMPRESSED,
  CT_NORMAL,
  CT_UNALLOCATED,
  CT_ZERO_ALLOC,
  CT_ZERO_PLAIN,
  clusterType,
  entryOffset,
  getBmHi,
  getBmLo,
  getHi,
  getLo,
  setBitmap,
  setEntry,
} from './entries.ts';
import { corruptionLine, errnoOf } from './errors.ts';
import { strerror } from '../errno.ts';
import { be32, be64, be64n, put32, put64, readAt, sizeOf, truncateTo, writeAt, writeSync } from './io.ts';
import { invalidateMetadata, OL_ACTIVE_L2, preWriteOverlapCheck } from './metadata.ts';
import { writeL1Entry } from './cluster.ts';
import {
  flushCaches,
  getRefcount,
  getRefcountBig,
  compressedOffsetExact,
  parseCompressed,
  refcountText,
  reftableReservedBits,
  setRefcountEntry,
  unalignedRefblockOffset,
  updateMaxRefcountTableIndex,
  updateRefcount,
  writeCaches,
} from './refcount.ts';
import type { ReadSnapshotsRepair } from './snapshot.ts';
import { readSnapshots, snapshotL1Offset, validateTable, writeSnapshots } from './snapshot.ts';
import type { BitmapDirEntry } from './bitmaps.ts';
import { bitmapTableEntryOffset, bitmapTableEntryValid, loadBitmapList } from './bitmaps.ts';
import type { State } from './state.ts';
import { DISCARD_ALWAYS } from './state.ts';
import { Qcow2Error } from './errors.ts';

export type CheckFix = 'none' | 'leaks' | 'all';
const FIX_LEAKS = 1;
const FIX_ERRORS = 2;

export interface CheckMessage {
  text: string;
  /** Printed through error_report(): QEMU prefixes the program name ("qemu-img: "). */
  errorReport?: boolean;
}

/** BdrvCheckResult plus the stderr lines QEMU prints while checking. */
export interface Qcow2CheckResult {
  corruptions: number;
  leaks: number;
  checkErrors: number;
  corruptionsFixed: number;
  leaksFixed: number;
  imageEndOffset: number;
  totalClusters: number;
  allocatedClusters: number;
  fragmentedClusters: number;
  compressedClusters: number;
  messages: CheckMessage[];
  /** Negative errno when the check itself failed (qemu-img: "Check failed: ..."). */
  ret: number;
}

/**
 * A message list that hands each message on as it is added instead of keeping it: a badly
 * damaged image can make check report millions of lines (QEMU prints them as it goes; the
 * fuzzer found one mutant whose 246,000 kept messages took 120 MiB).
 */
class StreamedMessages extends Array<CheckMessage> {
  private readonly deliver: (m: CheckMessage) => void;
  constructor(deliver: (m: CheckMessage) => void) {
    super();
    this.deliver = deliver;
  }
  static override get [Symbol.species](): ArrayConstructor {
    return Array;
  }
  override push(...items: CheckMessage[]): number {
    for (const m of items) this.deliver(m);
    return this.length;
  }
}

function emptyResult(): Qcow2CheckResult {
  return {
    corruptions: 0,
    leaks: 0,
    checkErrors: 0,
    corruptionsFixed: 0,
    leaksFixed: 0,
    imageEndOffset: 0,
    totalClusters: 0,
    allocatedClusters: 0,
    fragmentedClusters: 0,
    compressedClusters: 0,
    messages: [],
    ret: 0,
  };
}

class CheckFailed extends Error {
  readonly errno: number;
  constructor(errno: number) {
    super(strerror(errno));
    this.errno = errno;
  }
}

/**
 * In-memory refcount table (IMRT): one counter per host cluster, stored in chunks that are
 * only allocated where something is counted, so a huge (sparse or damaged) file does not
 * make the check allocate memory for every possible cluster.
 */
const IMRT_CHUNK = 65536;
class Imrt {
  private chunks = new Map<number, Float64Array>();
  // The check walks clusters in order: remember the last chunk looked up (hit or miss).
  private lastIndex = -1;
  private last: Float64Array | undefined;
  size: number;
  constructor(size: number) {
    this.size = size;
  }
  ensure(n: number): void {
    if (n > this.size) this.size = n;
  }
  private chunk(ci: number): Float64Array | undefined {
    if (ci !== this.lastIndex) {
      this.last = this.chunks.get(ci);
      this.lastIndex = ci;
    }
    return this.last;
  }
  get(k: number): number {
    if (k >= this.size) return 0;
    const c = this.chunk(Math.floor(k / IMRT_CHUNK));
    return c ? c[k % IMRT_CHUNK]! : 0;
  }
  set(k: number, v: number): void {
    this.ensure(k + 1);
    const ci = Math.floor(k / IMRT_CHUNK);
    let c = this.chunk(ci);
    if (!c) {
      if (v === 0) return;
      c = new Float64Array(IMRT_CHUNK);
      this.chunks.set(ci, c);
      this.last = c;
    }
    c[k % IMRT_CHUNK] = v;
  }
  clear(): void {
    this.chunks.clear();
    this.lastIndex = -1;
    this.last = undefined;
  }
  /** Whether any cluster in [from, to) may have a non-zero count (chunk granularity). */
  mayHave(from: number, to: number): boolean {
    for (let ci = Math.floor(from / IMRT_CHUNK); ci * IMRT_CHUNK < to; ci++) if (this.chunks.has(ci)) return true;
    return false;
  }
}

interface Ctx {
  s: State;
  res: Qcow2CheckResult;
  fix: number;
  rebuild: boolean;
  imrt: Imrt;
  fileLength: number;
}

function say(c: Ctx, text: string, errorReport = false): void {
  c.res.messages.push(errorReport ? { text, errorReport } : { text });
}

const hex = (v: number): string => v.toString(16);

/** qcow2_inc_refcounts_imrt() */
function incRefcounts(c: Ctx, offset: number, size: number, exactOffset?: bigint): void {
  const s = c.s;
  if (size <= 0) return;
  if (offset + size - c.fileLength >= s.clusterSize) {
    say(
      c,
      `ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x${(exactOffset ?? offset).toString(16)} size 0x${hex(size)}`,
    );
    c.res.corruptions++;
    return;
  }
  const start = s.startOfCluster(offset);
  const last = s.startOfCluster(offset + size - 1);
  for (let co = start; co <= last; co += s.clusterSize) {
    const k = co / s.clusterSize;
    const rc = c.imrt.get(k);
    if (rc === s.refcountMax) {
      say(c, `ERROR: overflow cluster offset=0x${hex(co)}`);
      say(
        c,
        'Use qemu-img amend to increase the refcount entry width or qemu-img convert to create a clean copy if the image cannot be opened for writing',
      );
      c.res.corruptions++;
      continue;
    }
    c.imrt.set(k, rc + 1);
  }
}

function entryHex(hi: number, lo: number): string {
  return ((BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)).toString(16);
}

/** fix_l2_entry_by_zero() */
function fixL2EntryByZero(c: Ctx, l2Offset: number, table: Uint8Array, index: number, active: boolean): { ok: boolean; overlap: boolean } {
  const s = c.s;
  if (s.extL2) {
    let bmHi = getBmHi(s, table, index);
    const bmLo = getBmLo(s, table, index);
    bmHi = (bmHi | bmLo) >>> 0;
    setBitmap(table, index, bmHi, 0);
    setEntry(s, table, index, 0, 0);
  } else {
    setEntry(s, table, index, 0, 1);
  }
  const at = l2Offset + index * s.l2EntrySize;
  try {
    preWriteOverlapCheck(s, active ? [OL_ACTIVE_L2] : [7], at, s.l2EntrySize, false);
  } catch {
    say(c, 'ERROR: Overlap check failed');
    c.res.checkErrors++;
    return { ok: false, overlap: true };
  }
  try {
    writeSync(s.file, at, table.subarray(index * s.l2EntrySize, (index + 1) * s.l2EntrySize));
  } catch (err) {
    say(c, `ERROR: Failed to overwrite L2 table entry: ${strerror(errnoOf(err))}`);
    c.res.checkErrors++;
    return { ok: false, overlap: false };
  }
  c.res.corruptions--;
  c.res.corruptionsFixed++;
  return { ok: true, overlap: false };
}

/** check_refcounts_l2() */
function checkRefcountsL2(c: Ctx, l2Offset: number, fragInfo: boolean, active: boolean): void {
  const s = c.s;
  // Past the end of the file a table reads as zeroes: nothing to count or check.
  if (l2Offset >= c.fileLength) return;
  const table = new Uint8Array(s.l2Size * s.l2EntrySize);
  try {
    readAt(s.file, l2Offset, table);
  } catch (err) {
    say(c, 'ERROR: I/O error in check_refcounts_l2');
    c.res.checkErrors++;
    throw new CheckFailed(errnoOf(err));
  }
  let nextContiguous = 0;
  for (let i = 0; i < s.l2Size; i++) {
    let hi = getHi(s, table, i);
    const lo = getLo(s, table, i);
    const bmHi = getBmHi(s, table, i);
    const bmLo = getBmLo(s, table, i);
    if (!hi && !lo && !bmHi && !bmLo) continue;
    const type = clusterType(s, hi, lo);
    if (type !== CT_COMPRESSED && (hi & L2_HI_RESERVED || lo & L2_LO_RESERVED)) {
      say(c, `ERROR found l2 entry with reserved bits set: ${entryHex(hi, lo)}`);
      c.res.corruptions++;
    }
    switch (type) {
      case CT_COMPRESSED: {
        if (hi & HI_COPIED) {
          say(c, `ERROR: coffset=0x${compressedOffsetExact(s, hi, lo).toString(16)}: copied flag must never be set for compressed clusters`);
          hi = (hi & ~HI_COPIED) >>> 0;
          c.res.corruptions++;
        }
        if (s.hasDataFile) {
          say(c, `ERROR compressed cluster ${i} with data file, entry=0x${entryHex(hi, lo)}`);
          c.res.corruptions++;
          break;
        }
        if (bmHi || bmLo) {
          say(c, `ERROR compressed cluster ${i} with non-zero subcluster allocation bitmap, entry=0x${entryHex(hi, lo)}`);
          c.res.corruptions++;
          break;
        }
        const cmp = parseCompressed(s, hi, lo);
        incRefcounts(c, cmp.offset, cmp.size, cmp.offset >= 2 ** 53 ? compressedOffsetExact(s, hi, lo) : undefined);
        if (fragInfo) {
          c.res.allocatedClusters++;
          c.res.compressedClusters++;
          c.res.fragmentedClusters++;
        }
        break;
      }
      case CT_ZERO_ALLOC:
      case CT_NORMAL: {
        const offset = entryOffset(hi, lo);
        if (bmHi & bmLo) {
          c.res.corruptions++;
          say(c, `ERROR offset=${hex(offset)}: Allocated cluster has corrupted subcluster allocation bitmap`);
        }
        if (s.offsetIntoCluster(offset)) {
          c.res.corruptions++;
          const containsData = s.extL2 ? bmLo !== 0 : !(lo & 1);
          if (!containsData) {
            say(
              c,
              `${c.fix & FIX_ERRORS ? 'Repairing' : 'ERROR'} offset=${hex(offset)}: Preallocated cluster is not properly aligned; L2 entry corrupted.`,
            );
            if (c.fix & FIX_ERRORS) {
              const r = fixL2EntryByZero(c, l2Offset, table, i, active);
              if (r.overlap) return;
              if (r.ok) continue;
            }
          } else {
            say(c, `ERROR offset=${hex(offset)}: Data cluster is not properly aligned; L2 entry corrupted.`);
          }
        }
        if (fragInfo) {
          c.res.allocatedClusters++;
          if (nextContiguous && offset !== nextContiguous) c.res.fragmentedClusters++;
          nextContiguous = offset + s.clusterSize;
        }
        if (!s.hasDataFile) incRefcounts(c, offset, s.clusterSize);
        break;
      }
      case CT_ZERO_PLAIN:
        break;
      case CT_UNALLOCATED:
        if (bmLo) {
          c.res.corruptions++;
          say(c, 'ERROR: Unallocated cluster has non-zero subcluster allocation map');
        }
        break;
    }
  }
}

/** check_refcounts_l1() */
function checkRefcountsL1(c: Ctx, l1Offset: number, l1Size: number, fragInfo: boolean, active: boolean, l1Exact?: bigint): void {
  const s = c.s;
  if (!l1Size) return;
  incRefcounts(c, l1Offset, l1Size * 8, l1Exact);
  const l1 = new Uint8Array(l1Size * 8);
  try {
    readAt(s.file, l1Offset, l1);
  } catch (err) {
    say(c, 'ERROR: I/O error in check_refcounts_l1');
    c.res.checkErrors++;
    throw new CheckFailed(errnoOf(err));
  }
  for (let i = 0; i < l1Size; i++) {
    const hi = be32(l1, 8 * i);
    const lo = be32(l1, 8 * i + 4);
    if (!hi && !lo) continue;
    if (hi & L1_HI_RESERVED || lo & L1_LO_RESERVED) {
      say(c, `ERROR found L1 entry with reserved bits set: ${entryHex(hi, lo)}`);
      c.res.corruptions++;
    }
    const l2Offset = entryOffset(hi, lo);
    incRefcounts(c, l2Offset, s.clusterSize);
    if (s.offsetIntoCluster(l2Offset)) {
      say(c, `ERROR l2_offset=${hex(l2Offset)}: Table is not cluster aligned; L1 entry corrupted`);
      c.res.corruptions++;
    }
    checkRefcountsL2(c, l2Offset, fragInfo, active);
  }
}

/**
 * qcow2_check_bitmaps_refcounts(): the directory, bitmap tables and their clusters. A
 * directory that does not load, or a table that does not, is a corruption that ends the check
 * (QEMU returns the error); a bad table entry is a corruption and is skipped.
 */
function checkBitmapsRefcounts(c: Ctx): void {
  const s = c.s;
  const b = s.hdr.bitmaps;
  if (!b) return;
  incRefcounts(c, b.directoryOffset, b.directorySize);
  let list: BitmapDirEntry[];
  try {
    list = loadBitmapList(s.file, b, s.clusterSize, Math.floor(s.size / 512) * 512);
  } catch (err) {
    errnoOf(err);
    c.res.corruptions++;
    throw new CheckFailed(Errno.EINVAL);
  }
  for (const bm of list) {
    incRefcounts(c, Number(bm.tableOffset), bm.tableSize * 8);
    let raw: Uint8Array;
    try {
      raw = new Uint8Array(bm.tableSize * 8);
      readAt(s.file, Number(bm.tableOffset), raw);
    } catch (err) {
      c.res.corruptions++;
      throw new CheckFailed(errnoOf(err));
    }
    // bitmap_table_load() fails on the first bad entry, and then the whole check does.
    const entries: bigint[] = [];
    for (let i = 0; i < bm.tableSize; i++) {
      const entry = (BigInt(be32(raw, 8 * i)) << 32n) | BigInt(be32(raw, 8 * i + 4));
      if (!bitmapTableEntryValid(entry, s.clusterSize)) {
        c.res.corruptions++;
        throw new CheckFailed(Errno.EINVAL);
      }
      entries.push(entry);
    }
    for (const entry of entries) {
      const offset = bitmapTableEntryOffset(entry);
      if (offset) incRefcounts(c, offset, s.clusterSize);
    }
  }
}

/** check_refblocks() */
function checkRefblocks(c: Ctx): void {
  const s = c.s;
  for (let i = 0; i < s.refcountTableSize; i++) {
    const raw = s.refcountTable[i]!;
    const offset = raw - (raw % 512);
    const cluster = Math.floor(offset / s.clusterSize);
    // Entries past 2^53 are judged on their exact bits (a float has lost the low ones).
    if (reftableReservedBits(s, i)) {
      say(c, `ERROR refcount table entry ${i} has reserved bits set`);
      c.res.corruptions++;
      c.rebuild = true;
      continue;
    }
    if (unalignedRefblockOffset(s, i) !== null) {
      say(c, `ERROR refcount block ${i} is not cluster aligned; refcount table entry corrupted`);
      c.res.corruptions++;
      c.rebuild = true;
      continue;
    }
    if (cluster >= c.imrt.size) {
      c.res.corruptions++;
      say(c, `${c.fix & FIX_ERRORS ? 'Repairing' : 'ERROR'} refcount block ${i} is outside image`);
      if (c.fix & FIX_ERRORS) {
        try {
          // QEMU refuses an end past INT64_MAX before asking the file (offsets are multiples
          // of 512, so this float comparison is exact).
          if (offset >= 2 ** 63 - s.clusterSize) throw new Qcow2Error(Errno.EINVAL, 'offset past INT64_MAX');
          truncateTo(s.file, offset + s.clusterSize);
          c.fileLength = fileLength(s);
          const newNb = s.sizeToClusters(c.fileLength);
          c.imrt.ensure(newNb);
          c.res.corruptions--;
          c.res.corruptionsFixed++;
          incRefcounts(c, offset, s.clusterSize);
          continue;
        } catch (err) {
          c.rebuild = true;
          say(c, `ERROR could not resize image: ${strerror(errnoOf(err))}`);
        }
      }
      continue;
    }
    if (offset !== 0) {
      incRefcounts(c, offset, s.clusterSize);
      const rc = c.imrt.get(cluster);
      if (rc !== 1) {
        say(c, `ERROR refcount block ${i} refcount=${rc}`);
        c.res.corruptions++;
        c.rebuild = true;
      }
    }
  }
}

/** calculate_refcounts() */
function calculateRefcounts(c: Ctx): void {
  const s = c.s;
  incRefcounts(c, 0, s.clusterSize);
  checkRefcountsL1(c, s.l1TableOffset, s.l1Size, true, true);
  if (s.hasDataFile && s.snapshots.length) {
    say(c, `ERROR ${s.snapshots.length} snapshots in image with data file`);
    c.res.corruptions++;
  }
  for (const sn of s.snapshots) {
    const l1Exact = snapshotL1Offset(sn);
    if (l1Exact % BigInt(s.clusterSize) !== 0n) {
      say(
        c,
        `ERROR snapshot ${sn.id} (${sn.name}) l1_offset=0x${l1Exact.toString(16)}: L1 table is not cluster aligned; snapshot table entry corrupted`,
      );
      c.res.corruptions++;
      continue;
    }
    if (sn.l1Size > QCOW_MAX_L1_SIZE / 8) {
      say(
        c,
        `ERROR snapshot ${sn.id} (${sn.name}) l1_size=0x${hex(sn.l1Size)}: L1 table is too large; snapshot table entry corrupted`,
      );
      c.res.corruptions++;
      continue;
    }
    checkRefcountsL1(c, sn.l1TableOffset, sn.l1Size, false, false, l1Exact);
  }
  incRefcounts(c, s.hdr.snapshotsOffset, s.snapshotsSize);
  const reftableExact = s.refcountTableOffsetExact;
  incRefcounts(c, s.refcountTableOffset, s.refcountTableSize * 8, reftableExact !== null && Number(reftableExact) === s.refcountTableOffset ? reftableExact : undefined);
  checkBitmapsRefcounts(c);
  checkRefblocks(c);
}

/** compare_refcounts(); returns the highest cluster in use. */
function compareRefcounts(c: Ctx, fix: number): number {
  const s = c.s;
  let highest = 0;
  for (let i = 0; i < c.imrt.size; i++) {
    if (i % s.refcountBlockSize === 0) {
      // Skip ranges that neither the refcount structures nor the references cover.
      const ti = i / s.refcountBlockSize;
      const end = i + s.refcountBlockSize;
      if ((ti >= s.refcountTableSize || !s.refcountTable[ti]) && !c.imrt.mayHave(i, end)) {
        i = end - 1;
        continue;
      }
    }
    let rc1: number;
    try {
      rc1 = getRefcount(s, i);
    } catch (err) {
      say(c, `Can't get refcount for cluster ${i}: ${strerror(errnoOf(err))}`);
      c.res.checkErrors++;
      continue;
    }
    const rc2 = c.imrt.get(i);
    if (rc1 > 0 || rc2 > 0) highest = i;
    if (rc1 !== rc2) {
      let fixed: 'leaks' | 'corruptions' | null = null;
      if (rc1 === 0) c.rebuild = true;
      else if (rc1 > rc2 && fix & FIX_LEAKS) fixed = 'leaks';
      else if (rc1 < rc2 && fix & FIX_ERRORS) fixed = 'corruptions';
      say(c, `${fixed ? 'Repairing' : rc1 < rc2 ? 'ERROR' : 'Leaked'} cluster ${i} refcount=${refcountText(s, i, rc1)} reference=${rc2}`);
      if (fixed) {
        let ok = false;
        try {
          // Past 2^53 (64-bit entries only) the difference must be exact: bigint.
          const diff = rc1 > Number.MAX_SAFE_INTEGER ? getRefcountBig(s, i) - BigInt(rc2) : Math.abs(rc1 - rc2);
          ok = updateRefcount(s, i * s.clusterSize, 1, diff, rc1 > rc2, DISCARD_ALWAYS);
        } catch {
          ok = false;
        }
        if (ok) {
          if (fixed === 'leaks') c.res.leaksFixed++;
          else c.res.corruptionsFixed++;
          continue;
        }
      }
      if (rc1 < rc2) c.res.corruptions++;
      else c.res.leaks++;
    }
  }
  return highest;
}

/** alloc_clusters_imrt() */
function allocClustersImrt(c: Ctx, count: number, firstFree: { v: number }): number {
  const s = c.s;
  let cluster = firstFree.v;
  let firstGap = true;
  let contiguous = 0;
  for (; cluster < c.imrt.size && contiguous < count; cluster++) {
    if (!c.imrt.get(cluster)) {
      contiguous++;
      if (firstGap) {
        firstFree.v = cluster;
        firstGap = false;
      }
    } else if (contiguous) {
      contiguous = 0;
    }
  }
  if (contiguous < count) c.imrt.ensure(cluster + count - contiguous);
  cluster -= contiguous;
  for (let i = 0; i < count; i++) c.imrt.set(cluster + i, 1);
  return cluster * s.clusterSize;
}

/** The refcount block `index` as it would be on disk, from the IMRT. */
function imrtBlock(c: Ctx, index: number): Uint8Array {
  const s = c.s;
  const out = new Uint8Array(s.clusterSize);
  const base = index * s.refcountBlockSize;
  for (let j = 0; j < s.refcountBlockSize; j++) {
    const v = c.imrt.get(base + j);
    if (v) setRefcountEntry(out, j, s.refcountOrder, v);
  }
  return out;
}

/** rebuild_refcounts_write_refblocks() */
function rebuildWriteRefblocks(c: Ctx, first: number, endCluster: number, table: { t: number[] }): boolean {
  const s = c.s;
  const firstFree = { v: 0 };
  let grown = false;
  let end = endCluster;
  for (let cluster = first; cluster < end; cluster++) {
    if (!c.imrt.get(cluster)) {
      if (cluster % IMRT_CHUNK === 0 && !c.imrt.mayHave(cluster, cluster + IMRT_CHUNK)) cluster += IMRT_CHUNK - 1;
      continue;
    }
    const rbIndex = Math.floor(cluster / s.refcountBlockSize);
    const rbStart = rbIndex * s.refcountBlockSize;
    let rbOffset: number;
    if (table.t.length > rbIndex && table.t[rbIndex]) {
      rbOffset = table.t[rbIndex]!;
    } else {
      if (firstFree.v < rbStart) firstFree.v = rbStart;
      rbOffset = allocClustersImrt(c, 1, firstFree);
      const rbCluster = rbOffset / s.clusterSize;
      if (rbCluster >= end) end = rbCluster + 1;
      if (table.t.length <= rbIndex) {
        const n = Math.ceil(((rbIndex + 1) * 8) / s.clusterSize) * (s.clusterSize / 8);
        while (table.t.length < n) table.t.push(0);
        grown = true;
      }
      table.t[rbIndex] = rbOffset;
    }
    preWriteOverlapCheck(s, [], rbOffset, s.clusterSize, false);
    writeAt(s.file, rbOffset, imrtBlock(c, rbIndex));
    cluster = rbStart + s.refcountBlockSize - 1;
  }
  return grown;
}

/** rebuild_refcount_structure(): new refblocks and reftable from the IMRT alone. */
function rebuildRefcountStructure(c: Ctx): void {
  const s = c.s;
  s.refblockCache.empty();
  s.refblockCache.clear();
  // Like QEMU, the old refcount table stays in place (and in the overlap check) until the
  // new one is complete.
  const table = { t: [] as number[] };
  let changed = rebuildWriteRefblocks(c, 0, c.imrt.size, table);
  let reftableOffset = -1;
  let reftableClusters = 0;
  do {
    const length = table.t.length * 8;
    reftableClusters = s.sizeToClusters(length);
    reftableOffset = allocClustersImrt(c, reftableClusters, { v: 0 });
    const startCluster = reftableOffset / s.clusterSize;
    changed = rebuildWriteRefblocks(c, startCluster, startCluster + reftableClusters, table);
  } while (changed);
  const buf = new Uint8Array(table.t.length * 8);
  table.t.forEach((v, i) => put64(buf, 8 * i, v));
  writeAt(s.file, reftableOffset, buf);
  const hdr = new Uint8Array(12);
  put64(hdr, 0, reftableOffset);
  put32(hdr, 8, reftableClusters);
  writeSync(s.file, HEADER_OFF_REFTABLE_OFFSET, hdr);
  s.refcountTable = Float64Array.from(table.t);
  s.refcountTableSize = table.t.length;
  s.hdr.refcountTableOffset = reftableOffset;
  s.hdr.refcountTableClusters = reftableClusters;
  updateMaxRefcountTableIndex(s);
  invalidateMetadata(s);
}

/** check_oflag_copied() */
function checkOflagCopied(c: Ctx): void {
  const s = c.s;
  const repair = c.fix & FIX_ERRORS ? true : c.fix & FIX_LEAKS ? !c.res.checkErrors && !c.res.corruptions && !c.res.leaks : false;
  for (let i = 0; i < s.l1Size; i++) {
    const l2Offset = s.l1Offset(i);
    if (!l2Offset) continue;
    // l2_offset >> cluster_bits: the table may be unaligned in a damaged image.
    const l2Cluster = Math.floor(l2Offset / s.clusterSize);
    let rc: number;
    try {
      rc = getRefcount(s, l2Cluster);
    } catch {
      continue;
    }
    if ((rc === 1) !== s.l1Copied(i)) {
      c.res.corruptions++;
      say(c, `${repair ? 'Repairing' : 'ERROR'} OFLAG_COPIED L2 cluster: l1_index=${i} l1_entry=${entryHex(s.l1Hi[i]!, s.l1Lo[i]!)} refcount=${refcountText(s, l2Cluster, rc)}`);
      if (repair) {
        s.l1Hi[i] = rc === 1 ? (s.l1Hi[i]! | HI_COPIED) >>> 0 : (s.l1Hi[i]! & ~HI_COPIED) >>> 0;
        try {
          writeL1Entry(s, i);
        } catch (err) {
          c.res.checkErrors++;
          throw new CheckFailed(errnoOf(err));
        }
        c.res.corruptions--;
        c.res.corruptionsFixed++;
      }
    }
    if (l2Offset >= c.fileLength) continue;
    const table = new Uint8Array(s.l2Size * s.l2EntrySize);
    try {
      readAt(s.file, l2Offset, table);
    } catch (err) {
      say(c, `ERROR: Could not read L2 table: ${strerror(errnoOf(err))}`);
      c.res.checkErrors++;
      throw new CheckFailed(errnoOf(err));
    }
    let dirty = 0;
    for (let j = 0; j < s.l2Size; j++) {
      const hi = getHi(s, table, j);
      const lo = getLo(s, table, j);
      if (!hi && !lo) continue;
      const type = clusterType(s, hi, lo);
      if (type !== CT_NORMAL && type !== CT_ZERO_ALLOC) continue;
      let refcount = 1;
      const dataCluster = Math.floor(entryOffset(hi, lo) / s.clusterSize);
      if (!s.hasDataFile) {
        try {
          refcount = getRefcount(s, dataCluster);
        } catch {
          continue;
        }
      }
      if ((refcount === 1) !== ((hi & HI_COPIED) !== 0)) {
        c.res.corruptions++;
        say(c, `${repair ? 'Repairing' : 'ERROR'} OFLAG_COPIED data cluster: l2_entry=${entryHex(hi, lo)} refcount=${refcountText(s, dataCluster, refcount)}`);
        if (repair) {
          setEntry(s, table, j, refcount === 1 ? (hi | HI_COPIED) >>> 0 : (hi & ~HI_COPIED) >>> 0, lo);
          dirty++;
        }
      }
    }
    if (dirty > 0) {
      try {
        preWriteOverlapCheck(s, [OL_ACTIVE_L2], l2Offset, s.clusterSize, false);
      } catch (err) {
        say(c, `ERROR: Could not write L2 table; metadata overlap check failed: ${strerror(errnoOf(err))}`);
        c.res.checkErrors++;
        throw new CheckFailed(errnoOf(err));
      }
      try {
        writeAt(s.file, l2Offset, table.subarray(0, s.clusterSize));
      } catch (err) {
        say(c, `ERROR: Could not write L2 table: ${strerror(errnoOf(err))}`);
        c.res.checkErrors++;
        throw new CheckFailed(errnoOf(err));
      }
      s.l2Cache.discard(l2Offset);
      c.res.corruptions -= dirty;
      c.res.corruptionsFixed += dirty;
    }
  }
}

/**
 * bdrv_getlength(bs->file): the file's length in whole sectors. A file whose end was cut
 * inside a sector counts up to the sector's end, so a table there is not "beyond the end"
 * (fuzzer finding: a 512-byte-cluster image truncated to 1127 bytes).
 */
function fileLength(s: State): number {
  return Math.ceil(sizeOf(s.file) / 512) * 512;
}

/** qcow2_check_refcounts() */
function checkRefcounts(s: State, res: Qcow2CheckResult, fix: number): void {
  const size = fileLength(s);
  const nb = s.sizeToClusters(size);
  if (nb > INT_MAX) {
    res.checkErrors++;
    throw new CheckFailed(Errno.EFBIG);
  }
  // QEMU counts the clusters of bs->total_sectors, the header size rounded down to sectors.
  res.totalClusters = s.sizeToClusters(s.size - (s.size % 512));
  const c: Ctx = { s, res, fix, rebuild: false, imrt: new Imrt(nb), fileLength: size };
  calculateRefcounts(c);
  const pre = { ...res, messages: [...res.messages] };
  let highest = compareRefcounts(c, 0);
  if (c.rebuild && fix & FIX_ERRORS) {
    const old = { ...res };
    let freshLeaks = 0;
    say(c, 'Rebuilding refcount structure');
    try {
      rebuildRefcountStructure(c);
    } catch (err) {
      res.checkErrors++;
      say(c, `ERROR writing refblock: ${strerror(errnoOf(err))}`, true);
      throw new CheckFailed(errnoOf(err));
    }
    res.corruptions = 0;
    res.leaks = 0;
    c.rebuild = false;
    c.imrt.clear();
    c.fileLength = fileLength(s);
    c.fix = 0;
    calculateRefcounts(c);
    c.fix = fix;
    if (fix & FIX_LEAKS) {
      const saved = { ...res, messages: res.messages };
      const tmp = emptyResult();
      tmp.messages = res.messages;
      c.res = tmp;
      highest = compareRefcounts(c, FIX_LEAKS);
      if (c.rebuild) say(c, 'ERROR rebuilt refcount structure is still broken');
      freshLeaks = tmp.leaks;
      c.res = res;
      Object.assign(res, saved);
    }
    if (res.corruptions < old.corruptions) res.corruptionsFixed += old.corruptions - res.corruptions;
    if (res.leaks < old.leaks) res.leaksFixed += old.leaks - res.leaks;
    res.leaks += freshLeaks;
  } else if (fix) {
    if (c.rebuild) {
      say(c, 'ERROR need to rebuild refcount structures');
      res.checkErrors++;
      throw new CheckFailed(Errno.EIO);
    }
    if (res.leaks || res.corruptions) {
      const messages = res.messages;
      Object.assign(res, pre);
      res.messages = messages;
      highest = compareRefcounts(c, fix);
    }
  }
  checkOflagCopied(c);
  res.imageEndOffset = (highest + 1) * s.clusterSize;
}

/** qcow2_check_read_snapshot_table() */
function checkReadSnapshotTable(s: State, res: Qcow2CheckResult, fix: number): { nbClustersReduced: number } {
  const ptr = new Uint8Array(12);
  try {
    readAt(s.file, HEADER_OFF_SNAPSHOTS, ptr);
  } catch (err) {
    res.checkErrors++;
    res.messages.push({
      text: `ERROR failed to read the snapshot table pointer from the image header: ${strerror(errnoOf(err))}`,
    });
    throw new CheckFailed(errnoOf(err));
  }
  const snapshotsOffset = be64n(ptr, 4);
  s.hdr.snapshotsOffset = Number(snapshotsOffset);
  s.hdr.nbSnapshots = be32(ptr, 0);
  let reduced = 0;
  if (s.hdr.nbSnapshots > QCOW_MAX_SNAPSHOTS && fix & FIX_ERRORS) {
    res.messages.push({ text: `Discarding ${s.hdr.nbSnapshots - QCOW_MAX_SNAPSHOTS} overhanging snapshots` });
    reduced += s.hdr.nbSnapshots - QCOW_MAX_SNAPSHOTS;
    s.hdr.nbSnapshots = QCOW_MAX_SNAPSHOTS;
  }
  try {
    validateTable(s, snapshotsOffset, s.hdr.nbSnapshots, SNAPSHOT_HEADER_SIZE, SNAPSHOT_HEADER_SIZE * QCOW_MAX_SNAPSHOTS, 'snapshot table');
  } catch (err) {
    res.checkErrors++;
    res.messages.push({ text: `ERROR ${(err as Error).message}`, errorReport: true });
    if (s.hdr.nbSnapshots > QCOW_MAX_SNAPSHOTS) {
      res.messages.push({
        text: `You can force-remove all ${s.hdr.nbSnapshots - QCOW_MAX_SNAPSHOTS} overhanging snapshots with qemu-img check -r all`,
      });
    }
    s.hdr.snapshotsOffset = 0;
    s.hdr.nbSnapshots = 0;
    s.snapshots = [];
    throw new CheckFailed(errnoOf(err));
  }
  const repair: ReadSnapshotsRepair | null = fix & FIX_ERRORS ? { nbClustersReduced: 0, extraDataDropped: 0, messages: [] } : null;
  try {
    readSnapshots(s, repair);
  } catch (err) {
    res.checkErrors++;
    res.messages.push({ text: `ERROR failed to read the snapshot table: ${(err as Error).message}`, errorReport: true });
    if (err instanceof Qcow2Error && err.hint) res.messages.push({ text: err.hint.replace(/\n$/, '') });
    s.hdr.snapshotsOffset = 0;
    s.hdr.nbSnapshots = 0;
    s.snapshots = [];
    throw new CheckFailed(errnoOf(err));
  }
  if (repair) {
    for (const m of repair.messages) res.messages.push({ text: m });
    reduced += repair.nbClustersReduced;
    res.corruptions += reduced + repair.extraDataDropped;
  }
  if (reduced) {
    const nb = new Uint8Array(4);
    put32(nb, 0, s.hdr.nbSnapshots);
    try {
      writeSync(s.file, HEADER_OFF_SNAPSHOTS, nb);
    } catch (err) {
      res.checkErrors++;
      res.messages.push({ text: `ERROR failed to update the snapshot count in the image header: ${strerror(errnoOf(err))}` });
      throw new CheckFailed(errnoOf(err));
    }
    res.corruptionsFixed += reduced;
    res.corruptions -= reduced;
  }
  if (s.version >= 3) {
    s.snapshots.forEach((sn, i) => {
      if (sn.extraDataSize < 16) {
        res.corruptions++;
        res.messages.push({ text: `${fix & FIX_ERRORS ? 'Repairing' : 'ERROR'} snapshot table entry ${i} is incomplete` });
      }
    });
  }
  invalidateMetadata(s);
  return { nbClustersReduced: reduced };
}

/**
 * qcow2_co_check_locked(): check the image and optionally repair it. Metadata caches are
 * written first so the on-disk tables are the ones checked.
 */
export function checkImage(s: State, mode: CheckFix, onMessage?: (m: CheckMessage) => void): Qcow2CheckResult {
  const fix = mode === 'all' ? FIX_LEAKS | FIX_ERRORS : mode === 'leaks' ? FIX_LEAKS : 0;
  const result = emptyResult();
  if (onMessage) result.messages = new StreamedMessages(onMessage);
  const snapshotRes = emptyResult();
  const add = (src: Qcow2CheckResult, alloc: boolean): void => {
    result.corruptions += src.corruptions;
    result.leaks += src.leaks;
    result.checkErrors += src.checkErrors;
    result.corruptionsFixed += src.corruptionsFixed;
    result.leaksFixed += src.leaksFixed;
    if (alloc) {
      result.imageEndOffset = src.imageEndOffset;
      result.totalClusters = src.totalClusters;
      result.allocatedClusters = src.allocatedClusters;
      result.fragmentedClusters = src.fragmentedClusters;
      result.compressedClusters = src.compressedClusters;
    }
  };
  if (!s.readOnly) writeCaches(s);
  // Corruption events during a check are part of its stderr output, in order.
  const onCorruption = s.onCorruption;
  s.onCorruption = (ev) => result.messages.push({ text: corruptionLine(ev) });
  try {
    try {
      checkReadSnapshotTable(s, snapshotRes, fix);
    } catch (err) {
      add(snapshotRes, false);
      result.messages.push(...snapshotRes.messages);
      throw err;
    }
    result.messages.push(...snapshotRes.messages);
    snapshotRes.messages = [];
    const refcountRes = emptyResult();
    refcountRes.messages = result.messages;
    try {
      checkRefcounts(s, refcountRes, fix);
    } finally {
      add(refcountRes, true);
    }
    if (snapshotRes.corruptions && fix & FIX_ERRORS) {
      try {
        writeSnapshots(s);
        snapshotRes.corruptionsFixed += snapshotRes.corruptions;
        snapshotRes.corruptions = 0;
      } catch (err) {
        snapshotRes.checkErrors++;
        result.messages.push({ text: `ERROR failed to update snapshot table: ${strerror(errnoOf(err))}` });
        add(snapshotRes, false);
        throw new CheckFailed(errnoOf(err));
      }
    }
    add(snapshotRes, false);
    if (fix && result.checkErrors === 0 && result.corruptions === 0) {
      markClean(s);
      if (s.hdr.incompatibleFeatures & INCOMPAT_CORRUPT) {
        flushCaches(s);
        s.hdr.incompatibleFeatures &= ~INCOMPAT_CORRUPT;
        s.updateHeader();
      }
    }
  } catch (err) {
    s.onCorruption = onCorruption;
    if (err instanceof CheckFailed) {
      result.ret = -err.errno;
      return result;
    }
    if (err instanceof Qcow2Error || err instanceof Error) {
      result.ret = -errnoOf(err);
      return result;
    }
    throw err;
  }
  s.onCorruption = onCorruption;
  return result;
}

function markClean(s: State): void {
  if (s.dirty) {
    s.hdr.incompatibleFeatures &= ~1n;
    flushCaches(s);
    s.updateHeader();
  }
}

