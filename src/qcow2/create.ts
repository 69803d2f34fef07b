/**
 * Image creation (qcow2_co_create): validation with QEMU 7.2's messages, a minimal header
 * plus a one-cluster refcount table and one refcount block, then the image is opened and
 * grown to its size through the normal resize path, exactly as QEMU does it. This is what
 * makes a fresh 64 MiB image 196616 bytes: header, reftable, refblock, 8-byte L1.
 *
 * Protocol-level creation is the caller's: `file` (and `dataFile`) must exist and be empty
 * (QEMU's qemu-img create truncates both to zero first); on failure QEMU deletes them.
 */
import type { Storage } from '../storage/types.ts';
import { Errno } from '../errno.ts';
import {
  AUTOCLEAR_DATA_FILE_RAW,
  COMPAT_LAZY_REFCOUNTS,
  COMPRESSION_ZLIB,
  COMPRESSION_ZSTD,
  CRYPT_AES,
  DEFAULT_CLUSTER_SIZE,
  INCOMPAT_COMPRESSION,
  INCOMPAT_DATA_FILE,
  INCOMPAT_EXTL2,
  MAX_CLUSTER_BITS,
  MIN_CLUSTER_BITS,
  SUBCLUSTERS_PER_CLUSTER,
} from './constants.ts';
import { Qcow2Error, errnoOf, withErrno } from './errors.ts';
import { serializeHeader } from './header.ts';
import type { HeaderState } from './header.ts';
import { flushStorage, put64, writeAt } from './io.ts';
import { openQcow2 } from './image.ts';
import { allocClusters } from './refcount.ts';
import type { Prealloc } from './resize.ts';

export interface Qcow2CreateOptions {
  /** Virtual size in bytes (a multiple of 512; qemu-img rounds up before). */
  size: number;
  compat?: '0.10' | '1.1';
  backingFile?: string;
  backingFormat?: string;
  /** Name of the external data file as stored in the header (the Storage is passed apart). */
  dataFile?: string;
  dataFileRaw?: boolean;
  clusterSize?: number;
  preallocation?: Prealloc;
  lazyRefcounts?: boolean;
  refcountBits?: number;
  compressionType?: 'zlib' | 'zstd';
  extendedL2?: boolean;
  /**
   * Legacy AES (qcow) encryption only sets crypt_method: its key is the secret itself and
   * nothing about it is stored (the caller checks that the secret exists). LUKS is refused.
   */
  encrypt?: { format: 'aes' | 'luks'; keySecret?: string };
}

const V3_HINT = '(use version=v3 or greater)';

/** validate_cluster_size() */
export function validateClusterSize(clusterSize: number, extendedL2: boolean): void {
  const bits = Math.log2(clusterSize);
  if (!Number.isInteger(bits) || bits < MIN_CLUSTER_BITS || bits > MAX_CLUSTER_BITS) {
    throw new Qcow2Error(
      Errno.EINVAL,
      `Cluster size must be a power of two between ${1 << MIN_CLUSTER_BITS} and ${1 << (MAX_CLUSTER_BITS - 10)}k`,
    );
  }
  const min = (1 << MIN_CLUSTER_BITS) * SUBCLUSTERS_PER_CLUSTER;
  if (extendedL2 && clusterSize < min) {
    throw new Qcow2Error(Errno.EINVAL, `Extended L2 entries are only supported with cluster sizes of at least ${min} bytes`);
  }
}

