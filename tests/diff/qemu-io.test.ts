/**
 * qemu-io differential sequences: the built-in qemu-io against Debian's qemu-io 7.2 in fresh
 * directories; stdout, stderr, the `2>&1` text and the exit code of every step identical after
 * the iotests timing filter. Skipped when QEMU is not installed.
 */
import { describe, expect, it } from 'vitest';
import { haveQemu, runDifferential } from './harness.ts';
import { sequences } from './qemu-io-sequences.ts';

describe.skipIf(!haveQemu)('qemu-io: built-in vs QEMU 7.2', () => {
  it('has at least 40 sequences', () => {
    expect(sequences.length).toBeGreaterThanOrEqual(40);
  });
  for (const seq of sequences) {
    it(seq.name, async () => {
      const r = await runDifferential(seq);
      expect(r.ours).toEqual(r.real);
      if (seq.compareFiles) expect(r.ourFiles).toEqual(r.realFiles);
    });
  }
});
