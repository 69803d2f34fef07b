/**
 * `qtest crosscheck [ID|glob ...]`: every selected scenario on both backends, real QEMU and the
 * built-in engine. The two transcripts are compared with each other and each with the expected
 * variant for its backend's QEMU version. One line per scenario; a coloured diff where they
 * differ; exit 1 on any difference or error, 2 on bad usage or a backend that cannot start.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import pc from 'picocolors';
import { BackendError, createQemuBackend } from '../backends/qemu.ts';
import type { Backend } from '../backends/types.ts';
import { colorDiff, transcriptDiff } from '../report/compare.ts';
import { ValidationError } from '../scenario/location.ts';
import type { Scenario } from '../scenario/types.ts';
import { createBackend } from '../runner/backends.ts';
import { SelectionError, config, displayPath, projectPaths } from '../runner/project.ts';
import { RunState, orderByTiming } from '../runner/state.ts';
import { executeScenario, expectedFor } from '../runner/suite.ts';
import type { Execution } from '../runner/suite.ts';
import { UsageError, parseCommandLine, positiveInt, splitList } from './args.ts';
import { formatTime, runSettings } from './run.ts';
import { checkShard, selectScenarios } from './selection.ts';
import type { Selection } from './selection.ts';

const USAGE = `Usage: qtest crosscheck [options] [ID|glob ...]

Runs each scenario on the qemu and the builtin backend, compares the two transcripts with each
other and each with its expected transcript. Exit 1 when anything differs.

Options:
  -g, --group G           only scenarios in group G (repeatable, comma-separated)
  -x, --exclude-group G   skip scenarios in group G
  -j, --jobs N            check N scenarios at once
  --shard I/N             only the I-th of N round-robin slices of the selection
  --keep                  keep the TEST_DIRs
  -h, --help              show this help

Transcripts that differ are saved as .qtest/crosscheck/ID.qemu.out and ID.builtin.out.
`;

const OPTIONS = {
  group: { type: 'string', short: 'g', multiple: true },
  'exclude-group': { type: 'string', short: 'x', multiple: true },
  jobs: { type: 'string', short: 'j' },
  shard: { type: 'string' },
  keep: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function fail(message: string): number {
  process.stderr.write(`qtest crosscheck: ${message}\n`);
  return 2;
}

type Side = 'qemu' | 'builtin';
/** How one backend's run compares with its expected transcript. */
type Standing = 'expected' | 'differs' | 'no expected' | 'skip' | 'error';

export interface CrossResult {
  id: string;
  verdict: 'same' | 'differs' | 'skip' | 'error';
  standing: Record<Side, Standing>;
  notes: string[];
  diffs: string[];
  durationMs: number;
}

function standing(run: Execution, expectedText: string | null): Standing {
  if (run.status !== 'ran') return run.status;
  if (run.outcome!.aborted) return 'differs';
  if (expectedText === null) return 'no expected';
  return transcriptDiff(expectedText, run.outcome!.transcript, 'a', 'b') === '' ? 'expected' : 'differs';
}

