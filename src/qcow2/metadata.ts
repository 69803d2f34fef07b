/**
 * Overlap protection (qcow2_pre_write_overlap_check with QEMU's default "cached" template):
 * no data or table write may land on a cluster holding other metadata. A hit is a fatal
 * corruption, as in QEMU.
 */
import { SNAPSHOT_HEADER_SIZE } from './constants.ts';
import { reftableOffset } from './refcount.ts';
import type { State } from './state.ts';

export const OL_MAIN_HEADER = 0;
export const OL_ACTIVE_L1 = 1;
export const OL_ACTIVE_L2 = 2;
export const OL_REFCOUNT_TABLE = 3;
export const OL_REFCOUNT_BLOCK = 4;
export const OL_SNAPSHOT_TABLE = 5;
export const OL_INACTIVE_L1 = 6;
export const OL_BITMAP_DIRECTORY = 8;

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
      if (k !== undefined && !ignore.includes(k) && (hit < 0 || k < hit)) hit = k;
    }
  } else {
    for (const [c, k] of map) {
      if (c >= first && c <= last && !ignore.includes(k) && (hit < 0 || k < hit)) hit = k;
    }
  }
  if (hit >= 0) {
    throw s.signalCorruption(true, `Preventing invalid write on metadata (overlaps with ${NAMES[hit]})`, offset, size);
  }
}
