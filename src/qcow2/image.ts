/**
 * Opening a qcow2 image (qcow2_do_open, with QEMU 7.2's checks in QEMU's order and its
 * messages) and the Qcow2Image object that the block layer wraps.
 */
import type { Storage } from '../storage/types.ts';
import { Errno, ErrnoError } from '../errno.ts';
import {
  AUTOCLEAR_BITMAPS,
  AUTOCLEAR_MASK,
  BACKING_FILE_MAX,
  COMPAT_LAZY_REFCOUNTS,
  COMPRESSION_TYPE_OFFSET,
  COMPRESSION_ZLIB,
  COMPRESSION_ZSTD,
  CRYPT_AES,
  CRYPT_LUKS,
  HEADER_MIN_LENGTH_V3,
  HEADER_SIZE_V3,
  INCOMPAT_COMPRESSION,
  INCOMPAT_CORRUPT,
  INCOMPAT_DATA_FILE,
  INCOMPAT_DIRTY,
  INCOMPAT_MASK,
  INT_MAX,
  MAX_CLUSTER_BITS,
  MIN_CLUSTER_BITS,
  QCOW_MAGIC,
  QCOW_MAX_L1_SIZE,
  QCOW_MAX_REFTABLE_SIZE,
  QCOW_MAX_SNAPSHOTS,
  SNAPSHOT_HEADER_SIZE,
} from './constants.ts';
import type { CorruptionEvent } from './errors.ts';
import { Qcow2Error, errnoOf, withErrno, asErrno } from './errors.ts';
import type { BitmapsExtension, FeatureName, HeaderState } from './header.ts';
import { cString, parseRawHeader, readBitmapDirectory, readExtensions, serializeHeader } from './header.ts';
import type { BitmapInfo } from './header.ts';
import { be32, flushStorage, readAt, writeAt, sizeOf, withoutFlush } from './io.ts';
import { OVERLAP_CHECK_TEMPLATES, preWriteOverlapCheck } from './metadata.ts';
import { flushCaches, forgetUnflushedFrees, refcountInit, writeCaches, getRefcount } from './refcount.ts';
import type { Qcow2BlockStatus } from './rw.ts';
import {
  assertWritable,
  blockStatusGuest,
  discardGuest,
  invalidateReadCache,
  readGuest,
  writeCompressedGuest,
  writeGuest,
  writeZeroesGuest,
} from './rw.ts';
import type { Prealloc, ResizeOptions } from './resize.ts';
import { resize } from './resize.ts';
import type { CheckFix, CheckMessage, Qcow2CheckResult } from './check.ts';
import { checkImage } from './check.ts';
import { validateBitmapsAtOpen } from './bitmaps.ts';
import type { Qcow2AmendOptions } from './amend.ts';
import { amend as amendImage, changeBackingFile } from './amend.ts';
import { makeEmpty } from './misc.ts';
import type { Snapshot } from './snapshot-types.ts';
import type { SnapshotCreateInfo } from './snapshot.ts';
import { createSnapshot, deleteSnapshot, gotoSnapshot, loadSnapshotTemporarily, readSnapshots, validateTable } from './snapshot.ts';
import type { GuestReader } from './state.ts';
import { State } from './state.ts';

export interface Qcow2OpenOptions {
  /** The image file (metadata, and data unless there is an external data file). */
  file: Storage;
  readOnly?: boolean;
  /** An external data file given by the caller (`-o data-file.filename=...`). */
  dataFile?: Storage | null;
  /**
   * Opens the external data file named in the header when none was given. Storages it
   * returns are owned by the image and closed by close().
   */
  openDataFile?: (nameFromHeader: string) => Storage;
  /** The opened backing chain; the caller opens it using header.backingFile/backingFormat. */
  backing?: GuestReader | null;
  /** BDRV_O_CHECK: open for `check` (corrupt images read/write, no refcount table needed). */
  check?: boolean;
  /** BDRV_O_NO_FLUSH (cache=unsafe): never flush the storages; flush() only writes caches. */
  noFlush?: boolean;
  /** BDRV_O_NO_IO: header-only open (e.g. for `info` of encrypted images). */
  noIo?: boolean;
  /** pass-discard-request: discard freed host clusters on guest discard (BDRV_O_UNMAP). */
  passDiscardRequest?: boolean;
  passDiscardSnapshot?: boolean;
  passDiscardOther?: boolean;
  /** lazy-refcounts runtime option; defaults to the image's compatible feature bit. */
  lazyRefcounts?: boolean;
  /**
   * Metadata kinds the overlap check protects (overlap-check and its switches), a mask of
   * 1 << bit number of OVERLAP_CHECK_NAMES; default OVERLAP_CHECK_TEMPLATES.cached.
   */
  overlapCheck?: number;
  /** Receives qcow2_signal_corruption() events (the tool prints them, QMP emits an event). */
  onCorruption?: (ev: CorruptionEvent) => void;
  /** Receives warnings QEMU prints while opening (e.g. inconsistent bitmaps). */
  onWarning?: (message: string) => void;
  /** Receives what QEMU prints with error_printf while opening (no prefix, no newline added). */
  onStderr?: (text: string) => void;
}

