/**
 * The `file` protocol driver (QEMU's file-posix) over FileStorage: the host file as a node.
 */
import { FileStorage } from '../../storage/file.ts';
import { Errno, ErrnoError, strerror } from '../../errno.ts';
import { BlockOpenError, OptionsError } from '../errors.ts';
import { checkPath } from '../env.ts';
import { BaseNode, type NodeInfo, type TruncateOptions } from '../node.ts';
import type { QDict } from '../qdict.ts';
import type { BlockDriverDef, DriverOpenContext } from './types.ts';
import type { BlockNode, BlockStatus } from '../types.ts';
import { isZeroRange } from '../zero.ts';

const AIO_MODES = ['threads', 'native', 'io_uring'];
/** Granularity of hole detection (the host file system's block size). */
const HOLE_BLOCK = 4096;
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
  }

  override get protocolName(): string {
    return 'file';
  }
  override get supportsFuaWrite(): boolean {
    return true;
  }

  protected getLength(): number {
    return this.storage.size();
  }

  protected doRead(offset: number, buf: Uint8Array): void {
    this.storage.read(offset, buf);
  }

  protected doWrite(offset: number, data: Uint8Array, fua: boolean): void {
    this.holes = undefined;
    this.storage.write(offset, data);
    if (fua) this.storage.flush();
  }

  protected override doWriteZeroes(offset: number, length: number, unmap: boolean): void {
    this.holes = undefined;
    this.storage.writeZeroes(offset, length, unmap);
  }

  protected override doDiscard(offset: number, length: number): void {
    if (offset >= this.storage.size()) return;
    this.holes = undefined;
    this.storage.discard(offset, length);
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
    // falloc and full allocate the new area; it reads as zeroes either way.
    this.holes = undefined;
    this.storage.truncate(size);
  }

  /**
   * file-posix asks the host with SEEK_DATA/SEEK_HOLE: holes are ZERO, the rest DATA. Node
   * has no lseek(SEEK_DATA), so holes are inferred: nothing allocated means all hole, a fully
   * allocated file is all data, otherwise a 4 KiB block reads as a hole when it holds only
   * zeroes (except the first block, which QEMU allocates when it creates a file). Zeroes
   * written explicitly into a partly sparse file are the case this cannot tell apart.
   */
  protected override doBlockStatus(offset: number, length: number): BlockStatus {
    const data = (n: number): BlockStatus => ({ length: n, allocated: true, data: true, zero: false, compressed: false, offset, file: this });
    const hole = (n: number): BlockStatus => ({ length: n, allocated: true, data: false, zero: true, compressed: false, offset, file: this });
    const size = this.storage.size();
    if (offset >= size) return hole(length);
    const allocated = this.storage.allocatedBytes();
    if (allocated === 0) return hole(length);
    if (allocated >= Math.ceil(size / HOLE_BLOCK) * HOLE_BLOCK) return data(length);
    const run = this.holeMap(size, allocated).runAt(offset, Math.min(offset + length, size));
    if (run.isData) return data(run.end - offset);
    // Past the end of the file the request is a hole (the block layer pads it with zeroes).
    return hole(run.end >= size ? length : run.end - offset);
  }

  /** The inferred data/hole runs, kept until this node changes the file. */
  private holeMap(size: number, allocated: number): HoleMap {
    if (!this.holes || this.holes.size !== size || this.holes.allocated !== allocated) {
      this.holes = new HoleMap(this.storage, size, allocated);
    }
    return this.holes;
  }

  private holes: HoleMap | undefined;

  protected override doCopyRangeTo(dest: BlockNode, srcOffset: number, destOffset: number, length: number): void {
    const target = resolveCopyTarget(dest, destOffset);
    if (!target) throw new ErrnoError(Errno.ENOTSUP);
    const chunk = 1 << 20;
    const buf = new Uint8Array(Math.min(chunk, length));
    for (let done = 0; done < length; done += chunk) {
      const n = Math.min(chunk, length - done);
      const part = n === buf.length ? buf : buf.subarray(0, n);
      this.storage.read(srcOffset + done, part);
      target.node.holes = undefined;
      target.node.storage.write(target.offset + done, part);
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
  if (filename === undefined) throw new BlockOpenError("The 'file' block driver requires a file name");
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

/**
 * Data and hole runs of a partly sparse file, found by reading it: a 4 KiB block is data when
 * it is the first block or holds a nonzero byte. Scanned lazily in 1 MiB reads and remembered,
 * so repeated status queries (convert, measure, map) read the file once.
 */
class HoleMap {
  readonly size: number;
  readonly allocated: number;
  private readonly storage: FileStorage;
  /** One entry per scanned block: 1 data, 0 hole; blocks at and past `scanned` are unknown. */
  private readonly blocks: Uint8Array;
  private scanned = 0;

  constructor(storage: FileStorage, size: number, allocated: number) {
    this.storage = storage;
    this.size = size;
    this.allocated = allocated;
    this.blocks = new Uint8Array(Math.ceil(size / HOLE_BLOCK));
  }

  /** The run of uniform state starting at the block holding `offset`, cut at `limit`. */
  runAt(offset: number, limit: number): { isData: boolean; end: number } {
    const first = Math.floor(offset / HOLE_BLOCK);
    const lastBlock = Math.ceil(limit / HOLE_BLOCK);
    this.scanTo(first + 1);
    const isData = this.blocks[first] === 1;
    let b = first + 1;
    while (b < lastBlock) {
      if (b >= this.scanned) this.scanTo(Math.min(b + SCAN_BLOCKS, lastBlock));
      const at = this.blocks.indexOf(isData ? 0 : 1, b);
      if (at < 0 || at >= this.scanned) {
        b = this.scanned;
        continue;
      }
      b = at;
      break;
    }
    return { isData, end: Math.min(b * HOLE_BLOCK, this.size, limit) };
  }

  private scanTo(block: number): void {
    const total = this.blocks.length;
    const buf = new Uint8Array(SCAN_BLOCKS * HOLE_BLOCK);
    while (this.scanned < Math.min(block, total)) {
      const start = this.scanned;
      const count = Math.min(SCAN_BLOCKS, total - start);
      const bytes = Math.min(count * HOLE_BLOCK, this.size - start * HOLE_BLOCK);
      const view = buf.subarray(0, bytes);
      this.storage.read(start * HOLE_BLOCK, view);
      if (!isZeroRange(view)) {
        for (let i = 0; i < count; i++) {
          const from = i * HOLE_BLOCK;
          if (!isZeroRange(view, from, Math.min(from + HOLE_BLOCK, bytes))) this.blocks[start + i] = 1;
        }
      }
      if (start === 0) this.blocks[0] = 1;
      this.scanned = start + count;
    }
  }
}

const SCAN_BLOCKS = 256;