/** Checks of qcow2_co_create() before anything is written, in QEMU's order. */
export function validateCreateOptions(opts: Qcow2CreateOptions): { version: number; clusterSize: number; prealloc: Prealloc } {
  const fail = (msg: string): never => {
    throw new Qcow2Error(Errno.EINVAL, msg);
  };
  if (!Number.isSafeInteger(opts.size) || opts.size < 0) fail('Invalid image size specified');
  if (opts.size % 512) fail('Image size must be a multiple of 512 bytes');
  const version = opts.compat === '0.10' ? 2 : 3;
  const clusterSize = opts.clusterSize ?? DEFAULT_CLUSTER_SIZE;
  const extL2 = opts.extendedL2 ?? false;
  if (extL2 && version < 3) {
    fail(`Extended L2 entries are only supported with compatibility level 1.1 and above ${V3_HINT}`);
  }
  validateClusterSize(clusterSize, extL2);
  let prealloc: Prealloc = opts.preallocation ?? 'off';
  if (opts.backingFile !== undefined && prealloc !== 'off' && !extL2) {
    fail('Backing file and preallocation can only be used at the same time if extended_l2 is on');
  }
  if (opts.backingFormat !== undefined && opts.backingFile === undefined) {
    fail('Backing format cannot be used without backing file');
  }
  if (version < 3 && opts.lazyRefcounts) {
    fail(`Lazy refcounts only supported with compatibility level 1.1 and above ${V3_HINT}`);
  }
  const rb = opts.refcountBits ?? 16;
  if (!Number.isInteger(rb) || rb > 64 || rb <= 0 || (rb & (rb - 1)) !== 0) {
    fail('Refcount width must be a power of two and may not exceed 64 bits');
  }
  if (version < 3 && rb !== 16) {
    fail(`Different refcount widths than 16 bits require compatibility level 1.1 or above ${V3_HINT}`);
  }
  if (opts.dataFileRaw && opts.dataFile === undefined) fail('data-file-raw requires data-file');
  if (opts.dataFileRaw && opts.backingFile !== undefined) {
    fail('Backing file and data-file-raw cannot be used at the same time');
  }
  if (opts.dataFileRaw && prealloc === 'off') prealloc = 'metadata';
  if (opts.dataFile !== undefined && version < 3) {
    fail(`External data files are only supported with compatibility level 1.1 and above ${V3_HINT}`);
  }
  if ((opts.compressionType ?? 'zlib') !== 'zlib' && version < 3) {
    fail(`Non-zlib compression type is only supported with compatibility level 1.1 and above ${V3_HINT}`);
  }
  if (opts.encrypt) {
    if (!opts.encrypt.keySecret) fail("Parameter 'encrypt.key-secret' is required for cipher");
    if (opts.encrypt.format !== 'aes') throw new Qcow2Error(Errno.ENOTSUP, 'Encrypted qcow2 images are not supported');
  }
  return { version, clusterSize, prealloc };
}

/**
 * Format `file` as a qcow2 image. With `dataFile`, guest data goes there (identity mapped)
 * and the file is resized to the virtual size (or preallocated for data_file_raw).
 */
