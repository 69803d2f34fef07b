/**
 * The qcow2 header: the fixed fields (v2: 72 bytes, v3: 104 + compression type byte +
 * padding = 112) and the header extensions that follow them in cluster 0.
 */
import type { Storage } from '../storage/types.ts';
import { Errno } from '../errno.ts';
import {
  BACKING_FORMAT_MAX,
  COMPRESSION_TYPE_OFFSET,
  EXT_BACKING_FORMAT,
  EXT_BITMAPS,
  EXT_CRYPTO_HEADER,
  EXT_DATA_FILE,
  EXT_END,
  EXT_FEATURE_TABLE,
  HEADER_SIZE_V2,
  HEADER_SIZE_V3,
  QCOW2_MAX_BITMAP_DIRECTORY_SIZE,
  QCOW2_MAX_BITMAPS,
  QCOW_MAGIC,
} from './constants.ts';
import { Qcow2Error, withErrno, errnoOf } from './errors.ts';
import { be32, be64n, put32, put64, put64n, readAt } from './io.ts';

/** The fixed header fields as read from disk (64-bit fields kept exact as bigint). */
export interface RawHeader {
  magic: number;
  version: number;
  backingFileOffset: bigint;
  backingFileSize: number;
  clusterBits: number;
  size: bigint;
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: bigint;
  refcountTableOffset: bigint;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: bigint;
  incompatibleFeatures: bigint;
  compatibleFeatures: bigint;
  autoclearFeatures: bigint;
  refcountOrder: number;
  headerLength: number;
  compressionType: number;
}

/** Decode the first 112 bytes; v2 images get QEMU's defaults for the v3 fields. */
export function parseRawHeader(b: Uint8Array): RawHeader {
  const version = be32(b, 4);
  const h: RawHeader = {
    magic: be32(b, 0),
    version,
    backingFileOffset: be64n(b, 8),
    backingFileSize: be32(b, 16),
    clusterBits: be32(b, 20),
    size: be64n(b, 24),
    cryptMethod: be32(b, 32),
    l1Size: be32(b, 36),
    l1TableOffset: be64n(b, 40),
    refcountTableOffset: be64n(b, 48),
    refcountTableClusters: be32(b, 56),
    nbSnapshots: be32(b, 60),
    snapshotsOffset: be64n(b, 64),
    incompatibleFeatures: 0n,
    compatibleFeatures: 0n,
    autoclearFeatures: 0n,
    refcountOrder: 4,
    headerLength: HEADER_SIZE_V2,
    compressionType: 0,
  };
  if (version !== 2) {
    h.incompatibleFeatures = be64n(b, 72);
    h.compatibleFeatures = be64n(b, 80);
    h.autoclearFeatures = be64n(b, 88);
    h.refcountOrder = be32(b, 96);
    h.headerLength = be32(b, 100);
    h.compressionType = b[COMPRESSION_TYPE_OFFSET]!;
  }
  return h;
}

/** One entry of the feature name table extension. */
export interface FeatureName {
  type: 'incompatible' | 'compatible' | 'autoclear';
  bit: number;
  name: string;
}

/** QEMU 7.2's feature name table, in its order. */
export const QEMU_FEATURE_TABLE: readonly FeatureName[] = [
  { type: 'incompatible', bit: 0, name: 'dirty bit' },
  { type: 'incompatible', bit: 1, name: 'corrupt bit' },
  { type: 'incompatible', bit: 2, name: 'external data file' },
  { type: 'incompatible', bit: 3, name: 'compression type' },
  { type: 'incompatible', bit: 4, name: 'extended L2 entries' },
  { type: 'compatible', bit: 0, name: 'lazy refcounts' },
  { type: 'autoclear', bit: 0, name: 'bitmaps' },
  { type: 'autoclear', bit: 1, name: 'raw external data' },
];

