/**
 * Mutation fuzzing: random byte damage in the header and metadata clusters of valid images.
 * Whatever the engine does with them, everything it throws must be an ErrnoError (typed,
 * with a message), and every operation must terminate.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrnoError } from '../errno.ts';
import { FileStorage } from '../storage/file.ts';
import { createQcow2, openQcow2 } from './index.ts';
import { rng } from './testing/generate.ts';
import { tmpDir } from './testing/qemu.ts';

const dir = tmpDir('fuzz');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function seedImage(name: string, opts: Parameters<typeof createQcow2>[1]): Buffer {
  const f = path.join(dir, name);
  const st = FileStorage.open(f, { create: true, truncate: true });
  createQcow2(st, opts);
  const img = openQcow2({ file: st });
  img.write(0, new Uint8Array(200000).fill(0x33));
  img.write(3 << 20, new Uint8Array(70000).fill(0x44));
  img.writeZeroes(1 << 20, 65536 * 3);
  if (!opts.dataFile) {
    img.createSnapshot({ name: 'snap' });
    img.write(100, new Uint8Array(5000).fill(0x55));
    if (opts.compressionType !== undefined || opts.clusterSize === 65536) img.writeCompressed(2 << 20, new Uint8Array(65536).fill(7));
  }
  img.close();
  st.close();
  return fs.readFileSync(f);
}

function exercise(file: string): string {
  let outcome = 'ok';
  const attempt = (fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof ErrnoError)) throw err;
      expect(err.message.length).toBeGreaterThan(0);
      outcome = 'error';
    }
  };
  const st = FileStorage.open(file);
  attempt(() => {
    const img = openQcow2({ file: st });
    const buf = new Uint8Array(300000);
    attempt(() => img.read(0, buf));
    attempt(() => img.write(65536 * 5 + 17, new Uint8Array(70000).fill(9)));
    attempt(() => img.writeZeroes(0, 65536 * 2, { unmap: true }));
    attempt(() => img.discard(3 << 20, 1 << 20));
    attempt(() => img.blockStatus(0, img.virtualSize));
    attempt(() => img.flush());
    attempt(() => void img.check());
    attempt(() => img.check('all'));
    img.close();
  });
  st.close();
  const ro = FileStorage.open(file, { readOnly: true });
  attempt(() => {
    const img = openQcow2({ file: ro, readOnly: true, check: true });
    attempt(() => void img.check());
    img.close();
  });
  ro.close();
  return outcome;
}

describe('damaged images never escape as untyped errors', () => {
  const seeds: [string, Parameters<typeof createQcow2>[1]][] = [
    ['plain', { size: 8 << 20 }],
    ['small', { size: 8 << 20, clusterSize: 512, refcountBits: 4 }],
    ['extl2', { size: 8 << 20, extendedL2: true, compressionType: 'zstd' }],
    ['v2', { size: 8 << 20, compat: '0.10' }],
  ];
  for (const [name, opts] of seeds) {
    it(`${name}: 40 mutations`, () => {
      const base = seedImage(`${name}.qcow2`, opts);
      const r = rng(name.length * 7919);
      const cs = opts.clusterSize ?? 65536;
      const outcomes = new Set<string>();
      for (let i = 0; i < 40; i++) {
        const b = Buffer.from(base);
        const flips = 1 + Math.floor(r() * 6);
        for (let k = 0; k < flips; k++) {
          // Mostly the header, otherwise anywhere in the first clusters (tables live there).
          const limit = r() < 0.5 ? 128 : Math.min(b.length, cs * 8);
          const at = Math.floor(r() * limit);
          b[at] = r() < 0.3 ? 0xff : Math.floor(r() * 256);
        }
        const f = path.join(dir, `${name}-${i}.qcow2`);
        fs.writeFileSync(f, b);
        outcomes.add(exercise(f));
        fs.rmSync(f);
      }
      expect(outcomes.size).toBeGreaterThan(0);
    });
  }
});
