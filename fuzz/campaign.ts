/**
 * One image-fuzzing campaign: build the seeds, generate mutants deterministically from the run
 * seed, exercise each in a watched worker (fuzz/pool.ts) while real `qemu-img check` looks at
 * the same file, and classify the outcome. Used by `npm run fuzz` and by the CI slice in
 * tests/robustness.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Crash, ExerciseResult } from './exercise.ts';
import { parseLayout } from './layout.ts';
import type { Layout } from './layout.ts';
import { mutate } from './mutate.ts';
import type { MutantRecipe } from './mutate.ts';
import { WorkerPool } from './pool.ts';
import type { JobOutcome } from './pool.ts';
import { itemSeed, rng } from './rng.ts';
import { buildSeeds, haveQemuImg, seedId } from './seeds.ts';
import type { Maker, Seed } from './seeds.ts';
import { qemuCheck, verdictOf } from './verdict.ts';
import type { QemuCheck, Verdict } from './verdict.ts';

export interface CampaignOptions {
  seed: number;
  count: number;
  /** Stop starting new mutants after this long (ms); the count is then an upper bound. */
  timeBudgetMs?: number;
  workers: number;
  /** Concurrent real qemu-img checks. */
  qemuJobs: number;
  hangMs: number;
  memoryMiB: number;
  /** Compare with real qemu-img check (only when it is installed). */
  qemu: boolean;
  /** Only these seed recipes (by name). */
  seeds?: string[];
  writePhase: boolean;
  /** Scratch root; a fresh directory under the OS temp dir when absent. */
  workRoot?: string;
  onProgress?: (done: number, total: number, stats: CampaignStats) => void;
}

export type Outcome = 'ok' | 'crash' | 'hang' | 'memory' | 'died' | 'write-corrupt';

/** Everything kept about a mutant worth reporting. */
export interface Finding {
  index: number;
  itemSeed: number;
  seed: string;
  outcome: Outcome;
  recipe: MutantRecipe;
  crashes?: Crash[];
  detail?: string;
  builtin?: { verdict: Verdict; exit: number; output: string };
  qemu?: { verdict: Verdict; exit: number | null; output: string };
  /** Built-in check exit status of the copy after the write phase. */
  checkAfterWrite?: number | null;
}

export interface CampaignStats {
  mutants: number;
  crashes: number;
  hangs: number;
  memory: number;
  died: number;
  compared: number;
  agreed: number;
  /** Mutants whose built-in check printed exactly QEMU's stdout and stderr (first 64 KiB of each). */
  textAgreed: number;
  /** The first of the others: the mutant and the first line where the texts part. */
  textDiffers: Array<{ index: number; seed: string; stream: 'stdout' | 'stderr'; qemu: string; qtest: string }>;
  qemuTimeouts: number;
  /** builtin verdict -> qemu verdict -> count */
  matrix: Record<string, Record<string, number>>;
  /** QEMU's first output line (numbers masked), counted: which damage the mutants reached. */
  qemuFirstLines: Record<string, number>;
  /** Operations that ended in a typed error, by op name. */
  typedErrors: Record<string, number>;
  maxCpuMs: number;
  maxWallMs: number;
  /** The mutant that took longest (wall clock), to replay. */
  slowest: { index: number; wallMs: number; cpuMs: number } | null;
  maxRssMiB: number;
  /** Write phases after which the built-in check found the copy corrupt although the mutant was not. */
  writeMadeCorrupt: number;
  /** Mutants QEMU found clean or leaky whose written copy QEMU checked again, and those it then found corrupt. */
  writesJudged: number;
  writeCorruptedImage: number;
  bySeed: Record<string, number>;
  elapsedMs: number;
}

