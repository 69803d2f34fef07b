/**
 * The `null-co` protocol driver: a device of a given size whose writes vanish and whose reads
 * return zeroes only with read-zeroes=on (otherwise the caller's buffer is left untouched,
 * which qemu-io shows as its 0xab fill pattern).
 */
import { BlockOpenError } from '../errors.ts';
import { BaseNode } from '../node.ts';
import type { QDict } from '../qdict.ts';
import type { BlockDriverDef, DriverOpenContext } from './types.ts';
import type { BlockStatus } from '../types.ts';

export class NullNode extends BaseNode {
  readonly size: number;
  readonly readZeroes: boolean;

  constructor(nodeName: string, readOnly: boolean, size: number, readZeroes: boolean) {
    super('null-co', nodeName, readOnly);
    this.size = size;
    this.readZeroes = readZeroes;
  }

  override get protocolName(): string {
    return 'null-co';
  }

  protected getLength(): number {
    return this.size;
  }

  protected doRead(_offset: number, buf: Uint8Array): void {
    if (this.readZeroes) buf.fill(0);
  }

  protected doWrite(): void {}

  protected override doWriteZeroes(): void {}

  protected override doBlockStatus(offset: number, length: number): BlockStatus {
    return { length, allocated: this.readZeroes, data: false, zero: this.readZeroes, compressed: false, offset, file: this };
  }

  protected override refreshExactFilename(): void {
    // null_refresh_filename: only driver, filename and latency-ns leave a plain name.
    for (const key of this.fullOpenOptions.keys()) {
      if (key !== 'driver' && key !== 'filename' && key !== 'latency-ns') {
        this.exactFilename = '';
        return;
      }
    }
    this.exactFilename = 'null-co://';
  }
}

function parseNullFilename(filename: string, _options: QDict): void {
  if (filename !== 'null-co://') {
    throw new BlockOpenError("The only allowed filename for this driver is 'null-co://'");
  }
}

function openNull(ctx: DriverOpenContext): BaseNode {
  const opts = ctx.options;
  const sizeGiven = opts.peek('size');
  const zeroesGiven = opts.peek('read-zeroes');
  const size = opts.takeSize('size', 1 << 30);
  opts.takeNumber('latency-ns', 0);
  const readZeroes = opts.takeBool('read-zeroes', false);
  const node = new NullNode(ctx.nodeName, ctx.readOnly, size, readZeroes);
  if (sizeGiven !== undefined && sizeGiven !== null) node.recordOption('size', sizeGiven, true);
  if (zeroesGiven !== undefined && zeroesGiven !== null) node.recordOption('read-zeroes', zeroesGiven, true);
  return node;
}

export const nullDriver: BlockDriverDef = {
  name: 'null-co',
  protocol: true,
  protocolPrefix: 'null-co',
  parseFilename: parseNullFilename,
  open: openNull,
};
