/**
 * Internal snapshots (QEMU's qcow2-snapshot.c): the snapshot table, and create / apply /
 * delete with the refcount updates that share clusters between the active L1 table and
 * the snapshots' L1 tables (QCOW_OFLAG_COPIED marks clusters with refcount 1).
 */
import { Errno, ErrnoError } from '../errno.ts';
import { growL1Table, clusterDiscard } from './cluster.ts';
import {
  HEADER_OFF_SNAPSHOTS,
  HI_COPIED,
  INT_MAX,
  QCOW_MAX_L1_SIZE,
  QCOW_MAX_SNAPSHOT_EXTRA_DATA,
  QCOW_MAX_SNAPSHOTS,
  QCOW_MAX_SNAPSHOTS_SIZE,
  SNAPSHOT_HEADER_SIZE,
} from './constants.ts';
import { CT_COMPRESSED, CT_NORMAL, CT_ZERO_ALLOC, clusterType, entryOffset, getHi, getLo, setEntry } from './entries.ts';
import { Qcow2Error, withErrno, errnoOf } from './errors.ts';
import { hexp } from './format.ts';
import { be16, be32, be64, be64n, flushStorage, put16, put32, put64, put64n, readAt, writeAt, writeSync } from './io.ts';
import { invalidateMetadata, OL_ACTIVE_L1, preWriteOverlapCheck } from './metadata.ts';
import {
  allocClusters,
  flushCaches,
  freeClusters,
  getRefcount,
  parseCompressed,
  processDiscards,
  updateClusterRefcount,
  updateRefcountOnce,
} from './refcount.ts';
import type { Snapshot } from './snapshot-types.ts';
import type { State } from './state.ts';
import { DISCARD_ALWAYS, DISCARD_NEVER, DISCARD_SNAPSHOT } from './state.ts';

const EXTRA_SIZE = 24;
const utf8d = new TextDecoder();
const utf8e = new TextEncoder();

/** qcow2_validate_table() */
/** A snapshot's L1 table offset with all 64 bits (see Snapshot.l1TableOffsetExact). */
export function snapshotL1Offset(sn: Snapshot): bigint {
  return sn.l1TableOffsetExact ?? BigInt(sn.l1TableOffset);
}

export function validateTable(
  s: State,
  offset: bigint | number,
  entries: number,
  entryLen: number,
  maxSizeBytes: number,
  name: string,
): void {
  if (entries > Math.floor(maxSizeBytes / entryLen)) throw new Qcow2Error(Errno.EFBIG, `${name} too large`);
  const off = BigInt(offset);
  if ((1n << 63n) - 1n - BigInt(entries) * BigInt(entryLen) < off || off % BigInt(s.clusterSize) !== 0n) {
    throw new Qcow2Error(Errno.EINVAL, `${name} offset invalid`);
  }
}

export interface ReadSnapshotsRepair {
  nbClustersReduced: number;
  extraDataDropped: number;
  messages: string[];
}