const FEATURE_TYPES = ['incompatible', 'compatible', 'autoclear'] as const;
/**
 * Names in the header are bytes to QEMU; paths here are strings that Node encodes as UTF-8,
 * so they are decoded as UTF-8 (what qemu-img writes for a name given on a UTF-8 command
 * line). Bytes that are not UTF-8 become U+FFFD: such a name cannot be opened by path.
 */
const utf8Decoder = new TextDecoder();

export function cString(bytes: Uint8Array): string {
  const nul = bytes.indexOf(0);
  return utf8Decoder.decode(nul < 0 ? bytes : bytes.subarray(0, nul));
}

export function parseFeatureTable(data: Uint8Array): FeatureName[] {
  const out: FeatureName[] = [];
  for (let o = 0; o + 48 <= data.length; o += 48) {
    const name = cString(data.subarray(o + 2, o + 48));
    if (name === '') break;
    const type = FEATURE_TYPES[data[o]!];
    if (type) out.push({ type, bit: data[o + 1]!, name });
  }
  return out;
}

export function encodeFeatureTable(table: readonly FeatureName[]): Uint8Array {
  const out = new Uint8Array(table.length * 48);
  table.forEach((f, i) => {
    out[i * 48] = FEATURE_TYPES.indexOf(f.type);
    out[i * 48 + 1] = f.bit;
    const name = new TextEncoder().encode(f.name);
    out.set(name.subarray(0, 46), i * 48 + 2);
  });
  return out;
}

export interface BitmapsExtension {
  nbBitmaps: number;
  directorySize: number;
  directoryOffset: number;
}

/** Everything found between the fixed header and the end marker. */
export interface Extensions {
  backingFormat?: string;
  dataFile?: string;
  featureTable?: FeatureName[];
  bitmaps?: BitmapsExtension;
  /** The bitmaps extension is present but the autoclear bit is clear: QEMU drops it. */
  bitmapsInconsistent: boolean;
  /** Unknown extensions in QEMU's list order (it inserts at the head while reading). */
  unknown: { magic: number; data: Uint8Array }[];
}

export interface ReadExtensionsOptions {
  /** Only collect the feature table (used for the unsupported-feature report). */
  featureTableOnly?: boolean;
  autoclearBitmaps: boolean;
  version: number;
  clusterSize: number;
  cryptMethod: number;
}

