/**
 * qemu-img differential sequences: the built-in qemu-img against Debian's qemu-img 7.2 in
 * fresh directories; stdout, stderr and exit code of every step identical after the timing
 * filter. Skipped when QEMU is not installed.
 */
import { describe, expect, it } from 'vitest';
import { haveQemu, runDifferential } from './img-harness.ts';
import { sequences } from './qemu-img-sequences.ts';

describe.skipIf(!haveQemu)('qemu-img: built-in vs QEMU 7.2', () => {
  it('has at least 40 sequences', () => {
    expect(sequences.length).toBeGreaterThanOrEqual(40);
  });
  // A few sequences through `node bin/qtest.js qemu-img`, the drop-in CLI (a process per step).
  for (const seq of sequences.filter((s) => /^(create with external data file|map of a 244|compare qcow2 with raw)/.test(s.name))) {
    it(`via the CLI: ${seq.name}`, async () => {
      const r = await runDifferential(seq, true);
      expect(r.ours).toEqual(r.real);
      if (seq.compareFiles) expect(r.ourFiles).toEqual(r.realFiles);
    });
  }
  for (const seq of sequences) {
    it(seq.name, async () => {
      const r = await runDifferential(seq);
      expect(r.ours).toEqual(r.real);
      if (seq.compareFiles) expect(r.ourFiles).toEqual(r.realFiles);
    });
  }
});