/** A read-only view of the header and what the image references. */
export interface Qcow2HeaderInfo {
  version: 2 | 3;
  clusterBits: number;
  clusterSize: number;
  /** Virtual disk size in bytes. */
  size: number;
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  refcountOrder: number;
  refcountBits: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatibleFeatures: bigint;
  compatibleFeatures: bigint;
  autoclearFeatures: bigint;
  compressionType: 'zlib' | 'zstd';
  extendedL2: boolean;
  lazyRefcounts: boolean;
  dirty: boolean;
  corrupt: boolean;
  /** Incompatible bit 0x4: guest data lives in an external data file. */
  externalDataFile: boolean;
  /** Autoclear bit 0x2: the data file is a valid raw image. */
  dataFileRaw: boolean;
  /** Name in the external data file extension (absent after `amend -o data_file=`). */
  dataFile?: string;
  backingFile?: string;
  backingFormat?: string;
  bitmaps?: BitmapsExtension;
  unknownExtensions: number[];
}

function fixedFail(errno: number, message: string): never {
  throw new Qcow2Error(errno, message);
}

/** Validate and load everything qcow2_do_open() does, in its order. */
interface Loaded {
  s: State;
  ownedDataFile: Storage | null;
  /** The header must be rewritten (dropped bitmaps extension, cleared autoclear bits). */
  updateHeader: boolean;
}

/** What QEMU prints while opening: warn_report text, or as { raw } error_printf text. */
type OpenMessage = string | { raw: string };

