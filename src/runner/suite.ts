/**
 * Runs selected scenarios (optionally several at once, each in its own TEST_DIR), compares each
 * transcript with expected/NNN.out, saves mismatches as expected/NNN.out.bad and, with accept,
 * blesses the actual transcript.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../backends/types.ts';
import type { FilterDef } from '../filters/types.ts';
import { transcriptDiff } from '../report/compare.ts';
import type { ScenarioResult } from '../report/results.ts';
import type { Scenario } from '../scenario/types.ts';
import { displayPath } from './project.ts';
import { PathEscapeError, runScenario } from './run-scenario.ts';
import type { RunSettings } from './run-scenario.ts';

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
  onStart?: (scenario: Scenario) => void;
  onResult?: (result: ScenarioResult, scenario: Scenario) => void;
}

export function unsuitableReason(scenario: Scenario, settings: RunSettings): string | null {
  const { fmt, proto } = scenario.requires;
  if (fmt && !fmt.includes(settings.imgfmt)) return `not suitable for this image format: ${settings.imgfmt}`;
  if (proto && !proto.includes(settings.imgproto)) return `not suitable for this image protocol: ${settings.imgproto}`;
  return null;
}

export async function runOne(scenario: Scenario, opts: SuiteOptions): Promise<ScenarioResult> {
  const started = performance.now();
  const base = { id: scenario.id, title: scenario.title };
  const elapsed = (): number => Math.round(performance.now() - started);
  const skip = unsuitableReason(scenario, opts.settings);
  if (skip) return { ...base, status: 'skip', durationMs: 0, message: skip };

  const expectedFile = path.join(opts.expectedDir, `${scenario.id}.out`);
  const badFile = `${expectedFile}.bad`;
  fs.rmSync(badFile, { force: true });

  fs.mkdirSync(opts.testDirRoot, { recursive: true });
  const testDir = fs.mkdtempSync(path.join(opts.testDirRoot, `${scenario.id}-`));
  let outcome;
  try {
    outcome = await runScenario(scenario, { backend: opts.backend, filters: opts.filters, settings: opts.settings, testDir });
  } catch (err) {
    const message = err instanceof PathEscapeError ? err.message : `${err instanceof Error ? err.message : String(err)}`;
    return { ...base, status: 'error', durationMs: elapsed(), message };
  } finally {
    if (!opts.keep) fs.rmSync(testDir, { recursive: true, force: true });
  }

  const actual = outcome.transcript;
  let expected: string | null = null;
  try {
    expected = fs.readFileSync(expectedFile, 'utf8');
  } catch {
    expected = null;
  }
  const shownExpected = displayPath(expectedFile);
  const shownBad = displayPath(badFile);

  if (opts.accept && !outcome.aborted) {
    if (expected === null || expected !== actual) {
      fs.mkdirSync(opts.expectedDir, { recursive: true });
      fs.writeFileSync(expectedFile, actual);
      return { ...base, status: 'pass', durationMs: elapsed(), accepted: true, message: `wrote ${shownExpected}` };
    }
    return { ...base, status: 'pass', durationMs: elapsed() };
  }

  const diff = transcriptDiff(expected ?? '', actual, shownExpected, shownBad);
  if (expected !== null && diff === '' && !outcome.aborted) return { ...base, status: 'pass', durationMs: elapsed() };

  fs.writeFileSync(badFile, actual);
  const message = outcome.aborted
    ? `aborted: ${outcome.aborted}`
    : expected === null
      ? `no expected transcript ${shownExpected} (run with --accept to create it)`
      : 'output mismatch';
  return { ...base, status: 'fail', durationMs: elapsed(), message, diff, badFile: shownBad };
}

/** Runs with at most `jobs` scenarios at a time; results come back in selection order. */
export async function runSuite(scenarios: readonly Scenario[], opts: SuiteOptions): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = new Array(scenarios.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < scenarios.length) {
      const i = next++;
      const scenario = scenarios[i]!;
      opts.onStart?.(scenario);
      const result = await runOne(scenario, opts);
      results[i] = result;
      opts.onResult?.(result, scenario);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.jobs, scenarios.length)) }, worker));
  return results;
}
