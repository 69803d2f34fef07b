import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Errno, ErrnoError } from '../errno.ts';
import { FileStorage } from './file.ts';
import { hostFs } from './hostfs.ts';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-file-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function fresh(name = 'f'): FileStorage {
  return FileStorage.open(path.join(dir, name), { create: true });
}

function contents(s: FileStorage, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  s.read(offset, buf);
  return buf;
}

const MiB = 1 << 20;

describe('FileStorage basics', () => {
  it('reads past EOF as zeroes and tracks the length of writes', () => {
    const s = fresh();
    s.write(10, Buffer.from('abc'));
    expect(s.size()).toBe(13);
    expect(contents(s, 8, 8)).toEqual(Buffer.from([0, 0, 0x61, 0x62, 0x63, 0, 0, 0]));
    s.close();
  });

  it('writeZeroes clears data inside the file and grows it past EOF', () => {
    const s = fresh();
    s.write(0, Buffer.alloc(8192, 0xaa));
    s.writeZeroes(4096, 8192, false);
    expect(s.size()).toBe(12288);
    expect(contents(s, 0, 4096).every((b) => b === 0xaa)).toBe(true);
    expect(contents(s, 4096, 8192).every((b) => b === 0)).toBe(true);
    s.close();
  });
});

describe.skipIf(!hostFs)('FileStorage with the native host-file helper', () => {
  it('punches holes for unmapping zero writes and discards (disk usage drops)', () => {
    const s = fresh();
    s.write(0, Buffer.alloc(4 * MiB, 0x11));
    s.flush();
    const before = s.allocatedBytes();
    s.writeZeroes(MiB, MiB, true);
    s.discard(2 * MiB, MiB);
    expect(s.allocatedBytes()).toBeLessThanOrEqual(before - 2 * MiB);
    expect(contents(s, MiB, 2 * MiB).every((b) => b === 0)).toBe(true);
    expect(s.size()).toBe(4 * MiB);
    s.close();
  });

  it('zeroes past EOF without writing (noFallback) and the range is allocated, as fallocate leaves it', () => {
    const s = fresh();
    s.writeZeroes(0, MiB, false, true);
    expect(s.size()).toBe(MiB);
    expect(s.allocatedBytes()).toBeGreaterThanOrEqual(MiB);
    expect(contents(s, 0, MiB).every((b) => b === 0)).toBe(true);
    s.close();
  });

  it('preallocate reserves blocks and grows the file', () => {
    const s = fresh();
    s.preallocate(0, 2 * MiB);
    expect(s.size()).toBe(2 * MiB);
    expect(s.allocatedBytes()).toBeGreaterThanOrEqual(2 * MiB);
    s.close();
  });

  it('allocationAt follows SEEK_DATA/SEEK_HOLE runs', () => {
    const s = fresh();
    s.truncate(8 * MiB);
    s.write(2 * MiB, Buffer.alloc(MiB, 1));
    expect(s.allocationAt(0)).toEqual({ data: false, end: 2 * MiB });
    expect(s.allocationAt(2 * MiB)).toEqual({ data: true, end: 3 * MiB });
    expect(s.allocationAt(3 * MiB)).toEqual({ data: false, end: 8 * MiB });
    expect(s.allocationAt(8 * MiB)).toEqual({ data: false, end: 8 * MiB });
    s.close();
  });
});

describe('FileStorage without the native helper', () => {
  it('refuses cheap-only zeroing with ENOTSUP and knows no allocation map', async () => {
    vi.resetModules();
    vi.stubEnv('QTEST_NO_HOSTFS', '1');
    try {
      const { FileStorage: Portable } = await import('./file.ts');
      const s = Portable.open(path.join(dir, 'p'), { create: true });
      let err: unknown;
      try {
        s.writeZeroes(0, 4096, false, true);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(Error);
      expect((err as ErrnoError).errno).toBe(Errno.ENOTSUP);
      expect(s.allocationAt(0)).toBeNull();
      s.writeZeroes(0, 4096, false);
      expect(s.size()).toBe(4096);
      s.close();
    } finally {
      vi.unstubAllEnvs();
      vi.resetModules();
    }
  });
});
