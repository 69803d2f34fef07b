/**
 * Overlap protection (qcow2_pre_write_overlap_check): no data or table write may land on a
 * cluster holding metadata of a kind the image checks (QEMU's "cached" template unless the
 * open options say otherwise). A hit is a fatal corruption, as in QEMU. Inactive L2 tables
 * are found by reading the snapshots' L1 tables at every check; a snapshot table that cannot
 * be read fails the write with its errno instead.
 */
import { ErrnoError } from '../errno.ts';
import { QCOW_MAX_L1_SIZE, SNAPSHOT_HEADER_SIZE } from './constants.ts';
import { errnoOf } from './errors.ts';
import { be32, readAt } from './io.ts';
import { reftableOffset } from './refcount.ts';
import { snapshotL1Offset, validateTable } from './snapshot.ts';
import type { State } from './state.ts';

export const OL_MAIN_HEADER = 0;
export const OL_ACTIVE_L1 = 1;
export const OL_ACTIVE_L2 = 2;
export const OL_REFCOUNT_TABLE = 3;
export const OL_REFCOUNT_BLOCK = 4;
export const OL_SNAPSHOT_TABLE = 5;
export const OL_INACTIVE_L1 = 6;
export const OL_INACTIVE_L2 = 7;
export const OL_BITMAP_DIRECTORY = 8;

/** The `overlap-check.<name>` switches, by bit number (QCOW2_OL_*_BITNR). */
export const OVERLAP_CHECK_NAMES: readonly string[] = [
  'main-header',
  'active-l1',
  'active-l2',
  'refcount-table',
  'refcount-block',
  'snapshot-table',
  'inactive-l1',
  'inactive-l2',
  'bitmap-directory',
];

const bit = (kind: number): number => 1 << kind;
const OL_CONSTANT = bit(OL_MAIN_HEADER) | bit(OL_ACTIVE_L1) | bit(OL_REFCOUNT_TABLE) | bit(OL_SNAPSHOT_TABLE) | bit(OL_BITMAP_DIRECTORY);
const OL_CACHED = OL_CONSTANT | bit(OL_ACTIVE_L2) | bit(OL_REFCOUNT_BLOCK) | bit(OL_INACTIVE_L1);

/** The `overlap-check` templates as masks of 1 << kind. */
export const OVERLAP_CHECK_TEMPLATES: Readonly<Record<'none' | 'constant' | 'cached' | 'all', number>> = {
  none: 0,
  constant: OL_CONSTANT,
  cached: OL_CACHED,
  all: OL_CACHED | bit(OL_INACTIVE_L2),
};

const NAMES: Record<number, string> = {
  0: 'qcow2_header',
  1: 'active L1 table',
  2: 'active L2 table',
  3: 'refcount table',
  4: 'refcount block',
  5: 'snapshot table',
  6: 'inactive L1 table',
  7: 'inactive L2 table',
  8: 'bitmap directory',
};

function build(s: State): Map<number, number> {
  const map = new Map<number, number>();
  const cs = s.clusterSize;
  const add = (offset: number, bytes: number, kind: number): void => {
    // Offsets beyond 2^52 cannot be file positions (and would not count in floats).
    if (bytes <= 0 || !(offset >= 0) || offset + bytes > 2 ** 52) return;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + bytes - 1) / cs);
    // Absurd tables are caught elsewhere; do not let them blow up this map.
    if (last - first > 1 << 20) return;
    for (let c = first; c <= last; c++) {
      const prev = map.get(c);
      if (prev === undefined || kind < prev) map.set(c, kind);
    }
  };
  add(0, cs, OL_MAIN_HEADER);
  add(s.l1TableOffset, s.l1Size * 8, OL_ACTIVE_L1);
  for (let i = 0; i < s.l1Size; i++) {
    const o = s.l1Offset(i);
    if (o) add(o, cs, OL_ACTIVE_L2);
  }
  add(s.refcountTableOffset, s.refcountTableSize * 8, OL_REFCOUNT_TABLE);
  for (let i = 0; i < s.refcountTableSize; i++) {
    const o = reftableOffset(s.refcountTable[i]!);
    if (o) add(o, cs, OL_REFCOUNT_BLOCK);
  }
  add(s.hdr.snapshotsOffset, s.snapshotsSize || s.hdr.nbSnapshots * SNAPSHOT_HEADER_SIZE, OL_SNAPSHOT_TABLE);
  for (const sn of s.snapshots) add(sn.l1TableOffset, sn.l1Size * 8, OL_INACTIVE_L1);
  if (s.hdr.bitmaps) add(s.hdr.bitmaps.directoryOffset, s.hdr.bitmaps.directorySize, OL_BITMAP_DIRECTORY);
  return map;
}