/** `warnings` collects, in order, what QEMU prints while opening (also when the open fails). */
function loadImage(opts: Qcow2OpenOptions, warnings: OpenMessage[]): Loaded {
  const file = opts.noFlush ? withoutFlush(opts.file) : opts.file;
  const readOnly = opts.readOnly ?? false;
  const check = opts.check ?? false;
  const buf = new Uint8Array(HEADER_SIZE_V3);
  try {
    readAt(file, 0, buf);
  } catch (err) {
    fixedFail(errnoOf(err), withErrno('Could not read qcow2 header', errnoOf(err)));
  }
  const h = parseRawHeader(buf);
  if (h.magic !== QCOW_MAGIC) fixedFail(Errno.EINVAL, 'Image is not in qcow2 format');
  if (h.version < 2 || h.version > 3) fixedFail(Errno.ENOTSUP, `Unsupported qcow2 version ${h.version}`);
  if (h.clusterBits < MIN_CLUSTER_BITS || h.clusterBits > MAX_CLUSTER_BITS) {
    fixedFail(Errno.EINVAL, `Unsupported cluster size: 2^${h.clusterBits}`);
  }
  const cs = 2 ** h.clusterBits;
  if (h.version === 3 && h.headerLength < HEADER_MIN_LENGTH_V3) fixedFail(Errno.EINVAL, 'qcow2 header too short');
  if (h.headerLength > cs) fixedFail(Errno.EINVAL, 'qcow2 header exceeds cluster size');
  let unknownHeaderFields = new Uint8Array(0);
  if (h.headerLength > HEADER_SIZE_V3) {
    unknownHeaderFields = new Uint8Array(h.headerLength - HEADER_SIZE_V3);
    try {
      readAt(file, HEADER_SIZE_V3, unknownHeaderFields);
    } catch (err) {
      fixedFail(errnoOf(err), withErrno('Could not read unknown qcow2 header fields', errnoOf(err)));
    }
  }
  if (h.backingFileOffset > BigInt(cs)) fixedFail(Errno.EINVAL, 'Invalid backing file offset');
  const extEnd = h.backingFileOffset ? Number(h.backingFileOffset) : cs;
  const compressionType = h.headerLength > COMPRESSION_TYPE_OFFSET ? h.compressionType : COMPRESSION_ZLIB;
  if (compressionType !== COMPRESSION_ZLIB && compressionType !== COMPRESSION_ZSTD) {
    fixedFail(Errno.ENOTSUP, `qcow2: unknown compression type: ${compressionType}`);
  }
  const hasCompressionBit = (h.incompatibleFeatures & INCOMPAT_COMPRESSION) !== 0n;
  if (compressionType === COMPRESSION_ZLIB && hasCompressionBit) {
    fixedFail(Errno.EINVAL, 'qcow2: Compression type incompatible feature bit must not be set');
  }
  if (compressionType !== COMPRESSION_ZLIB && !hasCompressionBit) {
    fixedFail(Errno.EINVAL, 'qcow2: Compression type incompatible feature bit must be set');
  }
  const unknownIncompat = h.incompatibleFeatures & ~INCOMPAT_MASK;
  if (unknownIncompat) {
    let table: FeatureName[] | undefined;
    try {
      table = readExtensions(file, h.headerLength, extEnd, {
        featureTableOnly: true,
        autoclearBitmaps: false,
        version: h.version,
        clusterSize: cs,
        cryptMethod: h.cryptMethod,
      }).featureTable;
    } catch {
      table = undefined;
    }
    fixedFail(Errno.ENOTSUP, `Unsupported qcow2 feature(s): ${unsupportedFeatures(table, unknownIncompat)}`);
  }
  if (h.incompatibleFeatures & INCOMPAT_CORRUPT && !readOnly && !check) {
    fixedFail(Errno.EACCES, 'qcow2: Image is corrupt; cannot be opened read/write');
  }
  const extL2 = (h.incompatibleFeatures & 16n) !== 0n;
  const subclusterSize = extL2 ? cs / 32 : cs;
  if (subclusterSize < 512) fixedFail(Errno.EINVAL, `Unsupported subcluster size: ${subclusterSize}`);
  if (h.refcountOrder > 6) fixedFail(Errno.EINVAL, 'Reference count entry width too large; may not exceed 64 bits');
  if (h.refcountTableClusters === 0 && !check) fixedFail(Errno.EINVAL, 'Image does not contain a reference count table');

  const hdr: HeaderState = {
    version: h.version,
    clusterBits: h.clusterBits,
    size: 0,
    cryptMethod: h.cryptMethod,
    l1Size: h.l1Size,
    l1TableOffset: 0,
    refcountTableOffset: 0,
    refcountTableClusters: h.refcountTableClusters,
    nbSnapshots: h.nbSnapshots,
    snapshotsOffset: 0,
    incompatibleFeatures: h.incompatibleFeatures,
    compatibleFeatures: h.compatibleFeatures,
    autoclearFeatures: h.autoclearFeatures,
    refcountOrder: h.refcountOrder,
    compressionType,
    unknownHeaderFields,
    unknownExtensions: [],
  };
  const s = new State(file, null, readOnly, hdr);
  validateTable(s, h.refcountTableOffset, h.refcountTableClusters, cs, QCOW_MAX_REFTABLE_SIZE, 'Reference count table');
  if (!check) {
    validateTable(s, h.snapshotsOffset, h.nbSnapshots, SNAPSHOT_HEADER_SIZE, SNAPSHOT_HEADER_SIZE * QCOW_MAX_SNAPSHOTS, 'Snapshot table');
  }
  validateTable(s, h.l1TableOffset, h.l1Size, 8, QCOW_MAX_L1_SIZE, 'Active L1 table');
  hdr.refcountTableOffset = Number(h.refcountTableOffset);
  if (h.refcountTableOffset > BigInt(Number.MAX_SAFE_INTEGER)) s.refcountTableOffsetExact = h.refcountTableOffset;
  hdr.snapshotsOffset = Number(h.snapshotsOffset);
  hdr.l1TableOffset = Number(h.l1TableOffset);
  const l2Shift = BigInt(s.clusterBits + s.l2Bits);
  // size_to_l1() in uint64_t: a size near 2^64 wraps around to a small index.
  const l1VmStateIndex = BigInt.asUintN(64, h.size + (1n << l2Shift) - 1n) >> l2Shift;
  if (l1VmStateIndex > BigInt(INT_MAX)) fixedFail(Errno.EFBIG, 'Image is too big');
  if (BigInt(h.l1Size) < l1VmStateIndex) fixedFail(Errno.EINVAL, 'L1 table is too small');
  if (h.size > BigInt(Number.MAX_SAFE_INTEGER)) {
    // QEMU opens the image and then its block layer refuses a length past BDRV_MAX_LENGTH
    // (INT64_MAX rounded down to 1 GiB); below that, the engine's own limit (offsets are
    // doubles) is reported as QEMU words a size too big for qcow2.
    if ((h.size / 512n) * 512n > (1n << 63n) - (1n << 30n)) fixedFail(Errno.EFBIG, 'Could not refresh total sector count: File too large');
    fixedFail(Errno.EFBIG, 'Image is too big');
  }
  hdr.size = Number(h.size);
  s.l1VmStateIndex = Number(l1VmStateIndex);
  if (h.l1Size > 0) {
    const l1 = new Uint8Array(h.l1Size * 8);
    try {
      readAt(file, hdr.l1TableOffset, l1);
    } catch (err) {
      fixedFail(errnoOf(err), withErrno('Could not read L1 table', errnoOf(err)));
    }
    s.l1Hi = new Uint32Array(h.l1Size);
    s.l1Lo = new Uint32Array(h.l1Size);
    for (let i = 0; i < h.l1Size; i++) {
      s.l1Hi[i] = be32(l1, 8 * i);
      s.l1Lo[i] = be32(l1, 8 * i + 4);
    }
  }

  // qcow2_update_options
  s.configureCaches();
  const lazy = opts.lazyRefcounts ?? (hdr.compatibleFeatures & COMPAT_LAZY_REFCOUNTS) !== 0n;
  if (lazy && s.version < 3) {
    fixedFail(Errno.EINVAL, 'Lazy refcounts require a qcow2 image with at least qemu 1.1 compatibility level');
  }
  s.useLazyRefcounts = lazy;
  s.overlapCheck = opts.overlapCheck ?? OVERLAP_CHECK_TEMPLATES.cached;
  s.discardPassthrough = [
    false,
    true,
    opts.passDiscardRequest ?? true,
    opts.passDiscardSnapshot ?? true,
    opts.passDiscardOther ?? false,
  ];
  // QEMU prints the 32-bit field with %d.
  if (h.cryptMethod > CRYPT_LUKS) fixedFail(Errno.EINVAL, `Unsupported encryption method ${h.cryptMethod | 0}`);

  try {
    refcountInit(s);
  } catch (err) {
    fixedFail(errnoOf(err), withErrno('Could not initialize refcount handling', errnoOf(err)));
  }

  let exts;
  try {
    exts = readExtensions(file, h.headerLength, extEnd, {
      autoclearBitmaps: (h.autoclearFeatures & AUTOCLEAR_BITMAPS) !== 0n,
      version: h.version,
      clusterSize: cs,
      cryptMethod: h.cryptMethod,
    });
  } catch (err) {
    if (err instanceof Qcow2Error) throw new Qcow2Error(Errno.EINVAL, err.message);
    throw asErrno(err);
  }
  let updateHeader = false;
  if (exts.bitmapsInconsistent) {
    warnings.push(
      h.version < 3
        ? 'This qcow2 v2 image contains bitmaps, but they may have been modified by a program without persistent bitmap support; so now they must all be considered inconsistent'
        : 'a program lacking bitmap support modified this file, so all bitmaps are now considered inconsistent',
    );
    // error_printf, without a newline: QEMU's next line of output continues it.
    warnings.push({ raw: "Some clusters may be leaked, run 'qemu-img check -r' on the image file to fix." });
    updateHeader = true;
  }
  hdr.backingFormat = exts.backingFormat;
  hdr.bitmaps = exts.bitmaps;
  hdr.unknownExtensions = exts.unknown;
  const imageDataFile = exts.dataFile;

  // External data file
  let ownedDataFile: Storage | null = null;
  const givenRaw = opts.dataFile ?? null;
  const given = givenRaw && opts.noFlush ? withoutFlush(givenRaw) : givenRaw;
  if (h.incompatibleFeatures & INCOMPAT_DATA_FILE) {
    let df = given;
    if (!df && imageDataFile !== undefined && opts.openDataFile) {
      ownedDataFile = opts.openDataFile(imageDataFile);
      df = opts.noFlush ? withoutFlush(ownedDataFile) : ownedDataFile;
    }
    if (!df) fixedFail(Errno.EINVAL, "'data-file' is required for this image");
    s.dataFile = df;
    s.hasDataFile = true;
    hdr.dataFile = imageDataFile;
  } else {
    if (given) fixedFail(Errno.EINVAL, "'data-file' can only be set for images with an external data file");
    if (s.dataFileRaw) fixedFail(Errno.EINVAL, 'data-file-raw requires a data file');
  }

  try {
    if (h.cryptMethod && !opts.noIo) {
      if (h.cryptMethod === CRYPT_AES) fixedFail(Errno.EINVAL, "Parameter 'encrypt.key-secret' is required for cipher");
      fixedFail(Errno.EINVAL, `Missing CRYPTO header for crypt method ${h.cryptMethod}`);
    }

    if (h.backingFileOffset !== 0n) {
      const len = h.backingFileSize;
      const off = Number(h.backingFileOffset);
      if (len > Math.min(1023, cs - off) || len >= BACKING_FILE_MAX) fixedFail(Errno.EINVAL, 'Backing file name too long');
      const name = new Uint8Array(len);
      try {
        readAt(file, off, name);
      } catch (err) {
        fixedFail(errnoOf(err), withErrno('Could not read backing file name', errnoOf(err)));
      }
      hdr.backingFile = cString(name);
    }

    if (!check) readSnapshots(s, null);

    if (s.hdr.autoclearFeatures & ~AUTOCLEAR_MASK) {
      if (!readOnly) {
        s.hdr.autoclearFeatures &= AUTOCLEAR_MASK;
        updateHeader = true;
      }
    }
    if (exts.bitmapsInconsistent && readOnly) updateHeader = false;
    // qcow2_load_dirty_bitmaps(): a broken bitmap directory or bitmap fails the open.
    if (hdr.bitmaps) validateBitmapsAtOpen(file, hdr.bitmaps, cs, hdr.size);
    s.backing = opts.backing ?? null;
    return { s, ownedDataFile, updateHeader };
  } catch (err) {
    if (ownedDataFile) ownedDataFile.close();
    throw err;
  }
}

