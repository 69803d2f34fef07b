/**
 * BlockBackend: what a front end (qemu-io, qemu-img, a QMP block job) holds on to. It adds
 * QEMU's blk_* request checks on top of the root node (requests beyond the end of the image
 * fail with EIO), and the write cache setting: with writethrough every write is FUA.
 */
import { Errno, ErrnoError } from '../errno.ts';
import { BlockOpenError } from './errors.ts';
import type { OpenEnv } from './env.ts';
import type { BaseNode, NodeInfo } from './node.ts';
import type { BlockStatus, Prealloc } from './types.ts';

export interface BackendOptions {
  /** enable_write_cache: false means writethrough (FUA on every write). */
  writeCache: boolean;
  env: OpenEnv;
}

export interface BackendZeroFlags {
  unmap?: boolean;
  fua?: boolean;
  /** BDRV_REQ_NO_FALLBACK (qemu-io `write -z -n`). */
  noFallback?: boolean;
}

export class BlockBackend {
  readonly root: BaseNode;
  writeCache: boolean;
  readonly env: OpenEnv;
  /** qemu-img create/convert targets may be written past their current end. */
  allowWriteBeyondEof = false;
  /** BDRV_O_COPY_ON_READ: reads fill unallocated clusters of the top node from its backing. */
  copyOnRead = false;
  /** Whether a flush now would have data to sync (something was written since the last one). */
  dirtySinceFlush = false;
  private closed = false;

  constructor(root: BaseNode, opts: BackendOptions) {
    this.root = root;
    this.writeCache = opts.writeCache;
    this.env = opts.env;
  }

  get readOnly(): boolean {
    return this.root.readOnly;
  }

  length(): number {
    return this.root.length();
  }

  /** blk_check_byte_request */
  private check(offset: number, bytes: number): void {
    if (bytes < 0 || offset < 0) throw new ErrnoError(Errno.EIO);
    if (this.closed) throw new ErrnoError(Errno.ENOMEDIUM);
    if (!this.allowWriteBeyondEof) {
      const len = this.root.length();
      if (offset > len || len - offset < bytes) throw new ErrnoError(Errno.EIO);
    }
  }

  /**
   * The permission check a front end makes before a writing command (qemu-io's command()):
   * a read-only backend cannot get BLK_PERM_WRITE.
   */
  requireWrite(): void {
    if (this.root.readOnly) throw new BlockOpenError('Block node is read-only', Errno.EPERM);
  }

  read(offset: number, buf: Uint8Array): void {
    this.check(offset, buf.length);
    if (this.copyOnRead && this.root.children.has('backing') && buf.length > 0) {
      this.copyOnReadFill(offset, buf.length);
    }
    this.root.read(offset, buf);
  }

  /**
   * bdrv_co_do_copy_on_readv: every cluster of the request that the top node does not
   * allocate is read through the chain and written into the top node (as zeroes when it reads
   * as zeroes), before the guest read.
   */
  private copyOnReadFill(offset: number, bytes: number): void {
    const root = this.root;
    const cs = root.clusterSize;
    const len = root.length();
    let pos = Math.floor(offset / cs) * cs;
    const end = Math.min(len, Math.ceil((offset + bytes) / cs) * cs);
    while (pos < end) {
      const s = root.blockStatus(pos, end - pos);
      const run = s.length;
      if (!s.allocated) {
        const data = new Uint8Array(run);
        root.read(pos, data);
        if (data.every((b) => b === 0)) root.writeZeroes(pos, run);
        else root.write(pos, data);
        this.dirtySinceFlush = true;
      }
      pos += run;
    }
  }

  write(offset: number, data: Uint8Array, flags: { fua?: boolean } = {}): void {
    this.check(offset, data.length);
    this.dirtySinceFlush = true;
    this.root.write(offset, data, { fua: flags.fua === true || !this.writeCache });
  }

  writeZeroes(offset: number, length: number, flags: BackendZeroFlags = {}): void {
    this.check(offset, length);
    this.dirtySinceFlush = true;
    this.root.writeZeroes(offset, length, { unmap: flags.unmap, fua: flags.fua === true || !this.writeCache, noFallback: flags.noFallback });
  }

  writeCompressed(offset: number, data: Uint8Array): void {
    this.check(offset, data.length);
    this.dirtySinceFlush = true;
    this.root.writeCompressed(offset, data);
  }

  discard(offset: number, length: number): void {
    this.check(offset, length);
    this.dirtySinceFlush = true;
    this.root.discard(offset, length);
  }

  flush(): void {
    if (this.closed) throw new ErrnoError(Errno.ENOMEDIUM);
    this.root.flush();
    this.dirtySinceFlush = false;
  }

  truncate(size: number, opts: { exact: boolean; prealloc: Prealloc }): void {
    this.root.truncate(size, { exact: opts.exact, prealloc: opts.prealloc, shrinkAllowed: true });
  }

  blockStatus(offset: number, length: number): BlockStatus {
    return this.root.blockStatus(offset, length);
  }

  getInfo(): NodeInfo {
    return this.root.getInfo();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.root.close();
  }
}
