/**
 * Runs selected scenarios (optionally several at once, each in its own TEST_DIR), compares each
 * transcript with its expected variant (expected.ts), saves mismatches next to it as `.bad` and,
 * with accept, blesses the actual transcript.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../backends/types.ts';
import { BackendUnsupportedError } from '../backends/types.ts';
import type { FilterDef } from '../filters/types.ts';
import { transcriptDiff } from '../report/compare.ts';
import type { ScenarioResult } from '../report/results.ts';
import type { Scenario } from '../scenario/types.ts';
import type { BackendName } from './backends.ts';
import { acceptTarget, listVariants, selectVariant } from './expected.ts';
import { runInWorkers } from './pool.ts';
import { displayPath } from './project.ts';
import { PathEscapeError, ScenarioRunError, runScenario } from './run-scenario.ts';
import type { RunOutcome, RunSettings } from './run-scenario.ts';

export interface SuiteOptions {
  backend: Backend;
  filters: ReadonlyMap<string, FilterDef>;
  settings: RunSettings;
  expectedDir: string;
  testDirRoot: string;
  accept: boolean;
  jobs: number;
  /** Keep each TEST_DIR after the run (default: removed). */
  keep: boolean;
  /** The QEMU version whose expected variant applies (the backend's, or --qemu-version). */
  qemuVersion: string;
  /** The QEMU version the unversioned expected files are recorded from. */
  referenceVersion: string;
  /** Save a mismatching transcript as `<expected>.bad` (default true). */
  saveBad?: boolean;
  onStart?: (scenario: Scenario) => void;
  onResult?: (result: ScenarioResult, scenario: Scenario) => void;
  /**
   * The backend runs in this process (builtin): with jobs > 1, run the scenarios in that many
   * worker threads, each creating this backend itself (pool.ts), so they really run side by side.
   */
  workerBackend?: BackendName;
}

export function unsuitableReason(scenario: Scenario, settings: RunSettings, backend?: Backend): string | null {
  const { fmt, proto, features } = scenario.requires;
  if (fmt && !fmt.includes(settings.imgfmt)) return `not suitable for this image format: ${settings.imgfmt}`;
  if (proto && !proto.includes(settings.imgproto)) return `not suitable for this image protocol: ${settings.imgproto}`;
  if (features && backend?.features) {
    const have = backend.features();
    const missing = features.filter((f) => !have.includes(f));
    if (missing.length > 0) return `backend ${backend.name} lacks ${missing.length === 1 ? 'feature' : 'features'}: ${missing.join(', ')}`;
  }
  return null;
}

/** One scenario executed, before any comparison. */
export interface Execution {
  status: 'ran' | 'skip' | 'error';
  outcome?: RunOutcome;
  message?: string;
  durationMs: number;
}

export async function executeScenario(scenario: Scenario, opts: Pick<SuiteOptions, 'backend' | 'filters' | 'settings' | 'testDirRoot' | 'keep'>): Promise<Execution> {
  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);
  const skip = unsuitableReason(scenario, opts.settings, opts.backend);
  if (skip) return { status: 'skip', message: skip, durationMs: 0 };
  fs.mkdirSync(opts.testDirRoot, { recursive: true });
  const testDir = fs.mkdtempSync(path.join(opts.testDirRoot, `${scenario.id}-`));
  try {
    const outcome = await runScenario(scenario, { backend: opts.backend, filters: opts.filters, settings: opts.settings, testDir });
    return { status: 'ran', outcome, durationMs: elapsed() };
  } catch (err) {
    if (err instanceof BackendUnsupportedError) return { status: 'skip', message: `backend ${opts.backend.name}: ${err.message}`, durationMs: elapsed() };
    const known = err instanceof PathEscapeError || err instanceof ScenarioRunError;
    return { status: 'error', message: known ? (err as Error).message : err instanceof Error ? err.message : String(err), durationMs: elapsed() };
  } finally {
    if (!opts.keep) fs.rmSync(testDir, { recursive: true, force: true });
  }
}

