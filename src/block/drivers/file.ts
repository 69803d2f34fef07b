/**
 * The `file` protocol driver (QEMU's file-posix) over FileStorage: the host file as a node.
 */
import { FileStorage } from '../../storage/file.ts';
import { hostFs } from '../../storage/hostfs.ts';
import { Errno, ErrnoError, strerror } from '../../errno.ts';
import { BlockOpenError, OptionsError } from '../errors.ts';
import { checkPath } from '../env.ts';
import { BaseNode, type NodeInfo, type TruncateOptions } from '../node.ts';
import type { QDict } from '../qdict.ts';
import type { BlockDriverDef, DriverOpenContext } from './types.ts';
import type { BlockNode, BlockStatus } from '../types.ts';
import { EXTENT_BLOCK, FileExtents, recordTruncate, recordWrite, recordZeroes, runAt } from './file-extents.ts';

const AIO_MODES = ['threads', 'native', 'io_uring'];
/** Granularity of hole detection (the host file system's block size). */
const HOLE_BLOCK = EXTENT_BLOCK;
const LOCKING_MODES = ['off', 'on', 'auto'];

export class FileNode extends BaseNode {
  storage: FileStorage;
  /** The path as given (bs->exact_filename). */
  readonly path: string;
  /** The host path it resolved to. */
  readonly absPath: string;

  constructor(nodeName: string, path: string, absPath: string, storage: FileStorage) {
    super('file', nodeName, storage.readOnly);
    this.storage = storage;
    this.path = path;
    this.absPath = absPath;
    this.exactFilename = path;
    this.extents = hostFs ? null : new FileExtents(absPath);
  }

  override get protocolName(): string {
    return 'file';
  }
  override get supportsFuaWrite(): boolean {
    return true;
  }
  /** file-posix advertises it; without fallocate the storage answers ENOTSUP. */
  override get supportsNoFallbackZeroes(): boolean {
    return true;
  }

  protected getLength(): number {
    return this.storage.size();
  }

  protected doRead(offset: number, buf: Uint8Array): void {
    this.storage.read(offset, buf);
  }

  protected doWrite(offset: number, data: Uint8Array, fua: boolean): void {
    if (!this.extents) {
      this.storage.write(offset, data);
    } else {
      this.extents.beforeChange();
      this.storage.write(offset, data);
      this.extents.update((m) => recordWrite(m, offset, data));
    }
    if (fua) this.storage.flush();
  }

  protected override doWriteZeroes(offset: number, length: number, unmap: boolean, _fua: boolean, noFallback: boolean): void {
    if (!this.extents) {
      this.storage.writeZeroes(offset, length, unmap, noFallback);
      return;
    }
    const old = this.storage.size();
    this.extents.beforeChange();
    this.storage.writeZeroes(offset, length, unmap, noFallback);
    this.extents.update((m) => {
      recordZeroes(m, offset, Math.min(length, Math.max(0, old - offset)));
      if (offset + length > old) recordTruncate(m, old, offset + length);
    });
  }

  protected override doDiscard(offset: number, length: number): void {
    if (offset >= this.storage.size()) return;
    if (!this.extents) {
      this.storage.discard(offset, length);
      return;
    }
    this.extents.beforeChange();
    this.storage.discard(offset, length);
    this.extents.update((m) => recordZeroes(m, offset, Math.min(length, this.storage.size() - offset)));
  }

  protected override doFlushToDisk(): void {
    this.storage.flush();
  }

  protected override doTruncate(size: number, opts: TruncateOptions): void {
    // handle_aiocb_truncate: shrinking never preallocates; metadata is not a file mode.
    const current = this.storage.size();
    if (current > size && opts.prealloc !== 'off') {
      throw new ErrnoError(Errno.ENOTSUP, 'Cannot use preallocation for shrinking files');
    }
    if (opts.prealloc === 'metadata') {
      throw new ErrnoError(Errno.ENOTSUP, `Unsupported preallocation mode: ${opts.prealloc}`);
    }
    const old = this.storage.size();
    this.extents?.beforeChange();
    // raw_regular_truncate(): ftruncate's (or posix_fallocate's) errno as "Could not resize
    // file: ..."; no file system takes 2^53 bytes (and Node cannot even pass such a length on).
    try {
      if (!Number.isSafeInteger(size)) throw new ErrnoError(Errno.EFBIG);
      this.storage.truncate(size, opts.prealloc === 'falloc' || opts.prealloc === 'full' ? opts.prealloc : 'off');
    } catch (err) {
      if (!(err instanceof ErrnoError)) throw err;
      const what = opts.prealloc === 'falloc' && size > old ? 'Could not preallocate new data' : 'Could not resize file';
      throw new ErrnoError(err.errno, `${what}: ${strerror(err.errno)}`);
    }
    this.extents?.update((m) => recordTruncate(m, old, size));
  }

