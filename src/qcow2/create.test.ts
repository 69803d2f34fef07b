/**
 * Image creation: option validation with QEMU 7.2's messages, and images byte-identical to
 * `qemu-img create` for every option combination that concerns the format.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStorage } from '../storage/file.ts';
import type { Qcow2CreateOptions } from './index.ts';
import { createQcow2, openQcow2, validateCreateOptions } from './index.ts';
import { haveQemu, run, tmpDir } from './testing/qemu.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function scratch(): string {
  const d = tmpDir('create');
  dirs.push(d);
  return d;
}

const M = 1 << 20;

describe('create option validation (QEMU 7.2 wording)', () => {
  const V3 = '(use version=v3 or greater)';
  const cases: [Partial<Qcow2CreateOptions>, string][] = [
    [{ clusterSize: 1000 }, 'Cluster size must be a power of two between 512 and 2048k'],
    [{ clusterSize: 256 }, 'Cluster size must be a power of two between 512 and 2048k'],
    [{ clusterSize: 4 * M }, 'Cluster size must be a power of two between 512 and 2048k'],
    [{ dataFileRaw: true }, 'data-file-raw requires data-file'],
    [{ refcountBits: 3 }, 'Refcount width must be a power of two and may not exceed 64 bits'],
    [{ refcountBits: 128 }, 'Refcount width must be a power of two and may not exceed 64 bits'],
    [{ refcountBits: 0 }, 'Refcount width must be a power of two and may not exceed 64 bits'],
    [{ compat: '0.10', dataFile: 'd' }, `External data files are only supported with compatibility level 1.1 and above ${V3}`],
    [{ compat: '0.10', refcountBits: 8 }, `Different refcount widths than 16 bits require compatibility level 1.1 or above ${V3}`],
    [{ compat: '0.10', lazyRefcounts: true }, `Lazy refcounts only supported with compatibility level 1.1 and above ${V3}`],
    [{ compat: '0.10', extendedL2: true }, `Extended L2 entries are only supported with compatibility level 1.1 and above ${V3}`],
    [{ extendedL2: true, clusterSize: 4096 }, 'Extended L2 entries are only supported with cluster sizes of at least 16384 bytes'],
    [{ compat: '0.10', compressionType: 'zstd' }, `Non-zlib compression type is only supported with compatibility level 1.1 and above ${V3}`],
    [{ backingFormat: 'raw' }, 'Backing format cannot be used without backing file'],
    [{ backingFile: 'b', preallocation: 'metadata' }, 'Backing file and preallocation can only be used at the same time if extended_l2 is on'],
    [{ backingFile: 'b', dataFile: 'd', dataFileRaw: true }, 'Backing file and data-file-raw cannot be used at the same time'],
    [{ encrypt: { format: 'luks' } }, "Parameter 'encrypt.key-secret' is required for cipher"],
    [{ size: 1000 }, 'Image size must be a multiple of 512 bytes'],
  ];
  for (const [o, msg] of cases) {
    it(msg + ` (${JSON.stringify(o)})`, () => {
      expect(() => validateCreateOptions({ size: 64 * M, ...o })).toThrow(msg);
    });
  }
});

/** Options in `-o` syntax and as engine options; both runs use the same relative names. */
const MATRIX: [string, Omit<Qcow2CreateOptions, 'size'>, number][] = [
  ['', {}, 64 * M],
  ['compat=0.10', { compat: '0.10' }, 64 * M],
  ['cluster_size=512', { clusterSize: 512 }, 64 * M],
  ['cluster_size=4096', { clusterSize: 4096 }, 1 << 30],
  ['cluster_size=2M', { clusterSize: 2 * M }, 1 << 30],
  ['lazy_refcounts=on', { lazyRefcounts: true }, 64 * M],
  ['refcount_bits=1', { refcountBits: 1 }, 64 * M],
  ['refcount_bits=64', { refcountBits: 64 }, 64 * M],
  ['compression_type=zstd', { compressionType: 'zstd' }, 64 * M],
  ['extended_l2=on', { extendedL2: true }, 64 * M],
  ['extended_l2=on,cluster_size=16k', { extendedL2: true, clusterSize: 16384 }, 64 * M],
  ['data_file=t.data', { dataFile: 't.data' }, 64 * M],
  ['data_file=t.data,data_file_raw=on', { dataFile: 't.data', dataFileRaw: true }, 64 * M],
  ['backing_file=base.qcow2,backing_fmt=qcow2', { backingFile: 'base.qcow2', backingFormat: 'qcow2' }, 64 * M],
  ['backing_file=base.qcow2,backing_fmt=qcow2,compat=0.10', { backingFile: 'base.qcow2', backingFormat: 'qcow2', compat: '0.10' }, 64 * M],
  ['cluster_size=512,backing_file=base.qcow2,backing_fmt=qcow2', { clusterSize: 512, backingFile: 'base.qcow2', backingFormat: 'qcow2' }, 64 * M],
  ['preallocation=metadata', { preallocation: 'metadata' }, 64 * M],
  ['preallocation=metadata,cluster_size=4096', { preallocation: 'metadata', clusterSize: 4096 }, 64 * M],
  ['preallocation=falloc', { preallocation: 'falloc' }, 16 * M],
  ['preallocation=full,cluster_size=512', { preallocation: 'full', clusterSize: 512 }, 4 * M],
  [
    'preallocation=metadata,extended_l2=on,backing_file=base.qcow2,backing_fmt=qcow2',
    { preallocation: 'metadata', extendedL2: true, backingFile: 'base.qcow2', backingFormat: 'qcow2' },
    64 * M,
  ],
  ['', {}, 1000 * 512],
  ['', {}, 3 * 2 ** 40],
  ['cluster_size=512', { clusterSize: 512 }, 100 * 2 ** 30],
];