/** report_unsupported_feature() */
function unsupportedFeatures(table: FeatureName[] | undefined, mask: bigint): string {
  const parts: string[] = [];
  let m = mask;
  for (const f of table ?? []) {
    if (f.type === 'incompatible' && m & (1n << BigInt(f.bit))) {
      parts.push(f.name.slice(0, 46));
      m &= ~(1n << BigInt(f.bit));
    }
  }
  if (m) parts.push(`Unknown incompatible feature: ${m.toString(16)}`);
  return parts.join(', ');
}

/** Open an existing qcow2 image. Throws Qcow2Error with QEMU's message on failure. */
export function openQcow2(opts: Qcow2OpenOptions): Qcow2Image {
  const warnings: OpenMessage[] = [];
  const emit = (): void => {
    for (const w of warnings) {
      if (typeof w === 'string') opts.onWarning?.(w);
      else if (opts.onStderr) opts.onStderr(w.raw);
      else opts.onWarning?.(w.raw);
    }
  };
  let loaded: Loaded;
  try {
    loaded = loadImage(opts, warnings);
  } catch (err) {
    // QEMU has printed them by the time a later step of the open fails.
    emit();
    throw err;
  }
  const { s, ownedDataFile, updateHeader: needUpdate } = loaded;
  const img = new Qcow2Image(s, ownedDataFile, opts);
  emit();
  try {
    if (needUpdate) {
      try {
        img.updateHeader();
      } catch (err) {
        const e = errnoOf(err);
        throw new Qcow2Error(e, withErrno('Could not update qcow2 header', e));
      }
    }
    if (!opts.check && !s.readOnly && s.dirty) {
      // Lazy refcounts were in use and the image was not closed cleanly.
      const r = checkImage(s, 'all');
      for (const m of r.messages) opts.onWarning?.(m.text);
      if (r.ret < 0 || r.checkErrors) {
        const e = r.ret < 0 ? -r.ret : Errno.EIO;
        throw new Qcow2Error(e, withErrno('Could not repair dirty image', e));
      }
    }
  } catch (err) {
    img.close();
    throw err;
  }
  return img;
}