/** qcow2_read_extensions(): walk [start, end) of the image file. */
export function readExtensions(file: Storage, start: number, end: number, opts: ReadExtensionsOptions): Extensions {
  const ext: Extensions = { bitmapsInconsistent: false, unknown: [] };
  let offset = start;
  const hdr = new Uint8Array(8);
  while (offset < end) {
    try {
      readAt(file, offset, hdr);
    } catch (err) {
      throw new Qcow2Error(errnoOf(err), withErrno(`qcow2_read_extension: ERROR: pread fail from offset ${offset}`, errnoOf(err)));
    }
    const magic = be32(hdr, 0);
    const len = be32(hdr, 4);
    offset += 8;
    if (offset > end || len > end - offset) throw new Qcow2Error(Errno.EINVAL, 'Header extension too large');
    const data = new Uint8Array(len);
    readAt(file, offset, data);
    if (magic === EXT_END) return ext;
    if (opts.featureTableOnly) {
      if (magic === EXT_FEATURE_TABLE) ext.featureTable = parseFeatureTable(data);
    } else {
      switch (magic) {
        case EXT_BACKING_FORMAT:
          if (len >= BACKING_FORMAT_MAX) {
            throw new Qcow2Error(Errno.EINVAL, `ERROR: ext_backing_format: len=${len} too large (>=${BACKING_FORMAT_MAX})`);
          }
          ext.backingFormat = cString(data);
          break;
        case EXT_FEATURE_TABLE:
          ext.featureTable = parseFeatureTable(data);
          break;
        case EXT_CRYPTO_HEADER:
          if (opts.cryptMethod !== 2) {
            throw new Qcow2Error(Errno.EINVAL, 'CRYPTO header extension only expected with LUKS encryption method');
          }
          break;
        case EXT_BITMAPS: {
          if (len !== 24) throw new Qcow2Error(Errno.EINVAL, 'bitmaps_ext: Invalid extension length');
          if (!opts.autoclearBitmaps) {
            ext.bitmapsInconsistent = true;
            break;
          }
          if (be32(data, 4) !== 0) throw new Qcow2Error(Errno.EINVAL, 'bitmaps_ext: Reserved field is not zero');
          const nb = be32(data, 0);
          const dirSize = be64n(data, 8);
          const dirOffset = be64n(data, 16);
          if (nb > QCOW2_MAX_BITMAPS) {
            throw new Qcow2Error(
              Errno.EINVAL,
              `bitmaps_ext: Image has ${nb} bitmaps, exceeding the QEMU supported maximum of ${QCOW2_MAX_BITMAPS}`,
            );
          }
          if (nb === 0) throw new Qcow2Error(Errno.EINVAL, 'found bitmaps extension with zero bitmaps');
          if (dirOffset % BigInt(opts.clusterSize) !== 0n) {
            throw new Qcow2Error(Errno.EINVAL, 'bitmaps_ext: invalid bitmap directory offset');
          }
          if (dirSize > BigInt(QCOW2_MAX_BITMAP_DIRECTORY_SIZE)) {
            throw new Qcow2Error(
              Errno.EINVAL,
              `bitmaps_ext: bitmap directory size (${dirSize}) exceeds the maximum supported size (${QCOW2_MAX_BITMAP_DIRECTORY_SIZE})`,
            );
          }
          ext.bitmaps = { nbBitmaps: nb, directorySize: Number(dirSize), directoryOffset: Number(dirOffset) };
          break;
        }
        case EXT_DATA_FILE:
          ext.dataFile = cString(data);
          break;
        default:
          ext.unknown.unshift({ magic, data });
      }
    }
    offset += (len + 7) & ~7;
  }
  return ext;
}

/** The mutable header state that qcow2_update_header() serialises. */
export interface HeaderState {
  version: number;
  clusterBits: number;
  size: number;
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatibleFeatures: bigint;
  compatibleFeatures: bigint;
  autoclearFeatures: bigint;
  refcountOrder: number;
  compressionType: number;
  /** Bytes of header fields beyond sizeof(QCowHeader), kept verbatim. */
  unknownHeaderFields: Uint8Array;
  backingFile?: string;
  backingFormat?: string;
  /** Written only while the image has the external data file bit. */
  dataFile?: string;
  bitmaps?: BitmapsExtension;
  unknownExtensions: { magic: number; data: Uint8Array }[];
}

const utf8 = new TextEncoder();

/**
 * Build the whole first cluster as qcow2_update_header() writes it. Throws ENOSPC when the
 * extensions and backing file name do not fit in one cluster, as QEMU does.
 */
