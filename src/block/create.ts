/**
 * Image creation by format, as QEMU 7.2 does it for `qemu-img create` (bdrv_img_create with
 * QemuOpts) and for QMP `blockdev-create` (typed options): option lists and defaults, the
 * Formatting line, validation with QEMU's words, protocol-file creation, and the qcow2 layout
 * written by the engine. On a failed qcow2 creation the image and data files are deleted, as
 * QEMU's bdrv_co_delete_file_noerr does.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Errno, ErrnoError, strerror } from '../errno.ts';
import { FileStorage } from '../storage/file.ts';
import { hostFs } from '../storage/hostfs.ts';
import type { Storage } from '../storage/types.ts';
import type { PathPolicy } from '../tools/context.ts';
import { qemuStrtosz } from '../tools/common/numbers.ts';
import {
  CreateOptions,
  NON_CREATING_DRIVERS,
  QemuError,
  UNIMPLEMENTED_CREATING_FORMATS,
  appendDescs,
  createOptsFor,
  protocolCreateOpts,
} from './create-opts.ts';
import type { Prealloc } from './types.ts';
import { luksPayloadOffset } from './crypto.ts';
import { noteZeroFilledFile } from './drivers/file-extents.ts';
import type { SecretStore } from './secrets.ts';
import { createQcow2, type Qcow2CreateOptions as Qcow2CreateOptions_ } from '../qcow2/index.ts';

export { QemuError } from './create-opts.ts';

const SECTOR = 512;
const INT64_MAX = (1n << 63n) - 1n;

/** BDRV_MAX_LENGTH: INT64_MAX aligned down to 1 GiB. */
const BDRV_MAX_LENGTH = 2n ** 63n - 2n ** 30n;

/** ROUND_UP(n, 512) in QEMU's int64_t: sizes just below 2^63 wrap to negative. */
function roundUpSector(n: bigint): bigint {
  return BigInt.asIntN(64, ((n + BigInt(SECTOR) - 1n) / BigInt(SECTOR)) * BigInt(SECTOR));
}

// ---------------------------------------------------------------- environment

/** Where creation happens: relative names resolve against cwd; paths pass the policy. */
export interface CreateEnv {
  cwd: string;
  pathPolicy?: PathPolicy;
  /** warn_report text (without the program prefix). */
  warn(message: string): void;
  /** Secrets defined with --object, for encrypt.key-secret. */
  secrets?: SecretStore;
}

function hostPath(env: CreateEnv, name: string): string {
  return path.resolve(env.cwd, name);
}

