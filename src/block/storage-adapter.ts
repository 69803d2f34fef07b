/**
 * A Storage (src/storage/types.ts) over any block node, so the qcow2 engine can keep its image
 * file, data file or backing on whatever the block layer put there: a file node, a blkdebug
 * filter that injects errors, a null device. Reads past the end give zeroes and writes grow
 * the node, as Storage promises; errors surface as the node's ErrnoErrors.
 */
import type { GrowMode, Storage } from '../storage/types.ts';
import type { BlockNode } from './types.ts';
import { BaseNode } from './node.ts';

export class NodeStorage implements Storage {
  readonly node: BlockNode;

  constructor(node: BlockNode) {
    this.node = node;
  }

  get filename(): string {
    return this.node.filename;
  }

  get readOnly(): boolean {
    return this.node.readOnly;
  }

  size(): number {
    // Storage sizes are exact; nodes count whole sectors.
    return this.node instanceof BaseNode ? this.node.exactLength() : this.node.length();
  }

  read(offset: number, buf: Uint8Array): void {
    // Nodes fill reads past their end with zeroes themselves.
    this.node.read(offset, buf);
  }

  write(offset: number, data: Uint8Array): void {
    this.node.write(offset, data);
  }

  writeZeroes(offset: number, length: number, unmap: boolean, noFallback = false): void {
    this.node.writeZeroes(offset, length, { unmap, noFallback });
  }

  discard(offset: number, length: number): void {
    this.node.discard(offset, length);
  }

  truncate(size: number, prealloc: GrowMode = 'off'): void {
    this.node.truncate(size, { exact: true, prealloc, shrinkAllowed: true });
  }

  flush(): void {
    this.node.flush();
  }

  close(): void {
    // The block layer owns the node's lifetime; closing the view does not close the node.
  }
}