/** An open qcow2 image: guest I/O plus the format operations the tools need. */
export class Qcow2Image {
  /** @internal Engine state; used by the engine's own modules (check, amend, ...). */
  readonly state: State;
  private readonly ownedDataFile: Storage | null;
  private closed = false;

  constructor(s: State, ownedDataFile: Storage | null, opts: Pick<Qcow2OpenOptions, 'onCorruption'>) {
    this.state = s;
    this.ownedDataFile = ownedDataFile;
    s.onCorruption = opts.onCorruption ?? null;
    s.updateHeader = () => this.updateHeader();
    s.refblockCache.beforeWrite = (off, len) => preWriteOverlapCheck(s, [4], off, len, false);
    s.l2Cache.beforeWrite = (off, len) => preWriteOverlapCheck(s, [2], off, len, false);
  }

  get header(): Qcow2HeaderInfo {
    const s = this.state;
    const h = s.hdr;
    return {
      version: h.version as 2 | 3,
      clusterBits: h.clusterBits,
      clusterSize: s.clusterSize,
      size: h.size,
      cryptMethod: h.cryptMethod,
      l1Size: h.l1Size,
      l1TableOffset: h.l1TableOffset,
      refcountTableOffset: h.refcountTableOffset,
      refcountTableClusters: h.refcountTableClusters,
      refcountOrder: h.refcountOrder,
      refcountBits: s.refcountBits,
      nbSnapshots: h.nbSnapshots,
      snapshotsOffset: h.snapshotsOffset,
      incompatibleFeatures: h.incompatibleFeatures,
      compatibleFeatures: h.compatibleFeatures,
      autoclearFeatures: h.autoclearFeatures,
      compressionType: h.compressionType === COMPRESSION_ZSTD ? 'zstd' : 'zlib',
      extendedL2: s.extL2,
      lazyRefcounts: (h.compatibleFeatures & COMPAT_LAZY_REFCOUNTS) !== 0n,
      dirty: (h.incompatibleFeatures & INCOMPAT_DIRTY) !== 0n,
      corrupt: (h.incompatibleFeatures & INCOMPAT_CORRUPT) !== 0n,
      externalDataFile: (h.incompatibleFeatures & INCOMPAT_DATA_FILE) !== 0n,
      dataFileRaw: s.dataFileRaw,
      dataFile: h.dataFile,
      backingFile: h.backingFile,
      backingFormat: h.backingFormat,
      bitmaps: h.bitmaps,
      unknownExtensions: h.unknownExtensions.map((e) => e.magic),
    };
  }

