/**
 * The generic half of every block node: request checks, read-past-EOF zero fill, FUA
 * emulation, write-zeroes fallback, QEMU's flush algorithm (write generations, flush of every
 * writable child, blkdebug events), and bs->filename as bdrv_refresh_filename computes it.
 * Drivers extend BaseNode and implement the protected do* hooks for their own node only.
 */
import { Errno, ErrnoError } from '../errno.ts';
import { QDict, type QValue } from './qdict.ts';
import { toJson } from './qdict.ts';
import type { BlockNode, BlockStatus, ChildRole, Prealloc, WriteFlags, ZeroFlags } from './types.ts';

/** bdrv_check_request32's limit: INT_MAX rounded down to whole sectors. */
export const BDRV_REQUEST_MAX_BYTES = 2147483136;

/** What bdrv_get_info reports; qemu-io's `info` and qemu-img print it. */
export interface NodeInfo {
  clusterSize: number;
  vmStateOffset: number;
}

export interface TruncateOptions {
  exact: boolean;
  prealloc: Prealloc;
  shrinkAllowed: boolean;
}

/** Raised by block-status hooks of format drivers whose answer lives in a child. */
export interface StatusPassthrough {
  passthrough: BlockNode;
  offset: number;
}

export abstract class BaseNode implements BlockNode {
  readonly driver: string;
  nodeName: string;
  readOnly: boolean;
  readonly children = new Map<ChildRole, BlockNode>();
  /** bs->filename (plain path or json:{...}), refreshed by refreshFilename(). */
  filename = '';
  /** bs->exact_filename: a name that reopens exactly this node, or ''. */
  exactFilename = '';
  /** bs->full_open_options (nested), refreshed by refreshFilename(). */
  fullOpenOptions = new QDict();
  /**
   * Options that define this node: 'driver', 'filename' when given, and the driver's strong
   * runtime options (flat keys, original value types), in the order they were given.
   */
  readonly ownOptions = new QDict();
  /** Whether any driver-specific strong option was given (forces a json: filename). */
  hasStrongOptions = false;
  /** Set when the backing child was given explicitly or removed (backing: null). */
  backingOverridden = false;
  /** BDRV_O_UNMAP: discard requests reach the driver (discard=unmap). */
  unmapAllowed = true;
  /** cache.no-flush (cache=unsafe): flushes stop at the OS. */
  noFlush = false;
  /** cache.direct, kept for info and child inheritance. */
  cacheDirect = false;
  /** Guest-visible request alignment; unaligned requests get read-modify-write. */
  requestAlignment = 1;
  /** The format was probed rather than given (raw's block-0 write guard). */
  probed = false;
  /** BDRV_O_NO_IO: opened for metadata only (qemu-img info); backing overrides do not count. */
  noIo = false;
  /** Nodes this node opened itself and must close with it (not those referenced by name). */
  readonly ownedChildren = new Set<BlockNode>();
  /** Called when the node closes (e.g. to drop it from a node-name registry). */
  onClose?: () => void;

  private writeGen = 0;
  private flushedGen = 0;
  private closed = false;

  constructor(driver: string, nodeName: string, readOnly: boolean) {
    this.driver = driver;
    this.nodeName = nodeName;
    this.readOnly = readOnly;
  }

  // ---- driver hooks ----

  /** Protocol drivers have a protocol name (file, null-co, blkdebug); formats do not. */
  get protocolName(): string | undefined {
    return undefined;
  }
  /** A filter passes everything to one child (blkdebug). */
  get isFilter(): boolean {
    return false;
  }
  /** BDRV_REQ_FUA in supported_write_flags. */
  get supportsFuaWrite(): boolean {
    return false;
  }
  /** BDRV_REQ_FUA in supported_zero_flags. */
  get supportsFuaZeroes(): boolean {
    return false;
  }
  /** BDRV_REQ_NO_FALLBACK in supported_zero_flags: zero writes that never write zeroes. */
  get supportsNoFallbackZeroes(): boolean {
    return false;
  }
  /** Whether writeCompressed reaches the driver (block_driver_can_compress). */
  protected get canCompress(): boolean {
    return false;
  }
  get clusterSize(): number {
    return 512;
  }

  /** The driver's length in bytes (bdrv_getlength before rounding). */
  protected abstract getLength(): number;

  /** bdrv_getlength: whole sectors, as QEMU counts every node's size (a 1-byte file is 512). */
  length(): number {
    return Math.ceil(this.getLength() / 512) * 512;
  }

