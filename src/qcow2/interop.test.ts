/**
 * Interop with real QEMU 7.2 over generated operation sequences (issue 7, acceptance 1-3):
 *  - engine-written images pass `qemu-img check` and compare equal (qemu-img compare) to a
 *    raw model of the operations;
 *  - the same sequences written by qemu-img/qemu-io read back identically through the
 *    engine, whose own check finds nothing wrong;
 *  - file size and `qemu-img map --output=json` match QEMU's image (except with compressed
 *    clusters, whose size depends on the zlib build).
 * QTEST_QCOW2_SEED=<n> explores other seeds.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStorage } from '../storage/file.ts';
import { openQcow2 } from './index.ts';
import { CONFIGS, generateScenario, layoutComparable } from './testing/generate.ts';
import { haveQemu, mapJson, qemuImg, tmpDir } from './testing/qemu.ts';
import { engineReadAll, modelOf, runEngine, runQemu } from './testing/scenario.ts';

const SEED = Number(process.env.QTEST_QCOW2_SEED ?? 1000);
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe.skipIf(!haveQemu())('generated sequences against QEMU 7.2', () => {
  CONFIGS.forEach((cfg, i) => {
    const sc = generateScenario(cfg, SEED + i);
    it(sc.name, () => {
      const d = tmpDir('interop');
      dirs.push(d);
      const model = modelOf(sc);
      const modelFile = path.join(d, 'model.raw');
      fs.writeFileSync(modelFile, model);

      // Engine writes, QEMU checks and reads.
      const e = runEngine(sc, path.join(d, 'engine'));
      const check = qemuImg(['check', e.image]);
      expect(check.stdout + check.stderr).toContain('No errors were found on the image.');
      expect(check.status).toBe(0);
      const cmp = qemuImg(['compare', '-f', 'qcow2', '-F', 'raw', e.image, modelFile]);
      expect(cmp.stdout.trim()).toBe('Images are identical.');

      // QEMU writes, the engine reads and checks.
      const q = runQemu(sc, path.join(d, 'qemu'));
      const read = engineReadAll(q, sc.backing?.format);
      expect(Buffer.compare(Buffer.from(read), Buffer.from(model))).toBe(0);
      const st = FileStorage.open(q.image, { readOnly: true });
      const data = q.dataFile ? FileStorage.open(q.dataFile, { readOnly: true }) : null;
      const img = openQcow2({ file: st, readOnly: true, dataFile: data });
      const r = img.check();
      img.close();
      st.close();
      data?.close();
      expect(r.messages).toEqual([]);
      expect({ corruptions: r.corruptions, leaks: r.leaks, checkErrors: r.checkErrors, ret: r.ret }).toEqual({
        corruptions: 0,
        leaks: 0,
        checkErrors: 0,
        ret: 0,
      });

      // Layout.
      if (layoutComparable(sc)) {
        expect(fs.statSync(e.image).size).toBe(fs.statSync(q.image).size);
        expect(mapJson(e.image)).toEqual(mapJson(q.image));
      }
    });
  });
});