  get virtualSize(): number {
    return this.state.hdr.size;
  }
  get clusterSize(): number {
    return this.state.clusterSize;
  }
  get readOnly(): boolean {
    return this.state.readOnly;
  }
  /** The storage guest data lives in (the external data file, or the image file). */
  get dataStorage(): Storage {
    return this.state.dataFile;
  }
  get hasExternalDataFile(): boolean {
    return this.state.hasDataFile;
  }
  /** Snapshots as read from the table (a copy). */
  get snapshots(): Snapshot[] {
    return this.state.snapshots.map((sn) => ({ ...sn }));
  }

  /** qcow2_update_header(): rewrite the whole first cluster. */
  updateHeader(): void {
    const s = this.state;
    const h = { ...s.hdr, dataFile: s.hasDataFile ? s.hdr.dataFile : undefined };
    const buf = serializeHeader(h);
    writeAt(s.file, 0, buf);
  }

  private checkRange(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new ErrnoError(Errno.EINVAL);
    }
    if (offset + length > this.state.hdr.size) throw new ErrnoError(Errno.EIO);
  }

  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw asErrno(err);
    }
  }

  /** Guest read; reads of unallocated clusters fall through to the backing node or zeroes. */
  read(offset: number, buf: Uint8Array): void {
    this.checkRange(offset, buf.length);
    this.guard(() => readGuest(this.state, offset, buf));
  }

  /** Guest write; partial clusters are completed by copy-on-write. */
  write(offset: number, data: Uint8Array): void {
    this.checkRange(offset, data.length);
    assertWritable(this.state);
    this.guard(() => writeGuest(this.state, offset, data));
  }

  /** Make a range read as zeroes (zero flags where aligned, explicit zeroes otherwise). */
  writeZeroes(offset: number, length: number, opts: { unmap?: boolean; noFallback?: boolean } = {}): void {
    this.checkRange(offset, length);
    assertWritable(this.state);
    this.guard(() => writeZeroesGuest(this.state, offset, length, opts.unmap ?? false, opts.noFallback ?? false));
  }

  /** Guest discard: whole clusters become zero (v3) or unallocated (v2); the rest is ignored. */
  discard(offset: number, length: number): void {
    this.checkRange(offset, length);
    assertWritable(this.state);
    this.guard(() => discardGuest(this.state, offset, length));
  }

  /** Compressed write of whole clusters (ENOTSUP with an external data file). */
  writeCompressed(offset: number, data: Uint8Array): void {
    this.checkRange(offset, data.length);
    assertWritable(this.state);
    this.guard(() => writeCompressedGuest(this.state, offset, data));
  }

  /** Write cached metadata, then flush the data file and the image file. */
  flush(): void {
    const s = this.state;
    if (s.readOnly || s.dead) return;
    this.guard(() => {
      let first: unknown = null;
      try {
        writeCaches(s);
      } catch (err) {
        first = err;
      }
      if (s.hasDataFile) {
        try {
          flushStorage(s.dataFile);
        } catch (err) {
          first ??= err;
        }
      }
      try {
        flushStorage(s.file);
      } catch (err) {
        first ??= err;
      }
      if (first) throw first;
      forgetUnflushedFrees(s);
    });
  }

  /** Status of the run starting at offset (at most length bytes). */
  blockStatus(offset: number, length: number): Qcow2BlockStatus {
    this.checkRange(offset, length);
    return this.guard(() => blockStatusGuest(this.state, offset, length));
  }

  /**
   * qcow2_detect_metadata_preallocation(): whether nearly every cluster of the file is
   * allocated, given the file's real allocation (st_blocks * 512). QEMU then lets block
   * status consult the file for zeroes (BDRV_BLOCK_RECURSE).
   */
  detectMetadataPreallocation(allocatedBytes: number): boolean {
    const s = this.state;
    return this.guard(() => {
      const realClusters = Math.floor(allocatedBytes / s.clusterSize);
      const threshold = Math.max(Math.floor((realClusters * 10) / 9), realClusters + 2);
      const end = s.sizeToClusters(sizeOf(s.file));
      let count = 0;
      for (let i = 0; i < end && count < threshold; i++) if (getRefcount(s, i)) count++;
      return count >= threshold;
    });
  }

  /** Change the virtual size (qcow2_co_truncate). Shrinking discards the cut-off clusters. */
  resize(newSize: number, opts: ResizeOptions = {}): void {
    assertWritable(this.state);
    if (!(newSize >= 0) || !Number.isFinite(newSize)) throw new Qcow2Error(Errno.EINVAL, 'Invalid image size specified');
    if (!Number.isSafeInteger(newSize)) {
      // Past 2^53 only a refusal can be exact: QEMU's L1 table limit where it applies (it does
      // for every cluster size below 2 MiB), the engine's number range otherwise.
      if (this.state.sizeToL1(newSize) > QCOW_MAX_L1_SIZE / 8) throw new Qcow2Error(Errno.EFBIG, 'Failed to grow the L1 table: File too large');
      throw new Qcow2Error(Errno.EFBIG, 'Image sizes beyond 2^53 bytes are not supported by the built-in engine');
    }
    this.guard(() => {
      invalidateReadCache();
      const s = this.state;
      const zeroNewArea = opts.zeroNewArea ?? (s.backing !== null && s.backing.length() > s.size && newSize > s.size);
      resize(s, newSize, { ...opts, zeroNewArea }, () => s.configureCaches());
    });
  }

  /** Attach or detach the backing node at runtime. */
  setBacking(reader: GuestReader | null): void {
    invalidateReadCache();
    this.state.backing = reader;
  }

  get backing(): GuestReader | null {
    return this.state.backing;
  }

  /** Create an internal snapshot; returns its id. ENOTSUP with an external data file. */
  createSnapshot(info: SnapshotCreateInfo): string {
    assertWritable(this.state);
    return this.guard(() => createSnapshot(this.state, info));
  }

  /** Revert the active state to a snapshot (by id, else by name). */
  applySnapshot(idOrName: string): void {
    assertWritable(this.state);
    this.guard(() => {
      invalidateReadCache();
      gotoSnapshot(this.state, idOrName);
    });
  }

  /** Delete a snapshot by id and/or name (both given: both must match). */
  deleteSnapshot(id: string | undefined, name: string | undefined): void {
    assertWritable(this.state);
    this.guard(() => deleteSnapshot(this.state, id, name));
  }

  /**
   * `qemu-img check`: compare refcounts with the references of all tables; with 'leaks'
   * or 'all' repair what can be repaired. Never throws for image problems: they are in the
   * result (ret < 0 when the check itself failed). With `onMessage`, the stderr lines are
   * handed over as they arise and `messages` stays empty (memory stays flat however many).
   */
  check(repair: CheckFix = 'none', onMessage?: (m: CheckMessage) => void): Qcow2CheckResult {
    if (repair !== 'none') assertWritable(this.state);
    invalidateReadCache();
    return checkImage(this.state, repair, onMessage);
  }

  /** `qemu-img amend -o ...` (qcow2_amend_options); throws Qcow2Error with QEMU's message. */
  amend(opts: Qcow2AmendOptions): void {
    assertWritable(this.state);
    invalidateReadCache();
    amendImage(this.state, opts, {
      updateHeader: () => this.updateHeader(),
      markClean: () => this.markClean(),
      resize: (size) => this.resize(size),
    });
  }

  /** qcow2_change_backing_file(): set or clear the backing file name and format. */
  changeBackingFile(file: string | undefined, format: string | undefined): void {
    assertWritable(this.state);
    this.guard(() => changeBackingFile(this.state, file, format, () => this.updateHeader()));
  }

  /** qcow2_make_empty(): drop all allocations of the active layer (after commit). */
  makeEmpty(): void {
    assertWritable(this.state);
    invalidateReadCache();
    this.guard(() => makeEmpty(this.state, () => this.markClean()));
  }

  /** Switch this read-only image to a snapshot's contents (qemu-img -l / snapshot.*). */
  loadSnapshotTemporarily(id: string | undefined, name: string | undefined): void {
    if (!this.state.readOnly) throw new ErrnoError(Errno.EINVAL);
    this.guard(() => {
      invalidateReadCache();
      loadSnapshotTemporarily(this.state, id, name);
    });
  }

  /** Persistent bitmaps listed in the image (kept untouched by the engine). */
  listBitmaps(): BitmapInfo[] {
    const b = this.state.hdr.bitmaps;
    return b ? this.guard(() => readBitmapDirectory(this.state.file, b)) : [];
  }

  /** List snapshots; ENOTSUP for images with an external data file, as QEMU. */
  listSnapshots(): Snapshot[] {
    if (this.state.hasDataFile) throw new ErrnoError(Errno.ENOTSUP);
    return this.snapshots;
  }

  /**
   * Flush, clear the dirty bit, and release what the image opened itself. Returns QEMU's
   * messages for failures (QEMU reports them and closes anyway).
   */
  close(): string[] {
    if (this.closed) return [];
    this.closed = true;
    const s = this.state;
    const errors: string[] = [];
    if (!s.readOnly && !s.dead) {
      let ok = true;
      try {
        s.l2Cache.flush();
      } catch (err) {
        ok = false;
        errors.push(withErrno('Failed to flush the L2 table cache', errnoOf(err)));
      }
      try {
        s.refblockCache.flush();
      } catch (err) {
        ok = false;
        errors.push(withErrno('Failed to flush the refcount block cache', errnoOf(err)));
      }
      if (ok) {
        try {
          this.markClean();
        } catch {
          // Reported by QEMU only through the return code.
        }
      }
      try {
        if (s.hasDataFile) flushStorage(s.dataFile);
        flushStorage(s.file);
      } catch {
        // bdrv_close() ignores flush errors.
      }
    }
    s.l2Cache.clear();
    s.refblockCache.clear();
    if (this.ownedDataFile) {
      try {
        this.ownedDataFile.close();
      } catch {
        // Closing never fails in QEMU.
      }
    }
    return errors;
  }

  /** qcow2_mark_clean() */
  markClean(): void {
    const s = this.state;
    if (s.hdr.incompatibleFeatures & INCOMPAT_DIRTY) {
      s.hdr.incompatibleFeatures &= ~INCOMPAT_DIRTY;
      flushCaches(s);
      this.updateHeader();
    }
  }
}

export type { Prealloc };