export function createQcow2(file: Storage, opts: Qcow2CreateOptions, dataFile?: Storage): void {
  const { version, clusterSize, prealloc } = validateCreateOptions(opts);
  if (opts.dataFile !== undefined && !dataFile) {
    throw new Qcow2Error(Errno.EINVAL, "'data-file' is required for this image");
  }
  const extL2 = opts.extendedL2 ?? false;
  const compression = opts.compressionType === 'zstd' ? COMPRESSION_ZSTD : COMPRESSION_ZLIB;
  const refcountOrder = Math.log2(opts.refcountBits ?? 16);
  let incompat = 0n;
  if (dataFile) incompat |= INCOMPAT_DATA_FILE;
  if (compression !== COMPRESSION_ZLIB) incompat |= INCOMPAT_COMPRESSION;
  if (extL2) incompat |= INCOMPAT_EXTL2;

  // The minimal header QEMU writes first (always v3-shaped, header_length 112).
  const initial: HeaderState = {
    version,
    clusterBits: Math.log2(clusterSize),
    size: 0,
    cryptMethod: 0,
    l1Size: 0,
    l1TableOffset: 0,
    refcountTableOffset: clusterSize,
    refcountTableClusters: 1,
    nbSnapshots: 0,
    snapshotsOffset: 0,
    incompatibleFeatures: incompat,
    compatibleFeatures: opts.lazyRefcounts ? COMPAT_LAZY_REFCOUNTS : 0n,
    autoclearFeatures: opts.dataFileRaw ? AUTOCLEAR_DATA_FILE_RAW : 0n,
    refcountOrder,
    compressionType: compression,
    unknownHeaderFields: new Uint8Array(0),
    unknownExtensions: [],
  };
  const hdr = minimalHeader(initial);
  try {
    writeAt(file, 0, hdr);
  } catch (err) {
    throw new Qcow2Error(errnoOf(err), withErrno('Could not write qcow2 header', errnoOf(err)));
  }
  const table = new Uint8Array(2 * clusterSize);
  put64(table, 0, 2 * clusterSize);
  try {
    writeAt(file, clusterSize, table);
  } catch (err) {
    throw new Qcow2Error(errnoOf(err), withErrno('Could not write refcount table', errnoOf(err)));
  }

  // Like QEMU, build the image without flushes and flush once at the end.
  const img = openQcow2({ file, dataFile: dataFile ?? null, noFlush: true });
  try {
    const s = img.state;
    let off: number;
    try {
      off = allocClusters(s, 3 * clusterSize);
    } catch (err) {
      throw new Qcow2Error(
        errnoOf(err),
        withErrno('Could not allocate clusters for qcow2 header and refcount table', errnoOf(err)),
      );
    }
    if (off !== 0) throw new Qcow2Error(Errno.EIO, 'Huh, first cluster in empty image is already in use?');
    if (dataFile) s.hdr.dataFile = opts.dataFile ?? dataFile.filename;
    try {
      img.updateHeader();
    } catch (err) {
      throw new Qcow2Error(errnoOf(err), withErrno('Could not update qcow2 header', errnoOf(err)));
    }
    try {
      img.resize(opts.size, { prealloc });
    } catch (err) {
      const e = errnoOf(err);
      const msg = err instanceof Error ? err.message : String(err);
      throw new Qcow2Error(e, `Could not resize image: ${msg}`);
    }
    if (opts.backingFile !== undefined) {
      const fmt = opts.backingFormat;
      if (s.dataFileRaw || opts.backingFile.length > 1023) {
        throw new Qcow2Error(
          Errno.EINVAL,
          withErrno(`Could not assign backing file '${opts.backingFile}' with format '${fmt ?? '(null)'}'`, Errno.EINVAL),
        );
      }
      s.hdr.backingFile = opts.backingFile;
      s.hdr.backingFormat = fmt;
      try {
        img.updateHeader();
      } catch (err) {
        throw new Qcow2Error(
          errnoOf(err),
          withErrno(`Could not assign backing file '${opts.backingFile}' with format '${fmt ?? '(null)'}'`, errnoOf(err)),
        );
      }
    }
    // qcow2_set_up_encryption comes after the resize and the backing file: preallocated
    // metadata is the same as without encryption.
    if (opts.encrypt) {
      s.hdr.cryptMethod = CRYPT_AES;
      try {
        img.updateHeader();
      } catch (err) {
        throw new Qcow2Error(errnoOf(err), withErrno('Could not write encryption header', errnoOf(err)));
      }
    }
  } finally {
    img.close();
  }
  flushStorage(file);
  if (dataFile) flushStorage(dataFile);
}

/** The header QEMU writes before the image is opened: fixed fields only, one cluster. */
function minimalHeader(h: HeaderState): Uint8Array {
  // serializeHeader adds extensions; QEMU's first write has none, only the fields.
  const full = serializeHeader({ ...h, version: 3 });
  const buf = new Uint8Array(2 ** h.clusterBits);
  buf.set(full.subarray(0, 112));
  // version field as requested (the v3-shaped fields stay, as in QEMU)
  buf[4] = 0;
  buf[5] = 0;
  buf[6] = 0;
  buf[7] = h.version;
  return buf;
}