export function serializeHeader(s: HeaderState): Uint8Array {
  const cs = 2 ** s.clusterBits;
  const buf = new Uint8Array(cs);
  const nospc = (): never => {
    throw new Qcow2Error(Errno.ENOSPC, 'No space left on device');
  };
  const headerLength = HEADER_SIZE_V3 + s.unknownHeaderFields.length;
  put32(buf, 0, QCOW_MAGIC);
  put32(buf, 4, s.version);
  put32(buf, 20, s.clusterBits);
  put64(buf, 24, s.size);
  put32(buf, 32, s.cryptMethod);
  put32(buf, 36, s.l1Size);
  put64(buf, 40, s.l1TableOffset);
  put64(buf, 48, s.refcountTableOffset);
  put32(buf, 56, s.refcountTableClusters);
  put32(buf, 60, s.nbSnapshots);
  put64(buf, 64, s.snapshotsOffset);
  let pos: number;
  if (s.version === 2) {
    pos = HEADER_SIZE_V2;
  } else {
    put64n(buf, 72, s.incompatibleFeatures);
    put64n(buf, 80, s.compatibleFeatures);
    put64n(buf, 88, s.autoclearFeatures);
    put32(buf, 96, s.refcountOrder);
    put32(buf, 100, headerLength);
    buf[COMPRESSION_TYPE_OFFSET] = s.compressionType;
    pos = HEADER_SIZE_V3;
  }
  if (s.unknownHeaderFields.length) {
    if (cs - pos < s.unknownHeaderFields.length) nospc();
    buf.set(s.unknownHeaderFields, pos);
    pos += s.unknownHeaderFields.length;
  }
  const addExt = (magic: number, data: Uint8Array): void => {
    const extLen = 8 + ((data.length + 7) & ~7);
    if (cs - pos < extLen) nospc();
    put32(buf, pos, magic);
    put32(buf, pos + 4, data.length);
    buf.set(data, pos + 8);
    pos += extLen;
  };
  if (s.backingFormat !== undefined) addExt(EXT_BACKING_FORMAT, utf8.encode(s.backingFormat));
  if (s.dataFile !== undefined) addExt(EXT_DATA_FILE, utf8.encode(s.dataFile));
  // QEMU omits the feature table for clusters of 4k and less to leave room for names.
  if (s.version >= 3 && cs > 4096) addExt(EXT_FEATURE_TABLE, encodeFeatureTable(QEMU_FEATURE_TABLE));
  if (s.bitmaps && s.bitmaps.nbBitmaps > 0) {
    const b = new Uint8Array(24);
    put32(b, 0, s.bitmaps.nbBitmaps);
    put64(b, 8, s.bitmaps.directorySize);
    put64(b, 16, s.bitmaps.directoryOffset);
    addExt(EXT_BITMAPS, b);
  }
  for (const u of s.unknownExtensions) addExt(u.magic, u.data);
  addExt(EXT_END, new Uint8Array(0));
  if (s.backingFile !== undefined) {
    const name = utf8.encode(s.backingFile);
    if (cs - pos < name.length) nospc();
    buf.set(name, pos);
    put64(buf, 8, pos);
    put32(buf, 16, name.length);
  }
  return buf;
}

/** One persistent dirty bitmap as listed in the bitmap directory. */
export interface BitmapInfo {
  name: string;
  granularity: number;
  inUse: boolean;
  auto: boolean;
  tableOffset: number;
  tableSize: number;
}

/** Parse the bitmap directory (the engine keeps bitmaps but does not track writes in them). */
export function readBitmapDirectory(file: Storage, ext: BitmapsExtension): BitmapInfo[] {
  const size = Math.min(ext.directorySize, QCOW2_MAX_BITMAP_DIRECTORY_SIZE);
  const dir = new Uint8Array(size);
  readAt(file, ext.directoryOffset, dir);
  const out: BitmapInfo[] = [];
  let p = 0;
  for (let i = 0; i < ext.nbBitmaps && p + 24 <= dir.length; i++) {
    const flags = be32(dir, p + 12);
    const nameSize = (dir[p + 18]! << 8) | dir[p + 19]!;
    const extra = be32(dir, p + 20);
    const nameStart = p + 24 + extra;
    if (nameStart + nameSize > dir.length) break;
    out.push({
      name: new TextDecoder().decode(dir.subarray(nameStart, nameStart + nameSize)),
      granularity: 2 ** dir[p + 17]!,
      inUse: (flags & 1) !== 0,
      auto: (flags & 2) !== 0,
      tableOffset: be32(dir, p) * 4294967296 + be32(dir, p + 4),
      tableSize: be32(dir, p + 8),
    });
    p += Math.ceil((24 + extra + nameSize) / 8) * 8;
  }
  return out;
}
