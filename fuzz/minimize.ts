/**
 * Shrinks a finding to the fewest changed bytes that still reproduce it (same crash, hang,
 * or the same pair of check verdicts), so the regression test carries a minimal input: the
 * file length is restored if possible, then changed bytes are reverted to the seed's in
 * halving chunks (delta debugging), each candidate run in a watched worker.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { JobOutcome } from './pool.ts';
import { WorkerPool } from './pool.ts';
import { diffPatches } from './mutate.ts';
import type { Patch } from './mutate.ts';
import { qemuCheck, verdictOf } from './verdict.ts';

export interface MinimizeInput {
  seedImage: Uint8Array;
  mutant: Uint8Array;
  main: string;
  /** Files the image refers to (backing, data file), copied next to each candidate. */
  companions: Array<{ name: string; path: string }>;
  qemu: boolean;
  hangMs: number;
  memoryMiB: number;
  workDir: string;
  maxEvaluations?: number;
}

export interface Minimized {
  signature: string;
  bytes: Uint8Array;
  patches: Patch[];
  length: number;
  evaluations: number;
  builtin?: { exit: number; output: string };
  qemu?: { exit: number | null; output: string };
}

function firstLine(text: string): string {
  return text.split('\n').find((l) => l.trim() !== '') ?? '';
}

/**
 * What a run of a candidate looks like, for "does it still reproduce". Mode "self" keeps
 * what qtest did (crash, hang, its verdict against QEMU's): for open findings. Mode "qemu"
 * keeps what real QEMU says (exit status and first line): for findings already fixed, whose
 * minimal input is then one that still drives QEMU down the same path.
 */
export type SignatureMode = 'self' | 'qemu';

export function signatureOf(mode: SignatureMode, out: JobOutcome, q: { exit: number | null; output: string } | null): string {
  if (mode === 'qemu') return q ? `qemu:${q.exit}:${firstLine(q.output)}` : 'qemu:unavailable';
  if (out.kind !== 'done') return out.kind;
  const crash = out.result.crashes[0];
  if (crash) return `crash:${crash.op}:${crash.error.split(':')[0]}`;
  const b = verdictOf(out.result.builtinCheck?.exit ?? null);
  return q ? `verdict:${b}/${verdictOf(q.exit)}` : `verdict:${b}`;
}

export async function minimize(input: MinimizeInput, mode: SignatureMode): Promise<Minimized> {
  let target = '';
  const pool = new WorkerPool({ workers: 1, hangMs: input.hangMs, hardMemoryMiB: Math.max(1024, input.memoryMiB * 4), softMemoryMiB: input.memoryMiB });
  const max = input.maxEvaluations ?? 600;
  let evaluations = 0;
  let last: Pick<Minimized, 'builtin' | 'qemu'> = {};
  const run = async (bytes: Uint8Array): Promise<boolean> => {
    evaluations++;
    const dir = path.join(input.workDir, `c${evaluations}`);
    fs.mkdirSync(dir, { recursive: true });
    for (const c of input.companions) fs.copyFileSync(c.path, path.join(dir, c.name));
    fs.writeFileSync(path.join(dir, input.main), bytes);
    const writeDir = `${dir}.w`;
    fs.mkdirSync(writeDir, { recursive: true });
    try {
      const q = input.qemu ? await qemuCheck(dir, input.main) : null;
      const out = await pool.run({ dir, main: input.main, writeDir });
      const sig = signatureOf(mode, out, q);
      if (target === '') target = sig;
      const ok = sig === target;
      if (ok) {
        last = {
          builtin: out.kind === 'done' && out.result.builtinCheck ? out.result.builtinCheck : undefined,
          qemu: q ? { exit: q.exit, output: q.output } : undefined,
        };
      }
      return ok;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(writeDir, { recursive: true, force: true });
    }
  };
  try {
    let cur = input.mutant;
    await run(cur);
    const seed = input.seedImage;
    // The seed's length, if the mutant was truncated or grown.
    if (cur.length !== seed.length) {
      const c = new Uint8Array(seed.length);
      c.set(seed);
      const n = Math.min(cur.length, seed.length);
      c.set(cur.subarray(0, n));
      if (await run(c)) cur = c;
    }
    // Revert changed bytes in halving chunks while the finding stays.
    const n = Math.min(cur.length, seed.length);
    let changed: number[] = [];
    for (let i = 0; i < n; i++) if (cur[i] !== seed[i]) changed.push(i);
    for (let chunk = Math.max(1, changed.length >> 1); ; chunk = Math.max(1, chunk >> 1)) {
      for (let start = 0; start < changed.length && evaluations < max; ) {
        const take = changed.slice(start, start + chunk);
        const c = new Uint8Array(cur);
        for (const i of take) c[i] = seed[i]!;
        if (await run(c)) {
          cur = c;
          changed = changed.slice(0, start).concat(changed.slice(start + chunk));
        } else {
          start += chunk;
        }
      }
      if (chunk === 1 || evaluations >= max) break;
    }
    // Nothing left means the kept outcome is the seed's own (a fixed finding QEMU treats like
    // the seed): the original mutant is the input then.
    if (cur.length === seed.length && diffPatches(seed, cur).length === 0) cur = input.mutant;
    return { signature: target, bytes: cur, patches: diffPatches(seed, cur), length: cur.length, evaluations, ...last };
  } finally {
    pool.close();
  }
}

/** The regression-test entry for a minimized finding (for tests/robustness/regressions.ts). */
export function fixtureText(id: string, seedName: string, mutation: string, m: Minimized, companions: Array<{ name: string; bytes: Uint8Array }> = []): string {
  const gz = (b: Uint8Array): string => gzipSync(b, { level: 9 }).toString('base64');
  const keyLine = (m.qemu?.output ?? m.builtin?.output ?? '').split('\n').find((l) => l.trim() !== '') ?? '';
  const lines = [
    '  {',
    `    id: ${JSON.stringify(id)},`,
    `    bug: 'TODO: what was wrong',`,
    `    fix: 'TODO: commit',`,
    `    seed: ${JSON.stringify(seedName)},`,
    `    mutation: ${JSON.stringify(mutation)},`,
    `    patches: ${JSON.stringify(m.patches)},`,
    `    length: ${m.length},`,
    `    qemuExit: ${m.qemu?.exit ?? 'null'},`,
    `    outputIncludes: [${JSON.stringify(keyLine)}],`,
    `    image: ${JSON.stringify(gz(m.bytes))},`,
  ];
  if (companions.length) {
    lines.push(`    companions: { ${companions.map((c) => `${JSON.stringify(c.name)}: ${JSON.stringify(gz(c.bytes))}`).join(', ')} },`);
  }
  lines.push('  },');
  return lines.join('\n');
}