/** qcow2_do_read_snapshots(); with repair, oversized entries are trimmed instead of refused. */
export function readSnapshots(s: State, repair: ReadSnapshotsRepair | null): void {
  s.snapshots = [];
  s.snapshotsSize = 0;
  const nb = s.hdr.nbSnapshots;
  if (!nb) return;
  // Positions are counted from the table start: past 2^53 a double could not add a header's
  // 40 bytes to an absolute position (fuzz seed 15 #4346: the table's size came out 0).
  const base = s.hdr.snapshotsOffset;
  let rel = 0;
  let tableLength = 0;
  const hdr = new Uint8Array(SNAPSHOT_HEADER_SIZE);
  const fail = (err: unknown): never => {
    s.snapshots = [];
    const e = errnoOf(err);
    throw new Qcow2Error(e, withErrno('Failed to read snapshot table', e));
  };
  for (let i = 0; i < nb; i++) {
    const preRel = rel;
    tableLength = Math.ceil(tableLength / 8) * 8;
    rel = Math.ceil(rel / 8) * 8;
    try {
      readAt(s.file, base + rel, hdr);
    } catch (err) {
      fail(err);
    }
    rel += SNAPSHOT_HEADER_SIZE;
    let extraDataSize = be32(hdr, 36);
    const idSize = be16(hdr, 12);
    const nameSize = be16(hdr, 14);
    let truncateUnknown = false;
    if (extraDataSize > QCOW_MAX_SNAPSHOT_EXTRA_DATA) {
      if (!repair) {
        s.snapshots = [];
        throw new Qcow2Error(
          Errno.EFBIG,
          `Too much extra metadata in snapshot table entry ${i}`,
          'You can force-remove this extra metadata with qemu-img check -r all\n',
        );
      }
      repair.messages.push(
        `Discarding too much extra metadata in snapshot table entry ${i} (${extraDataSize} > ${QCOW_MAX_SNAPSHOT_EXTRA_DATA})`,
      );
      repair.extraDataDropped++;
      truncateUnknown = true;
    }
    const extra = new Uint8Array(EXTRA_SIZE);
    const known = Math.min(EXTRA_SIZE, extraDataSize);
    try {
      readAt(s.file, base + rel, extra.subarray(0, known));
    } catch (err) {
      fail(err);
    }
    rel += known;
    const l1Raw = be64n(hdr, 0);
    const sn: Snapshot = {
      l1TableOffset: Number(l1Raw),
      ...(l1Raw > BigInt(Number.MAX_SAFE_INTEGER) ? { l1TableOffsetExact: l1Raw } : {}),
      l1Size: be32(hdr, 8),
      id: '',
      name: '',
      diskSize: extraDataSize >= 16 ? be64(extra, 8) : s.size,
      vmStateSize: extraDataSize >= 8 ? be64(extra, 0) : be32(hdr, 32),
      dateSec: be32(hdr, 16),
      dateNsec: be32(hdr, 20),
      vmClockNsec: be64n(hdr, 24),
      icount: extraDataSize >= 24 ? BigInt.asIntN(64, be64n(extra, 16)) : -1n,
      extraDataSize,
      unknownExtraData: new Uint8Array(0),
    };
    if (extraDataSize > EXTRA_SIZE) {
      const extraEnd = rel + extraDataSize - EXTRA_SIZE;
      if (truncateUnknown) sn.extraDataSize = QCOW_MAX_SNAPSHOT_EXTRA_DATA;
      extraDataSize = sn.extraDataSize;
      sn.unknownExtraData = new Uint8Array(sn.extraDataSize - EXTRA_SIZE);
      try {
        readAt(s.file, base + rel, sn.unknownExtraData);
      } catch (err) {
        fail(err);
      }
      rel = extraEnd;
    }
    const id = new Uint8Array(idSize);
    const name = new Uint8Array(nameSize);
    try {
      readAt(s.file, base + rel, id);
      rel += idSize;
      readAt(s.file, base + rel, name);
      rel += nameSize;
    } catch (err) {
      fail(err);
    }
    sn.id = cstr(id);
    sn.name = cstr(name);
    tableLength += SNAPSHOT_HEADER_SIZE + sn.extraDataSize + idSize + nameSize;
    if (tableLength > QCOW_MAX_SNAPSHOTS_SIZE || rel > INT_MAX) {
      if (!repair) {
        s.snapshots = [];
        throw new Qcow2Error(Errno.EFBIG, 'Snapshot table is too big', `You can force-remove all ${nb - i} overhanging snapshots with qemu-img check -r all\n`);
      }
      repair.messages.push(`Discarding ${nb - i} overhanging snapshots (snapshot table is too big)`);
      repair.nbClustersReduced += nb - i;
      s.hdr.nbSnapshots = i;
      rel = preRel;
      break;
    }
    s.snapshots.push(sn);
  }
  s.snapshotsSize = rel;
}

function cstr(b: Uint8Array): string {
  const nul = b.indexOf(0);
  return utf8d.decode(nul < 0 ? b : b.subarray(0, nul));
}

