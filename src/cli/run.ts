/**
 * `qtest run [ID|glob ...]`: validate the selected scenarios, run them on a backend, compare with
 * expected/, print one line per scenario and a summary. Exit 0 = all passed (or skipped),
 * 1 = some failed, 2 = bad usage, invalid scenario, a scenario that could not run as written
 * (error) or unusable backend.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import pc from 'picocolors';
import { BackendError } from '../backends/qemu.ts';
import type { Backend } from '../backends/types.ts';
import { colorDiff } from '../report/compare.ts';
import { REPORTERS, renderReport } from '../report/reporters.ts';
import type { ReporterName } from '../report/reporters.ts';
import type { ScenarioResult } from '../report/results.ts';
import { notRunLine, summaryLine } from '../report/results.ts';
import { ValidationError } from '../scenario/location.ts';
import type { Scenario } from '../scenario/types.ts';
import { BACKEND_NAMES, IN_PROCESS_BACKENDS, createBackend, qemuProgName } from '../runner/backends.ts';
import type { BackendName } from '../runner/backends.ts';
import { parseVersion } from '../runner/expected.ts';
import { SelectionError, config, loadScenarios, projectPaths } from '../runner/project.ts';
import type { RunSettings } from '../runner/run-scenario.ts';
import { RunState, orderByTiming } from '../runner/state.ts';
import { runSuite } from '../runner/suite.ts';
import { UsageError, parseCommandLine, positiveInt, splitList } from './args.ts';
import { checkShard, selectScenarios } from './selection.ts';
import { watchScenarios } from './watch.ts';

const USAGE = `Usage: qtest run [options] [ID|glob ...]

Runs scenarios/ID.yaml (all when none given) and compares with expected/ID.out (or the variant
for the image format and QEMU version, see README).

Options:
  --backend NAME          builtin or qemu (default: ${config.defaultBackend})
  -g, --group G           only scenarios in group G (repeatable, comma-separated)
  -x, --exclude-group G   skip scenarios in group G (repeatable, comma-separated)
  --accept                write the actual transcripts to expected/ (bless)
  -j, --jobs N            run N scenarios at once, each in its own TEST_DIR (slowest first)
  --qemu-version X.Y      builtin backend: compare with the expected variant for QEMU X.Y
  --rerun-failed          run the scenarios that failed or errored in the last run
  --shard I/N             only the I-th of N round-robin slices of the selection (CI matrices)
  --watch                 after the run, rerun a scenario whenever it or its expected file changes
  --reporter FORMAT       also write a json, junit or tap report
  --output FILE           where the report goes (default: stdout; progress then goes to stderr)
  --keep                  keep each scenario's TEST_DIR under ${config.testDirRoot}
  -h, --help              show this help
`;

const OPTIONS = {
  backend: { type: 'string' },
  group: { type: 'string', short: 'g', multiple: true },
  'exclude-group': { type: 'string', short: 'x', multiple: true },
  accept: { type: 'boolean' },
  jobs: { type: 'string', short: 'j' },
  'qemu-version': { type: 'string' },
  'rerun-failed': { type: 'boolean' },
  shard: { type: 'string' },
  watch: { type: 'boolean' },
  reporter: { type: 'string' },
  output: { type: 'string' },
  keep: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function fail(message: string): number {
  process.stderr.write(`qtest run: ${message}\n`);
  return 2;
}

export function formatTime(ms: number): string {
  return `${(ms / 1000).toFixed(2)}s`;
}

export function runSettings(): RunSettings {
  return { imgfmt: config.imgfmt, imgproto: config.imgproto, qemuIoOptions: config.qemuIoOptions, qemuProgName: qemuProgName(config) };
}

export default async function run(argv: string[]): Promise<number> {
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

  const backendName = (values.backend ?? config.defaultBackend) as BackendName;
  if (!BACKEND_NAMES.includes(backendName)) return fail(`unknown backend '${values.backend}' (choose ${BACKEND_NAMES.join(' or ')})`);
  let reporter: ReporterName | undefined;
  if (values.reporter !== undefined) {
    if (!(REPORTERS as readonly string[]).includes(values.reporter)) return fail(`unknown reporter '${values.reporter}' (choose ${REPORTERS.join(', ')})`);
    reporter = values.reporter as ReporterName;
  }
  if (values.output !== undefined && reporter === undefined) return fail('--output needs --reporter');
  const qemuVersionOption = values['qemu-version'];
  if (qemuVersionOption !== undefined) {
    if (!parseVersion(qemuVersionOption)) return fail(`--qemu-version needs a version such as 7.2 or 8.2.1, got '${qemuVersionOption}'`);
    if (backendName !== 'builtin') return fail('--qemu-version is for the builtin backend; the qemu backend compares with the variant for its own version');
  }
  if (values.watch && values.accept) return fail('--watch and --accept do not go together (a blessed file would trigger its own rerun)');
  if (values.watch && reporter !== undefined) return fail('--watch writes no reports; leave out --reporter');
  let jobs: number;
  try {
    jobs = positiveInt(values.jobs, '-j/--jobs', 1);
    checkShard(values.shard);
  } catch (err) {
    return fail((err as Error).message);
  }
  const include = splitList(values.group);
  const exclude = splitList(values['exclude-group']);

  // Progress goes to stderr when the report itself is printed on stdout.
  const progress = reporter !== undefined && values.output === undefined ? process.stderr : process.stdout;
  const color = progress === process.stdout ? pc.isColorSupported : Boolean(process.stderr.isTTY) && pc.isColorSupported;
  const c = pc.createColors(color);

  const paths = projectPaths();
  const state = new RunState(paths.stateDir);
  let selection;
  try {
    selection = selectScenarios({ patterns: positionals, include, exclude, rerunFailed: values['rerun-failed'] === true, ...(values.shard !== undefined ? { shard: values.shard } : {}) }, paths);
  } catch (err) {
    if (err instanceof ValidationError || err instanceof SelectionError || err instanceof UsageError) return fail(err.message);
    throw err;
  }
  if (selection.nothingFailed) {
    progress.write('nothing failed in the last run; nothing to rerun\n');
    return 0;
  }
  if (selection.scenarios.length === 0) {
    if (positionals.length === 0 && include.length === 0 && exclude.length === 0 && values.shard === undefined) return fail(`no scenarios in ${paths.scenariosDir}`);
    return fail(values.shard !== undefined ? `shard ${values.shard} is empty` : 'no scenario left after group selection');
  }

  let backend: Backend;
  let backendVersion: string;
  try {
    backend = await createBackend(backendName, config);
    backendVersion = await backend.qemuVersion();
  } catch (err) {
    if (err instanceof BackendError) return fail(err.message);
    throw err;
  }
  const qemuVersion = qemuVersionOption ?? backendVersion;

  const label: Record<ScenarioResult['status'], string> = {
    pass: c.green('pass'),
    fail: c.red('fail'),
    skip: c.yellow('skip'),
    error: c.red(c.bold('error')),
  };
  const settings = runSettings();
  const suiteBase = {
    backend,
    filters: selection.filters,
    settings,
    expectedDir: paths.expectedDir,
    testDirRoot: paths.testDirRoot,
    accept: values.accept === true,
    keep: values.keep === true,
    qemuVersion,
    referenceVersion: config.referenceQemu,
    ...(IN_PROCESS_BACKENDS.includes(backendName) ? { workerBackend: backendName } : {}),
  };

  async function runBatch(scenarios: readonly Scenario[], batchJobs: number): Promise<{ results: ScenarioResult[]; durationMs: number }> {
    const width = Math.max(...scenarios.map((s) => s.id.length));
    const versionNote = qemuVersionOption !== undefined ? `, expected for QEMU ${qemuVersionOption}` : '';
    progress.write(c.dim(`qtest: ${scenarios.length} scenario${scenarios.length === 1 ? '' : 's'}, backend ${backend.name} (QEMU ${backendVersion}${versionNote}), ${config.imgfmt}/${config.imgproto}\n`));
    const ordered = orderByTiming(scenarios, state.timings(backend.name), batchJobs);
    const started = performance.now();
    const results = await runSuite(ordered, {
      ...suiteBase,
      jobs: batchJobs,
      onResult(result) {
        let line = `${result.id.padEnd(width)}  ${label[result.status]}  ${c.dim(formatTime(result.durationMs).padStart(6))}`;
        if (result.accepted) line += `  ${c.cyan(result.message ?? 'accepted')}`;
        else if (result.message && result.status !== 'pass') line += `  ${result.message}`;
        let block = `${line}\n`;
        if (result.diff) block += `${colorDiff(result.diff.replace(/\n$/, ''), color)}\n`;
        if (result.badFile) block += `${c.dim(`actual transcript saved to ${result.badFile}`)}\n`;
        progress.write(block);
      },
    });
    const durationMs = Math.round(performance.now() - started);
    // Reports and the state list scenarios in selection order, whatever order they ran in.
    const byId = new Map(results.map((r) => [r.id, r]));
    const inOrder = scenarios.map((s) => byId.get(s.id)!);
    progress.write(`${summaryLine(inOrder)} ${c.dim(`(${formatTime(durationMs)})`)}\n`);
    const notRun = notRunLine(inOrder);
    if (notRun) progress.write(`${c.yellow(notRun)}\n`);
    state.record(backend.name, inOrder);
    return { results: inOrder, durationMs };
  }

  const { results, durationMs } = await runBatch(selection.scenarios, jobs);

  if (reporter !== undefined) {
    const report = renderReport(reporter, { backend: backend.name, qemuVersion: backendVersion, results, durationMs });
    if (values.output !== undefined) {
      const target = path.resolve(values.output);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, report);
    } else {
      process.stdout.write(report);
    }
  }

  if (values.watch) {
    return watchScenarios({
      ids: selection.scenarios.map((s) => s.id),
      patterns: positionals,
      scenariosDir: paths.scenariosDir,
      expectedDir: paths.expectedDir,
      log: (text) => progress.write(text),
      async rerun(ids) {
        let scenarios: Scenario[];
        try {
          scenarios = loadScenarios(ids, paths.scenariosDir, new Set(selection.filters.keys()));
        } catch (err) {
          if (err instanceof ValidationError) {
            progress.write(`${c.red(err.message)}\n`);
            return;
          }
          throw err;
        }
        await runBatch(scenarios, jobs);
      },
    });
  }
  // A scenario that could not run as written (a refused path, a runaway loop, a bad number)
  // is a broken scenario, not a failed test: exit 2, as for one that does not validate.
  if (results.some((r) => r.status === 'error')) return 2;
  return results.some((r) => r.status === 'fail') ? 1 : 0;
}