export interface CampaignResult {
  options: Omit<CampaignOptions, 'onProgress'>;
  seeds: Array<{ id: string; makers: Maker[]; bytes: number; sha256: string }>;
  qemuAvailable: boolean;
  stats: CampaignStats;
  /** Crashes, hangs, memory blow-ups, worker deaths, verdict disagreements. */
  findings: Finding[];
  /** Seed companions (backing, data files) must be untouched after the run. */
  companionsIntact: boolean;
}

interface SeedEntry {
  seed: Seed;
  id: string;
  makers: Maker[];
  layout: Layout;
}

const TEXT_DIFFERS_KEPT = 50;

/** Where the built-in check's text first parts from QEMU's (stdout first), or null when equal. */
function firstDifference(
  qtest: { stdout: string; stderr: string },
  qemu: { stdout: string; stderr: string },
): { stream: 'stdout' | 'stderr'; qemu: string; qtest: string } | null {
  for (const stream of ['stdout', 'stderr'] as const) {
    if (qtest[stream] === qemu[stream]) continue;
    const a = qemu[stream].split('\n');
    const b = qtest[stream].split('\n');
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    return { stream, qemu: a[i] ?? '(end)', qtest: b[i] ?? '(end)' };
  }
  return null;
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Identical seeds from both makers are fuzzed once. */
function dedupe(seeds: Seed[]): SeedEntry[] {
  const byHash = new Map<string, SeedEntry>();
  const out: SeedEntry[] = [];
  for (const s of seeds) {
    const key = `${s.recipe.name}:${sha256(s.image)}`;
    const have = byHash.get(key);
    if (have) {
      have.makers.push(s.maker);
      have.id = `${s.recipe.name}/${have.makers.join('+')}`;
      continue;
    }
    const e: SeedEntry = { seed: s, id: seedId(s), makers: [s.maker], layout: parseLayout(s.image) };
    byHash.set(key, e);
    out.push(e);
  }
  return out;
}

function companionsHash(entries: SeedEntry[]): string {
  const h = createHash('sha256');
  for (const e of entries) {
    for (const c of e.seed.companions) h.update(fs.readFileSync(path.join(e.seed.dir, c)));
  }
  return h.digest('hex');
}

/** A limit on how many async tasks run at once. */
function limiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: Array<() => void> = [];
  return async (fn) => {
    if (active >= n) await new Promise<void>((r) => queue.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      queue.shift()?.();
    }
  };
}

/** Mutant `index` of a run: which seed, which bytes, what was done. Pure. */
export function makeMutant(entries: readonly SeedEntry[], runSeed: number, index: number): { entry: SeedEntry; bytes: Uint8Array; recipe: MutantRecipe; itemSeed: number } {
  const s = itemSeed(runSeed, index);
  const r = rng(s);
  const entry = entries[Math.floor(r() * entries.length)]!;
  const { bytes, recipe } = mutate(entry.seed.image, entry.layout, r);
  return { entry, bytes, recipe, itemSeed: s };
}

function emptyStats(): CampaignStats {
  return {
    mutants: 0,
    crashes: 0,
    hangs: 0,
    memory: 0,
    died: 0,
    compared: 0,
    agreed: 0,
    textAgreed: 0,
    textDiffers: [],
    qemuTimeouts: 0,
    matrix: {},
    qemuFirstLines: {},
    typedErrors: {},
    maxCpuMs: 0,
    maxWallMs: 0,
    slowest: null,
    maxRssMiB: 0,
    writeMadeCorrupt: 0,
    writesJudged: 0,
    writeCorruptedImage: 0,
    bySeed: {},
    elapsedMs: 0,
  };
}

export async function prepareSeeds(root: string, qemu: boolean, only?: string[]): Promise<SeedEntry[]> {
  const makers: Maker[] = qemu ? ['engine', 'qemu'] : ['engine'];
  return dedupe(await buildSeeds(path.join(root, 'seeds'), makers, only));
}

