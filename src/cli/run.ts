/**
 * `qtest run [ID|glob ...]`: validate the selected scenarios, run them on a backend, compare with
 * expected/, print one line per scenario and a summary. Exit 0 = all passed (or skipped),
 * 1 = some failed, 2 = bad usage, invalid scenario or unusable backend.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import pc from 'picocolors';
import { BackendError } from '../backends/qemu.ts';
import { loadFilterDir } from '../filters/load.ts';
import { colorDiff } from '../report/compare.ts';
import { REPORTERS, renderReport } from '../report/reporters.ts';
import type { ReporterName } from '../report/reporters.ts';
import type { ScenarioResult } from '../report/results.ts';
import { summaryLine } from '../report/results.ts';
import { ValidationError } from '../scenario/location.ts';
import { BACKEND_NAMES, createBackend, qemuProgName } from '../runner/backends.ts';
import type { BackendName } from '../runner/backends.ts';
import { SelectionError, config, loadScenarios, projectPaths, selectIds } from '../runner/project.ts';
import { runSuite } from '../runner/suite.ts';
import { UsageError, parseCommandLine, positiveInt, splitList } from './args.ts';

const USAGE = `Usage: qtest run [options] [ID|glob ...]

Runs scenarios/ID.yaml (all when none given) and compares with expected/ID.out.

Options:
  --backend NAME          builtin or qemu (default: ${config.defaultBackend})
  -g, --group G           only scenarios in group G (repeatable, comma-separated)
  -x, --exclude-group G   skip scenarios in group G (repeatable, comma-separated)
  --accept                write the actual transcripts to expected/ (bless)
  -j, --jobs N            run N scenarios at once, each in its own TEST_DIR
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
  reporter: { type: 'string' },
  output: { type: 'string' },
  keep: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function fail(message: string): number {
  process.stderr.write(`qtest run: ${message}\n`);
  return 2;
}

function formatTime(ms: number): string {
  return `${(ms / 1000).toFixed(2)}s`;
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
  let jobs: number;
  try {
    jobs = positiveInt(values.jobs, '-j/--jobs', 1);
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
  let filters;
  let scenarios;
  try {
    filters = loadFilterDir(paths.filtersDir);
    const ids = selectIds(positionals, paths.scenariosDir);
    if (ids.length === 0) return fail(`no scenarios in ${paths.scenariosDir}`);
    scenarios = loadScenarios(ids, paths.scenariosDir, new Set(filters.keys()));
  } catch (err) {
    if (err instanceof ValidationError || err instanceof SelectionError) return fail(err.message);
    throw err;
  }
  scenarios = scenarios.filter((s) => (include.length === 0 || s.groups.some((g) => include.includes(g))) && !s.groups.some((g) => exclude.includes(g)));
  if (scenarios.length === 0) return fail('no scenario left after group selection');

  let backend;
  let qemuVersion: string;
  try {
    backend = await createBackend(backendName, config);
    qemuVersion = await backend.qemuVersion();
  } catch (err) {
    if (err instanceof BackendError) return fail(err.message);
    throw err;
  }

  const width = Math.max(...scenarios.map((s) => s.id.length));
  const label: Record<ScenarioResult['status'], string> = {
    pass: c.green('pass'),
    fail: c.red('fail'),
    skip: c.yellow('skip'),
    error: c.red(c.bold('error')),
  };
  progress.write(c.dim(`qtest: ${scenarios.length} scenario${scenarios.length === 1 ? '' : 's'}, backend ${backend.name} (QEMU ${qemuVersion}), ${config.imgfmt}/${config.imgproto}\n`));

  const started = performance.now();
  const results = await runSuite(scenarios, {
    backend,
    filters,
    settings: {
      imgfmt: config.imgfmt,
      imgproto: config.imgproto,
      qemuIoOptions: config.qemuIoOptions,
      qemuProgName: qemuProgName(config),
    },
    expectedDir: paths.expectedDir,
    testDirRoot: paths.testDirRoot,
    accept: values.accept === true,
    jobs,
    keep: values.keep === true,
    onResult(result) {
      let line = `${result.id.padEnd(width)}  ${label[result.status]}  ${c.dim(formatTime(result.durationMs).padStart(6))}`;
      if (result.accepted) line += `  ${c.cyan(result.message ?? 'accepted')}`;
      else if (result.message && result.status !== 'pass') line += `  ${result.message}`;
      let block = `${line}\n`;
      if (result.diff) block += `${colorDiff(result.diff.replace(/\n$/, ""), color)}\n`;
      if (result.badFile) block += `${c.dim(`actual transcript saved to ${result.badFile}`)}\n`;
      progress.write(block);
    },
  });
  const durationMs = Math.round(performance.now() - started);
  progress.write(`${summaryLine(results)} ${c.dim(`(${formatTime(durationMs)})`)}\n`);

  if (reporter !== undefined) {
    const report = renderReport(reporter, { backend: backend.name, qemuVersion, results, durationMs });
    if (values.output !== undefined) {
      const target = path.resolve(values.output);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, report);
    } else {
      process.stdout.write(report);
    }
  }
  return results.some((r) => r.status === 'fail' || r.status === 'error') ? 1 : 0;
}
