/**
 * 64-bit refcounts beyond 2^53 (iotest 112 pokes them): read, updated, repaired and printed
 * exactly, as QEMU's uint64_t arithmetic does. Expected values are QEMU 7.2's.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStorage } from '../storage/file.ts';
import { createQcow2, openQcow2 } from './index.ts';
import { tmpDir } from './testing/qemu.ts';

const dir = tmpDir('refcount64');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let counter = 0;

// A fresh 64 MiB image with refcount_bits=64 and one written cluster: header, reftable,
// refblock (0x20000), L1, L2, data cluster 5. Cluster 5's entry is at 0x20028.
const REFCOUNT_OF_DATA = 0x20028;

function image(dataRefcount: bigint): string {
  const f = path.join(dir, `r${counter++}.qcow2`);
  const st = FileStorage.open(f, { create: true, truncate: true });
  createQcow2(st, { size: 64 << 20, refcountBits: 64 });
  const img = openQcow2({ file: st });
  img.write(0, new Uint8Array(512).fill(7));
  img.close();
  st.close();
  const fd = fs.openSync(f, 'r+');
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(dataRefcount);
  fs.writeSync(fd, b, 0, 8, REFCOUNT_OF_DATA);
  fs.closeSync(fd);
  return f;
}

function refcountOfData(f: string): bigint {
  return fs.readFileSync(f).readBigUInt64BE(REFCOUNT_OF_DATA);
}

function withImage<T>(f: string, fn: (img: ReturnType<typeof openQcow2>) => T): T {
  const st = FileStorage.open(f);
  const img = openQcow2({ file: st });
  try {
    return fn(img);
  } finally {
    img.close();
    st.close();
  }
}

describe('64-bit refcounts', () => {
  it('prints 2^64-1 exactly and repairs the leak down to 1', () => {
    const f = image(0xffffffffffffffffn);
    const r = withImage(f, (img) => img.check('leaks'));
    expect(r.messages.map((m) => m.text)).toContain('Repairing cluster 5 refcount=18446744073709551615 reference=1');
    expect(r.leaksFixed).toBe(1);
    expect(r.corruptions).toBe(0);
    expect(refcountOfData(f)).toBe(1n);
    expect(withImage(f, (img) => img.check()).messages).toEqual([]);
  });

  it('prints the COPIED flag mismatch with the exact refcount', () => {
    const f = image(0xfffffffffffffff3n);
    const texts = withImage(f, (img) => img.check().messages.map((m) => m.text));
    expect(texts).toEqual([
      'Leaked cluster 5 refcount=18446744073709551603 reference=1',
      'ERROR OFLAG_COPIED data cluster: l2_entry=8000000000050000 refcount=18446744073709551603',
    ]);
  });

  it('increments a refcount past 2^53 exactly (snapshot)', () => {
    const f = image(2n ** 53n);
    withImage(f, (img) => img.createSnapshot({ name: 'foo' }));
    expect(refcountOfData(f)).toBe(2n ** 53n + 1n);
  });

  it('fails the increment of 2^64-1 with EINVAL and leaves the entry', () => {
    const f = image(0xffffffffffffffffn);
    expect(() => withImage(f, (img) => img.createSnapshot({ name: 'foo' }))).toThrow(expect.objectContaining({ errno: 22 }));
    expect(refcountOfData(f)).toBe(0xffffffffffffffffn);
  });

  it('names the exact refcount when amend cannot narrow the width', () => {
    const f = image(0xfffffffffffffff3n);
    expect(() => withImage(f, (img) => img.amend({ refcountBits: 16 }))).toThrow(
      'Cannot decrease refcount entry width to 16 bits: Cluster at offset 0x50000 has a refcount of 18446744073709551603',
    );
  });
});
