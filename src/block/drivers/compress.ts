/**
 * The `compress` filter (block/filter-compress.c): every write to it becomes a compressed
 * write to its `file` child. Its request alignment is the child's cluster size, so partial
 * clusters are completed by the generic read-modify-write path first; reads, zero writes,
 * discards and flushes pass through.
 */
import { Errno } from '../../errno.ts';
import { BlockOpenError } from '../errors.ts';
import { BaseNode, type NodeInfo, type StatusPassthrough } from '../node.ts';
import type { BlockDriverDef, DriverOpenContext } from './types.ts';

export class CompressNode extends BaseNode {
  readonly file: BaseNode;

  constructor(nodeName: string, readOnly: boolean, file: BaseNode) {
    super('compress', nodeName, readOnly);
    this.file = file;
    this.children.set('file', file);
  }

  override get isFilter(): boolean {
    return true;
  }
  override get supportsFuaWrite(): boolean {
    return this.file.supportsFuaWrite;
  }
  override get supportsNoFallbackZeroes(): boolean {
    return this.file.supportsNoFallbackZeroes;
  }
  override get clusterSize(): number {
    return this.file.clusterSize;
  }

  protected getLength(): number {
    return this.file.length();
  }

  protected doRead(offset: number, buf: Uint8Array): void {
    this.file.read(offset, buf);
  }

  protected doWrite(offset: number, data: Uint8Array): void {
    this.file.writeCompressed(offset, data);
  }

  protected override doWriteZeroes(offset: number, length: number, unmap: boolean, fua: boolean, noFallback: boolean): void {
    this.file.writeZeroes(offset, length, { unmap, fua, noFallback });
  }

  protected override doDiscard(offset: number, length: number): void {
    this.file.discard(offset, length);
  }

  protected override doBlockStatus(offset: number): StatusPassthrough {
    return { passthrough: this.file, offset };
  }

  override getInfo(): NodeInfo {
    return this.file.getInfo();
  }
}

/** Formats whose driver implements compressed writes (block_driver_can_compress). */
function canCompress(node: BaseNode): boolean {
  return node.driver === 'qcow2';
}

function openCompress(ctx: DriverOpenContext): BaseNode {
  const file = ctx.file;
  if (!file) throw new BlockOpenError('A block device must be specified for "file"');
  if (!canCompress(file)) {
    throw new BlockOpenError(`Compression is not supported for underlying format: ${file.driver}`, Errno.ENOTSUP);
  }
  const node = new CompressNode(ctx.nodeName, ctx.readOnly, file);
  // compress_refresh_limits: requests are whole clusters of the child.
  try {
    node.requestAlignment = Math.max(1, file.getInfo().clusterSize);
  } catch {
    // Without driver info the alignment stays at one byte, as in QEMU.
  }
  return node;
}

export const compressDriver: BlockDriverDef = {
  name: 'compress',
  protocol: false,
  filter: true,
  open: openCompress,
};