/** The expected transcript for this run and where it lives (null text: none yet). */
export function expectedFor(scenario: Scenario, opts: Pick<SuiteOptions, 'expectedDir' | 'settings' | 'qemuVersion'>): { file: string; text: string | null; selected: ReturnType<typeof selectVariant> } {
  const selected = selectVariant(listVariants(opts.expectedDir, scenario.id), opts.settings.imgfmt, opts.qemuVersion);
  const file = selected?.file ?? path.join(opts.expectedDir, `${scenario.id}.out`);
  let text: string | null = null;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    text = null;
  }
  return { file, text, selected };
}

export async function runOne(scenario: Scenario, opts: SuiteOptions): Promise<ScenarioResult & { transcript?: string }> {
  const base = { id: scenario.id, title: scenario.title };
  const expected = expectedFor(scenario, opts);
  const badFile = `${expected.file}.bad`;
  const saveBad = opts.saveBad !== false;
  if (saveBad) fs.rmSync(badFile, { force: true });

  const run = await executeScenario(scenario, opts);
  if (run.status === 'skip') return { ...base, status: 'skip', durationMs: run.durationMs, message: run.message! };
  if (run.status === 'error') return { ...base, status: 'error', durationMs: run.durationMs, message: run.message! };
  const outcome = run.outcome!;
  const actual = outcome.transcript;
  const shownExpected = displayPath(expected.file);
  const shownBad = displayPath(badFile);

  if (opts.accept && !outcome.aborted) {
    const target = acceptTarget(opts.expectedDir, scenario.id, expected.selected, opts.qemuVersion, opts.referenceVersion);
    if (expected.text === null || expected.text !== actual) {
      fs.mkdirSync(opts.expectedDir, { recursive: true });
      fs.writeFileSync(target, actual);
      return { ...base, status: 'pass', durationMs: run.durationMs, accepted: true, message: `wrote ${displayPath(target)}`, transcript: actual };
    }
    return { ...base, status: 'pass', durationMs: run.durationMs, transcript: actual };
  }

  const diff = transcriptDiff(expected.text ?? '', actual, shownExpected, shownBad);
  if (expected.text !== null && diff === '' && !outcome.aborted) return { ...base, status: 'pass', durationMs: run.durationMs, transcript: actual };

  if (saveBad) fs.writeFileSync(badFile, actual);
  const message = outcome.aborted
    ? `aborted: ${outcome.aborted}`
    : expected.text === null
      ? `no expected transcript ${shownExpected} (run with --accept to create it)`
      : 'output mismatch';
  return { ...base, status: 'fail', durationMs: run.durationMs, message, diff, ...(saveBad ? { badFile: shownBad } : {}), transcript: actual };
}

/**
 * Runs with at most `jobs` scenarios at a time, starting them in the given order; results come
 * back in that order.
 */
export async function runSuite(scenarios: readonly Scenario[], opts: SuiteOptions): Promise<ScenarioResult[]> {
  if (opts.workerBackend !== undefined && opts.jobs > 1 && scenarios.length > 1) {
    const { backend: _backend, jobs, onStart, onResult, workerBackend, ...suite } = opts;
    const results = await runInWorkers(scenarios, {
      backendName: workerBackend,
      jobs,
      suite,
      ...(onStart ? { onStart } : {}),
      ...(onResult ? { onResult } : {}),
    });
    return results.map(({ transcript: _transcript, ...result }) => result);
  }
  const results: ScenarioResult[] = new Array(scenarios.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < scenarios.length) {
      const i = next++;
      const scenario = scenarios[i]!;
      opts.onStart?.(scenario);
      const { transcript: _transcript, ...result } = await runOne(scenario, opts);
      results[i] = result;
      opts.onResult?.(result, scenario);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.jobs, scenarios.length)) }, worker));
  return results;
}