export function invalidateMetadata(s: State): void {
  s.metadataClusters = null;
}

/** A refcount block was added to the refcount table: update the map without a rebuild. */
export function noteRefblock(s: State, offset: number): void {
  const map = s.metadataClusters;
  if (!map) return;
  const c = offset / s.clusterSize;
  const prev = map.get(c);
  if (prev === undefined || OL_REFCOUNT_BLOCK < prev) map.set(c, OL_REFCOUNT_BLOCK);
}

/** An active L2 table moved (allocation or COW): update the map without a rebuild. */
export function noteL2Moved(s: State, newOffset: number, oldOffset: number): void {
  const map = s.metadataClusters;
  if (!map) return;
  const cs = s.clusterSize;
  if (oldOffset && map.get(oldOffset / cs) === OL_ACTIVE_L2) {
    // The old table may still be shared with a snapshot; a rebuild decides.
    invalidateMetadata(s);
    return;
  }
  const prev = map.get(newOffset / cs);
  if (prev === undefined || OL_ACTIVE_L2 < prev) map.set(newOffset / cs, OL_ACTIVE_L2);
}

/**
 * Throws the corruption error when [offset, offset+size) of the image file overlaps
 * metadata other than the kinds in `ignore`. Writes to an external data file never do.
 */
export function preWriteOverlapCheck(s: State, ignore: number[], offset: number, size: number, dataFile: boolean): void {
  if (dataFile && s.hasDataFile) return;
  if (size <= 0) return;
  let mask = s.overlapCheck;
  for (const k of ignore) mask &= ~bit(k);
  if (!mask) return;
  let map = s.metadataClusters;
  if (!map) {
    map = build(s);
    s.metadataClusters = map;
  }
  const cs = s.clusterSize;
  const first = Math.floor(offset / cs);
  const last = Math.floor((offset + size - 1) / cs);
  let hit = -1;
  if (last - first < map.size) {
    for (let c = first; c <= last; c++) {
      const k = map.get(c);
      if (k !== undefined && mask & (1 << k) && (hit < 0 || k < hit)) hit = k;
    }
  } else {
    for (const [c, k] of map) {
      if (c >= first && c <= last && mask & (1 << k) && (hit < 0 || k < hit)) hit = k;
    }
  }
  // QEMU looks at the kinds in bit order: inactive L2 tables after all but the bitmaps.
  if ((hit < 0 || hit > OL_INACTIVE_L2) && mask & bit(OL_INACTIVE_L2) && overlapsInactiveL2(s, offset, size)) {
    hit = OL_INACTIVE_L2;
  }
  if (hit >= 0) {
    throw s.signalCorruption(true, `Preventing invalid write on metadata (overlaps with ${NAMES[hit]})`, offset, size);
  }
}

/**
 * Whether a snapshot's L2 table overlaps [offset, offset+size). Reads every snapshot L1
 * table; a table that fails validation or reading throws its errno (no corruption).
 */
function overlapsInactiveL2(s: State, offset: number, size: number): boolean {
  for (const sn of s.snapshots) {
    try {
      validateTable(s, snapshotL1Offset(sn), sn.l1Size, 8, QCOW_MAX_L1_SIZE, '');
    } catch (err) {
      // QEMU validates without an error object: only the errno remains.
      throw new ErrnoError(errnoOf(err));
    }
    const l1 = new Uint8Array(sn.l1Size * 8);
    readAt(s.file, sn.l1TableOffset, l1);
    for (let j = 0; j < sn.l1Size; j++) {
      // L1E_OFFSET_MASK: bits 9..55
      const lo = (be32(l1, 8 * j + 4) & 0xfffffe00) >>> 0;
      const l2 = (be32(l1, 8 * j) & 0x00ffffff) * 2 ** 32 + lo;
      if (l2 && l2 < offset + size && offset < l2 + s.clusterSize) return true;
    }
  }
  return false;
}