function checkPolicy(env: CreateEnv, name: string, purpose: 'read' | 'write' | 'create' | 'delete'): string {
  const abs = hostPath(env, name);
  if (env.pathPolicy) {
    try {
      env.pathPolicy.check(abs, purpose);
    } catch (err) {
      throw new QemuError(`Could not create '${name}': ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return abs;
}

/** bdrv_co_delete_file_noerr: best effort, silent. */
function deleteFile(env: CreateEnv, name: string): void {
  try {
    const abs = checkPolicy(env, name, 'delete');
    fs.unlinkSync(abs);
  } catch {
    // QEMU ignores failures to clean up.
  }
}

// ---------------------------------------------------------------- the file protocol

/**
 * Emptying an existing image: QEMU opens it and truncates it to zero. For a plain regular file
 * (no symlink, one link) a fresh file with the same mode gives the same result, and spares
 * the host file system's flush-on-close that follows truncating a file to zero and writing it
 * again (ext4's replace-via-truncate heuristic, auto_da_alloc), which costs seconds for large
 * images.
 */
function replaceRegularFile(abs: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(abs);
  } catch {
    return;
  }
  if (!st.isFile() || st.nlink !== 1 || st.size === 0) return;
  try {
    fs.unlinkSync(abs);
    fs.closeSync(fs.openSync(abs, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, st.mode & 0o7777));
    fs.chmodSync(abs, st.mode & 0o7777);
  } catch {
    // Fall back to QEMU's way: the open below creates or truncates the file.
  }
}

export interface FileCreateSpec {
  filename: string;
  size: bigint;
  preallocation: Prealloc;
  nocow?: boolean;
  extentSizeHint?: bigint;
}

/**
 * raw_co_create (file-posix): create or open the file, empty it, then grow it to the size,
 * allocating it for falloc/full. Returns the open storage (the caller closes it).
 */
export function createFile(env: CreateEnv, spec: FileCreateSpec): FileStorage {
  const abs = checkPolicy(env, spec.filename, 'create');
  let storage: FileStorage;
  try {
    // open("") is ENOENT; resolving '' would name the working directory instead.
    if (spec.filename === '') throw new ErrnoError(Errno.ENOENT);
    replaceRegularFile(abs);
    storage = FileStorage.open(spec.filename, { create: true }, abs);
  } catch (err) {
    const errno = err instanceof ErrnoError ? err.errno : Errno.EIO;
    throw new QemuError(`Could not create '${spec.filename}': ${strerror(errno)}`);
  }
  try {
    // Truncating an empty file changes nothing but makes ext4 flush the file at close.
    if (storage.size() !== 0) storage.truncate(0);
    if (spec.preallocation === 'metadata') throw new QemuError('Unsupported preallocation mode: metadata');
    // ftruncate(): a negative (wrapped) length is EINVAL; no file system holds 2^53 bytes (EFBIG).
    if (spec.size < 0n) throw new QemuError(`Could not resize file: ${strerror(Errno.EINVAL)}`);
    if (spec.size > BigInt(Number.MAX_SAFE_INTEGER)) throw new ErrnoError(Errno.EFBIG, `Could not resize file: ${strerror(Errno.EFBIG)}`);
    const size = Number(spec.size);
    if (size !== 0) storage.truncate(size, spec.preallocation);
    // allocate_first_block(): a file grown from empty without writing gets its first block
    // allocated (for alignment probing): 512 bytes below 4 KiB, else 4 KiB.
    if (size > 0 && spec.preallocation !== 'full') storage.write(0, new Uint8Array(size < 4096 ? 512 : 4096));
    if (!hostFs) noteZeroFilledFile(abs, size);
  } catch (err) {
    storage.close();
    if (err instanceof QemuError) throw err;
    const errno = err instanceof ErrnoError ? err.errno : Errno.EIO;
    // bdrv_img_create words EFBIG itself ("The image size is too large for file format").
    if (errno === Errno.EFBIG) throw new ErrnoError(Errno.EFBIG, `Could not resize file: ${strerror(errno)}`);
    throw new QemuError(`Could not resize file: ${strerror(errno)}`);
  }
  return storage;
}

function parsePrealloc(value: string | undefined, allowed: readonly Prealloc[], name: string, enumStyle: 'qapi' | 'legacy'): Prealloc {
  if (value === undefined) return 'off';
  if ((['off', 'metadata', 'falloc', 'full'] as const).includes(value as Prealloc) && allowed.includes(value as Prealloc)) {
    return value as Prealloc;
  }
  if ((['off', 'metadata', 'falloc', 'full'] as const).includes(value as Prealloc)) return value as Prealloc;
  if (enumStyle === 'legacy') throw new QemuError(`invalid parameter value: ${value}`);
  throw new QemuError(`Parameter '${name}' does not accept value '${value}'`);
}

/** raw_co_create_opts of file-posix: the file protocol's part of a QemuOpts creation. */
function fileCreateFromOpts(env: CreateEnv, filename: string, opts: CreateOptions, includeFormatOptions: boolean): FileStorage {
  const size = includeFormatOptions ? roundUpSector(opts.getSize('size', 0n)) : 0n;
  const prealloc = includeFormatOptions ? parsePrealloc(opts.isSet('preallocation') ? opts.get('preallocation') : undefined, ['off', 'falloc', 'full'], 'preallocation', 'legacy') : 'off';
  return createFile(env, { filename, size, preallocation: prealloc });
}

// ---------------------------------------------------------------- qcow2

/** BlockdevCreateOptionsQcow2 after validation and defaults (what the engine lays out). */
export interface Qcow2Layout {
  size: number;
  version: 2 | 3;
  clusterSize: number;
  extendedL2: boolean;
  preallocation: Prealloc;
  lazyRefcounts: boolean;
  refcountBits: number;
  compressionType: 'zlib' | 'zstd';
  backingFile?: string;
  backingFmt?: string;
  dataFileRaw: boolean;
  encrypt?: { format: 'aes' | 'luks'; keySecret: string };
}

/** The typed options of blockdev-create for qcow2 (QAPI member names, all optional but size). */
export interface Qcow2CreateOptions {
  size: bigint;
  version?: 'v2' | 'v3';
  clusterSize?: bigint;
  extendedL2?: boolean;
  preallocation?: Prealloc;
  lazyRefcounts?: boolean;
  refcountBits?: bigint;
  compressionType?: 'zlib' | 'zstd';
  backingFile?: string;
  backingFmt?: string;
  dataFileRaw?: boolean;
  /** Whether a data file is attached (its storage is passed separately). */
  hasDataFile: boolean;
  /** luks: the other encrypt.* options by crypto member name (cipher-alg, ...). */
  encrypt?: { format: string; keySecret?: string; luks?: ReadonlyMap<string, string> };
}

const MIN_CLUSTER_BITS = 9;
const QCOW_MAX_L1_SIZE = 32 * 1024 * 1024;
const MAX_CLUSTER_BITS = 21;

function isPowerOfTwo(n: bigint): boolean {
  return n > 0n && (n & (n - 1n)) === 0n;
}

/**
 * qcow2_co_create's checks and defaults, in QEMU's order, with QEMU's messages. Returns the
 * layout the engine writes.
 */
export function validateQcow2(o: Qcow2CreateOptions, secrets?: SecretStore): Qcow2Layout {
  if (o.size % BigInt(SECTOR) !== 0n) throw new QemuError(`Image size must be a multiple of ${SECTOR} bytes`);
  const version = o.version === 'v2' ? 2 : 3;
  const clusterSize = o.clusterSize ?? 65536n;
  const extendedL2 = o.extendedL2 ?? false;
  if (extendedL2 && version < 3) {
    throw new QemuError('Extended L2 entries are only supported with compatibility level 1.1 and above (use version=v3 or greater)');
  }
  if (!isPowerOfTwo(clusterSize) || clusterSize < 1n << BigInt(MIN_CLUSTER_BITS) || clusterSize > 1n << BigInt(MAX_CLUSTER_BITS)) {
    throw new QemuError(`Cluster size must be a power of two between ${1 << MIN_CLUSTER_BITS} and ${1 << (MAX_CLUSTER_BITS - 10)}k`);
  }
  if (extendedL2 && clusterSize < 16384n) {
    throw new QemuError('Extended L2 entries are only supported with cluster sizes of at least 16384 bytes');
  }
  let preallocation = o.preallocation ?? 'off';
  if (o.backingFile !== undefined && preallocation !== 'off' && !extendedL2) {
    throw new QemuError('Backing file and preallocation can only be used at the same time if extended_l2 is on');
  }
  if (o.backingFmt !== undefined && o.backingFile === undefined) {
    throw new QemuError('Backing format cannot be used without backing file');
  }
  const lazyRefcounts = o.lazyRefcounts ?? false;
  if (version < 3 && lazyRefcounts) {
    throw new QemuError('Lazy refcounts only supported with compatibility level 1.1 and above (use version=v3 or greater)');
  }
  const refcountBits = o.refcountBits ?? 16n;
  if (refcountBits > 64n || !isPowerOfTwo(refcountBits)) {
    throw new QemuError('Refcount width must be a power of two and may not exceed 64 bits');
  }
  if (version < 3 && refcountBits !== 16n) {
    throw new QemuError('Different refcount widths than 16 bits require compatibility level 1.1 or above (use version=v3 or greater)');
  }
  const dataFileRaw = o.dataFileRaw ?? false;
  if (dataFileRaw && !o.hasDataFile) throw new QemuError('data-file-raw requires data-file');
  if (dataFileRaw && o.backingFile !== undefined) throw new QemuError('Backing file and data-file-raw cannot be used at the same time');
  // data-file-raw needs a 1:1 mapping in the metadata, so it forces metadata preallocation.
  if (dataFileRaw && preallocation === 'off') preallocation = 'metadata';
  if (o.hasDataFile && version < 3) {
    throw new QemuError('External data files are only supported with compatibility level 1.1 and above (use version=v3 or greater)');
  }
  const compressionType = o.compressionType ?? 'zlib';
  if (o.compressionType !== undefined && o.compressionType !== 'zlib' && version < 3) {
    throw new QemuError('Non-zlib compression type is only supported with compatibility level 1.1 and above (use version=v3 or greater)');
  }
  let encrypt: Qcow2Layout['encrypt'];
  if (o.encrypt) {
    // qcow2_set_up_encryption -> qcrypto_block_create: the key secret, then the format's checks.
    const keySecret = o.encrypt.keySecret;
    if (keySecret === undefined) throw new QemuError("Parameter 'encrypt.key-secret' is required for cipher");
    if (!secrets) throw new QemuError(`No secret with id '${keySecret}'`);
    secrets.lookup(keySecret);
    if (o.encrypt.format === 'luks') luksPayloadOffset(new Map(o.encrypt.luks ?? []), 'encrypt.', secrets);
    encrypt = { format: o.encrypt.format === 'luks' ? 'luks' : 'aes', keySecret };
  }
  // blk_truncate() to the (wrapped) size comes first: bdrv_co_truncate refuses negative sizes
  // and sizes past BDRV_MAX_LENGTH.
  if (o.size < 0n) throw new QemuError('Could not resize image: Image size cannot be negative');
  if (o.size > BDRV_MAX_LENGTH) throw new QemuError(`Could not resize image: offset(${o.size}) exceeds maximum(${BDRV_MAX_LENGTH})`);
  // qcow2_grow_l1_table's limit, reached when the image is resized to its size.
  const l1Entries = (o.size + (clusterSize * clusterSize) / 8n - 1n) / ((clusterSize * clusterSize) / 8n);
  if (l1Entries > BigInt(QCOW_MAX_L1_SIZE / 8)) throw new ErrnoError(Errno.EFBIG, 'Could not resize image: File too large');
  const layout: Qcow2Layout = {
    size: Number(o.size),
    version,
    clusterSize: Number(clusterSize),
    extendedL2,
    preallocation,
    lazyRefcounts,
    refcountBits: Number(refcountBits),
    compressionType,
    dataFileRaw,
  };
  if (o.backingFile !== undefined) layout.backingFile = o.backingFile;
  if (o.backingFmt !== undefined) layout.backingFmt = o.backingFmt;
  if (encrypt) layout.encrypt = encrypt;
  return layout;
}

/** qcow2_co_create after validation: the engine writes the layout (and sizes the data file). */
export function formatQcow2(file: Storage, dataFile: Storage | undefined, dataFileName: string | undefined, layout: Qcow2Layout): void {
  const opts: Qcow2CreateOptions_ = {
    size: layout.size,
    compat: layout.version === 2 ? '0.10' : '1.1',
    clusterSize: layout.clusterSize,
    preallocation: layout.preallocation,
    lazyRefcounts: layout.lazyRefcounts,
    refcountBits: layout.refcountBits,
    compressionType: layout.compressionType,
    extendedL2: layout.extendedL2,
    dataFileRaw: layout.dataFileRaw,
  };
  if (dataFile) opts.dataFile = dataFileName ?? dataFile.filename;
  if (layout.backingFile !== undefined) opts.backingFile = layout.backingFile;
  if (layout.backingFmt !== undefined) opts.backingFormat = layout.backingFmt;
  if (layout.encrypt) opts.encrypt = layout.encrypt;
  try {
    createQcow2(file, opts, dataFile);
  } catch (err) {
    if (err instanceof ErrnoError && err.errno === Errno.EFBIG) throw err;
    if (err instanceof ErrnoError) throw new QemuError(err.message);
    throw err;
  }
}

/** The values of qcow2's QemuOpts turned into blockdev-create options (the flat-confused visitor). */
function qcow2OptionsFromQemuOpts(opts: CreateOptions, hasDataFile: boolean, env: CreateEnv): Qcow2CreateOptions {
  const text = (name: string): string | undefined => (opts.isSet(name) ? opts.get(name) : undefined);
  const boolOf = (name: string): boolean | undefined => (opts.isSet(name) ? opts.getBool(name, false) : undefined);
  // Sizes given as text are parsed again by the visitor, which warns again about hex suffixes.
  const sizeOf = (name: string): bigint | undefined => {
    const t = text(name);
    if (t === undefined) return undefined;
    const r = qemuStrtosz(t);
    if (r.ok && r.warning !== undefined) env.warn(r.warning);
    return opts.getSize(name, 0n);
  };

  let encryptFormat = text('encrypt.format');
  if (text('encryption') !== undefined && opts.getBool('encryption', false)) encryptFormat = 'qcow';
  if (encryptFormat === 'aes') encryptFormat = 'qcow';

  let compat = text('compat');
  if (compat === '0.10') compat = 'v2';
  else if (compat === '1.1') compat = 'v3';

  // QAPI member order of BlockdevCreateOptionsQcow2 decides which bad value is reported.
  const size = opts.getSize('size', 0n);
  if (compat !== undefined && compat !== 'v2' && compat !== 'v3') {
    throw new QemuError(`Parameter 'version' does not accept value '${compat}'`);
  }
  const o: Qcow2CreateOptions = { size: roundUpSector(size), hasDataFile };
  const dataFileRaw = boolOf('data_file_raw');
  if (dataFileRaw !== undefined) o.dataFileRaw = dataFileRaw;
  const extendedL2 = boolOf('extended_l2');
  if (extendedL2 !== undefined) o.extendedL2 = extendedL2;
  if (compat !== undefined) o.version = compat as 'v2' | 'v3';
  const backingFile = text('backing_file');
  if (backingFile !== undefined) o.backingFile = backingFile;
  const backingFmt = text('backing_fmt');
  if (backingFmt !== undefined) o.backingFmt = backingFmt;
  if (encryptFormat !== undefined) {
    if (encryptFormat !== 'qcow' && encryptFormat !== 'luks') {
      throw new QemuError(`Parameter 'format' does not accept value '${encryptFormat}'`);
    }
    const secret = text('encrypt.key-secret');
    const luks = new Map<string, string>();
    for (const d of opts.descs) {
      if (d.name.startsWith('encrypt.') && d.name !== 'encrypt.format' && opts.isSet(d.name)) luks.set(d.name.slice('encrypt.'.length), opts.get(d.name)!);
    }
    o.encrypt = secret === undefined ? { format: encryptFormat, luks } : { format: encryptFormat, keySecret: secret, luks };
  }
  const clusterSize = sizeOf('cluster_size');
  if (clusterSize !== undefined) o.clusterSize = clusterSize;
  const prealloc = text('preallocation');
  if (prealloc !== undefined) {
    if (!['off', 'metadata', 'falloc', 'full'].includes(prealloc)) {
      throw new QemuError(`Parameter 'preallocation' does not accept value '${prealloc}'`);
    }
    o.preallocation = prealloc as Prealloc;
  }
  const lazy = boolOf('lazy_refcounts');
  if (lazy !== undefined) o.lazyRefcounts = lazy;
  if (opts.isSet('refcount_bits')) o.refcountBits = opts.getNumber('refcount_bits', 16n);
  const compression = text('compression_type');
  if (compression !== undefined) {
    if (compression !== 'zlib' && compression !== 'zstd') {
      throw new QemuError(`Parameter 'compression-type' does not accept value '${compression}'`);
    }
    o.compressionType = compression;
  }
  return o;
}

/** qcow2_co_create_opts: key renames, protocol files, then the visitor, then qcow2_co_create. */
function qcow2CreateFromOpts(env: CreateEnv, filename: string, opts: CreateOptions): void {
  // qdict_rename_keys refuses a key and its alias together (encryption=off is dropped first).
  if (opts.isSet('encryption') && opts.getBool('encryption', false) && opts.isSet('encrypt.format')) {
    throw new QemuError("'encrypt.format' and its alias 'encryption' can't be used at the same time");
  }
  const file = fileCreateFromOpts(env, filename, opts, false);
  let dataFile: FileStorage | undefined;
  const dataFileName = opts.isSet('data_file') ? opts.get('data_file') : undefined;
  try {
    if (dataFileName !== undefined) dataFile = fileCreateFromOpts(env, dataFileName, opts, false);
    const options = qcow2OptionsFromQemuOpts(opts, dataFile !== undefined, env);
    const layout = validateQcow2(options, env.secrets);
    formatQcow2(file, dataFile, dataFileName, layout);
    file.flush();
    dataFile?.flush();
  } catch (err) {
    file.close();
    dataFile?.close();
    deleteFile(env, filename);
    if (dataFileName !== undefined && dataFile !== undefined) deleteFile(env, dataFileName);
    throw err;
  }
  file.close();
  dataFile?.close();
}

// ---------------------------------------------------------------- bdrv_img_create

/** What bdrv_img_create learns from opening the backing file. */
export interface BackingProbe {
  format: string;
  size: number;
}

export interface ImgCreateRequest {
  filename: string;
  fmt: string;
  baseFilename?: string;
  baseFmt?: string;
  /** The joined -o lists, or undefined. */
  options?: string;
  /** -1n when no size was given. */
  size: bigint;
  /** -u: do not open the backing file. */
  noBacking: boolean;
  quiet: boolean;
  /** Prints the Formatting line (stdout, flushed). */
  formatting(line: string): void;
  /** Opens the backing image as bdrv_img_create does (no I/O, shared); throws QemuError. */
  openBacking(fullPath: string, fmt: string | undefined): BackingProbe;
}

/** path_combine as bdrv_get_full_backing_filename_from_filename uses it. */
export function fullBackingFilename(imageFilename: string, backing: string): string {
  if (backing.startsWith('/') || backing.startsWith('json:') || /^[a-zA-Z0-9+.-]+:/.test(backing)) return backing;
  if (imageFilename.startsWith('json:')) throw new QemuError(`Cannot use relative backing file names for '${imageFilename}'`);
  const slash = imageFilename.lastIndexOf('/');
  return slash < 0 ? backing : imageFilename.slice(0, slash + 1) + backing;
}

/** The Formatting line's option list and the option values, parsed as bdrv_img_create does. */
export function imgCreateOptions(req: Pick<ImgCreateRequest, 'fmt' | 'options'>, warn: (m: string) => void): CreateOptions {
  const descs = createOptsFor(req.fmt);
  if (!descs) {
    if (NON_CREATING_DRIVERS.has(req.fmt) || UNIMPLEMENTED_CREATING_FORMATS.has(req.fmt)) {
      throw new QemuError(`Format driver '${req.fmt}' does not support image creation`);
    }
    throw new QemuError(`Unknown file format '${req.fmt}'`);
  }
  const opts = new CreateOptions(appendDescs(descs, protocolCreateOpts()));
  opts.warn = warn;
  if (req.options !== undefined) opts.parse(req.options);
  return opts;
}

/** bdrv_img_create: everything after qemu-img parsed its arguments. Throws QemuError. */
export function bdrvImgCreate(env: CreateEnv, req: ImgCreateRequest): void {
  const opts = imgCreateOptions(req, (m) => env.warn(m));

  if (!opts.isSet('size')) {
    opts.setNumber('size', req.size < 0n ? (1n << 64n) - 1n : req.size);
  } else if (req.size !== -1n) {
    throw new QemuError('The image size must be specified only once');
  }
  if (req.baseFilename !== undefined) {
    if (!opts.desc('backing_file')) throw new QemuError(`Backing file not supported for file format '${req.fmt}'`);
    opts.set('backing_file', req.baseFilename);
  }
  if (req.baseFmt !== undefined) {
    if (!opts.desc('backing_fmt')) throw new QemuError(`Backing file format not supported for file format '${req.fmt}'`);
    opts.set('backing_fmt', req.baseFmt);
  }

  const backingFile = opts.isSet('backing_file') ? opts.get('backing_file') : undefined;
  if (backingFile !== undefined) {
    if (backingFile === req.filename) throw new QemuError('Error: Trying to create an image with the same filename as the backing file');
    if (backingFile === '') throw new QemuError('Expected backing file name, got empty string');
  }
  const backingFmt = opts.isSet('backing_fmt') ? opts.get('backing_fmt') : undefined;

  let size = opts.getSize('size', req.size < 0n ? (1n << 64n) - 1n : req.size);
  const noSize = (1n << 64n) - 1n;
  if (backingFile !== undefined && !req.noBacking) {
    const full = fullBackingFilename(req.filename, backingFile);
    let probe: BackingProbe;
    try {
      probe = req.openBacking(full, backingFmt);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new QemuError(message, `${err instanceof QemuError && err.hint ? err.hint : ''}Could not open backing image.\n`);
    }
    if (backingFmt === undefined) {
      throw new QemuError('Backing file specified without backing format', `Detected format of ${probe.format}.`);
    }
    if (size === noSize) {
      size = BigInt(probe.size);
      opts.setNumber('size', size);
    }
  } else if (backingFile !== undefined && backingFmt === undefined) {
    throw new QemuError('Backing file specified without backing format');
  }

  if (size === noSize) throw new QemuError('Image creation needs a size parameter');

  if (!req.quiet) req.formatting(`Formatting '${req.filename}', fmt=${req.fmt} ${opts.print()}\n`);

  try {
    bdrvCreate(env, req.fmt, req.filename, opts);
  } catch (err) {
    if (err instanceof ErrnoError && err.errno === Errno.EFBIG) {
      const hint = opts.getSize('cluster_size', 0n) !== 0n ? ' (try using a larger cluster size)' : '';
      throw new QemuError(`The image size is too large for file format '${req.fmt}'${hint}`);
    }
    throw err;
  }
}

/** bdrv_create: the format driver's creation from QemuOpts. */
export function bdrvCreate(env: CreateEnv, fmt: string, filename: string, opts: CreateOptions): void {
  switch (fmt) {
    case 'qcow2':
      qcow2CreateFromOpts(env, filename, opts);
      return;
    case 'raw':
    case 'file':
      fileCreateFromOpts(env, filename, opts, true).close();
      return;
    default:
      throw new QemuError(`Format driver '${fmt}' does not support image creation`);
  }
}

/** For callers that create with an explicit size (convert, dd): sets size, then bdrvCreate. */
export function createWithSize(env: CreateEnv, fmt: string, filename: string, opts: CreateOptions, size: bigint): void {
  opts.setNumber('size', size);
  bdrvCreate(env, fmt, filename, opts);
}

export { INT64_MAX as CREATE_INT64_MAX };
