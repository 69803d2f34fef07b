/**
 * The CI slice of the crash-consistency trials (`npm run fuzz` runs 200): 20 writers, four of
 * each mode (plain, external data file, backing overlay, compressed writes, snapshots), killed
 * at planned storage calls or by SIGKILL at random moments. Afterwards qemu-img check finds no
 * corruption, leaks are repaired by `-r leaks`, and every acknowledged write reads back.
 * Judged by real QEMU where installed, by qtest's own tools otherwise.
 */
import * as os from 'node:os';
import { describe, expect, it } from 'vitest';
import { runCrashCampaign } from '../../fuzz/crash/campaign.ts';
import { CRASH_MODES, applyOp, planTrial, verifyDisk, initialDisk } from '../../fuzz/crash/plan.ts';

describe('crash-consistency model', () => {
  it('accepts the durable state and what later operations wrote, and nothing else', () => {
    const plan = planTrial(42, 'plain');
    const acked = plan.ops.findIndex((o, i) => o.kind === 'flush' && i > 20) + 1;
    const started = acked + 5;
    const durable = initialDisk(plan);
    for (let i = 0; i < acked; i++) applyOp(plan, durable, plan.ops[i]!);
    expect(verifyDisk(plan, durable, acked, started)).toEqual([]);
    const everything = initialDisk(plan);
    for (let i = 0; i < started; i++) applyOp(plan, everything, plan.ops[i]!);
    expect(verifyDisk(plan, everything, acked, started)).toEqual([]);
    // A lost acknowledged write, or a byte nobody wrote, is reported.
    const firstWrite = plan.ops.findIndex((o) => o.kind === 'write');
    const op = plan.ops[firstWrite]!;
    if (op.kind !== 'write') throw new Error('plan without writes');
    // The disk as it would be had that write been lost (only bytes no later op rewrote differ).
    const without = initialDisk(plan);
    for (let i = 0; i < acked; i++) if (i !== firstWrite) applyOp(plan, without, plan.ops[i]!);
    let pos = -1;
    for (let p = op.offset; p < op.offset + op.length && pos < 0; p++) if (without[p] !== durable[p]) pos = p;
    expect(pos).toBeGreaterThanOrEqual(0);
    const lost = new Uint8Array(durable);
    lost[pos] = without[pos]!;
    expect(verifyDisk(plan, lost, acked, started)[0]).toMatch(new RegExp(`^guest byte ${pos} `));
    const garbage = new Uint8Array(durable);
    garbage[pos] = durable[pos]! ^ 0xff;
    expect(verifyDisk(plan, garbage, acked, started)).toHaveLength(1);
  });
});

describe('crash consistency, CI slice', () => {
  it('20 killed writers: no corruption, leaks repaired, acknowledged writes intact', async () => {
    const r = await runCrashCampaign({ seed: 515, trials: 20, workers: Math.min(2, Math.max(1, os.availableParallelism())), qemu: true });
    const failures = r.trials.filter((t) => t.problems.length).map((t) => `trial ${t.index} ${t.mode} seed ${t.seed} (${t.end} at op ${t.started}): ${t.problems.join('; ')}`);
    expect(failures).toEqual([]);
    expect(r.corrupt).toBe(0);
    expect(r.lost).toBe(0);
    expect(r.leaksRepaired).toBe(true);
    for (const mode of CRASH_MODES) expect(r.byMode[mode]).toBe(4);
    // Most writers really die mid-run, and what they acknowledged is checked.
    expect(r.killed).toBeGreaterThanOrEqual(8);
    expect(r.verifiedWrites).toBeGreaterThan(1000);
  }, 240_000);
});