export default async function crosscheck(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseCommandLine(argv, OPTIONS);
  } catch (err) {
    if (err instanceof UsageError) return fail(`${err.message}\n${USAGE}`);
    throw err;
  }
  const { values, positionals } = args;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  let jobs: number;
  try {
    jobs = positiveInt(values.jobs, '-j/--jobs', 1);
    checkShard(values.shard);
  } catch (err) {
    return fail((err as Error).message);
  }
  const color = pc.isColorSupported;
  const c = pc.createColors(color);
  const paths = projectPaths();
  let selection: Selection;
  try {
    selection = selectScenarios(
      { patterns: positionals, include: splitList(values.group), exclude: splitList(values['exclude-group']), rerunFailed: false, ...(values.shard !== undefined ? { shard: values.shard } : {}) },
      paths,
    );
  } catch (err) {
    if (err instanceof ValidationError || err instanceof SelectionError || err instanceof UsageError) return fail(err.message);
    throw err;
  }
  if (selection.scenarios.length === 0) return fail('no scenario selected');

  const backends = {} as Record<Side, Backend>;
  const versions = {} as Record<Side, string>;
  try {
    backends.qemu = createQemuBackend(config.qemu);
    backends.builtin = await createBackend('builtin', config);
    for (const side of ['qemu', 'builtin'] as const) versions[side] = await backends[side].qemuVersion();
  } catch (err) {
    if (err instanceof BackendError) return fail(err.message);
    throw err;
  }

  const settings = runSettings();
  const saveDir = path.join(paths.stateDir, 'crosscheck');
  const width = Math.max(...selection.scenarios.map((s) => s.id.length));
  process.stdout.write(c.dim(`qtest crosscheck: ${selection.scenarios.length} scenario${selection.scenarios.length === 1 ? '' : 's'}, qemu (QEMU ${versions.qemu}) vs builtin (QEMU ${versions.builtin}), ${config.imgfmt}/${config.imgproto}\n`));

  async function check(scenario: Scenario): Promise<CrossResult> {
    const started = performance.now();
    const runs = {} as Record<Side, Execution>;
    const [q, b] = await Promise.all(
      (['qemu', 'builtin'] as const).map((side) => executeScenario(scenario, { backend: backends[side], filters: selection.filters, settings, testDirRoot: paths.testDirRoot, keep: values.keep === true })),
    );
    runs.qemu = q!;
    runs.builtin = b!;
    const expected = {} as Record<Side, ReturnType<typeof expectedFor>>;
    for (const side of ['qemu', 'builtin'] as const) expected[side] = expectedFor(scenario, { expectedDir: paths.expectedDir, settings, qemuVersion: versions[side] });
    const st = { qemu: standing(runs.qemu, expected.qemu.text), builtin: standing(runs.builtin, expected.builtin.text) };
    const notes: string[] = [];
    const diffs: string[] = [];
    for (const side of ['qemu', 'builtin'] as const) {
      const r = runs[side];
      if (r.status !== 'ran') notes.push(`${side}: ${r.message}`);
      else if (r.outcome!.aborted) notes.push(`${side}: aborted: ${r.outcome!.aborted}`);
    }
    let verdict: CrossResult['verdict'];
    if (runs.qemu.status === 'error' || runs.builtin.status === 'error') verdict = 'error';
    else if (runs.qemu.status === 'skip' && runs.builtin.status === 'skip') verdict = 'skip';
    else if (runs.qemu.status !== 'ran' || runs.builtin.status !== 'ran') verdict = 'skip';
    else {
      const qt = runs.qemu.outcome!.transcript;
      const bt = runs.builtin.outcome!.transcript;
      const between = transcriptDiff(qt, bt, `${scenario.id} on qemu (QEMU ${versions.qemu})`, `${scenario.id} on builtin`);
      if (between !== '') diffs.push(between);
      for (const side of ['qemu', 'builtin'] as const) {
        const e = expected[side];
        if (st[side] === 'differs' && !(side === 'builtin' && between !== '' && st.qemu === 'expected')) {
          diffs.push(transcriptDiff(e.text ?? '', runs[side].outcome!.transcript, displayPath(e.file), `${scenario.id} on ${side}`));
        }
      }
      verdict = between === '' && st.qemu === 'expected' && st.builtin === 'expected' ? 'same' : 'differs';
      if (verdict === 'differs') {
        fs.mkdirSync(saveDir, { recursive: true });
        fs.writeFileSync(path.join(saveDir, `${scenario.id}.qemu.out`), qt);
        fs.writeFileSync(path.join(saveDir, `${scenario.id}.builtin.out`), bt);
        notes.push(`transcripts saved in ${displayPath(saveDir)}/${scenario.id}.{qemu,builtin}.out`);
      }
    }
    return { id: scenario.id, verdict, standing: st, notes, diffs, durationMs: Math.round(performance.now() - started) };
  }

  const label: Record<CrossResult['verdict'], string> = { same: c.green('same   '), differs: c.red('differs'), skip: c.yellow('skip   '), error: c.red(c.bold('error  ')) };
  const show = (s: Standing): string => (s === 'expected' ? c.green(s) : s === 'skip' ? c.yellow(s) : c.red(s));
  const results: CrossResult[] = [];
  const ordered = orderByTiming(selection.scenarios, new RunState(paths.stateDir).timings('qemu'), jobs);
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < ordered.length) {
      const r = await check(ordered[next++]!);
      results.push(r);
      let block = `${r.id.padEnd(width)}  ${label[r.verdict]}  qemu=${show(r.standing.qemu)} builtin=${show(r.standing.builtin)}  ${c.dim(formatTime(r.durationMs))}\n`;
      for (const n of r.notes) block += `${c.dim(`  ${n}`)}\n`;
      for (const d of r.diffs) block += `${colorDiff(d.replace(/\n$/, ''), color)}\n`;
      process.stdout.write(block);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, ordered.length) }, worker));
  const count = (v: CrossResult['verdict']): number => results.filter((r) => r.verdict === v).length;
  let summary = `${count('same')} same, ${count('differs')} differ`;
  if (count('error') > 0) summary += `, ${count('error')} errored`;
  if (count('skip') > 0) summary += `, ${count('skip')} skipped`;
  process.stdout.write(`${summary} ${c.dim(`(${formatTime(Math.round(performance.now() - started))})`)}\n`);
  return count('differs') + count('error') > 0 ? 1 : 0;
}