/** qcow2_write_snapshots(): write the whole table to new clusters and switch the header. */
export function writeSnapshots(s: State): void {
  let size = 0;
  const encoded = s.snapshots.map((sn) => ({ id: utf8e.encode(sn.id), name: utf8e.encode(sn.name) }));
  s.snapshots.forEach((sn, i) => {
    size = Math.ceil(size / 8) * 8;
    size += SNAPSHOT_HEADER_SIZE + Math.max(EXTRA_SIZE, sn.extraDataSize) + encoded[i]!.id.length + encoded[i]!.name.length;
    if (size > QCOW_MAX_SNAPSHOTS_SIZE) throw new ErrnoError(Errno.EFBIG);
  });
  const tableOffset = allocClusters(s, size);
  try {
    flushAll(s);
    preWriteOverlapCheck(s, [], tableOffset, size, false);
    const buf = new Uint8Array(size);
    let o = 0;
    s.snapshots.forEach((sn, i) => {
      o = Math.ceil(o / 8) * 8;
      if (sn.l1TableOffsetExact !== undefined) put64n(buf, o, sn.l1TableOffsetExact);
      else put64(buf, o, sn.l1TableOffset);
      put32(buf, o + 8, sn.l1Size);
      put16(buf, o + 12, encoded[i]!.id.length);
      put16(buf, o + 14, encoded[i]!.name.length);
      put32(buf, o + 16, sn.dateSec);
      put32(buf, o + 20, sn.dateNsec);
      put64n(buf, o + 24, BigInt.asUintN(64, sn.vmClockNsec));
      if (sn.vmStateSize <= 0xffffffff) put32(buf, o + 32, sn.vmStateSize);
      put32(buf, o + 36, Math.max(EXTRA_SIZE, sn.extraDataSize));
      o += SNAPSHOT_HEADER_SIZE;
      put64(buf, o, sn.vmStateSize);
      put64(buf, o + 8, sn.diskSize);
      put64n(buf, o + 16, BigInt.asUintN(64, sn.icount));
      o += EXTRA_SIZE;
      if (sn.extraDataSize > EXTRA_SIZE) {
        buf.set(sn.unknownExtraData.subarray(0, sn.extraDataSize - EXTRA_SIZE), o);
        o += sn.extraDataSize - EXTRA_SIZE;
      }
      buf.set(encoded[i]!.id, o);
      o += encoded[i]!.id.length;
      buf.set(encoded[i]!.name, o);
      o += encoded[i]!.name.length;
    });
    writeAt(s.file, tableOffset, buf);
    flushAll(s);
    const h = new Uint8Array(12);
    put32(h, 0, s.snapshots.length);
    put64(h, 4, tableOffset);
    writeSync(s.file, HEADER_OFF_SNAPSHOTS, h);
  } catch (err) {
    freeClusters(s, tableOffset, size, DISCARD_ALWAYS);
    throw err;
  }
  const oldOffset = s.hdr.snapshotsOffset;
  const oldSize = s.snapshotsSize;
  s.hdr.nbSnapshots = s.snapshots.length;
  s.hdr.snapshotsOffset = tableOffset;
  s.snapshotsSize = size;
  invalidateMetadata(s);
  freeClusters(s, oldOffset, oldSize, DISCARD_SNAPSHOT);
}

/** bdrv_flush(bs) as seen from qcow2: metadata caches, then the storages. */
export function flushAll(s: State): void {
  flushCaches(s);
  if (s.hasDataFile) flushStorage(s.dataFile);
}

function readL1(s: State, offset: number, size: number): { hi: Uint32Array; lo: Uint32Array } {
  const buf = new Uint8Array(size * 8);
  readAt(s.file, offset, buf);
  const hi = new Uint32Array(size);
  const lo = new Uint32Array(size);
  for (let i = 0; i < size; i++) {
    hi[i] = be32(buf, 8 * i);
    lo[i] = be32(buf, 8 * i + 4);
  }
  return { hi, lo };
}

