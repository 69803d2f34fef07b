/**
 * The CI slice of the image fuzzer (`npm run fuzz` runs the full campaign): 320 mutants of a
 * fixed run seed, each opened, inspected, mapped, read cluster by cluster, checked and written
 * (on a copy) by qtest in a watched worker process. No crash, hang or memory blow-up is
 * allowed, the seeds' backing and data files must stay untouched, and where real qemu-img is
 * installed, `qemu-img check` verdicts (clean / leaks / corrupt / cannot open) must agree in
 * at least 99 % of the mutants. The watchdog itself is tested first.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCampaign } from '../../fuzz/campaign.ts';
import { WorkerPool } from '../../fuzz/pool.ts';
import { haveQemuImg } from '../../fuzz/seeds.ts';

const SLICE_SEED = 20240501;
const SLICE_COUNT = 320;
const workers = Math.min(2, Math.max(1, os.availableParallelism()));

describe('fuzz watchdog', () => {
  const pool = new WorkerPool({ workers: 1, hangMs: 500, hardMemoryMiB: 1024, softMemoryMiB: 256 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-watchdog-'));
  afterAll(() => {
    pool.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const job = { dir, main: 'none.qcow2', writeDir: null };

  it('kills a job that loops, records an untyped error as a crash, notices exits and big allocations', async () => {
    const loop = await pool.run({ ...job, misbehave: 'loop' });
    expect(loop.kind).toBe('hang');
    const crash = await pool.run({ ...job, misbehave: 'throw' });
    expect(crash.kind).toBe('done');
    if (crash.kind === 'done') expect(crash.result.crashes[0]?.error).toMatch(/^TypeError: /);
    const exit = await pool.run({ ...job, misbehave: 'exit' });
    expect(exit).toMatchObject({ kind: 'died', code: 3 });
    // Touching 2 GiB takes a while: a pool with more time, so that memory is what stops it.
    const patient = new WorkerPool({ workers: 1, hangMs: 20_000, hardMemoryMiB: 400, softMemoryMiB: 256 });
    try {
      const big = await patient.run({ ...job, misbehave: 'allocate' });
      expect(big.kind).toBe('memory');
    } finally {
      patient.close();
    }
    // The pool keeps working after all of that.
    const after = await pool.run({ ...job });
    expect(after.kind).toBe('done');
    if (after.kind === 'done') expect(after.result.ops[0]).toMatchObject({ op: 'open', outcome: 'error' });
  }, 60_000);
});

describe('image fuzzing, CI slice', () => {
  it(`${SLICE_COUNT} mutants: no crash, hang or memory blow-up; verdicts agree with qemu-img check`, async () => {
    const r = await runCampaign({
      seed: SLICE_SEED,
      count: SLICE_COUNT,
      workers,
      qemuJobs: workers,
      hangMs: 2000,
      memoryMiB: 256,
      qemu: true,
      writePhase: true,
    });
    const failures = r.findings.filter((f) => f.outcome !== 'ok');
    const describeFinding = (f: (typeof r.findings)[number]): string =>
      `#${f.index} ${f.seed} ${f.outcome}: ${f.recipe.mutations.join('; ')} ${f.detail ?? ''} ${f.crashes?.[0]?.stack ?? ''}`;
    expect(failures.map(describeFinding)).toEqual([]);
    expect(r.stats.mutants).toBe(SLICE_COUNT);
    expect(r.companionsIntact).toBe(true);
    // Every seed recipe got mutants, and the mutants reached deep: most opened and were checked.
    expect(Object.keys(r.stats.bySeed).length).toBe(r.seeds.length);
    expect(r.stats.typedErrors.open ?? 0).toBeLessThan(SLICE_COUNT * 0.6);
    if (haveQemuImg()) {
      expect(r.stats.compared).toBe(SLICE_COUNT);
      const disagreements = r.findings.filter((f) => f.outcome === 'ok').map(describeFinding);
      expect(r.stats.agreed / r.stats.compared, disagreements.join('\n')).toBeGreaterThanOrEqual(0.99);
    }
  }, 180_000);
});
