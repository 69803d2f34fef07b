/** Seedable randomness for the fuzzer: every mutant and trial is a pure function of its seed. */

// mulberry32, the same generator the interop tests draw their sequences from.
export { rng } from '../src/qcow2/testing/generate.ts';

/** A 32-bit seed for item `index` of a run with seed `runSeed` (independent streams). */
export function itemSeed(runSeed: number, index: number): number {
  let h = Math.imul(runSeed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}
