/**
 * `npm run bench [-- options]`: qtest side by side with real QEMU 7.2 (issue 4).
 *
 * Every pair runs in this one process tree, alternating QEMU and qtest (the order flips on each
 * round so neither side always runs on a warmer cache), with warm-up runs first. Prints a table
 * per workload (medians, ratio qtest/QEMU, spread, peak RSS) and writes bench/results/latest.json
 * with the machine's facts. Times never fail anything: the exit status is nonzero only when a
 * command fails or the two sides disagree on their output.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cleanupRssFile, describe, timeCommand } from './lib/proc.ts';
import type { Timed } from './lib/proc.ts';
import { summarize } from './lib/stats.ts';
import type { Summary } from './lib/stats.ts';
import { markdownTable, mib, percent, ratio, seconds, textTable } from './lib/table.ts';
import type { Column } from './lib/table.ts';
import { MEMORY_LIMIT_KIB, MEMORY_SOURCES, WORKLOADS } from './workloads.ts';
import type { BenchContext, Pair, SideName, Workload } from './workloads.ts';

const USAGE = `Usage: npm run bench -- [options]

Options:
  --only LIST     workloads to run, comma-separated: 1, 2 (= 2a..2e), 2a, 2b, 2c, 2d, 2e, 3,
                  4 (= 4-map, 4-check), 4-map, 4-check, 5 (= the runs that feed it: 2a, 4)
                  (default: all)
  --runs N        counted runs per side (default 5)
  --warmup N      uncounted runs per side first (default 1)
  --dir DIR       where images go (default: a new directory in the OS temp dir, removed after)
  --keep          keep that directory (and reuse scaling images found in it next time)
  --json FILE     results file (default bench/results/latest.json)
  --markdown      also print the tables as Markdown (what the README quotes)
  --list          list the workloads and exit
  -h, --help      this help
`;

interface SideResult {
  summary: Summary;
  peakRssKiB: number | null;
  /** Median of the tool's own reported duration, where it prints one. */
  reportedMedian: number | null;
  /** Median user + system CPU time (GNU time): less sensitive to a loaded machine than wall time. */
  cpuMedian: number | null;
}

interface PairResult {
  label: string;
  qemu: SideResult;
  qtest: SideResult;
  ratio: number;
  facts?: Record<string, string | number>;
  problems: string[];
}

interface WorkloadResult {
  id: string;
  title: string;
  target: number | null;
  pairs: PairResult[];
}

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

function expandSelection(only: string | undefined): Set<string> {
  const all = WORKLOADS.map((w) => w.id);
  if (!only) return new Set(all);
  const chosen = new Set<string>();
  for (const item of only.split(',').map((s) => s.trim()).filter(Boolean)) {
    const ids = item === '5' ? MEMORY_SOURCES : all.filter((id) => id === item || id.startsWith(item) && /^\d$/.test(item));
    if (ids.length === 0) throw new UsageError(`unknown workload '${item}' (see --list)`);
    for (const id of ids) chosen.add(id);
  }
  return chosen;
}

class UsageError extends Error {}