/**
 * qcow2_update_snapshot_refcount(): add addend (-1, 0, +1) to every cluster an L1 table
 * references and recompute the COPIED flags of the table's entries.
 */
export function updateSnapshotRefcount(s: State, l1TableOffset: number, l1Size: number, addend: number): void {
  const active = l1TableOffset === s.l1TableOffset;
  const l1 = active ? { hi: s.l1Hi, lo: s.l1Lo } : readL1(s, l1TableOffset, l1Size);
  let l1Modified = false;
  s.cacheDiscards = true;
  let ok = false;
  try {
    for (let i = 0; i < l1Size; i++) {
      const oldHi = l1.hi[i]!;
      const oldLo = l1.lo[i]!;
      if (!oldHi && !oldLo) continue;
      const l2Offset = entryOffset(oldHi, oldLo);
      if (s.offsetIntoCluster(l2Offset)) {
        throw s.signalCorruption(true, `L2 table offset ${hexp(l2Offset)} unaligned (L1 index: ${hexp(i)})`);
      }
      const e = s.l2Cache.get(l2Offset);
      const t = e.data;
      for (let j = 0; j < s.l2Size; j++) {
        const ohi = getHi(s, t, j);
        const olo = getLo(s, t, j);
        const hi = (ohi & ~HI_COPIED) >>> 0;
        const lo = olo;
        let refcount: number;
        switch (clusterType(s, hi, lo)) {
          case CT_COMPRESSED: {
            if (addend !== 0) {
              const c = parseCompressed(s, hi, lo);
              updateRefcountOnce(s, c.offset, c.size, Math.abs(addend), addend < 0, DISCARD_SNAPSHOT);
            }
            refcount = 2;
            break;
          }
          case CT_NORMAL:
          case CT_ZERO_ALLOC: {
            const off = entryOffset(hi, lo);
            if (s.offsetIntoCluster(off)) {
              throw s.signalCorruption(
                true,
                `Cluster allocation offset ${hexp(off)} unaligned (L2 offset: ${hexp(l2Offset)}, L2 index: ${hexp(j)})`,
              );
            }
            const ci = off / s.clusterSize;
            if (addend !== 0) updateClusterRefcount(s, ci, Math.abs(addend), addend < 0, DISCARD_SNAPSHOT);
            refcount = getRefcount(s, ci);
            break;
          }
          default:
            refcount = 0;
        }
        const nhi = refcount === 1 ? (hi | HI_COPIED) >>> 0 : hi;
        if (nhi !== ohi) {
          if (addend > 0) s.l2Cache.setDependency(s.refblockCache);
          const cur = s.l2Cache.get(l2Offset);
          setEntry(s, cur.data, j, nhi, lo);
          s.l2Cache.markDirty(cur);
        }
      }
      const l2ci = l2Offset / s.clusterSize;
      if (addend !== 0) updateClusterRefcount(s, l2ci, Math.abs(addend), addend < 0, DISCARD_SNAPSHOT);
      const rc = getRefcount(s, l2ci);
      // Like QEMU, rewriting the entry drops any reserved bits.
      const nhi = ((oldHi & 0x00ffffff) | (rc === 1 ? HI_COPIED : 0)) >>> 0;
      const nlo = (oldLo & 0xfffffe00) >>> 0;
      if (nhi !== oldHi || nlo !== oldLo) {
        l1.hi[i] = nhi;
        l1.lo[i] = nlo;
        l1Modified = true;
      }
    }
    flushAll(s);
    ok = true;
  } finally {
    s.cacheDiscards = false;
    processDiscards(s, ok);
  }
  if (addend >= 0 && l1Modified) {
    const buf = new Uint8Array(l1Size * 8);
    for (let i = 0; i < l1Size; i++) {
      put32(buf, 8 * i, l1.hi[i]!);
      put32(buf, 8 * i + 4, l1.lo[i]!);
    }
    writeSync(s.file, l1TableOffset, buf);
  }
}

