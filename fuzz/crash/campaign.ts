/**
 * A series of crash-consistency trials (fuzz/crash/trial.ts), their seeds derived from the
 * run seed, run a few at a time. Used by `npm run fuzz` (200 trials) and the CI slice (20).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { itemSeed } from '../rng.ts';
import { haveQemuImg } from '../seeds.ts';
import { CRASH_MODES } from './plan.ts';
import { runTrial } from './trial.ts';
import type { TrialResult } from './trial.ts';

export interface CrashCampaignOptions {
  seed: number;
  trials: number;
  workers: number;
  /** Judge with real qemu-img when installed (qtest's tools otherwise). */
  qemu: boolean;
  /** Where failing trials' files are kept (null: nowhere). */
  keepFailed?: string | null;
}

export interface CrashTrialRecord extends TrialResult {}

export interface CrashCampaignResult {
  options: { seed: number; trials: number; workers: number; judge: 'qemu-img' | 'qtest' };
  trials: CrashTrialRecord[];
  /** Trials whose writer died before finishing (self-kill or SIGKILL). */
  killed: number;
  byEnd: Record<string, number>;
  byMode: Record<string, number>;
  flushes: number;
  /** Operations whose data was verified after the crash (acknowledged ones). */
  verifiedWrites: number;
  snapshotsVerified: number;
  corrupt: number;
  /** Killed inside snapshot creation: COPIED flags behind the refcounts, repaired by -r all. */
  copiedWindow: number;
  leaky: number;
  leaksRepaired: boolean;
  lost: number;
  failed: number;
  elapsedMs: number;
}

export async function runCrashCampaign(opts: CrashCampaignOptions): Promise<CrashCampaignResult> {
  const t0 = performance.now();
  const qemu = opts.qemu && haveQemuImg();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-crash-'));
  const trials: TrialResult[] = [];
  let next = 0;
  try {
    const loop = async (): Promise<void> => {
      while (next < opts.trials) {
        const i = next++;
        // Modes round-robin so that every mode gets its share in short runs (the CI slice).
        const mode = CRASH_MODES[i % CRASH_MODES.length];
        trials.push(await runTrial(root, i, itemSeed(opts.seed, i), qemu, opts.keepFailed ?? null, mode));
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, opts.workers) }, loop));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  trials.sort((a, b) => a.index - b.index);
  const count = (f: (t: TrialResult) => boolean): number => trials.filter(f).length;
  const tally = (key: (t: TrialResult) => string): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const t of trials) out[key(t)] = (out[key(t)] ?? 0) + 1;
    return out;
  };
  return {
    options: { seed: opts.seed, trials: opts.trials, workers: opts.workers, judge: qemu ? 'qemu-img' : 'qtest' },
    trials,
    killed: count((t) => t.end === 'self-kill' || t.end === 'sigkill'),
    byEnd: tally((t) => t.end),
    byMode: tally((t) => t.mode),
    flushes: trials.reduce((s, t) => s + t.flushesAcked, 0),
    verifiedWrites: trials.reduce((s, t) => s + t.writesVerified, 0),
    snapshotsVerified: trials.reduce((s, t) => s + t.snapshotsVerified, 0),
    corrupt: count((t) => t.checkExit !== null && t.checkExit !== 0 && t.checkExit !== 3 && !t.copiedWindow),
    copiedWindow: count((t) => t.copiedWindow),
    leaky: count((t) => t.checkExit === 3),
    leaksRepaired: trials.every((t) => (t.checkExit !== 3 && !t.copiedWindow) || t.repaired),
    lost: count((t) => t.problems.some((p) => p.startsWith('guest byte') || p.startsWith('snapshot'))),
    failed: count((t) => t.problems.length > 0),
    elapsedMs: performance.now() - t0,
  };
}
