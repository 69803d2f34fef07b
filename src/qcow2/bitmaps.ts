/**
 * Persistent dirty bitmaps as QEMU 7.2 validates them (block/qcow2-bitmap.c): the bitmap
 * directory (bitmap_list_load), each entry's constraints (check_dir_entry), the bitmap tables
 * (bitmap_table_load) and what opening an image does with them (qcow2_load_dirty_bitmaps:
 * an image whose directory or bitmaps are broken does not open). The engine keeps bitmaps as
 * they are otherwise; it neither tracks writes in them nor marks them in use.
 *
 * The fuzzer found the gap: images with a damaged bitmap directory opened (and checked clean)
 * here, where `qemu-img check` says "Could not open ...: Bitmap '' doesn't satisfy the
 * constraints".
 */
import type { Storage } from '../storage/types.ts';
import { Errno, strerror } from '../errno.ts';
import { QCOW2_MAX_BITMAP_DIRECTORY_SIZE } from './constants.ts';
import { Qcow2Error, errnoOf } from './errors.ts';
import type { BitmapsExtension } from './header.ts';
import { be32, readAt } from './io.ts';

const ENTRY_HEADER_SIZE = 24;
const MAX_TABLE_SIZE = 0x8000000;
/** BME_MAX_PHYS_SIZE: bitmaps QEMU would have to hold in RAM beyond this are refused. */
const MAX_PHYS_SIZE = 0x20000000;
const MAX_GRANULARITY_BITS = 31;
const MIN_GRANULARITY_BITS = 9;
const MAX_NAME_SIZE = 1023;
const RESERVED_FLAGS = 0xfffffffc;
export const BME_FLAG_IN_USE = 1;
const DIRTY_TRACKING_BITMAP = 1;
const TABLE_RESERVED_MASK = 0xff000000000001fen;
const TABLE_OFFSET_MASK = 0x00fffffffffffe00n;

/** One bitmap directory entry as stored. */
export interface BitmapDirEntry {
  tableOffset: bigint;
  tableSize: number;
  flags: number;
  granularityBits: number;
  /** The name as C code sees it (up to the first NUL). */
  name: string;
}

function be64n(b: Uint8Array, o: number): bigint {
  return (BigInt(be32(b, o)) << 32n) | BigInt(be32(b, o + 4));
}

/** calc_dir_entry_size(): computed in a C int, so absurd extra-data sizes wrap. */
function dirEntrySize(nameSize: number, extraDataSize: number): number {
  const size = (ENTRY_HEADER_SIZE + nameSize + extraDataSize) | 0;
  return ((size + 7) & ~7) | 0;
}

function cName(bytes: Uint8Array): string {
  const nul = bytes.indexOf(0);
  return new TextDecoder().decode(nul < 0 ? bytes : bytes.subarray(0, nul));
}

/** check_dir_entry(): whether an entry satisfies the constraints (len: the virtual size). */
function entryValid(e: Omit<BitmapDirEntry, 'name'> & { type: number; nameSize: number }, clusterSize: number, len: number): boolean {
  if (
    e.tableSize === 0 ||
    e.tableOffset === 0n ||
    e.tableOffset % BigInt(clusterSize) !== 0n ||
    e.tableSize > MAX_TABLE_SIZE ||
    e.granularityBits > MAX_GRANULARITY_BITS ||
    e.granularityBits < MIN_GRANULARITY_BITS ||
    (e.flags & RESERVED_FLAGS) !== 0 ||
    e.nameSize > MAX_NAME_SIZE ||
    e.type !== DIRTY_TRACKING_BITMAP
  ) {
    return false;
  }
  const phys = BigInt(e.tableSize) * BigInt(clusterSize);
  if (phys > BigInt(MAX_PHYS_SIZE)) return false;
  if (!(e.flags & BME_FLAG_IN_USE) && BigInt(len) > (phys * 8n) << BigInt(e.granularityBits)) return false;
  return true;
}

/**
 * bitmap_list_load(): read and validate the bitmap directory. Throws Qcow2Error(EINVAL) with
 * QEMU's message ("Broken bitmap directory", "Bitmap 'x' doesn't satisfy the constraints", ...).
 */