function count(text: string | undefined, name: string, fallback: number, min: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${name} needs an integer >= ${min}, got '${text}'`);
  return n;
}

function firstLine(cmd: string[]): string {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8' });
  return r.status === 0 ? (r.stdout.split('\n')[0] ?? '').trim() : 'unknown';
}

function machineFacts(work: string, qemuImg: string, node: string): Record<string, string | number> {
  const cpus = os.cpus();
  const df = spawnSync('df', ['-T', work], { encoding: 'utf8' }).stdout?.split('\n')[1]?.split(/\s+/) ?? [];
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).stdout?.trim() ?? '';
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' }).stdout?.trim();
  return {
    cores: cpus.length,
    cpu: cpus[0]?.model ?? 'unknown',
    memoryGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    kernel: `${os.type()} ${os.release()}`,
    node: firstLine([node, '--version']),
    qemu: firstLine([qemuImg, '--version']),
    filesystem: df.length > 1 ? `${df[1]} (${df[0]})` : 'unknown',
    loadAverageAtStart: os.loadavg().map((l) => l.toFixed(2)).join(' '),
    qtestCommit: git + (dirty ? ' (with uncommitted changes)' : ''),
  };
}

function runOnce(pair: Pair, side: SideName): Timed {
  pair.prepare?.(side);
  // Start every run with no dirty page cache, so a run does not pay for the previous one's
  // writeback (without this, write workloads swing by a factor of 3 or more).
  spawnSync('sync');
  const r = timeCommand(pair.commands[side]);
  pair.after?.(side);
  if (r.status !== 0) {
    throw new Error(`${side}: ${describe(pair.commands[side])} exited with ${r.status}\n${r.stdout.slice(-2000)}${r.stderr.slice(-2000)}`);
  }
  return r;
}

function runPair(pair: Pair, runs: number, warmup: number, log: (s: string) => void): PairResult {
  const sides: SideName[] = ['qemu', 'qtest'];
  const times: Record<SideName, number[]> = { qemu: [], qtest: [] };
  const rss: Record<SideName, number[]> = { qemu: [], qtest: [] };
  const reported: Record<SideName, number[]> = { qemu: [], qtest: [] };
  const cpu: Record<SideName, number[]> = { qemu: [], qtest: [] };
  const first: Partial<Record<SideName, Timed>> = {};
  const problems: string[] = [];
  for (let round = 0; round < warmup + runs; round++) {
    const order = round % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) {
      const r = runOnce(pair, side);
      if (r.peakRssKiB !== null) rss[side].push(r.peakRssKiB);
      if (round < warmup) continue;
      times[side].push(r.seconds);
      if (r.cpuSeconds !== null) cpu[side].push(r.cpuSeconds);
      const rep = pair.reported?.(r);
      if (rep != null) reported[side].push(rep);
      first[side] ??= r;
      if (side === 'qtest' && times.qtest.length === 1 && pair.verify) {
        const problem = pair.verify();
        if (problem) problems.push(`verify: ${problem}`);
      }
    }
    const done = round < warmup ? 'warm-up' : `run ${round - warmup + 1}/${runs}`;
    log(`    ${pair.label}: ${done}`);
  }
  if (pair.compare && first.qemu && first.qtest) {
    const problem = pair.compare(first.qemu, first.qtest);
    if (problem) problems.push(problem);
  }
  const side = (s: SideName): SideResult => ({
    summary: summarize(times[s]),
    peakRssKiB: rss[s].length ? Math.max(...rss[s]) : null,
    reportedMedian: reported[s].length ? summarize(reported[s]).median : null,
    cpuMedian: cpu[s].length ? summarize(cpu[s]).median : null,
  });
  const q = side('qemu');
  const t = side('qtest');
  const result: PairResult = { label: pair.label, qemu: q, qtest: t, ratio: t.summary.median / q.summary.median, problems };
  if (pair.facts) result.facts = pair.facts;
  return result;
}

const COLUMNS: Column[] = [
  { title: 'pair', align: 'left' },
  { title: 'QEMU median' },
  { title: 'qtest median' },
  { title: 'ratio' },
  { title: 'target' },
  { title: 'QEMU spread' },
  { title: 'qtest spread' },
  { title: 'CPU ratio' },
  { title: 'qtest peak RSS' },
];

function rows(w: WorkloadResult): string[][] {
  return w.pairs.map((p) => {
    const row = [
      p.label,
      seconds(p.qemu.summary.median),
      seconds(p.qtest.summary.median),
      ratio(p.ratio),
      w.target === null ? '-' : `<= ${w.target.toFixed(2)}`,
      percent(p.qemu.summary.spread),
      percent(p.qtest.summary.spread),
      p.qemu.cpuMedian && p.qtest.cpuMedian !== null ? ratio(p.qtest.cpuMedian / p.qemu.cpuMedian) : '-',
      mib(p.qtest.peakRssKiB),
    ];
    return row;
  });
}

function reportedNote(w: WorkloadResult): string {
  const withReported = w.pairs.filter((p) => p.qemu.reportedMedian !== null && p.qtest.reportedMedian !== null);
  return withReported
    .map(
      (p) =>
        `  as reported by the tools ("Run completed in"): QEMU ${seconds(p.qemu.reportedMedian!)}, ` +
        `qtest ${seconds(p.qtest.reportedMedian!)}, ratio ${ratio(p.qtest.reportedMedian! / p.qemu.reportedMedian!)}\n`,
    )
    .join('');
}

/** Workload 4's series: each image's time relative to the 1 GiB / 100k-cluster image. */
function seriesTable(w: WorkloadResult): { columns: Column[]; rows: string[][] } {
  const base = w.pairs[0]!;
  const columns: Column[] = [
    { title: 'image', align: 'left' },
    { title: 'virtual size' },
    { title: 'allocated clusters' },
    { title: 'QEMU' },
    { title: 'QEMU / first' },
    { title: 'qtest' },
    { title: 'qtest / first' },
  ];
  const body = w.pairs.map((p) => [
    String(p.facts?.image ?? p.label),
    formatSize(Number(p.facts?.virtualSize ?? 0)),
    String(p.facts?.allocatedClusters ?? ''),
    seconds(p.qemu.summary.median),
    ratio(p.qemu.summary.median / base.qemu.summary.median),
    seconds(p.qtest.summary.median),
    ratio(p.qtest.summary.median / base.qtest.summary.median),
  ]);
  return { columns, rows: body };
}

function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = bytes;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v} ${units[i]}`;
}

