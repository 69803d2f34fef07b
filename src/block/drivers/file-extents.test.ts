import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXTENT_BLOCK, ExtentMap, FileExtents, noteZeroFilledFile, recordTruncate, recordWrite, recordZeroes, runAt } from './file-extents.ts';
import { QDict, openImage } from '../index.ts';
import { hostFs } from '../../storage/hostfs.ts';

const B = EXTENT_BLOCK;

function reader(content: Uint8Array, reads: number[]): (offset: number, buf: Uint8Array) => void {
  return (offset, buf) => {
    reads.push(buf.length);
    buf.fill(0);
    buf.set(content.subarray(offset, offset + buf.length));
  };
}

describe('ExtentMap', () => {
  it('keeps sorted runs, merges equal neighbours and forgets ranges', () => {
    const m = new ExtentMap();
    m.set(0, 4, 1);
    m.set(4, 8, 1);
    expect(m.at(5)).toEqual({ start: 0, end: 8, state: 1 });
    m.set(2, 3, 0);
    expect(m.at(0)).toEqual({ start: 0, end: 2, state: 1 });
    expect(m.at(2)).toEqual({ start: 2, end: 3, state: 0 });
    m.set(6, 10, -1);
    expect(m.at(7)).toEqual({ start: 6, end: Infinity, state: -1 });
    m.truncate(1);
    expect(m.at(1).state).toBe(-1);
  });

  it('records writes by content, partial blocks as unknown, block 0 always data', () => {
    const m = new ExtentMap();
    const data = new Uint8Array(4 * B);
    data.fill(7, 2 * B, 3 * B);
    recordWrite(m, 0, data);
    expect(m.at(0)).toEqual({ start: 0, end: 1, state: 1 });
    expect(m.at(1)).toEqual({ start: 1, end: 2, state: 0 });
    expect(m.at(2)).toEqual({ start: 2, end: 3, state: 1 });
    recordWrite(m, 10 * B + 100, new Uint8Array(B));
    expect(m.at(10).state).toBe(-1);
    recordZeroes(m, 2 * B, B);
    expect(m.at(2)).toEqual({ start: 1, end: 4, state: 0 });
    recordTruncate(m, 4 * B, 8 * B);
    expect(m.at(6)).toEqual({ start: 1, end: 8, state: 0 });
  });
});

describe('runAt scans only what is unknown', () => {
  it('finds runs by reading and answers again without reading', () => {
    const content = new Uint8Array(600 * B);
    content.fill(1, 300 * B, 301 * B);
    const reads: number[] = [];
    const m = new ExtentMap();
    const read = reader(content, reads);
    expect(runAt(m, 0, 600, read, content.length)).toEqual({ isData: true, end: 1 });
    expect(runAt(m, 1, 600, read, content.length)).toEqual({ isData: false, end: 300 });
    expect(runAt(m, 300, 600, read, content.length)).toEqual({ isData: true, end: 301 });
    expect(runAt(m, 301, 600, read, content.length)).toEqual({ isData: false, end: 600 });
    const readBytes = reads.reduce((a, b) => a + b, 0);
    reads.length = 0;
    expect(runAt(m, 1, 600, read, content.length)).toEqual({ isData: false, end: 300 });
    expect(reads).toEqual([]);
    expect(readBytes).toBeLessThanOrEqual(content.length + 256 * B);
  });
});

describe('FileExtents registry', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-extents-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a file changed outside the block layer is read again', () => {
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, Buffer.alloc(8 * B));
    noteZeroFilledFile(file, 8 * B);
    const ext = new FileExtents(file);
    expect(ext.current().at(3).state).toBe(0);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(10, 1), 0, 10, 3 * B);
    fs.closeSync(fd);
    expect(ext.current().at(3).state).toBe(-1);
  });

  // The zero-block guess is only used without the native helper (SEEK_DATA answers otherwise).
  it.skipIf(hostFs !== null)('qemu-img map style status of a raw file agrees with what is on disk after writes', () => {
    const file = path.join(dir, 'r.raw');
    fs.writeFileSync(file, Buffer.alloc(0));
    fs.truncateSync(file, 1 << 20);
    const blk = openImage({ filename: file, options: QDict.from([['driver', 'raw']]) }, { cwd: dir });
    const runs = (): Array<[number, boolean]> => {
      const out: Array<[number, boolean]> = [];
      for (let off = 0; off < 1 << 20; ) {
        const s = blk.root.blockStatus(off, (1 << 20) - off);
        out.push([off, s.data]);
        off += s.length;
      }
      return out;
    };
    blk.write(256 * 1024, new Uint8Array(B).fill(1));
    blk.write(512 * 1024, new Uint8Array(2 * B));
    const known = runs();
    blk.close();
    // A fresh open after the process forgot nothing must see the same (the cache is exact).
    const again = openImage({ filename: file, options: QDict.from([['driver', 'raw']]) }, { cwd: dir });
    const fromDisk: Array<[number, boolean]> = [];
    const f = new ExtentMap();
    const buf = fs.readFileSync(file);
    for (let b = 0; b < 256; ) {
      const r = runAt(f, b, 256, (o, x) => x.set(buf.subarray(o, o + x.length)), buf.length);
      fromDisk.push([b * B, r.isData]);
      b = r.end;
    }
    again.close();
    expect(known).toEqual(fromDisk);
    expect(known).toEqual([
      [0, true],
      [B, false],
      [256 * 1024, true],
      [256 * 1024 + B, false],
    ]);
  });
});