  /** The length before rounding to sectors (what the host file really holds). */
  exactLength(): number {
    return this.getLength();
  }
  protected abstract doRead(offset: number, buf: Uint8Array): void;
  protected abstract doWrite(offset: number, data: Uint8Array, fua: boolean): void;

  /** Throw ENOTSUP to make the block layer write a zero buffer instead (unless noFallback). */
  protected doWriteZeroes(_offset: number, _length: number, _unmap: boolean, _fua: boolean, _noFallback: boolean): void {
    throw new ErrnoError(Errno.ENOTSUP);
  }
  protected doWriteCompressed(_offset: number, _data: Uint8Array): void {
    throw new ErrnoError(Errno.ENOTSUP);
  }
  /** ENOTSUP from a driver counts as success, as in bdrv_co_pdiscard. */
  protected doDiscard(_offset: number, _length: number): void {}
  /** bdrv_co_flush_to_os: write cached state to the layer below. */
  protected doFlushToOs(): void {}
  /** bdrv_co_flush_to_disk: make this node's own data stable. */
  protected doFlushToDisk(): void {}
  protected doTruncate(_size: number, _opts: TruncateOptions): void {
    throw new ErrnoError(Errno.ENOTSUP, 'Image format driver does not support resize');
  }
  /** Default: the range is data (protocol drivers map it onto themselves). */
  protected doBlockStatus(offset: number, length: number): BlockStatus | StatusPassthrough {
    const status: BlockStatus = { length, allocated: true, data: true, zero: false, compressed: false };
    if (this.protocolName !== undefined) {
      status.offset = offset;
      status.file = this;
    }
    return status;
  }
  protected doCopyRangeTo(_dest: BlockNode, _srcOffset: number, _destOffset: number, _length: number): void {
    throw new ErrnoError(Errno.ENOTSUP);
  }
  protected doClose(): void {}
  /** bdrv_get_info; filters ask their child, others without info are ENOTSUP. */
  getInfo(): NodeInfo {
    const filtered = this.isFilter ? this.primaryChild() : undefined;
    if (filtered instanceof BaseNode) return filtered.getInfo();
    throw new ErrnoError(Errno.ENOTSUP);
  }
  /** bdrv_debug_event; only blkdebug reacts. */
  debugEvent(_event: string): void {}

  /** The child that holds this node's data (bdrv_primary_child): file, or image for blkdebug. */
  primaryChild(): BlockNode | undefined {
    return this.children.get('file') ?? this.children.get('image');
  }

  // ---- the generic block layer ----

  private checkRequest(offset: number, bytes: number): void {
    if (offset < 0 || bytes < 0 || bytes > BDRV_REQUEST_MAX_BYTES || !Number.isSafeInteger(offset + bytes)) {
      throw new ErrnoError(Errno.EIO);
    }
  }

  private assertWritable(): void {
    if (this.readOnly) throw new ErrnoError(Errno.EPERM);
  }

  read(offset: number, buf: Uint8Array): void {
    this.checkRequest(offset, buf.length);
    if (buf.length === 0) return;
    const end = offset + buf.length;
    const len = this.length();
    const validEnd = Math.min(end, Math.max(len, offset));
    if (validEnd < end) buf.fill(0, validEnd - offset);
    if (validEnd > offset) this.alignedRead(offset, buf.subarray(0, validEnd - offset));
  }

  private alignedRead(offset: number, buf: Uint8Array): void {
    const align = this.requestAlignment;
    if (align <= 1 || (offset % align === 0 && buf.length % align === 0)) {
      this.doRead(offset, buf);
      return;
    }
    const start = offset - (offset % align);
    const end = Math.ceil((offset + buf.length) / align) * align;
    const bounce = new Uint8Array(end - start);
    this.doRead(start, bounce);
    buf.set(bounce.subarray(offset - start, offset - start + buf.length));
  }

  write(offset: number, data: Uint8Array, flags: WriteFlags = {}): void {
    this.checkRequest(offset, data.length);
    this.assertWritable();
    this.writeGen++;
    if (data.length === 0) return;
    const fua = flags.fua === true;
    const align = this.requestAlignment;
    if (align > 1 && (offset % align !== 0 || data.length % align !== 0)) {
      const start = offset - (offset % align);
      const end = Math.ceil((offset + data.length) / align) * align;
      const bounce = new Uint8Array(end - start);
      this.padForWrite(start, end, offset !== start, offset + data.length !== end, bounce);
      bounce.set(data, offset - start);
      this.debugEvent('pwritev');
      try {
        this.doWrite(start, bounce, fua && this.supportsFuaWrite);
      } finally {
        this.debugEvent('pwritev_done');
      }
    } else {
      this.debugEvent('pwritev');
      try {
        this.doWrite(offset, data, fua && this.supportsFuaWrite);
      } finally {
        this.debugEvent('pwritev_done');
      }
    }
    if (fua && !this.supportsFuaWrite) this.flush();
  }

