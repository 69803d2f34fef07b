/**
 * A map of a valid qcow2 image's metadata for the mutator: where every header field,
 * extension, table entry and descriptor lives, so mutations hit structures rather than guest
 * data. Written apart from the engine on purpose (a bug in the engine's parser must not hide
 * the fields it misreads); it only has to understand the valid seed images.
 */

/** One mutable thing: `size` bytes at `offset`, big-endian when it is an integer field. */
export interface Field {
  /** What it is, e.g. "header.l1_table_offset", "l2[3].entry[17]", "snapshot[0].name_size". */
  name: string;
  kind: FieldKind;
  offset: number;
  size: number;
}

export type FieldKind =
  | 'header'
  | 'ext-header'
  | 'ext-data'
  | 'backing-name'
  | 'l1'
  | 'l2'
  | 'l2-compressed'
  | 'l2-bitmap'
  | 'reftable'
  | 'refblock'
  | 'snapshot'
  | 'snapshot-l1'
  | 'bitmap-dir'
  | 'bitmap-table'
  | 'compressed-data';

/** A whole metadata structure (for cluster-level mutations: zero it, copy another over it). */
export interface Region {
  name: string;
  kind: 'header' | 'l1' | 'l2' | 'reftable' | 'refblock' | 'snapshots' | 'snapshot-l1' | 'bitmap-dir';
  offset: number;
  size: number;
}

export interface Layout {
  clusterSize: number;
  clusterBits: number;
  version: number;
  extendedL2: boolean;
  refcountBits: number;
  fileSize: number;
  fields: Field[];
  regions: Region[];
}

const HEADER_FIELDS_V2: Array<[string, number, number]> = [
  ['magic', 0, 4],
  ['version', 4, 4],
  ['backing_file_offset', 8, 8],
  ['backing_file_size', 16, 4],
  ['cluster_bits', 20, 4],
  ['size', 24, 8],
  ['crypt_method', 32, 4],
  ['l1_size', 36, 4],
  ['l1_table_offset', 40, 8],
  ['refcount_table_offset', 48, 8],
  ['refcount_table_clusters', 56, 4],
  ['nb_snapshots', 60, 4],
  ['snapshots_offset', 64, 8],
];
const HEADER_FIELDS_V3: Array<[string, number, number]> = [
  ['incompatible_features', 72, 8],
  ['compatible_features', 80, 8],
  ['autoclear_features', 88, 8],
  ['refcount_order', 96, 4],
  ['header_length', 100, 4],
  ['compression_type', 104, 1],
];

export const EXT_NAMES: Record<number, string> = {
  0xe2792aca: 'backing-format',
  0x6803f857: 'feature-table',
  0x0537be77: 'crypto',
  0x23852875: 'bitmaps',
  0x44415441: 'data-file',
};

function u32(b: Uint8Array, off: number): number {
  if (off + 4 > b.length) return 0;
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}
function u16(b: Uint8Array, off: number): number {
  if (off + 2 > b.length) return 0;
  return (b[off]! << 8) | b[off + 1]!;
}
/** 64-bit fields as numbers; seeds are small, so offsets are exact. */
function u64(b: Uint8Array, off: number): number {
  return u32(b, off) * 2 ** 32 + u32(b, off + 4);
}
const OFFSET_MASK = 0x00fffffffffffe00n;
function entryOffset(b: Uint8Array, off: number): number {
  const v = (BigInt(u32(b, off)) << 32n) | BigInt(u32(b, off + 4));
  return Number(v & OFFSET_MASK);
}