function memoryRows(results: WorkloadResult[]): string[][] {
  const out: string[][] = [];
  for (const w of results) {
    if (!MEMORY_SOURCES.includes(w.id)) continue;
    for (const p of w.pairs) {
      const kib = p.qtest.peakRssKiB;
      out.push([`${w.id} ${p.label}`, mib(p.qemu.peakRssKiB), mib(kib), '< 200 MiB', kib === null ? '-' : kib < MEMORY_LIMIT_KIB ? 'yes' : 'NO']);
    }
  }
  return out;
}

const MEMORY_COLUMNS: Column[] = [
  { title: 'pair', align: 'left' },
  { title: 'QEMU peak RSS' },
  { title: 'qtest peak RSS' },
  { title: 'target' },
  { title: 'met' },
];

function printResults(results: WorkloadResult[], markdown: boolean): void {
  const out = process.stdout;
  for (const w of results) {
    out.write(`\n== ${w.id}: ${w.title}\n`);
    out.write(textTable(COLUMNS, rows(w)));
    out.write(reportedNote(w));
    if (w.id.startsWith('4')) {
      const s = seriesTable(w);
      out.write('  series (median times; "/ first" = relative to the 1 GiB, 100k-cluster image):\n');
      out.write(textTable(s.columns, s.rows).replace(/^/gm, '  '));
    }
    for (const p of w.pairs) for (const problem of p.problems) out.write(`  PROBLEM (${p.label}): ${problem}\n`);
  }
  const mem = memoryRows(results);
  if (mem.length) {
    out.write('\n== 5: peak RSS of qtest (GNU time %M)\n');
    out.write(textTable(MEMORY_COLUMNS, mem));
  }
  if (markdown) {
    out.write('\n---- Markdown (README) ----\n\n');
    out.write(readmeMarkdown(results));
  }
}

/** One compact summary table, the scaling series side by side, and peak RSS: what the README quotes. */
function readmeMarkdown(results: WorkloadResult[]): string {
  const columns: Column[] = [
    { title: 'workload', align: 'left' },
    { title: 'QEMU 7.2' },
    { title: 'qtest' },
    { title: 'ratio' },
    { title: 'target' },
    { title: 'spread QEMU / qtest' },
  ];
  const body: string[][] = [];
  for (const w of results) {
    if (w.id.startsWith('4')) continue;
    for (const p of w.pairs) {
      body.push([
        `${w.id} ${p.label}`,
        seconds(p.qemu.summary.median),
        seconds(p.qtest.summary.median),
        ratio(p.ratio),
        w.target === null ? '-' : `<= ${w.target.toFixed(2)}`,
        `${percent(p.qemu.summary.spread)} / ${percent(p.qtest.summary.spread)}`,
      ]);
    }
  }
  let text = body.length ? markdownTable(columns, body) : '';
  const map = results.find((w) => w.id === '4-map');
  const check = results.find((w) => w.id === '4-check');
  const series = map ?? check;
  if (series) {
    const cols: Column[] = [{ title: 'image (4 KiB clusters)', align: 'left' }, { title: 'allocated clusters' }];
    if (map) cols.push({ title: 'map: QEMU' }, { title: 'map: qtest' });
    if (check) cols.push({ title: 'check: QEMU' }, { title: 'check: qtest' });
    const rowsOut = series.pairs.map((p, i) => {
      const row = [`${formatSize(Number(p.facts?.virtualSize ?? 0))}`, String(p.facts?.allocatedClusters ?? '')];
      for (const w of [map, check]) {
        if (!w) continue;
        const q = w.pairs[i]!;
        row.push(seconds(q.qemu.summary.median), seconds(q.qtest.summary.median));
      }
      return row;
    });
    text += `\n${markdownTable(cols, rowsOut)}`;
  }
  const mem = memoryRows(results);
  if (mem.length) {
    const worst = (prefix: string): string => {
      const kib = results
        .filter((w) => w.id.startsWith(prefix))
        .flatMap((w) => w.pairs.map((p) => p.qtest.peakRssKiB ?? 0));
      return kib.length ? mib(Math.max(...kib)) : '-';
    };
    text += `\nPeak RSS of qtest (target < 200 MiB): 2a ${worst('2a')}, 4 ${worst('4')} (largest over all images).\n`;
  }
  return text;
}