  /** bdrv_padding_rmw_read: read the partial head and tail blocks of an unaligned write. */
  private padForWrite(start: number, end: number, head: boolean, tail: boolean, bounce: Uint8Array): void {
    const align = this.requestAlignment;
    const merge = end - start === align;
    if (head || merge) {
      if (head) this.debugEvent('pwritev_rmw_head');
      if (merge && tail) this.debugEvent('pwritev_rmw_tail');
      this.doRead(start, bounce.subarray(0, align));
      if (head) this.debugEvent('pwritev_rmw_after_head');
      if (merge && tail) this.debugEvent('pwritev_rmw_after_tail');
      if (merge) return;
    }
    if (tail) {
      this.debugEvent('pwritev_rmw_tail');
      this.doRead(end - align, bounce.subarray(bounce.length - align));
      this.debugEvent('pwritev_rmw_after_tail');
    }
  }

  writeZeroes(offset: number, length: number, flags: ZeroFlags = {}): void {
    this.checkRequest(offset, length);
    this.assertWritable();
    this.writeGen++;
    if (length === 0) return;
    const fua = flags.fua === true;
    const unmap = flags.unmap === true && this.unmapAllowed;
    this.debugEvent('pwritev_zero');
    try {
      this.zeroRange(offset, length, unmap, fua, flags.noFallback === true);
    } finally {
      this.debugEvent('pwritev_done');
    }
  }

  /** bdrv_co_do_pwrite_zeroes: the driver's zero write, else a zeroed bounce buffer. */
  private zeroRange(offset: number, length: number, unmap: boolean, fua: boolean, noFallback: boolean): void {
    if (noFallback && !this.supportsNoFallbackZeroes) throw new ErrnoError(Errno.ENOTSUP);
    try {
      this.doWriteZeroes(offset, length, unmap, fua && this.supportsFuaZeroes, noFallback);
    } catch (err) {
      if (!(err instanceof ErrnoError) || err.errno !== Errno.ENOTSUP || noFallback) throw err;
      const chunk = 1 << 20;
      const zero = new Uint8Array(Math.min(chunk, length));
      for (let pos = offset; pos < offset + length; pos += chunk) {
        const n = Math.min(chunk, offset + length - pos);
        this.doWrite(pos, n === zero.length ? zero : zero.subarray(0, n), fua && this.supportsFuaWrite);
      }
      if (fua && !this.supportsFuaWrite) this.flush();
      return;
    }
    if (fua && !this.supportsFuaZeroes) this.flush();
  }

  writeCompressed(offset: number, data: Uint8Array): void {
    this.checkRequest(offset, data.length);
    this.assertWritable();
    if (!this.canCompress) throw new ErrnoError(Errno.ENOTSUP);
    this.writeGen++;
    this.doWriteCompressed(offset, data);
  }

  discard(offset: number, length: number): void {
    this.checkRequest(offset, length);
    this.assertWritable();
    if (!this.unmapAllowed) return;
    this.writeGen++;
    try {
      this.doDiscard(offset, length);
    } catch (err) {
      if (err instanceof ErrnoError && err.errno === Errno.ENOTSUP) return;
      throw err;
    }
  }

  /** bdrv_co_flush: own caches to the OS, then to disk if written since, then every child. */
  flush(): void {
    if (this.readOnly || this.closed) return;
    const currentGen = this.writeGen;
    const primary = this.primaryChild();
    let ret: unknown = null;
    // A failure of the node itself skips its children, as QEMU's `goto out` does.
    emitDebugEvent(primary, 'flush_to_os');
    this.doFlushToOs();
    if (!this.noFlush && this.flushedGen !== currentGen) {
      emitDebugEvent(primary, 'flush_to_disk');
      this.doFlushToDisk();
    }
    for (const child of this.children.values()) {
      if (child.readOnly) continue;
      try {
        child.flush();
      } catch (err) {
        ret ??= err;
      }
    }
    if (ret !== null) throw ret;
    this.flushedGen = currentGen;
  }

  truncate(size: number, opts: TruncateOptions): void {
    if (size < 0) throw new ErrnoError(Errno.EINVAL, 'Image size cannot be negative');
    if (this.readOnly) throw new ErrnoError(Errno.EACCES, 'Image is read-only');
    this.writeGen++;
    this.doTruncate(size, opts);
  }

