/**
 * The overlap check follows the open option (overlap-check template and switches) as in QEMU
 * 7.2: "cached" by default, inactive L2 tables only when asked for, and a snapshot L1 table
 * that cannot be validated fails the checked write with its errno. Outcomes recorded from
 * `qemu-io -c "open -o <options> img" -c "write ..."` on the same bytes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStorage } from '../storage/file.ts';
import type { CorruptionEvent } from './index.ts';
import { OVERLAP_CHECK_TEMPLATES, createQcow2, openQcow2 } from './index.ts';
import { tmpDir } from './testing/qemu.ts';

const dir = tmpDir('overlap');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let counter = 0;

const INACTIVE_L2 = 1 << 7;
const ACTIVE_L2 = 1 << 2;

/**
 * 64 MiB image, cluster 0 written, snapshot, cluster 0 written again: the active L2 table was
 * copied, the old one is the snapshot's. Returns the file and both L2 offsets.
 */
function image(): { file: string; activeL2: number; inactiveL2: number; snapL1Entry: number } {
  const file = path.join(dir, `o${counter++}.qcow2`);
  const st = FileStorage.open(file, { create: true, truncate: true });
  createQcow2(st, { size: 64 << 20 });
  const img = openQcow2({ file: st });
  img.write(0, new Uint8Array(65536).fill(1));
  img.createSnapshot({ name: 's' });
  img.write(0, new Uint8Array(65536).fill(2));
  img.close();
  st.close();
  const b = fs.readFileSync(file);
  const mask = 0x00fffffffffffe00n;
  const activeL2 = Number(b.readBigUInt64BE(Number(b.readBigUInt64BE(40))) & mask);
  const snapTable = Number(b.readBigUInt64BE(64));
  const snapL1 = Number(b.readBigUInt64BE(snapTable));
  const inactiveL2 = Number(b.readBigUInt64BE(snapL1) & mask);
  return { file, activeL2, inactiveL2, snapL1Entry: snapTable };
}

function poke64(file: string, offset: number, value: bigint): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(value);
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, b, 0, 8, offset);
  fs.closeSync(fd);
}

/** Writes 512 bytes at guest 64k with the given overlap mask; the error message or 'ok'. */
function writeWith(file: string, overlapCheck: number | undefined): { result: string; events: CorruptionEvent[] } {
  const st = FileStorage.open(file);
  const events: CorruptionEvent[] = [];
  const img = openQcow2({ file: st, onCorruption: (e) => events.push(e), ...(overlapCheck === undefined ? {} : { overlapCheck }) });
  let result = 'ok';
  try {
    img.write(65536, new Uint8Array(512).fill(0x55));
  } catch (err) {
    result = (err as Error).message;
  }
  img.close();
  st.close();
  return { result, events };
}

describe('overlap-check options', () => {
  it('has QEMU 7.2 templates', () => {
    expect(OVERLAP_CHECK_TEMPLATES).toEqual({ none: 0, constant: 0x12b, cached: 0x17f, all: 0x1ff });
  });

  it('protects inactive L2 tables only when asked to', () => {
    const a = image();
    // Guest cluster 1 made to point (COPIED) at the snapshot's L2 table.
    poke64(a.file, a.activeL2 + 8, 0x8000000000000000n | BigInt(a.inactiveL2));
    const copy = `${a.file}.copy`;
    fs.copyFileSync(a.file, copy);
    expect(writeWith(copy, undefined).result).toBe('ok');
    const r = writeWith(a.file, OVERLAP_CHECK_TEMPLATES.cached | INACTIVE_L2);
    expect(r.result).toBe('Input/output error');
    expect(r.events.map((e) => e.message)).toEqual(['Preventing invalid write on metadata (overlaps with inactive L2 table)']);
  });

  it('leaves kinds out of the mask unchecked (constant: no active L2)', () => {
    const a = image();
    poke64(a.file, a.activeL2 + 8, 0x8000000000000000n | BigInt(a.activeL2));
    const copy = `${a.file}.copy`;
    fs.copyFileSync(a.file, copy);
    expect(writeWith(copy, OVERLAP_CHECK_TEMPLATES.constant).result).toBe('ok');
    const r = writeWith(a.file, OVERLAP_CHECK_TEMPLATES.none | ACTIVE_L2);
    expect(r.events.map((e) => e.message)).toEqual(['Preventing invalid write on metadata (overlaps with active L2 table)']);
  });

  it('fails checked writes with the errno of an invalid snapshot L1 table (iotest 080)', () => {
    const a = image();
    poke64(a.file, a.snapL1Entry, 0x400200n);
    const r = writeWith(a.file, OVERLAP_CHECK_TEMPLATES.all);
    expect(r.result).toBe('Invalid argument');
    expect(r.events).toEqual([]);
  });
});
