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
import * as path from 'node:path';
import { createQcow2 } from '../../src/qcow2/index.ts';
import { FileStorage } from '../../src/storage/file.ts';
import { RecordingSink } from '../../src/tools/output.ts';
import { qemuImgMain } from '../../src/tools/qemu-img/main.ts';
import { qemuIoMain } from '../../src/tools/qemu-io/main.ts';

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

describe('backing chains that loop or run deeper than the engine goes', () => {
  // QEMU 7.2 itself follows a looping chain until it runs out of memory, so there is no
  // answer to compare with: qtest must stop with a message and exit 1, without an internal error.
  const make = (dir: string, name: string, backing?: string): void => {
    const file = FileStorage.open(path.join(dir, name), { create: true, truncate: true });
    createQcow2(file, { size: 1 << 20, ...(backing ? { backingFile: backing, backingFormat: 'qcow2' } : {}) });
    file.close();
  };
  const tool = async (dir: string, main: typeof qemuImgMain, args: string[]) => {
    const out = new RecordingSink();
    const exit = await main(args, { out, cwd: dir, env: {} });
    out.flushStdout();
    return { exit, text: out.merged() };
  };

  it('an image that is its own backing file, and a two-image cycle', async () => {
    const dir = await freshDir(root, 'loops');
    make(dir, 'self.qcow2', 'self.qcow2');
    make(dir, 'a.qcow2', 'b.qcow2');
    make(dir, 'b.qcow2', 'a.qcow2');
    for (const args of [['info', 'self.qcow2'], ['check', 'self.qcow2'], ['map', 'a.qcow2'], ['convert', '-O', 'raw', 'b.qcow2', 'o.raw']]) {
      const r = await tool(dir, qemuImgMain, args);
      expect(r.exit, r.text).toBe(args[0] === 'info' ? 0 : 1);
      expect(r.text).not.toMatch(INTERNAL);
      if (args[0] !== 'info') expect(r.text).toMatch(/Could not open backing file: .*Backing file '(self|a|b)\.qcow2' is already part of this backing chain \(the chain loops\)/);
    }
    const io = await tool(dir, qemuIoMain, ['-c', 'read 0 512', 'self.qcow2']);
    expect(io.exit).toBe(1);
    expect(io.text).toMatch(/can't open device self\.qcow2: Could not open backing file: Backing file 'self\.qcow2' is already part/);
  });

  it('500 levels read through; 501 stop with one clear message', async () => {
    const dir = await freshDir(root, 'deep');
    make(dir, 'c0.qcow2');
    for (let i = 1; i <= 501; i++) make(dir, `c${i}.qcow2`, `c${i - 1}.qcow2`);
    const ok = await tool(dir, qemuIoMain, ['-c', 'read -P 0 0 512', 'c500.qcow2']);
    expect(ok.exit, ok.text).toBe(0);
    const deep = await tool(dir, qemuIoMain, ['-c', 'read -P 0 0 512', 'c501.qcow2']);
    expect(deep.exit).toBe(1);
    expect(deep.text).toBe("qemu-io: can't open device c501.qcow2: Could not open backing file: Backing chains deeper than 500 images are not supported by the built-in engine\n");
  }, 60_000);
});
