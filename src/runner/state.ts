/**
 * What `qtest run` remembers between runs, under .qtest/ (QTEST_STATE moves it): the last run's
 * results (for --rerun-failed) and each scenario's last duration per backend (so -j starts the
 * slowest first). Unreadable or malformed files count as empty: this is a cache, not data.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ScenarioResult, Status } from '../report/results.ts';

export interface LastRun {
  backend: string;
  finishedAt: string;
  results: { id: string; status: Status; durationMs: number; message?: string }[];
}

type Timings = Record<string, Record<string, number>>;

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

function writeJson(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // Write then rename, so a parallel reader never sees half a file.
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  fs.renameSync(tmp, file);
}

export class RunState {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  private get lastRunFile(): string {
    return path.join(this.dir, 'last-run.json');
  }

  private get timingsFile(): string {
    return path.join(this.dir, 'timings.json');
  }

  lastRun(): LastRun | undefined {
    const r = readJson<LastRun>(this.lastRunFile);
    return r && Array.isArray(r.results) ? r : undefined;
  }

  /** Ids that failed or errored in the last run, in its order. */
  failedIds(): string[] | undefined {
    return this.lastRun()?.results.filter((r) => r.status === 'fail' || r.status === 'error').map((r) => r.id);
  }

  /** Last known duration of each scenario on a backend, in ms. */
  timings(backend: string): Record<string, number> {
    const t = readJson<Timings>(this.timingsFile);
    const own = t && typeof t === 'object' ? t[backend] : undefined;
    return own && typeof own === 'object' ? own : {};
  }

  record(backend: string, results: readonly ScenarioResult[]): void {
    writeJson(this.lastRunFile, {
      backend,
      finishedAt: new Date().toISOString(),
      results: results.map((r) => ({ id: r.id, status: r.status, durationMs: r.durationMs, ...(r.message ? { message: r.message } : {}) })),
    } satisfies LastRun);
    const all = readJson<Timings>(this.timingsFile) ?? {};
    const own = { ...(all[backend] ?? {}) };
    for (const r of results) if (r.status === 'pass' || r.status === 'fail') own[r.id] = r.durationMs;
    writeJson(this.timingsFile, { ...all, [backend]: own });
  }
}

/**
 * Run order for -j: slowest known first (the long poles start early), scenarios without a
 * timing before all of those (they may be slow), ties in id order. With one job the order is
 * left alone.
 */
export function orderByTiming<T extends { id: string }>(items: readonly T[], timings: Record<string, number>, jobs: number): T[] {
  if (jobs <= 1) return [...items];
  const known = (id: string): number => (Object.hasOwn(timings, id) && Number.isFinite(timings[id]) ? timings[id]! : Infinity);
  return items
    .map((item, index) => ({ item, index }))
    .sort((a, b) => known(b.item.id) - known(a.item.id) || a.index - b.index)
    .map((x) => x.item);
}

/** `--shard I/N`: the I-th of N round-robin slices (1-based) of the selection. */
export function shard<T>(items: readonly T[], spec: { index: number; count: number }): T[] {
  return items.filter((_, i) => i % spec.count === spec.index - 1);
}

export function parseShard(text: string): { index: number; count: number } | null {
  const m = /^(\d+)\/(\d+)$/.exec(text);
  if (!m) return null;
  const index = Number(m[1]);
  const count = Number(m[2]);
  return count >= 1 && index >= 1 && index <= count ? { index, count } : null;
}