function findByIdAndName(s: State, id: string | undefined, name: string | undefined): number {
  if (id !== undefined && name !== undefined) return s.snapshots.findIndex((sn) => sn.id === id && sn.name === name);
  if (id !== undefined) return s.snapshots.findIndex((sn) => sn.id === id);
  if (name !== undefined) return s.snapshots.findIndex((sn) => sn.name === name);
  return -1;
}

export function findByIdOrName(s: State, idOrName: string): number {
  const i = findByIdAndName(s, idOrName, undefined);
  return i >= 0 ? i : findByIdAndName(s, undefined, idOrName);
}

export interface SnapshotCreateInfo {
  name: string;
  vmStateSize?: number;
  dateSec?: number;
  dateNsec?: number;
  vmClockNsec?: bigint;
  icount?: bigint;
}

/**
 * qcow2_snapshot_create(); returns the new snapshot's id.
 *
 * Write ordering (crash safety): the L1 copy goes to a new cluster (a leak if we die here),
 * then every cluster's refcount is raised and flushed before the COPIED flags of the active
 * L2 tables and L1 table are cleared, and only then does the snapshot table (and after it the
 * header) point at the copy. One window cannot be closed by any order: raising a refcount to 2
 * and clearing the entry's COPIED flag are writes to two places, so a crash between them
 * leaves entries that `qemu-img check` reports as "ERROR OFLAG_COPIED ..." corruptions (QEMU
 * has the same window). Nothing is lost (the extra references are leaks) and `check -r all`
 * repairs them; the crash-consistency trials (fuzz/crash) accept exactly that, nothing more.
 */
export function createSnapshot(s: State, info: SnapshotCreateInfo): string {
  if (s.snapshots.length >= QCOW_MAX_SNAPSHOTS) throw new ErrnoError(Errno.EFBIG);
  if (s.hasDataFile) throw new ErrnoError(Errno.ENOTSUP);
  let idMax = 0;
  for (const sn of s.snapshots) {
    const m = /^\s*[+]?(\d+)/.exec(sn.id);
    const v = m ? Number(m[1]) : 0;
    if (v > idMax) idMax = v;
  }
  const sn: Snapshot = {
    l1TableOffset: 0,
    l1Size: s.l1Size,
    id: String(idMax + 1),
    name: info.name,
    diskSize: s.size,
    vmStateSize: info.vmStateSize ?? 0,
    dateSec: info.dateSec ?? 0,
    dateNsec: info.dateNsec ?? 0,
    vmClockNsec: info.vmClockNsec ?? 0n,
    icount: info.icount ?? -1n,
    extraDataSize: EXTRA_SIZE,
    unknownExtraData: new Uint8Array(0),
  };
  sn.l1TableOffset = allocClusters(s, s.l1Size * 8);
  const buf = new Uint8Array(s.l1Size * 8);
  for (let i = 0; i < s.l1Size; i++) {
    put32(buf, 8 * i, s.l1Hi[i]!);
    put32(buf, 8 * i + 4, s.l1Lo[i]!);
  }
  preWriteOverlapCheck(s, [], sn.l1TableOffset, buf.length, false);
  writeAt(s.file, sn.l1TableOffset, buf);
  updateSnapshotRefcount(s, s.l1TableOffset, s.l1Size, 1);
  s.snapshots.push(sn);
  try {
    writeSnapshots(s);
  } catch (err) {
    s.snapshots.pop();
    throw err;
  }
  invalidateMetadata(s);
  const vmStateOffset = s.l1VmStateIndex * s.clusterSize * s.l2Size;
  const vmBytes = Math.ceil(sn.vmStateSize / s.clusterSize) * s.clusterSize;
  if (vmBytes) clusterDiscard(s, vmStateOffset, vmBytes, DISCARD_NEVER, false);
  return sn.id;
}