  /**
   * file-posix asks the host with SEEK_DATA/SEEK_HOLE (find_allocation): holes are ZERO, the
   * rest DATA, a data run ending in a partial sector rounds up. Without the native helper
   * holes are inferred: nothing allocated means all hole, a fully allocated file is all data,
   * otherwise a 4 KiB block reads as a hole when it holds only zeroes (except the first
   * block, which QEMU allocates when it creates a file); zeroes written explicitly into a
   * partly sparse file, and fallocated space, are what this guess gets wrong.
   */
  protected override doBlockStatus(offset: number, length: number): BlockStatus {
    const data = (n: number): BlockStatus => ({ length: n, allocated: true, data: true, zero: false, compressed: false, offset, file: this });
    const hole = (n: number): BlockStatus => ({ length: n, allocated: true, data: false, zero: true, compressed: false, offset, file: this });
    const size = this.storage.size();
    if (offset >= size) return hole(length);
    if (!this.extents) {
      const run = this.storage.allocationAt(offset);
      // No answer from the host (EBUSY and the like): QEMU pretends there are no holes.
      if (!run || run.end <= offset) return run && !run.data ? hole(length) : data(length);
      const n = Math.min(length, Math.ceil((run.end - offset) / 512) * 512);
      return run.data ? data(n) : hole(run.end >= size ? length : n);
    }
    const allocated = this.storage.allocatedBytes();
    if (allocated === 0) return hole(length);
    if (allocated >= Math.ceil(size / HOLE_BLOCK) * HOLE_BLOCK) return data(length);
    const end = Math.min(offset + length, size);
    const run = runAt(this.extents.current(), Math.floor(offset / EXTENT_BLOCK), Math.ceil(end / EXTENT_BLOCK), (o, b) => this.storage.read(o, b), size);
    const runEnd = Math.min(run.end * EXTENT_BLOCK, end);
    if (run.isData) return data(runEnd - offset);
    // Past the end of the file the request is a hole (the block layer pads it with zeroes).
    return hole(runEnd >= size ? length : runEnd - offset);
  }

  /**
   * What is known about the file's data blocks (shared with other nodes on the file), when
   * the host cannot be asked (no native helper); null otherwise.
   */
  private readonly extents: FileExtents | null;

  protected override doCopyRangeTo(dest: BlockNode, srcOffset: number, destOffset: number, length: number): void {
    const target = resolveCopyTarget(dest, destOffset);
    if (!target) throw new ErrnoError(Errno.ENOTSUP);
    const chunk = 1 << 20;
    const buf = new Uint8Array(Math.min(chunk, length));
    for (let done = 0; done < length; done += chunk) {
      const n = Math.min(chunk, length - done);
      const part = n === buf.length ? buf : buf.subarray(0, n);
      this.storage.read(srcOffset + done, part);
      target.node.extents?.beforeChange();
      target.node.storage.write(target.offset + done, part);
      target.node.extents?.update((m) => recordWrite(m, target.offset + done, part));
    }
  }

  override getInfo(): NodeInfo {
    return { clusterSize: 0, vmStateOffset: 0 };
  }

  protected override doClose(): void {
    this.storage.close();
  }

  protected override doSetReadOnly(readOnly: boolean): void {
    if (readOnly === this.storage.readOnly) return;
    const reopened = FileStorage.open(this.path, { readOnly }, this.absPath);
    this.storage.close();
    this.storage = reopened;
  }

  /** Bytes the file occupies on disk, for `qemu-img info`'s disk size. */
  allocatedBytes(): number {
    return this.storage.allocatedBytes();
  }
}

/** Copy offloading reaches a host file only through nodes that map bytes 1:1. */
function resolveCopyTarget(dest: BlockNode, offset: number): { node: FileNode; offset: number } | undefined {
  if (dest instanceof FileNode) return { node: dest, offset };
  return undefined;
}

function parseFileFilename(filename: string, options: QDict): void {
  // bdrv_parse_filename_strip_prefix: "file:" is dropped, the rest is the path.
  if (filename.startsWith('file:')) options.set('filename', filename.slice('file:'.length));
}

function openFile(ctx: DriverOpenContext): BaseNode {
  const opts = ctx.options;
  const filename = opts.takeString('filename');
  const aio = opts.takeString('aio') ?? ctx.aio;
  if (aio !== undefined && !AIO_MODES.includes(aio)) throw new OptionsError(`invalid parameter value: ${aio}`);
  const locking = opts.takeString('locking');
  if (locking !== undefined && !LOCKING_MODES.includes(locking)) throw new OptionsError(`invalid parameter value: ${locking}`);
  opts.take('aio-max-batch');
  opts.take('pr-manager');
  opts.take('x-check-cache-dropped');
  opts.take('drop-cache');
  // An empty name counts as none (QEMU checks for a non-empty filename option).
  if (filename === undefined || filename === '') throw new BlockOpenError("The 'file' block driver requires a file name");
  if (aio === 'native' && !ctx.cacheDirect) {
    throw new BlockOpenError('aio=native was specified, but it requires cache.direct=on, which was not specified.');
  }
  const abs = checkPath(ctx.env, filename, ctx.readOnly ? 'read' : 'write');
  let storage: FileStorage;
  try {
    storage = FileStorage.open(filename, { readOnly: ctx.readOnly }, abs);
  } catch (err) {
    if (err instanceof ErrnoError) {
      // open(2) of a directory succeeds read-only; raw_open_common then wants a regular file.
      if (err.errno === Errno.EISDIR && ctx.readOnly) {
        throw new BlockOpenError(`'file' driver requires '${filename}' to be a regular file`, Errno.EINVAL);
      }
      throw new BlockOpenError(`Could not open '${filename}': ${strerror(err.errno)}`, err.errno);
    }
    throw err;
  }
  const node = new FileNode(ctx.nodeName, filename, abs, storage);
  node.recordOption('filename', filename, false);
  return node;
}

export const fileDriver: BlockDriverDef = {
  name: 'file',
  protocol: true,
  needsFilename: true,
  protocolPrefix: 'file',
  parseFilename: parseFileFilename,
  open: openFile,
};
