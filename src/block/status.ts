/**
 * Block status over a backing chain, as qemu-io's alloc/map (bdrv_is_allocated) and qemu-img
 * map (get_block_status) ask for it.
 */
import type { BlockNode, BlockStatus } from './types.ts';

/** bdrv_is_allocated: whether this node itself describes the first `pnum` bytes. */
export function isAllocated(node: BlockNode, offset: number, bytes: number): { allocated: boolean; pnum: number } {
  const len = node.length();
  if (offset >= len || bytes === 0) return { allocated: false, pnum: 0 };
  const s = node.blockStatus(offset, Math.min(bytes, len - offset));
  return { allocated: s.allocated, pnum: s.length };
}

export interface StatusAbove {
  status: BlockStatus;
  /** 0 for the top node, 1 for its backing file, ... */
  depth: number;
  /** The chain member whose status this is. */
  node: BlockNode;
}

/**
 * qemu-img map's get_block_status: descend the backing chain until a layer has data or zeroes
 * for the range (or the chain ends).
 */
export function blockStatusAbove(top: BlockNode, offset: number, bytes: number): StatusAbove {
  let node = top;
  let depth = 0;
  let length = bytes;
  for (;;) {
    const nodeLen = node.length();
    let status: BlockStatus;
    if (offset >= nodeLen) {
      // A shorter backing file reads as zeroes past its end.
      status = { length, allocated: false, data: false, zero: true, compressed: false };
    } else {
      status = node.blockStatus(offset, Math.min(length, nodeLen - offset));
    }
    length = status.length;
    if (status.data || status.zero) return { status, depth, node };
    const backing = node.children.get('backing');
    if (!backing) return { status, depth, node };
    node = backing;
    depth++;
  }
}