  /** Status of this node alone (raw-style passthrough resolved), never 0 bytes long. */
  blockStatus(offset: number, length: number): BlockStatus {
    const len = this.length();
    if (offset >= len || length <= 0) throw new ErrnoError(Errno.EINVAL, 'block status beyond end of node');
    const bytes = Math.min(length, len - offset);
    const r = this.doBlockStatus(offset, bytes);
    if ('passthrough' in r) {
      const target = r.passthrough;
      const tlen = target.length();
      if (r.offset >= tlen) {
        // Past the end of the child: QEMU reports zeroes there.
        return { length: bytes, allocated: true, data: false, zero: true, compressed: false };
      }
      const s = target.blockStatus(r.offset, Math.min(bytes, tlen - r.offset));
      return s;
    }
    return r;
  }

  copyRangeTo(dest: BlockNode, srcOffset: number, destOffset: number, length: number): void {
    this.checkRequest(srcOffset, length);
    if (dest instanceof BaseNode) {
      dest.checkRequest(destOffset, length);
      dest.assertWritable();
      dest.writeGen++;
    }
    this.doCopyRangeTo(dest, srcOffset, destOffset, length);
  }

  close(): void {
    if (this.closed) return;
    try {
      this.flush();
    } catch {
      // bdrv_close ignores flush failures.
    }
    this.closed = true;
    this.doClose();
    for (const child of this.ownedChildren) child.close();
    this.onClose?.();
  }

  /**
   * Switch between read-only and read-write (bdrv_reopen with read-only changed), for this
   * node and the children that carry its data (not the backing chain). Drivers that hold
   * host files reopen them in the new mode.
   */
  setReadOnly(readOnly: boolean): void {
    for (const [role, child] of this.children) {
      if (role === 'backing') continue;
      if (child instanceof BaseNode) child.setReadOnly(readOnly);
    }
    this.doSetReadOnly(readOnly);
    this.readOnly = readOnly;
  }

  /** bdrv_reopen of the read-only state (the form qemu-img commit asks for). */
  reopen(opts: { readOnly: boolean }): void {
    this.setReadOnly(opts.readOnly);
  }

  /** Driver hook of setReadOnly (e.g. reopen the host file). */
  protected doSetReadOnly(_readOnly: boolean): void {}

  get isClosed(): boolean {
    return this.closed;
  }

  // ---- filename ----

  /**
   * Driver hook of bdrv_refresh_filename: set exactFilename when the node can be named by a
   * plain filename. Default: format nodes inherit their protocol child's name when nothing
   * else distinguishes them; protocol nodes keep the name they were opened with.
   */
  protected refreshExactFilename(generateJson: boolean): void {
    const primary = this.primaryChild();
    if (!(primary instanceof BaseNode)) return;
    this.exactFilename = '';
    if (primary.exactFilename && primary.protocolName !== undefined && !this.isFilter && !generateJson) {
      this.exactFilename = primary.exactFilename;
    }
  }

  /** bdrv_refresh_filename: children first, then full_open_options, exact name, filename. */
  refreshFilename(): void {
    for (const child of this.children.values()) {
      if (child instanceof BaseNode) child.refreshFilename();
    }
    const opts = new QDict();
    for (const [k, v] of this.ownOptions) opts.set(k, v);
    for (const [role, child] of this.children) {
      if (role === 'backing' && (!this.backingOverridden || this.noIo)) continue;
      if (child instanceof BaseNode) opts.set(role, child.fullOpenOptions);
    }
    if (this.backingOverridden && !this.noIo && !this.children.has('backing')) opts.set('backing', null);
    this.fullOpenOptions = opts;
    // Without I/O the backing file changes nothing, so an override does not force json:.
    const backingOverridden = this.backingOverridden && !this.noIo;
    this.refreshExactFilename(this.hasStrongOptions || backingOverridden);
    this.filename = this.exactFilename || `json:${toJson(this.fullOpenOptions)}`;
  }

  /** Record an option that identifies this node (for json: filenames). */
  recordOption(key: string, value: QValue, strong: boolean): void {
    this.ownOptions.set(key, value);
    if (strong) this.hasStrongOptions = true;
  }
}

function emitDebugEvent(node: BlockNode | undefined, event: string): void {
  if (node instanceof BaseNode) node.debugEvent(event);
}

/** BLKDBG_EVENT(child, event) for drivers. */
export function debugEventOn(node: BlockNode | undefined, event: string): void {
  emitDebugEvent(node, event);
}