function main(): number {
  let values;
  try {
    values = parseArgs({
      options: {
        only: { type: 'string' },
        runs: { type: 'string' },
        warmup: { type: 'string' },
        dir: { type: 'string' },
        keep: { type: 'boolean' },
        json: { type: 'string' },
        markdown: { type: 'boolean' },
        list: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
    }).values;
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.list) {
    for (const w of WORKLOADS) process.stdout.write(`${w.id.padEnd(8)} ${w.title}\n`);
    process.stdout.write(`5        peak RSS of qtest in ${MEMORY_SOURCES.join(', ')}\n`);
    return 0;
  }
  let selected: Set<string>;
  let runs: number;
  let warmup: number;
  try {
    selected = expandSelection(values.only);
    runs = count(values.runs, '--runs', 5, 1);
    warmup = count(values.warmup, '--warmup', 1, 0);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`bench: ${err.message}\n`);
    return 2;
  }

  const qemuImg = process.env.QEMU_IMG ?? 'qemu-img';
  const localNode = path.join(root, 'node_modules', '.bin', 'node');
  const node = fs.existsSync(localNode) ? localNode : process.execPath;
  const work = values.dir ? path.resolve(values.dir) : fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-bench-'));
  fs.mkdirSync(work, { recursive: true });
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  const ctx: BenchContext = { root, work, node, qemuImg, log };
  const machine = machineFacts(work, qemuImg, node);
  log(`bench: ${runs} counted run(s) after ${warmup} warm-up run(s) per side; images in ${work}`);
  log(`bench: ${Object.entries(machine).map(([k, v]) => `${k}=${v}`).join(', ')}`);

  const results: WorkloadResult[] = [];
  let failed = false;
  const started = Date.now();
  try {
    for (const w of WORKLOADS.filter((x) => selected.has(x.id))) {
      log(`${w.id}: ${w.title}`);
      const result: WorkloadResult = { id: w.id, title: w.title, target: w.target, pairs: [] };
      try {
        for (const pair of w.pairs(ctx)) result.pairs.push(runPair(pair, runs, warmup, log));
      } catch (err) {
        failed = true;
        log(`${w.id}: FAILED: ${(err as Error).message}`);
      } finally {
        if (!values.keep) w.cleanup?.(ctx);
      }
      if (result.pairs.some((p) => p.problems.length)) failed = true;
      results.push(result);
    }
  } finally {
    cleanupRssFile();
    if (!values.keep && !values.dir) fs.rmSync(work, { recursive: true, force: true });
  }

  printResults(results, values.markdown === true);
  const jsonFile = values.json ? path.resolve(values.json) : path.join(root, 'bench', 'results', 'latest.json');
  fs.mkdirSync(path.dirname(jsonFile), { recursive: true });
  const report = {
    date: new Date().toISOString(),
    durationSeconds: Math.round((Date.now() - started) / 1000),
    machine,
    options: { runs, warmup, only: values.only ?? 'all', dir: work },
    workloads: results,
  };
  fs.writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`\nresults: ${path.relative(process.cwd(), jsonFile) || jsonFile}\n`);
  return failed ? 1 : 0;
}

process.exitCode = main();
