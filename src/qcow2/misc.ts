/**
 * qcow2_make_empty(): drop every allocation of the active layer (used by `commit`). When
 * possible the image is rebuilt from scratch as QEMU's make_completely_empty() does, so
 * the file shrinks back to header, refcount table, refcount block and L1 table.
 */
import { clusterDiscard } from './cluster.ts';
import { CRYPT_LUKS, INT_MAX } from './constants.ts';
import { put32, put64, truncateTo, writeSync, zeroAt } from './io.ts';
import { markDirty } from './cluster.ts';
import { invalidateMetadata } from './metadata.ts';
import { allocClusters } from './refcount.ts';
import type { State } from './state.ts';
import { DISCARD_SNAPSHOT } from './state.ts';
import { Qcow2Error } from './errors.ts';
import { Errno } from '../errno.ts';

export function makeEmpty(s: State, markClean: () => void): void {
  const l1Clusters = Math.ceil(s.l1Size / (s.clusterSize / 8));
  if (
    s.version >= 3 &&
    s.snapshots.length === 0 &&
    !s.hdr.bitmaps &&
    3 + l1Clusters <= s.refcountBlockSize &&
    s.hdr.cryptMethod !== CRYPT_LUKS &&
    !s.hasDataFile
  ) {
    makeCompletelyEmpty(s, l1Clusters, markClean);
    return;
  }
  const step = Math.floor(INT_MAX / s.clusterSize) * s.clusterSize;
  for (let off = 0; off < s.size; off += step) {
    clusterDiscard(s, off, Math.min(step, s.size - off), DISCARD_SNAPSHOT, true);
  }
}

function makeCompletelyEmpty(s: State, l1Clusters: number, markClean: () => void): void {
  const cs = s.clusterSize;
  s.l2Cache.empty();
  s.refblockCache.empty();
  markDirty(s);
  zeroAt(s.file, s.l1TableOffset, l1Clusters * cs, false);
  s.l1Hi.fill(0);
  s.l1Lo.fill(0);
  zeroAt(s.file, cs, (2 + l1Clusters) * cs, false);
  const hdr = new Uint8Array(20);
  put64(hdr, 0, 3 * cs);
  put64(hdr, 8, cs);
  put32(hdr, 16, 1);
  writeSync(s.file, 40, hdr);
  s.hdr.l1TableOffset = 3 * cs;
  s.refcountTable = new Float64Array(cs / 8);
  s.refcountTableSize = cs / 8;
  s.hdr.refcountTableOffset = cs;
  s.hdr.refcountTableClusters = 1;
  s.maxRefcountTableIndex = 0;
  const entry = new Uint8Array(8);
  put64(entry, 0, 2 * cs);
  writeSync(s.file, cs, entry);
  s.refcountTable[0] = 2 * cs;
  s.freeClusterIndex = 0;
  invalidateMetadata(s);
  const off = allocClusters(s, 3 * cs + s.l1Size * 8);
  if (off !== 0) throw new Qcow2Error(Errno.EIO, 'First cluster in emptied image is in use');
  markClean();
  truncateTo(s.file, (3 + l1Clusters) * cs);
}
