import { describe, expect, it } from 'vitest';
import {
  formatCheckHuman,
  formatCheckJson,
  formatInfoHuman,
  formatInfoJson,
  formatMapEntry,
  formatMeasure,
  mapEntryMergeable,
  sizeToStr,
  type ImageCheck,
  type ImageInfo,
  type MapEntry,
} from './format.ts';

const base: ImageCheck = {
  filename: 't.qcow2',
  format: 'qcow2',
  checkErrors: 0,
  corruptions: 0,
  leaks: 0,
  corruptionsFixed: 0,
  leaksFixed: 0,
  imageEndOffset: 851968,
  totalClusters: 64,
  allocatedClusters: 8,
  fragmentedClusters: 0,
  compressedClusters: 0,
};

describe('check output (captured from qemu-img 7.2)', () => {
  it('human, with and without allocation statistics', () => {
    expect(formatCheckHuman(base)).toBe(
      'No errors were found on the image.\n8/64 = 12.50% allocated, 0.00% fragmented, 0.00% compressed clusters\nImage end offset: 851968\n',
    );
    expect(formatCheckHuman({ ...base, allocatedClusters: 0, imageEndOffset: 262144 })).toBe(
      'No errors were found on the image.\nImage end offset: 262144\n',
    );
    expect(formatCheckHuman({ ...base, allocatedClusters: 32, totalClusters: 1024, fragmentedClusters: 32, imageEndOffset: 327680 })).toContain(
      '32/1024 = 3.12% allocated, 100.00% fragmented, 0.00% compressed clusters\n',
    );
  });
  it('json in QDict order', () => {
    expect(formatCheckJson(base)).toBe(
      '{\n    "image-end-offset": 851968,\n    "total-clusters": 64,\n    "check-errors": 0,\n    "allocated-clusters": 8,\n    "filename": "t.qcow2",\n    "format": "qcow2"\n}\n',
    );
  });
});

describe('map output', () => {
  const run = (mode: 'human' | 'json', entries: MapEntry[]) => {
    let out = '';
    entries.forEach((e, i) => {
      const r = formatMapEntry(mode, e, entries[i + 1] ?? null);
      if ('error' in r) throw new Error(r.error);
      out += r.text;
    });
    return out;
  };
  const entries = (): MapEntry[] => [
    { start: 0, length: 1048576, depth: 1, present: true, zero: false, data: true, offset: 327680, filename: 'b.qcow2' },
    { start: 1048576, length: 524288, depth: 0, present: true, zero: false, data: true, offset: 327680, filename: 't.qcow2' },
    { start: 1572864, length: 1572864, depth: 1, present: false, zero: true, data: false },
    { start: 3145728, length: 65536, depth: 0, present: true, zero: true, data: false },
    { start: 3211264, length: 983040, depth: 1, present: false, zero: true, data: false },
  ];
  it('json as 7.2 prints it', () => {
    expect(run('json', entries())).toBe(
      '[{ "start": 0, "length": 1048576, "depth": 1, "present": true, "zero": false, "data": true, "offset": 327680},\n' +
        '{ "start": 1048576, "length": 524288, "depth": 0, "present": true, "zero": false, "data": true, "offset": 327680},\n' +
        '{ "start": 1572864, "length": 1572864, "depth": 1, "present": false, "zero": true, "data": false},\n' +
        '{ "start": 3145728, "length": 65536, "depth": 0, "present": true, "zero": true, "data": false},\n' +
        '{ "start": 3211264, "length": 983040, "depth": 1, "present": false, "zero": true, "data": false}]\n',
    );
  });
  it('human lists data ranges only, zero offsets without 0x', () => {
    expect(run('human', entries())).toBe('0               0x100000        0x50000         b.qcow2\n0x100000        0x80000         0x50000         t.qcow2\n');
  });
  it('merges only contiguous equal entries', () => {
    const a: MapEntry = { start: 0, length: 10, depth: 0, present: true, zero: false, data: true, offset: 100, filename: 'f' };
    expect(mapEntryMergeable(a, { ...a, start: 10, offset: 110 })).toBe(true);
    expect(mapEntryMergeable(a, { ...a, start: 10, offset: 200 })).toBe(false);
    expect(mapEntryMergeable(a, { ...a, start: 10, offset: 110, present: false })).toBe(false);
  });
});

describe('info output', () => {
  const info: ImageInfo = {
    filename: 'd.qcow2',
    format: 'qcow2',
    virtualSize: 2097152,
    actualSize: 200704,
    dirtyFlag: false,
    clusterSize: 65536,
    formatSpecific: {
      type: 'qcow2',
      data: new Map<string, boolean | string | bigint>([
        ['compat', '1.1'],
        ['data-file', 't.data'],
        ['data-file-raw', false],
        ['lazy-refcounts', false],
        ['refcount-bits', 16n],
        ['corrupt', false],
        ['extended-l2', false],
        ['compression-type', 'zlib'],
      ]),
    },
  };
  it('human', () => {
    expect(formatInfoHuman(info)).toBe(
      'image: d.qcow2\nfile format: qcow2\nvirtual size: 2 MiB (2097152 bytes)\ndisk size: 196 KiB\ncluster_size: 65536\n' +
        'Format specific information:\n    compat: 1.1\n    compression type: zlib\n    lazy refcounts: false\n    refcount bits: 16\n' +
        '    data file: t.data\n    data file raw: false\n    corrupt: false\n    extended l2: false\n',
    );
  });
  it('json', () => {
    expect(formatInfoJson(info)).toBe(
      '{\n    "virtual-size": 2097152,\n    "filename": "d.qcow2",\n    "cluster-size": 65536,\n    "format": "qcow2",\n    "actual-size": 200704,\n' +
        '    "format-specific": {\n        "type": "qcow2",\n        "data": {\n            "compat": "1.1",\n            "compression-type": "zlib",\n' +
        '            "lazy-refcounts": false,\n            "refcount-bits": 16,\n            "data-file": "t.data",\n            "data-file-raw": false,\n' +
        '            "corrupt": false,\n            "extended-l2": false\n        }\n    },\n    "dirty-flag": false\n}\n',
    );
  });
  it('size_to_str', () => {
    expect(sizeToStr(1323008)).toBe('1.26 MiB');
    expect(sizeToStr(790528)).toBe('772 KiB');
    expect(sizeToStr(4096)).toBe('4 KiB');
    expect(sizeToStr(0)).toBe('0 B');
    expect(sizeToStr(4194304)).toBe('4 MiB');
    expect(sizeToStr(1000)).toBe('0.977 KiB');
    expect(sizeToStr(999)).toBe('999 B');
    expect(sizeToStr(67108864)).toBe('64 MiB');
  });
});

describe('measure output', () => {
  it('human and json', () => {
    expect(formatMeasure('human', { required: 1900544, fullyAllocated: 4521984, bitmaps: 0 })).toBe(
      'required size: 1900544\nfully allocated size: 4521984\nbitmaps size: 0\n',
    );
    expect(formatMeasure('json', { required: 1900544, fullyAllocated: 4521984, bitmaps: 0 })).toBe(
      '{\n    "bitmaps": 0,\n    "required": 1900544,\n    "fully-allocated": 4521984\n}\n',
    );
  });
});
