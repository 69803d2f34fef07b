/**
 * What amend reports on the way (qcow2_amend_helper_cb and error_report): the progress of
 * each operation joined into one, and problems reported before the amend fails. Expected
 * values are QEMU 7.2's (`qemu-img amend -p` prints 100 * done / total).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStorage } from '../storage/file.ts';
import type { Qcow2AmendOptions, Qcow2CreateOptions } from './index.ts';
import { createQcow2, openQcow2 } from './index.ts';
import { tmpDir } from './testing/qemu.ts';

const dir = tmpDir('amend-progress');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let counter = 0;

function image(opts: Qcow2CreateOptions, fill: (img: ReturnType<typeof openQcow2>) => void): string {
  const f = path.join(dir, `a${counter++}.qcow2`);
  const st = FileStorage.open(f, { create: true, truncate: true });
  createQcow2(st, opts);
  const img = openQcow2({ file: st });
  fill(img);
  img.close();
  st.close();
  return f;
}

function amend(f: string, o: Qcow2AmendOptions): { steps: Array<[number, number]>; reports: string[]; error?: string } {
  const steps: Array<[number, number]> = [];
  const reports: string[] = [];
  const st = FileStorage.open(f);
  const img = openQcow2({ file: st });
  let error: string | undefined;
  try {
    img.amend({ ...o, onProgress: (d, t) => steps.push([d, t]), onReport: (m) => reports.push(m) });
  } catch (err) {
    error = (err as Error).message;
  } finally {
    img.close();
    st.close();
  }
  return error === undefined ? { steps, reports } : { steps, reports, error };
}

describe('amend progress', () => {
  it('counts reftable entries over all walks, and the walks can grow (iotest 112)', () => {
    // 58 clusters of 512 bytes with 1-bit refcounts: the new 64-bit blocks need a second
    // round of allocations, so a fourth walk appears after the third started.
    const f = image({ size: 65536, clusterSize: 512, refcountBits: 1 }, (img) => img.write(0, new Uint8Array(58 * 512).fill(1)));
    const { steps } = amend(f, { refcountBits: 64 });
    // reftable of 64 entries: 3 walks planned (total 192), then 4 (total 256).
    expect(steps[0]).toEqual([0, 192]);
    const i = steps.findIndex(([d, t]) => d === 128 && t === 192);
    expect(i).toBeGreaterThan(0);
    expect(steps[i + 1]).toEqual([128, 256]);
    expect(steps.at(-1)).toEqual([256, 256]);
  });

  it('projects the work of later operations from the ones done (upgrade + refcount width)', () => {
    const f = image({ size: 1 << 20, compat: '0.10' }, (img) => img.write(0, new Uint8Array(65536).fill(1)));
    const { steps } = amend(f, { compat: '1.1', refcountBits: 8 });
    // Upgrade: 0, 1, 2 of 2, with the second operation projected as big as the first.
    expect(steps.slice(0, 3)).toEqual([
      [0, 4],
      [1, 4],
      [2, 4],
    ]);
    // Then the refcount walks: 3 walks over a 8192-entry reftable, after 2 units of upgrade.
    expect(steps[3]).toEqual([2, 2 + 3 * 8192]);
    expect(steps.at(-1)).toEqual([2 + 3 * 8192, 2 + 3 * 8192]);
  });

  it('counts L1 entries of the image and its snapshots when downgrading', () => {
    const f = image({ size: 1 << 30 }, (img) => {
      img.writeZeroes(0, 1 << 20, {});
      img.createSnapshot({ name: 's' });
    });
    const { steps, error } = amend(f, { compat: '0.10' });
    expect(error).toBeUndefined();
    expect(steps).toEqual([
      [1, 4],
      [2, 4],
      [3, 4],
      [4, 4],
    ]);
  });
});

describe('amend reports', () => {
  it('reports a bad snapshot L1 table before failing the downgrade (iotest 080)', () => {
    const f = image({ size: 64 << 20 }, (img) => {
      img.write(0, new Uint8Array(512).fill(1));
      img.createSnapshot({ name: 'test' });
    });
    const bytes = fs.readFileSync(f);
    const table = Number(bytes.readBigUInt64BE(64));
    bytes.writeBigUInt64BE(0x400200n, table);
    fs.writeFileSync(f, bytes);
    const r = amend(f, { compat: '0.10' });
    expect(r.reports).toEqual(['Snapshot L1 table offset invalid']);
    expect(r.error).toBe('Failed to turn zero into data clusters: Invalid argument');
  });
});
