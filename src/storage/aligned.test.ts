import { describe, expect, it } from 'vitest';
import { alignedBytes } from './aligned.ts';
import { hostFs } from './hostfs.ts';

describe('alignedBytes', () => {
  it('gives zeroed buffers of the asked length', () => {
    for (const size of [0, 512, 65536, 1 << 20, (1 << 20) + 512]) {
      const buf = alignedBytes(size);
      expect(buf.length).toBe(size);
      expect(buf.every((b) => b === 0)).toBe(true);
    }
  });

  it.skipIf(!hostFs)('starts large buffers on a page boundary', () => {
    for (const size of [65536, 1 << 20, 2 << 20, 3 * 65536 + 512]) {
      expect(hostFs!.pageOffset(alignedBytes(size))).toBe(0);
    }
  });

  it.skipIf(!hostFs)('reports the address of a view, byteOffset included', () => {
    const buf = alignedBytes(1 << 20);
    expect(hostFs!.pageOffset(buf.subarray(48))).toBe(48);
    expect(hostFs!.pageOffset(buf.subarray(4096 + 7))).toBe(7);
  });
});
