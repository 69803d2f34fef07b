/**
 * Layout compatibility with QEMU 7.2 for iotest 244's sequences: file sizes (which 244
 * prints with `du -b`) and `qemu-img map --output=json` of the engine's images against
 * real QEMU's images for the same operations, plus the fixed sizes from 244.out.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStorage } from '../storage/file.ts';
import { createQcow2, openQcow2 } from './index.ts';
import { haveQemu, mapJson, qemuImg, tmpDir } from './testing/qemu.ts';
import type { Op, Scenario } from './testing/scenario.ts';
import { engineReadAll, modelOf, runEngine, runQemu } from './testing/scenario.ts';

const M = 1 << 20;
const SEQ_244: Op[] = [
  { kind: 'write', offset: 1 * M, length: 4 * M, pattern: 0x11 },
  { kind: 'discard', offset: 2 * M, length: 2 * M },
  { kind: 'zero', offset: 3 * M, length: 3 * M, unmap: false },
];

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function scratch(): string {
  const d = tmpDir('layout');
  dirs.push(d);
  return d;
}

/** Sizes printed by 244 (and by its cluster_size=4096 variant, per QEMU-7.2-FACTS §1/§6). */
const EXPECTED: { cs: number; raw: boolean; before: number; after: number }[] = [
  { cs: 65536, raw: false, before: 196616, after: 327680 },
  { cs: 65536, raw: true, before: 327680, after: 327680 },
  { cs: 4096, raw: false, before: 12544, after: 28672 },
  { cs: 4096, raw: true, before: 147456, after: 147456 },
];

describe('244 file sizes (engine only)', () => {
  for (const e of EXPECTED) {
    it(`cluster_size=${e.cs} data_file_raw=${e.raw}: ${e.before} before, ${e.after} after I/O`, () => {
      const d = scratch();
      const img = path.join(d, 't.qcow2');
      const f = FileStorage.open(img, { create: true, truncate: true });
      const data = FileStorage.open(`${img}.data`, { create: true, truncate: true });
      createQcow2(f, { size: 64 * M, clusterSize: e.cs, dataFile: `${img}.data`, dataFileRaw: e.raw }, data);
      expect(fs.statSync(img).size).toBe(e.before);
      expect(fs.statSync(`${img}.data`).size).toBe(64 * M);
      const q = openQcow2({ file: f, dataFile: data });
      q.write(1 * M, new Uint8Array(4 * M).fill(0x11));
      q.discard(2 * M, 2 * M);
      q.writeZeroes(3 * M, 3 * M);
      q.close();
      f.close();
      data.close();
      expect(fs.statSync(img).size).toBe(e.after);
    });
  }
});

const scenarios: Scenario[] = [];
for (const cs of [65536, 4096]) {
  scenarios.push({ name: `cs=${cs} internal data`, create: { size: 64 * M, clusterSize: cs }, ops: SEQ_244 });
  scenarios.push({ name: `cs=${cs} data_file`, create: { size: 64 * M, clusterSize: cs, dataFile: true }, ops: SEQ_244 });
  scenarios.push({
    name: `cs=${cs} data_file_raw`,
    create: { size: 64 * M, clusterSize: cs, dataFile: true, dataFileRaw: true },
    ops: SEQ_244,
  });
}

describe.skipIf(!haveQemu())('244 sequences: engine layout equals QEMU 7.2 layout', () => {
  for (const sc of scenarios) {
    it(sc.name, () => {
      const d = scratch();
      const e = runEngine(sc, path.join(d, 'engine'));
      const q = runQemu(sc, path.join(d, 'qemu'));
      expect(fs.statSync(e.image).size).toBe(fs.statSync(q.image).size);
      expect(mapJson(e.image)).toEqual(mapJson(q.image));
      const check = qemuImg(['check', e.image]);
      expect(check.stdout).toContain('No errors were found on the image.');
      expect(check.status).toBe(0);
      const model = modelOf(sc);
      expect(Buffer.compare(Buffer.from(engineReadAll(e)), Buffer.from(model))).toBe(0);
      expect(Buffer.compare(Buffer.from(engineReadAll(q)), Buffer.from(model))).toBe(0);
      if (!sc.create.dataFile) {
        // Without a data file the images are byte for byte the same.
        expect(Buffer.compare(fs.readFileSync(e.image), fs.readFileSync(q.image))).toBe(0);
      } else {
        expect(Buffer.compare(fs.readFileSync(e.dataFile!), fs.readFileSync(q.dataFile!))).toBe(0);
      }
    });
  }
});
