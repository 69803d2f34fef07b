/**
 * Hostile command lines for the drop-in tools answer exactly as QEMU 7.2's (recorded in
 * dropin-hostile.json; see dropin-cases.ts), and never with an internal error text.
 */
import * as fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { haveQemuImg } from '../../fuzz/seeds.ts';
import { DROPIN_CASES } from './dropin-cases.ts';
import type { DropinCase } from './dropin-cases.ts';
import { freshDir, runBuiltin, runReal, tempRoot } from './dropin-run.ts';
import type { DropinResult } from './dropin-run.ts';
import RECORDED from './dropin-hostile.json' with { type: 'json' };

const recorded = RECORDED as Array<DropinCase & DropinResult>;
const root = tempRoot();
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const qemu = haveQemuImg();

/** What a JavaScript engine says when something escaped: never part of a tool's answer. */
const INTERNAL = /\b(TypeError|RangeError|ReferenceError|SyntaxError|Maximum call stack|is not a function|Cannot read properties|out of range\. It must be|ERR_[A-Z_]+)\b|^\s+at .*\(.*:\d+:\d+\)$/m;

describe('drop-in tools answer hostile command lines as QEMU 7.2 does', () => {
  it('the recording covers every case', () => {
    expect(recorded.map((r) => [r.tool, ...r.args])).toEqual(DROPIN_CASES.map((c) => [c.tool, ...c.args]));
    expect(DROPIN_CASES.length).toBeGreaterThanOrEqual(40);
  });

  DROPIN_CASES.forEach((c, i) => {
    it(`${c.tool} ${c.args.join(' ')}`, async () => {
      const dir = await freshDir(root, `c${i}`);
      const got = await runBuiltin(c, dir);
      const want = recorded[i]!;
      expect(`${got.stdout}${got.stderr}`).not.toMatch(INTERNAL);
      expect({ exit: got.exit, stderr: got.stderr, stdout: got.stdout }).toEqual({ exit: want.exit, stderr: want.stderr, stdout: want.stdout });
      if (qemu) {
        const real = runReal(c, await freshDir(root, `q${i}`));
        expect(real, 'real QEMU no longer answers as recorded').toEqual({ exit: want.exit, stdout: want.stdout, stderr: want.stderr });
      }
    });
  });
});
