/**
 * The `raw` format driver: the guest sees its file child's bytes, optionally a window given by
 * `offset` and `size`. A probed raw image refuses writes that would make sector 0 look like
 * another format (QEMU's guard against format confusion).
 */
import { Errno, ErrnoError } from '../../errno.ts';
import { BlockOpenError } from '../errors.ts';
import { BaseNode, debugEventOn, type NodeInfo, type StatusPassthrough, type TruncateOptions } from '../node.ts';
import type { BlockDriverDef, DriverOpenContext } from './types.ts';
import type { BlockNode } from '../types.ts';
import { probeFormat } from './probe.ts';

export class RawNode extends BaseNode {
  readonly file: BaseNode;
  readonly offset: number;
  /** Set when the `size` option fixes the window. */
  readonly fixedSize: number | undefined;

  constructor(nodeName: string, readOnly: boolean, file: BaseNode, offset: number, fixedSize: number | undefined) {
    super('raw', nodeName, readOnly);
    this.file = file;
    this.offset = offset;
    this.fixedSize = fixedSize;
    this.children.set('file', file);
  }

  override get supportsFuaWrite(): boolean {
    return this.file.supportsFuaWrite;
  }
  override get supportsFuaZeroes(): boolean {
    return this.file.supportsFuaZeroes;
  }
  override get supportsNoFallbackZeroes(): boolean {
    return this.file.supportsNoFallbackZeroes;
  }
  override get clusterSize(): number {
    return this.file.clusterSize;
  }

  protected getLength(): number {
    if (this.fixedSize !== undefined) return this.fixedSize;
    return Math.max(0, this.file.length() - this.offset);
  }

  private adjust(offset: number, bytes: number, isWrite: boolean): number {
    if (this.fixedSize !== undefined && (offset > this.fixedSize || bytes > this.fixedSize - offset)) {
      throw new ErrnoError(isWrite ? Errno.ENOSPC : Errno.EINVAL);
    }
    return offset + this.offset;
  }

  protected doRead(offset: number, buf: Uint8Array): void {
    const at = this.adjust(offset, buf.length, false);
    debugEventOn(this.file, 'read_aio');
    this.file.read(at, buf);
  }

  /** Writes that would change what sector 0 probes as are refused on probed images. */
  private checkProbedWrite(offset: number, data: Uint8Array | undefined, length: number): void {
    if (!this.probed || offset >= 512 || length === 0) return;
    const head = new Uint8Array(512);
    this.file.read(this.offset, head);
    const end = Math.min(512, offset + length);
    if (data) head.set(data.subarray(0, end - offset), offset);
    else head.fill(0, offset, end);
    if (probeFormat(head) !== 'raw') throw new ErrnoError(Errno.EPERM);
  }

  protected doWrite(offset: number, data: Uint8Array, fua: boolean): void {
    const at = this.adjust(offset, data.length, true);
    this.checkProbedWrite(offset, data, data.length);
    debugEventOn(this.file, 'write_aio');
    this.file.write(at, data, { fua });
  }

  protected override doWriteZeroes(offset: number, length: number, unmap: boolean, fua: boolean, noFallback: boolean): void {
    const at = this.adjust(offset, length, true);
    this.checkProbedWrite(offset, undefined, length);
    this.file.writeZeroes(at, length, { unmap, fua, noFallback });
  }

  protected override doDiscard(offset: number, length: number): void {
    const at = this.adjust(offset, length, true);
    this.file.discard(at, length);
  }

  protected override doTruncate(size: number, opts: TruncateOptions): void {
    if (this.fixedSize !== undefined) throw new ErrnoError(Errno.ENOTSUP, 'Cannot resize fixed-size raw disks');
    this.file.truncate(size + this.offset, opts);
  }

  protected override doBlockStatus(offset: number): StatusPassthrough {
    return { passthrough: this.file, offset: offset + this.offset };
  }

  protected override doCopyRangeTo(dest: BlockNode, srcOffset: number, destOffset: number, length: number): void {
    const target = unwrapRawDest(dest, destOffset);
    this.file.copyRangeTo(target.node, srcOffset + this.offset, target.offset, length);
  }

  override getInfo(): NodeInfo {
    return this.file.getInfo();
  }
}

function unwrapRawDest(dest: BlockNode, offset: number): { node: BlockNode; offset: number } {
  if (dest instanceof RawNode) return { node: dest.file, offset: offset + dest.offset };
  return { node: dest, offset };
}

function openRaw(ctx: DriverOpenContext): BaseNode {
  const opts = ctx.options;
  const offsetGiven = opts.peek('offset');
  const sizeGiven = opts.peek('size');
  const offset = opts.takeSize('offset', 0);
  const size = sizeGiven === undefined || sizeGiven === null ? undefined : opts.takeSize('size', 0);
  if (sizeGiven === null) opts.take('size');
  const file = ctx.file;
  if (!file) throw new BlockOpenError('A block device must be specified for "file"');
  const fileLength = file.length();
  if (offset > fileLength) {
    throw new BlockOpenError(`Offset (${offset}) cannot be greater than size of the containing file (${fileLength})`);
  }
  if (size !== undefined) {
    if (size % 512 !== 0) throw new BlockOpenError('Specified size is not multiple of 512');
    if (offset + size > fileLength) {
      throw new BlockOpenError(
        `The sum of offset (${offset}) and size (${size}) has to be smaller or equal to the  actual size of the containing file (${fileLength})`,
      );
    }
  }
  const node = new RawNode(ctx.nodeName, ctx.readOnly, file, offset, size);
  node.probed = ctx.probed;
  if (offsetGiven !== undefined && offsetGiven !== null) node.recordOption('offset', offsetGiven, true);
  if (sizeGiven !== undefined && sizeGiven !== null) node.recordOption('size', sizeGiven, true);
  if (ctx.probed && !ctx.readOnly) {
    file.refreshFilename();
    ctx.env.stderr(
      `WARNING: Image format was not specified for '${file.filename}' and probing guessed raw.\n` +
        '         Automatically detecting the format is dangerous for raw images, write operations on block 0 will be restricted.\n' +
        "         Specify the 'raw' format explicitly to remove the restrictions.\n",
    );
  }
  return node;
}

export const rawDriver: BlockDriverDef = {
  name: 'raw',
  protocol: false,
  probe: () => 1,
  open: openRaw,
};