/** qcow2_snapshot_goto(): make the snapshot's L1 table the active one. */
export function gotoSnapshot(s: State, idOrName: string): void {
  if (s.hasDataFile) throw new ErrnoError(Errno.ENOTSUP);
  const index = findByIdOrName(s, idOrName);
  if (index < 0) throw new ErrnoError(Errno.ENOENT);
  const sn = s.snapshots[index]!;
  validateTable(s, snapshotL1Offset(sn), sn.l1Size, 8, QCOW_MAX_L1_SIZE, 'Snapshot L1 table');
  if (sn.diskSize !== s.size) {
    throw new Qcow2Error(Errno.ENOTSUP, 'qcow2: Loading snapshots with different disk size is not implemented');
  }
  growL1Table(s, sn.l1Size, true);
  const curBytes = s.l1Size * 8;
  const snL1 = new Uint8Array(curBytes);
  readAt(s.file, sn.l1TableOffset, snL1.subarray(0, sn.l1Size * 8));
  updateSnapshotRefcount(s, sn.l1TableOffset, sn.l1Size, 1);
  preWriteOverlapCheck(s, [OL_ACTIVE_L1], s.l1TableOffset, curBytes, false);
  writeSync(s.file, s.l1TableOffset, snL1);
  let failure: unknown = null;
  try {
    updateSnapshotRefcount(s, s.l1TableOffset, s.l1Size, -1);
  } catch (err) {
    failure = err;
  }
  for (let i = 0; i < s.l1Size; i++) {
    s.l1Hi[i] = be32(snL1, 8 * i);
    s.l1Lo[i] = be32(snL1, 8 * i + 4);
  }
  invalidateMetadata(s);
  if (failure) throw failure;
  updateSnapshotRefcount(s, s.l1TableOffset, s.l1Size, 0);
}

/** qcow2_snapshot_delete() */
export function deleteSnapshot(s: State, id: string | undefined, name: string | undefined): void {
  if (s.hasDataFile) throw new ErrnoError(Errno.ENOTSUP);
  const index = findByIdAndName(s, id, name);
  if (index < 0) throw new Qcow2Error(Errno.ENOENT, "Can't find the snapshot");
  const sn = s.snapshots[index]!;
  validateTable(s, snapshotL1Offset(sn), sn.l1Size, 8, QCOW_MAX_L1_SIZE, 'Snapshot L1 table');
  s.snapshots.splice(index, 1);
  try {
    writeSnapshots(s);
  } catch (err) {
    s.snapshots.splice(index, 0, sn);
    const e = errnoOf(err);
    throw new Qcow2Error(e, withErrno('Failed to remove snapshot from snapshot list', e));
  }
  invalidateMetadata(s);
  try {
    updateSnapshotRefcount(s, sn.l1TableOffset, sn.l1Size, -1);
  } catch (err) {
    const e = errnoOf(err);
    throw new Qcow2Error(e, withErrno('Failed to free the cluster and L1 table', e));
  }
  freeClusters(s, sn.l1TableOffset, sn.l1Size * 8, DISCARD_SNAPSHOT);
  try {
    updateSnapshotRefcount(s, s.l1TableOffset, s.l1Size, 0);
  } catch (err) {
    const e = errnoOf(err);
    throw new Qcow2Error(e, withErrno('Failed to update snapshot status in disk', e));
  }
}


/** qcow2_snapshot_load_tmp(): show a snapshot's state through a read-only image. */
export function loadSnapshotTemporarily(s: State, id: string | undefined, name: string | undefined): void {
  const index = findByIdAndName(s, id, name);
  if (index < 0) throw new Qcow2Error(Errno.ENOENT, "Can't find snapshot");
  const sn = s.snapshots[index]!;
  validateTable(s, snapshotL1Offset(sn), sn.l1Size, 8, QCOW_MAX_L1_SIZE, 'Snapshot L1 table');
  let l1: { hi: Uint32Array; lo: Uint32Array };
  try {
    l1 = readL1(s, sn.l1TableOffset, sn.l1Size);
  } catch (err) {
    throw new Qcow2Error(errnoOf(err), 'Failed to read l1 table for snapshot');
  }
  s.l1Hi = l1.hi;
  s.l1Lo = l1.lo;
  s.hdr.l1Size = sn.l1Size;
  s.hdr.l1TableOffset = sn.l1TableOffset;
  invalidateMetadata(s);
}
