/**
 * amend, make-empty and measure against QEMU 7.2: the engine's result must be the same
 * file, byte for byte, as `qemu-img amend` / `qemu-img commit` produce, and the same
 * numbers and error messages.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStorage } from '../storage/file.ts';
import type { Qcow2AmendOptions } from './index.ts';
import { measureQcow2, openQcow2 } from './index.ts';
import { haveQemu, qemuImg, qemuIo, tmpDir } from './testing/qemu.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function scratch(): string {
  const d = tmpDir('amend');
  dirs.push(d);
  return d;
}

function prepare(d: string, createOpts: string, io: string[], snapshot: boolean): string {
  const f = path.join(d, 'base.qcow2');
  expect(qemuImg(['create', '-f', 'qcow2', '-o', createOpts, f, '8M']).status).toBe(0);
  if (io.length) {
    const args = ['-f', 'qcow2'];
    for (const c of io) args.push('-c', c);
    expect(qemuIo([...args, f]).status).toBe(0);
  }
  if (snapshot) {
    expect(qemuImg(['snapshot', '-c', 'snap', f]).status).toBe(0);
    expect(qemuIo(['-c', 'write -P 0x77 0 128k', f]).status).toBe(0);
  }
  return f;
}

interface AmendCase {
  name: string;
  create: string;
  io: string[];
  snapshot: boolean;
  qemu: string;
  engine: Qcow2AmendOptions;
  error?: string;
}

const CASES: AmendCase[] = [
  {
    name: 'downgrade with zero clusters',
    create: 'compat=1.1',
    io: ['write -P 1 0 1M', 'write -z 64k 128k', 'discard 512k 128k', 'write -z 2M 64k'],
    snapshot: false,
    qemu: 'compat=0.10',
    engine: { compat: '0.10' },
  },
  { name: 'upgrade with a snapshot', create: 'compat=0.10', io: ['write -P 1 0 1M'], snapshot: true, qemu: 'compat=1.1', engine: { compat: '1.1' } },
  { name: 'refcount_bits 16 -> 1', create: 'compat=1.1', io: ['write -P 1 0 1M', 'write -P 2 3M 1M'], snapshot: false, qemu: 'refcount_bits=1', engine: { refcountBits: 1 } },
  { name: 'refcount_bits 16 -> 64 with snapshot', create: 'compat=1.1', io: ['write -P 1 0 1M'], snapshot: true, qemu: 'refcount_bits=64', engine: { refcountBits: 64 } },
  { name: 'refcount_bits 16 -> 4, 512 byte clusters', create: 'compat=1.1,cluster_size=512', io: ['write -P 1 0 3M'], snapshot: true, qemu: 'refcount_bits=4', engine: { refcountBits: 4 } },
  { name: 'lazy_refcounts on', create: 'compat=1.1', io: ['write -P 1 0 1M'], snapshot: false, qemu: 'lazy_refcounts=on', engine: { lazyRefcounts: true } },
  { name: 'lazy_refcounts off', create: 'compat=1.1,lazy_refcounts=on', io: ['write -P 1 0 1M'], snapshot: false, qemu: 'lazy_refcounts=off', engine: { lazyRefcounts: false } },
  { name: 'size', create: 'compat=1.1', io: ['write -P 1 0 1M'], snapshot: false, qemu: 'size=16M', engine: { size: 16 << 20 } },
  { name: 'bad compat', create: 'compat=1.1', io: [], snapshot: false, qemu: 'compat=foo', engine: { compat: 'foo' }, error: 'Unknown compatibility level foo' },
  {
    name: 'bad refcount_bits',
    create: 'compat=1.1',
    io: [],
    snapshot: false,
    qemu: 'refcount_bits=3',
    engine: { refcountBits: 3 },
    error: 'Refcount width must be a power of two and may not exceed 64 bits',
  },
  {
    name: 'data_file on a plain image',
    create: 'compat=1.1',
    io: [],
    snapshot: false,
    qemu: 'data_file=x',
    engine: { dataFile: 'x' },
    error: 'data-file can only be set for images that use an external data file',
  },
  {
    name: 'data_file_raw on',
    create: 'compat=1.1',
    io: [],
    snapshot: false,
    qemu: 'data_file_raw=on',
    engine: { dataFileRaw: true },
    error: 'data-file-raw cannot be set on existing images',
  },
  { name: 'backing file change', create: 'compat=1.1', io: [], snapshot: false, qemu: 'backing_file=foo', engine: { backingFile: 'foo' }, error: 'Cannot amend the backing file' },
  {
    name: 'lazy refcounts on v2',
    create: 'compat=0.10',
    io: [],
    snapshot: false,
    qemu: 'lazy_refcounts=on',
    engine: { lazyRefcounts: true },
    error: 'Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)',
  },
  {
    name: 'downgrade with refcount_bits=8',
    create: 'compat=1.1,refcount_bits=8',
    io: [],
    snapshot: false,
    qemu: 'compat=0.10',
    engine: { compat: '0.10' },
    error: 'compat=0.10 requires refcount_bits=16',
  },
  {
    name: 'downgrade past a snapshot of another size',
    create: 'compat=1.1',
    io: [],
    snapshot: true,
    qemu: 'compat=0.10,size=16M',
    engine: { compat: '0.10', size: 16 << 20 },
    error: 'Internal snapshots prevent downgrade of image',
  },
];

describe.skipIf(!haveQemu())('amend matches qemu-img amend byte for byte', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const d = scratch();
      const f = prepare(d, c.create, c.io, c.snapshot);
      const qf = path.join(d, 'q.qcow2');
      const ef = path.join(d, 'e.qcow2');
      fs.copyFileSync(f, qf);
      fs.copyFileSync(f, ef);
      const q = qemuImg(['amend', '-f', 'qcow2', '-o', c.qemu, qf]);
      const st = FileStorage.open(ef);
      const img = openQcow2({ file: st });
      let message = '';
      try {
        img.amend(c.engine);
      } catch (err) {
        message = (err as Error).message;
      }
      img.close();
      st.close();
      if (c.error) {
        expect(message).toBe(c.error);
        expect(q.stderr.split('\n')[0]).toBe(`qemu-img: ${c.error}`);
      } else {
        expect(message).toBe('');
        expect(q.status).toBe(0);
      }
      expect(Buffer.compare(fs.readFileSync(qf), fs.readFileSync(ef))).toBe(0);
      expect(qemuImg(['check', ef]).status).toBe(0);
    });
  }

  it("data_file= removes the name but keeps the feature bit (244)", () => {
    const d = scratch();
    const qf = path.join(d, 'q.qcow2');
    const ef = path.join(d, 'e.qcow2');
    expect(qemuImg(['create', '-f', 'qcow2', '-o', `data_file=${d}/x.data`, qf, '64M']).status).toBe(0);
    fs.copyFileSync(qf, ef);
    expect(qemuImg(['amend', '-o', 'data_file=', qf]).status).toBe(0);
    const st = FileStorage.open(ef);
    const data = FileStorage.open(path.join(d, 'x.data'));
    const img = openQcow2({ file: st, dataFile: data });
    img.amend({ dataFile: '' });
    expect(img.header.externalDataFile).toBe(true);
    expect(img.header.dataFile).toBeUndefined();
    img.close();
    st.close();
    expect(Buffer.compare(fs.readFileSync(qf), fs.readFileSync(ef))).toBe(0);
    expect(() => openQcow2({ file: FileStorage.open(ef, { readOnly: true }), readOnly: true })).toThrow(
      "'data-file' is required for this image",
    );
    data.close();
  });

  for (const cs of [65536, 512]) {
    it(`makeEmpty equals the top image after qemu-img commit (cluster_size=${cs})`, () => {
      const d = scratch();
      const base = path.join(d, 'base.qcow2');
      const top = path.join(d, 'top.qcow2');
      const ef = path.join(d, 'e.qcow2');
      qemuImg(['create', '-f', 'qcow2', base, '16M']);
      qemuImg(['create', '-f', 'qcow2', '-o', `cluster_size=${cs},backing_file=${base},backing_fmt=qcow2`, top, '16M']);
      expect(qemuIo(['-c', 'write -P 3 0 5M', '-c', 'write -P 4 8M 1M', top]).status).toBe(0);
      fs.copyFileSync(top, ef);
      expect(qemuImg(['commit', top]).status).toBe(0);
      const st = FileStorage.open(ef);
      const img = openQcow2({ file: st });
      img.makeEmpty();
      img.close();
      st.close();
      expect(Buffer.compare(fs.readFileSync(top), fs.readFileSync(ef))).toBe(0);
    });
  }

  const MEASURE: [string, number][] = [
    ['', 64 << 20],
    ['cluster_size=512', 1 << 30],
    ['refcount_bits=1,cluster_size=4096', 100 << 20],
    ['extended_l2=on', 5 * 2 ** 30],
    ['preallocation=full', 1 << 30],
    ['compat=0.10', 123456789 * 512],
  ];
  for (const [opts, size] of MEASURE) {
    it(`measure --size ${size} ${opts}`, () => {
      const args = ['measure', '-O', 'qcow2', '--size', String(size)];
      if (opts) args.push('-o', opts);
      const q = qemuImg(args).stdout;
      const o = Object.fromEntries(opts ? opts.split(',').map((x) => x.split('=') as [string, string]) : []);
      const m = measureQcow2({
        size,
        clusterSize: o.cluster_size ? Number(o.cluster_size) : undefined,
        refcountBits: o.refcount_bits ? Number(o.refcount_bits) : undefined,
        extendedL2: o.extended_l2 === 'on',
        preallocation: o.preallocation as 'full' | undefined,
        compat: o.compat as '0.10' | undefined,
      });
      expect(q).toBe(`required size: ${m.required}\nfully allocated size: ${m.fullyAllocated}\n`);
    });
  }
});
