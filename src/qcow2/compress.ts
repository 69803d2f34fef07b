/**
 * Cluster compression as QEMU 7.2 does it: zlib as raw deflate (window 12 bits, memLevel 9,
 * default level), zstd as one frame at the default level. A compressed cluster is only
 * used when it fits in cluster_size - 1 bytes. Decompression must produce exactly one
 * cluster; trailing bytes (the descriptor only has sector precision) are ignored.
 */
import * as zlib from 'node:zlib';
import { COMPRESSION_ZLIB } from './constants.ts';

/**
 * Compressed forms of clusters filled with one byte value. Test images are mostly written
 * with `-P pattern`, and converting them with -c compresses the same cluster over and over;
 * deflate is deterministic, so the first result serves them all (callers never modify it).
 */
const uniformCache = new Map<string, Uint8Array>();
const UNIFORM_CACHE_LIMIT = 1024;

/** The byte every element of data equals, or -1. */
function uniformByte(data: Uint8Array): number {
  if (data.length === 0) return -1;
  if (data.length > 1 && data[1] !== data[0]) return -1;
  // All bytes are equal exactly when the buffer equals itself shifted by one: one memcmp.
  const view = Buffer.from(data.buffer, data.byteOffset, data.length);
  return view.compare(view, 1, data.length, 0, data.length - 1) === 0 ? data[0]! : -1;
}

/** Compressed bytes, or null when they would not fit in maxLength bytes. */
export function compressCluster(type: number, data: Uint8Array, maxLength: number): Uint8Array | null {
  const fill = uniformByte(data);
  if (fill < 0) return compressUncached(type, data, maxLength);
  const key = `${type}:${fill}:${data.length}`;
  let out = uniformCache.get(key);
  if (!out) {
    out = compressRaw(type, data);
    if (uniformCache.size >= UNIFORM_CACHE_LIMIT) uniformCache.clear();
    uniformCache.set(key, out);
  }
  return out.length <= maxLength ? out : null;
}

function compressUncached(type: number, data: Uint8Array, maxLength: number): Uint8Array | null {
  const out = compressRaw(type, data);
  return out.length <= maxLength ? out : null;
}

function compressRaw(type: number, data: Uint8Array): Uint8Array {
  let out: Uint8Array;
  if (type === COMPRESSION_ZLIB) {
    out = zlib.deflateRawSync(data, { windowBits: 12, memLevel: 9, level: zlib.constants.Z_DEFAULT_COMPRESSION });
  } else {
    out = zlib.zstdCompressSync(data, {
      params: { [zlib.constants.ZSTD_c_compressionLevel]: zlib.constants.ZSTD_CLEVEL_DEFAULT },
    });
  }
  return out;
}

/** Length of the zstd frame at off, or -1 when it is not a complete frame. */
function zstdFrameLength(b: Uint8Array, off: number): number {
  const magic = b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24);
  if (off + 5 > b.length) return -1;
  if ((magic & 0xfffffff0) === 0x184d2a50) {
    // Skippable frame: 4-byte magic, 4-byte size.
    if (off + 8 > b.length) return -1;
    const size = (b[off + 4]! | (b[off + 5]! << 8) | (b[off + 6]! << 16) | (b[off + 7]! << 24)) >>> 0;
    return off + 8 + size <= b.length ? 8 + size : -1;
  }
  if (magic >>> 0 !== 0xfd2fb528) return -1;
  const fhd = b[off + 4]!;
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  const checksum = (fhd >> 2) & 1;
  const didSize = [0, 1, 2, 4][fhd & 3]!;
  const fcsSize = [single ? 1 : 0, 2, 4, 8][fcsFlag]!;
  let p = off + 5 + (single ? 0 : 1) + didSize + fcsSize;
  for (;;) {
    if (p + 3 > b.length) return -1;
    const h = b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16);
    const last = h & 1;
    const btype = (h >> 1) & 3;
    const size = h >>> 3;
    if (btype === 3) return -1;
    p += 3 + (btype === 1 ? 1 : size);
    if (p > b.length) return -1;
    if (last) break;
  }
  if (checksum) p += 4;
  return p <= b.length ? p - off : -1;
}

/**
 * Clusters that compress to a few bytes (filled with one value, as test patterns are) are
 * decompressed once per distinct compressed form; the result is shared, callers only read it.
 */
const SMALL_COMPRESSED = 256;
const decompressCache = new Map<string, Uint8Array>();

/** Decompress one cluster; null when the data does not yield exactly clusterSize bytes. */
export function decompressCluster(type: number, src: Uint8Array, clusterSize: number): Uint8Array | null {
  if (src.length > SMALL_COMPRESSED) return decompressUncached(type, src, clusterSize);
  const key = `${type}:${clusterSize}:${Buffer.from(src.buffer, src.byteOffset, src.length).toString('latin1')}`;
  const hit = decompressCache.get(key);
  if (hit) return hit;
  const out = decompressUncached(type, src, clusterSize);
  if (out) {
    if (decompressCache.size >= UNIFORM_CACHE_LIMIT) decompressCache.clear();
    decompressCache.set(key, out);
  }
  return out;
}

function decompressUncached(type: number, src: Uint8Array, clusterSize: number): Uint8Array | null {
  try {
    if (type === COMPRESSION_ZLIB) {
      const out = zlib.inflateRawSync(src, {
        windowBits: 15,
        finishFlush: zlib.constants.Z_SYNC_FLUSH,
        maxOutputLength: clusterSize * 2 + 1024,
      });
      return out.length >= clusterSize ? new Uint8Array(out.buffer, out.byteOffset, clusterSize) : null;
    }
    const parts: Uint8Array[] = [];
    let total = 0;
    let off = 0;
    while (total < clusterSize && off < src.length) {
      const len = zstdFrameLength(src, off);
      if (len <= 0) return null;
      const out = zlib.zstdDecompressSync(src.subarray(off, off + len), { maxOutputLength: clusterSize * 2 + 1024 });
      parts.push(out);
      total += out.length;
      off += len;
    }
    if (total < clusterSize) return null;
    const res = new Uint8Array(clusterSize);
    let pos = 0;
    for (const p of parts) {
      res.set(p.subarray(0, Math.min(p.length, clusterSize - pos)), pos);
      pos += p.length;
      if (pos >= clusterSize) break;
    }
    return res;
  } catch {
    return null;
  }
}
