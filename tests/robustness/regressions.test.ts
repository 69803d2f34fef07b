/**
 * Every bug the image fuzzer found, pinned with its minimized input (tests/robustness/
 * regressions.ts): the fuzzer's whole treatment of the image (open, info, map, read of every
 * cluster, check, write to a copy) runs without an untyped error, and qtest's drop-in
 * `qemu-img check -f qcow2` ends like real QEMU's did (exit status and key lines).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exercise } from '../../fuzz/exercise.ts';
import { applyPatches } from '../../fuzz/mutate.ts';
import { haveQemuImg } from '../../fuzz/seeds.ts';
import { qemuCheck } from '../../fuzz/verdict.ts';
import { setStrictErrors } from '../../src/qcow2/index.ts';
import { openQcow2 } from '../../src/qcow2/index.ts';
import { FileStorage } from '../../src/storage/file.ts';
import { REGRESSIONS } from './regressions.ts';
import type { Regression } from './regressions.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-regressions-'));
const qemu = haveQemuImg();

beforeAll(() => setStrictErrors(true));
afterAll(() => {
  setStrictErrors(false);
  fs.rmSync(root, { recursive: true, force: true });
});

function materialize(r: Regression, name: string): string {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'img.qcow2'), gunzipSync(Buffer.from(r.image, 'base64')));
  for (const [file, data] of Object.entries(r.companions ?? {})) fs.writeFileSync(path.join(dir, file), gunzipSync(Buffer.from(data, 'base64')));
  return dir;
}

describe('fuzzer findings stay fixed', () => {
  it('fixtures are what their recipes say (patches reproduce the mutant from its own bytes)', () => {
    for (const r of REGRESSIONS) {
      const image = gunzipSync(Buffer.from(r.image, 'base64'));
      expect(image.length, r.id).toBe(r.length);
      for (const p of r.patches) expect(Buffer.from(image.subarray(p.offset, p.offset + p.hex.length / 2)).toString('hex'), r.id).toBe(p.hex);
      // Applying the patches onto the mutant itself changes nothing: they describe it.
      expect(Buffer.from(applyPatches(image, r.patches, r.length)).equals(image), r.id).toBe(true);
    }
  });

  REGRESSIONS.forEach((r, i) => {
    it(`${r.id} (${r.seed}): ${r.mutation}`, async () => {
      const dir = materialize(r, `r${i}`);
      const writeDir = path.join(root, `r${i}.w`);
      fs.mkdirSync(writeDir);
      const result = await exercise({ dir, main: 'img.qcow2', writeDir });
      expect(result.crashes, r.bug).toEqual([]);
      expect(result.builtinCheck?.exit, `${r.bug}\n${result.builtinCheck?.output.slice(0, 2000)}`).toBe(r.qemuExit);
      for (const line of r.outputIncludes) expect(result.builtinCheck?.output).toContain(line);
      if (qemu) {
        const q = await qemuCheck(dir, 'img.qcow2');
        expect(q.exit, `real qemu-img check no longer agrees with the fixture: ${q.output.slice(0, 500)}`).toBe(r.qemuExit);
        for (const line of r.outputIncludes) expect(q.output).toContain(line);
      }
    });
  });

  it('check streams its lines: the 246,000-line image keeps no messages in the result', () => {
    const r = REGRESSIONS.find((x) => x.id === 'fuzz seed 1 #1426')!;
    const dir = materialize(r, 'stream');
    const file = FileStorage.open(path.join(dir, 'img.qcow2'), { readOnly: true });
    try {
      const img = openQcow2({ file, readOnly: true, check: true });
      let streamed = 0;
      let first = '';
      const res = img.check('none', (m) => {
        if (!streamed) first = m.text;
        streamed++;
      });
      img.close();
      expect(res.messages).toHaveLength(0);
      expect(streamed).toBeGreaterThan(200_000);
      expect(first).toBe(r.outputIncludes[0]);
      expect(res.corruptions).toBeGreaterThan(0);
    } finally {
      file.close();
    }
  });
});