export async function runCampaign(opts: CampaignOptions): Promise<CampaignResult> {
  const t0 = performance.now();
  const qemuAvailable = haveQemuImg();
  const useQemu = opts.qemu && qemuAvailable;
  const ownRoot = !opts.workRoot;
  const root = opts.workRoot ?? fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-fuzz-'));
  fs.mkdirSync(root, { recursive: true });
  const entries = await prepareSeeds(root, useQemu, opts.seeds);
  const before = companionsHash(entries);
  const pool = new WorkerPool({ workers: opts.workers, hangMs: opts.hangMs, hardMemoryMiB: Math.max(opts.memoryMiB * 4, 1024), softMemoryMiB: opts.memoryMiB });
  const qemuLimit = limiter(opts.qemuJobs);
  const stats = emptyStats();
  const findings: Finding[] = [];
  const mutantsRoot = path.join(root, 'mutants');
  fs.mkdirSync(mutantsRoot, { recursive: true });

  let next = 0;
  let done = 0;
  const deadline = opts.timeBudgetMs ? t0 + opts.timeBudgetMs : Infinity;

  const runOne = async (index: number): Promise<void> => {
    const m = makeMutant(entries, opts.seed, index);
    const seed = m.entry.seed;
    const dir = path.join(mutantsRoot, `m${index}`);
    const writeDir = opts.writePhase ? `${dir}.w` : null;
    fs.mkdirSync(dir);
    if (writeDir) fs.mkdirSync(writeDir);
    for (const c of seed.companions) fs.linkSync(path.join(seed.dir, c), path.join(dir, c));
    fs.writeFileSync(path.join(dir, seed.recipe.main), m.bytes);
    const job = { dir, main: seed.recipe.main, writeDir };
    try {
      const qemuP: Promise<QemuCheck | null> = useQemu ? qemuLimit(() => qemuCheck(dir, seed.recipe.main)) : Promise.resolve(null);
      let out: JobOutcome = await pool.run(job);
      // A job over the limits gets a second chance on a fresh worker: a busy machine or the
      // garbage of earlier jobs must not be blamed on this mutant.
      if (out.kind === 'hang' || out.kind === 'memory' || (out.kind === 'done' && out.maxRssMiB > opts.memoryMiB)) {
        if (writeDir) {
          fs.rmSync(writeDir, { recursive: true, force: true });
          fs.mkdirSync(writeDir);
        }
        out = await pool.run(job, true);
      }
      const q = await qemuP;
      // Writing to an image QEMU does not call corrupt must not make it corrupt: QEMU judges
      // the copy the write phase left (the copy's own check above is qtest's).
      let afterWrite: QemuCheck | null = null;
      if (useQemu && writeDir && q && (q.exit === 0 || q.exit === 3) && out.kind === 'done' && out.result.checkAfterWrite !== null) {
        afterWrite = await qemuLimit(() => qemuCheck(writeDir, seed.recipe.main));
      }
      classify(index, m, out, q, afterWrite);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      if (writeDir) fs.rmSync(writeDir, { recursive: true, force: true });
    }
  };

  const classify = (index: number, m: ReturnType<typeof makeMutant>, out: JobOutcome, q: QemuCheck | null, afterWrite: QemuCheck | null): void => {
    stats.mutants++;
    stats.bySeed[m.entry.id] = (stats.bySeed[m.entry.id] ?? 0) + 1;
    stats.maxWallMs = Math.max(stats.maxWallMs, out.wallMs);
    const base = { index, itemSeed: m.itemSeed, seed: m.entry.id, recipe: m.recipe };
    if (out.kind !== 'done') {
      if (out.kind === 'hang') stats.hangs++;
      else if (out.kind === 'memory') stats.memory++;
      else stats.died++;
      const detail =
        out.kind === 'hang'
          ? `no answer after ${out.wallMs.toFixed(0)} ms`
          : out.kind === 'memory'
            ? `resident set reached ${out.rssMiB.toFixed(0)} MiB`
            : `worker died (code ${out.code}, signal ${out.signal}): ${out.stderr.slice(-2000)}`;
      findings.push({ ...base, outcome: out.kind, detail });
      return;
    }
    const r: ExerciseResult = out.result;
    stats.maxCpuMs = Math.max(stats.maxCpuMs, out.cpuMs);
    if (!stats.slowest || out.wallMs > stats.slowest.wallMs) stats.slowest = { index, wallMs: out.wallMs, cpuMs: out.cpuMs };
    stats.maxRssMiB = Math.max(stats.maxRssMiB, out.maxRssMiB);
    for (const op of r.ops) if (op.outcome === 'error') stats.typedErrors[op.op] = (stats.typedErrors[op.op] ?? 0) + 1;
    let outcome: Outcome = 'ok';
    let detail: string | undefined;
    if (r.crashes.length) {
      outcome = 'crash';
      stats.crashes++;
    } else if (out.maxRssMiB > opts.memoryMiB) {
      outcome = 'memory';
      stats.memory++;
      detail = `peak resident set ${out.maxRssMiB.toFixed(0)} MiB`;
    }
    const builtin = r.builtinCheck ? { verdict: verdictOf(r.builtinCheck.exit), exit: r.builtinCheck.exit, output: r.builtinCheck.output } : undefined;
    let disagree = false;
    let qemu: Finding['qemu'];
    if (q) {
      qemu = { verdict: verdictOf(q.exit), exit: q.exit, output: q.output };
      const first = (q.output.split('\n').find((l) => l.trim() !== '') ?? '').replace(/\b(0x)?[0-9a-f]*[0-9][0-9a-f]*\b/gi, 'N').slice(0, 120);
      stats.qemuFirstLines[first] = (stats.qemuFirstLines[first] ?? 0) + 1;
      if (q.timedOut) stats.qemuTimeouts++;
      else if (builtin) {
        stats.compared++;
        const row = (stats.matrix[builtin.verdict] ??= {});
        row[qemu.verdict] = (row[qemu.verdict] ?? 0) + 1;
        if (builtin.verdict === qemu.verdict) stats.agreed++;
        else disagree = true;
        const differ = firstDifference(r.builtinCheck!, q);
        if (!differ) stats.textAgreed++;
        else if (stats.textDiffers.length < TEXT_DIFFERS_KEPT) stats.textDiffers.push({ index, seed: base.seed, ...differ });
      }
    }
    if (r.checkAfterWrite === 2 && builtin && builtin.verdict !== 'corrupt') stats.writeMadeCorrupt++;
    if (afterWrite) {
      stats.writesJudged++;
      if (afterWrite.exit === 2) {
        outcome = 'write-corrupt';
        stats.writeCorruptedImage++;
        detail = `qemu-img check of the written copy: ${afterWrite.output.split('\n').find((l) => l.trim() !== '') ?? ''}`;
      }
    }
    if (outcome !== 'ok' || disagree) {
      findings.push({ ...base, outcome, detail, crashes: r.crashes.length ? r.crashes : undefined, builtin, qemu, checkAfterWrite: r.checkAfterWrite });
    }
  };

  const total = opts.count;
  const loop = async (): Promise<void> => {
    while (next < total && performance.now() < deadline) {
      const index = next++;
      await runOne(index);
      done++;
      opts.onProgress?.(done, total, stats);
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.workers + Math.max(0, opts.qemuJobs - 1) }, () => loop()));
  } finally {
    pool.close();
  }
  const companionsIntact = companionsHash(entries) === before;
  stats.elapsedMs = performance.now() - t0;
  if (ownRoot) fs.rmSync(root, { recursive: true, force: true });
  const { onProgress: _ignored, ...options } = opts;
  return {
    options,
    seeds: entries.map((e) => ({ id: e.id, makers: e.makers, bytes: e.seed.image.length, sha256: sha256(e.seed.image) })),
    qemuAvailable,
    stats,
    findings: findings.sort((a, b) => a.index - b.index),
    companionsIntact,
  };
}