/** Parse a valid image; structures past the end of the file are left out. */
export function parseLayout(img: Uint8Array): Layout {
  const fields: Field[] = [];
  const regions: Region[] = [];
  const version = u32(img, 4);
  const clusterBits = u32(img, 20);
  const cs = 2 ** clusterBits;
  const headerLength = version >= 3 ? u32(img, 100) : 72;
  const incompat = version >= 3 ? u32(img, 76) : 0;
  const extendedL2 = (incompat & 16) !== 0;
  const refcountOrder = version >= 3 ? u32(img, 96) : 4;
  const refcountBits = 2 ** refcountOrder;
  const add = (name: string, kind: FieldKind, offset: number, size: number): void => {
    if (offset >= 0 && offset + size <= img.length && size > 0) fields.push({ name, kind, offset, size });
  };
  for (const [n, o, s] of HEADER_FIELDS_V2) add(`header.${n}`, 'header', o, s);
  if (version >= 3) for (const [n, o, s] of HEADER_FIELDS_V3) add(`header.${n}`, 'header', o, s);
  regions.push({ name: 'header', kind: 'header', offset: 0, size: cs });

  // Header extensions.
  const backingOffset = u64(img, 8);
  const extEnd = backingOffset > 0 ? backingOffset : cs;
  let off = headerLength;
  let bitmapDir: { offset: number; size: number; count: number } | null = null;
  for (let i = 0; off + 8 <= extEnd && i < 64; i++) {
    const type = u32(img, off);
    const len = u32(img, off + 4);
    const label = `ext[${i}:${EXT_NAMES[type] ?? (type === 0 ? 'end' : type.toString(16))}]`;
    add(`${label}.type`, 'ext-header', off, 4);
    add(`${label}.length`, 'ext-header', off + 4, 4);
    if (type === 0) break;
    if (len > 0) add(`${label}.data`, 'ext-data', off + 8, Math.min(len, extEnd - off - 8));
    if (type === 0x23852875 && len >= 24) {
      add(`${label}.nb_bitmaps`, 'ext-data', off + 8, 4);
      add(`${label}.bitmap_directory_size`, 'ext-data', off + 16, 8);
      add(`${label}.bitmap_directory_offset`, 'ext-data', off + 24, 8);
      bitmapDir = { count: u32(img, off + 8), size: u64(img, off + 16), offset: u64(img, off + 24) };
    }
    off += 8 + Math.ceil(len / 8) * 8;
  }
  if (backingOffset > 0) add('backing_file_name', 'backing-name', backingOffset, u32(img, 16));

  // Active L1 and its L2 tables.
  const l1Size = u32(img, 36);
  const l1Offset = u64(img, 40);
  const entrySize = extendedL2 ? 16 : 8;
  const l2Entries = cs / entrySize;
  const compressedShift = 62 - (clusterBits - 8);
  const seenL2 = new Set<number>();
  const addL1Table = (prefix: string, kind: 'l1' | 'snapshot-l1', tableOffset: number, size: number): void => {
    if (size === 0 || tableOffset + size * 8 > img.length) return;
    regions.push({ name: prefix, kind, offset: tableOffset, size: size * 8 });
    for (let i = 0; i < size; i++) {
      add(`${prefix}[${i}]`, kind, tableOffset + 8 * i, 8);
      const l2 = entryOffset(img, tableOffset + 8 * i);
      if (l2 === 0 || seenL2.has(l2) || l2 + cs > img.length) continue;
      seenL2.add(l2);
      regions.push({ name: `l2@${l2.toString(16)}`, kind: 'l2', offset: l2, size: cs });
      for (let j = 0; j < l2Entries; j++) {
        const e = l2 + j * entrySize;
        const hi = u32(img, e);
        const lo = u32(img, e + 4);
        if (hi === 0 && lo === 0 && (!extendedL2 || (u32(img, e + 8) === 0 && u32(img, e + 12) === 0))) {
          // Empty entries: keep a few as targets (pointing an empty entry somewhere is a mutation too).
          if (j % 97 === 0) add(`l2@${l2.toString(16)}[${j}]`, 'l2', e, 8);
          continue;
        }
        if (hi & 0x40000000) {
          add(`l2@${l2.toString(16)}[${j}](compressed)`, 'l2-compressed', e, 8);
          const v = (BigInt(hi) << 32n) | BigInt(lo);
          const host = Number(v & ((1n << BigInt(compressedShift)) - 1n));
          const sectors = Number((v >> BigInt(compressedShift)) & ((1n << BigInt(62 - compressedShift)) - 1n)) + 1;
          const end = Math.min(img.length, (Math.floor(host / 512) + sectors) * 512);
          if (host < img.length) add(`compressed@${host.toString(16)}`, 'compressed-data', host, Math.max(1, end - host));
        } else {
          add(`l2@${l2.toString(16)}[${j}]`, 'l2', e, 8);
        }
        if (extendedL2) add(`l2@${l2.toString(16)}[${j}].bitmap`, 'l2-bitmap', e + 8, 8);
      }
    }
  };
  addL1Table('l1', 'l1', l1Offset, l1Size);

  // Refcount table and blocks.
  const rtOffset = u64(img, 48);
  const rtClusters = u32(img, 56);
  const rtEntries = (rtClusters * cs) / 8;
  if (rtOffset + rtEntries * 8 <= img.length) {
    regions.push({ name: 'reftable', kind: 'reftable', offset: rtOffset, size: rtEntries * 8 });
    const entryBytes = refcountBits / 8;
    for (let i = 0; i < rtEntries; i++) {
      const rb = entryOffset(img, rtOffset + 8 * i);
      if (rb === 0) {
        if (i < 4) add(`reftable[${i}]`, 'reftable', rtOffset + 8 * i, 8);
        continue;
      }
      add(`reftable[${i}]`, 'reftable', rtOffset + 8 * i, 8);
      if (rb + cs > img.length) continue;
      regions.push({ name: `refblock[${i}]`, kind: 'refblock', offset: rb, size: cs });
      // Entries narrower than a byte are mutated a byte at a time.
      const step = Math.max(1, entryBytes);
      for (let j = 0; j * step < cs; j++) {
        const at = rb + j * step;
        let nonzero = false;
        for (let k = 0; k < step; k++) if (img[at + k]) nonzero = true;
        if (nonzero || j % 61 === 0) add(`refblock[${i}][${j}]`, 'refblock', at, step);
      }
    }
  }

  // Snapshot table and the snapshots' L1 tables.
  const nbSnapshots = u32(img, 60);
  let sn = u64(img, 64);
  if (nbSnapshots > 0) {
    const start = sn;
    for (let i = 0; i < nbSnapshots && sn + 40 <= img.length; i++) {
      const p = `snapshot[${i}]`;
      add(`${p}.l1_table_offset`, 'snapshot', sn, 8);
      add(`${p}.l1_size`, 'snapshot', sn + 8, 4);
      add(`${p}.id_str_size`, 'snapshot', sn + 12, 2);
      add(`${p}.name_size`, 'snapshot', sn + 14, 2);
      add(`${p}.date_sec`, 'snapshot', sn + 16, 4);
      add(`${p}.vm_state_size`, 'snapshot', sn + 32, 4);
      add(`${p}.extra_data_size`, 'snapshot', sn + 36, 4);
      const extra = u32(img, sn + 36);
      if (extra >= 8) add(`${p}.vm_state_size_large`, 'snapshot', sn + 40, 8);
      if (extra >= 16) add(`${p}.disk_size`, 'snapshot', sn + 48, 8);
      if (extra >= 24) add(`${p}.icount`, 'snapshot', sn + 56, 8);
      const idLen = u16(img, sn + 12);
      const nameLen = u16(img, sn + 14);
      add(`${p}.id`, 'snapshot', sn + 40 + extra, idLen);
      add(`${p}.name`, 'snapshot', sn + 40 + extra + idLen, nameLen);
      addL1Table(`${p}.l1`, 'snapshot-l1', u64(img, sn), u32(img, sn + 8));
      sn += Math.ceil((40 + extra + idLen + nameLen) / 8) * 8;
    }
    regions.push({ name: 'snapshots', kind: 'snapshots', offset: start, size: sn - start });
  }

  // Bitmap directory entries (the bitmap tables themselves are left alone).
  if (bitmapDir && bitmapDir.offset + bitmapDir.size <= img.length) {
    regions.push({ name: 'bitmap-dir', kind: 'bitmap-dir', offset: bitmapDir.offset, size: bitmapDir.size });
    let e = bitmapDir.offset;
    for (let i = 0; i < bitmapDir.count && e + 24 <= bitmapDir.offset + bitmapDir.size; i++) {
      const p = `bitmap[${i}]`;
      add(`${p}.table_offset`, 'bitmap-dir', e, 8);
      add(`${p}.table_size`, 'bitmap-dir', e + 8, 4);
      add(`${p}.flags`, 'bitmap-dir', e + 12, 4);
      add(`${p}.type`, 'bitmap-dir', e + 16, 1);
      add(`${p}.granularity_bits`, 'bitmap-dir', e + 17, 1);
      add(`${p}.name_size`, 'bitmap-dir', e + 18, 2);
      add(`${p}.extra_data_size`, 'bitmap-dir', e + 20, 4);
      const nameSize = u16(img, e + 18);
      const extraSize = u32(img, e + 20);
      add(`${p}.name`, 'bitmap-dir', e + 24 + extraSize, nameSize);
      const tableOffset = u64(img, e);
      const tableSize = u32(img, e + 8);
      for (let t = 0; t < tableSize && t < 64 && tableOffset + 8 * t + 8 <= img.length; t++) {
        add(`${p}.table[${t}]`, 'bitmap-table', tableOffset + 8 * t, 8);
      }
      e += Math.ceil((24 + extraSize + nameSize) / 8) * 8;
    }
  }

  return { clusterSize: cs, clusterBits, version, extendedL2, refcountBits, fileSize: img.length, fields, regions };
}