export function loadBitmapList(file: Storage, ext: BitmapsExtension, clusterSize: number, virtualSize: number): BitmapDirEntry[] {
  const fail = (message: string): never => {
    throw new Qcow2Error(Errno.EINVAL, message);
  };
  const size = ext.directorySize;
  if (size === 0) fail('Requested bitmap directory size is zero');
  if (size > QCOW2_MAX_BITMAP_DIRECTORY_SIZE) fail('Requested bitmap directory size is too big');
  const dir = new Uint8Array(size);
  try {
    readAt(file, ext.directoryOffset, dir);
  } catch (err) {
    fail(`Failed to read bitmap directory: ${strerror(errnoOf(err))}`);
  }
  const out: BitmapDirEntry[] = [];
  let p = 0;
  let count = 0;
  while (p < size) {
    if (p + ENTRY_HEADER_SIZE > size) fail('Broken bitmap directory');
    if (++count > ext.nbBitmaps) fail('More bitmaps found than specified in header extension');
    const nameSize = (dir[p + 18]! << 8) | dir[p + 19]!;
    const extra = be32(dir, p + 20);
    const entrySize = dirEntrySize(nameSize, extra);
    if (p + entrySize > size) fail('Broken bitmap directory');
    if (extra !== 0) fail('Bitmap extra data is not supported');
    const nameField = dir.subarray(p + ENTRY_HEADER_SIZE, p + ENTRY_HEADER_SIZE + nameSize);
    const e = {
      tableOffset: be64n(dir, p),
      tableSize: be32(dir, p + 8),
      flags: be32(dir, p + 12),
      type: dir[p + 16]!,
      granularityBits: dir[p + 17]!,
      nameSize,
    };
    if (!entryValid(e, clusterSize, virtualSize)) fail(`Bitmap '${cName(nameField)}' doesn't satisfy the constraints`);
    out.push({ tableOffset: e.tableOffset, tableSize: e.tableSize, flags: e.flags, granularityBits: e.granularityBits, name: cName(nameField) });
    p += entrySize;
  }
  if (count !== ext.nbBitmaps) fail('Less bitmaps found than specified in header extension');
  return out;
}

/** check_table_entry() */
export function bitmapTableEntryValid(entry: bigint, clusterSize: number): boolean {
  if (entry & TABLE_RESERVED_MASK) return false;
  const offset = entry & TABLE_OFFSET_MASK;
  if (offset !== 0n && (entry & 1n || offset % BigInt(clusterSize) !== 0n)) return false;
  return true;
}

export function bitmapTableEntryOffset(entry: bigint): number {
  return Number(entry & TABLE_OFFSET_MASK);
}

/**
 * bitmap_table_load(): the raw table entries. Throws ErrnoError: the read's errno, or EINVAL
 * for an entry that breaks the rules.
 */
export function loadBitmapTable(file: Storage, bm: BitmapDirEntry, clusterSize: number): bigint[] {
  const raw = new Uint8Array(bm.tableSize * 8);
  readAt(file, Number(bm.tableOffset), raw);
  const table: bigint[] = [];
  for (let i = 0; i < bm.tableSize; i++) {
    const entry = be64n(raw, 8 * i);
    if (!bitmapTableEntryValid(entry, clusterSize)) throw new Qcow2Error(Errno.EINVAL, strerror(Errno.EINVAL));
    table.push(entry);
  }
  return table;
}

/** size_to_clusters(hbitmap serialization size): the table length a bitmap must have. */
function expectedTableSize(virtualSize: number, granularityBits: number, clusterSize: number): number {
  if (virtualSize === 0) return 0;
  const bits = BigInt(virtualSize - 1) >> BigInt(granularityBits);
  const bytes = ((bits >> 6n) + 1n) * 8n;
  return Number((bytes + BigInt(clusterSize) - 1n) / BigInt(clusterSize));
}

/**
 * What qcow2_load_dirty_bitmaps() checks while opening: the directory, unique names, and
 * for bitmaps not in use their tables and data clusters. Throws Qcow2Error(EINVAL) with
 * QEMU's message; nothing is written.
 */
export function validateBitmapsAtOpen(file: Storage, ext: BitmapsExtension, clusterSize: number, virtualSize: number): void {
  // bdrv_getlength(): the virtual size in whole sectors.
  const len = Math.floor(virtualSize / 512) * 512;
  const list = loadBitmapList(file, ext, clusterSize, len);
  const loaded = new Set<string>();
  const fail = (message: string): never => {
    throw new Qcow2Error(Errno.EINVAL, message);
  };
  for (const bm of list) {
    const inUse = (bm.flags & BME_FLAG_IN_USE) !== 0;
    // An in-use entry whose name is already loaded is skipped (the migration case).
    if (inUse && loaded.has(bm.name)) continue;
    if (loaded.has(bm.name)) fail(`Bitmap already exists: ${bm.name}`);
    loaded.add(bm.name);
    if (inUse) continue;
    let table: bigint[];
    try {
      table = loadBitmapTable(file, bm, clusterSize);
    } catch (err) {
      fail(`Could not read bitmap_table table from image for bitmap '${bm.name}': ${strerror(errnoOf(err))}`);
    }
    if (expectedTableSize(len, bm.granularityBits, clusterSize) !== bm.tableSize) {
      fail(`Could not read bitmap '${bm.name}' from image: ${strerror(Errno.EINVAL)}`);
    }
    const buf = new Uint8Array(clusterSize);
    for (const entry of table!) {
      const offset = bitmapTableEntryOffset(entry);
      if (!offset) continue;
      try {
        readAt(file, offset, buf);
      } catch (err) {
        fail(`Could not read bitmap '${bm.name}' from image: ${strerror(errnoOf(err))}`);
      }
    }
  }
}