describe.skipIf(!haveQemu())('created images equal qemu-img create output', () => {
  for (const [o, opts, size] of MATRIX) {
    it(`${o || 'defaults'} size=${size}`, () => {
      const dq = scratch();
      const de = scratch();
      for (const d of [dq, de]) run('qemu-img', ['create', '-f', 'qcow2', path.join(d, 'base.qcow2'), '64M']);
      const args = ['create', '-f', 'qcow2'];
      if (o) args.push('-o', o);
      args.push('t.qcow2', String(size));
      expect(run('qemu-img', args, dq).status).toBe(0);
      const f = FileStorage.open(path.join(de, 't.qcow2'), { create: true, truncate: true });
      const df = opts.dataFile ? FileStorage.open(path.join(de, 't.data'), { create: true, truncate: true }) : undefined;
      createQcow2(f, { size, ...opts }, df);
      f.close();
      df?.close();
      expect(Buffer.compare(fs.readFileSync(path.join(dq, 't.qcow2')), fs.readFileSync(path.join(de, 't.qcow2')))).toBe(0);
      if (opts.dataFile) expect(fs.statSync(path.join(de, 't.data')).size).toBe(fs.statSync(path.join(dq, 't.data')).size);
    });
  }
});

describe('created image header (engine only)', () => {
  it('fresh 64 MiB image: v3, header_length 112, feature table, 196616 bytes', () => {
    const d = scratch();
    const file = path.join(d, 'x.qcow2');
    const st = FileStorage.open(file, { create: true, truncate: true });
    createQcow2(st, { size: 64 * M });
    const img = openQcow2({ file: st, readOnly: true });
    expect(img.header).toMatchObject({
      version: 3,
      clusterSize: 65536,
      size: 64 * M,
      l1Size: 1,
      l1TableOffset: 0x30000,
      refcountTableOffset: 0x10000,
      refcountTableClusters: 1,
      refcountBits: 16,
      compressionType: 'zlib',
      extendedL2: false,
      externalDataFile: false,
    });
    img.close();
    st.close();
    const b = fs.readFileSync(file);
    expect(b.length).toBe(196616);
    expect(b.readUInt32BE(100)).toBe(112);
    expect(b.readUInt32BE(112)).toBe(0x6803f857);
    expect(b.readUInt32BE(116)).toBe(8 * 48);
    expect(b.subarray(122, 131).toString()).toBe('dirty bit');
    expect(b.readUInt32BE(112 + 8 + 384)).toBe(0);
  });
});
