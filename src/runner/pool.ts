/**
 * `-j N` for an in-process backend: N worker threads (suite-worker.ts), each with its own
 * backend, run the scenarios; the main thread hands them out in order (slowest first, see
 * state.ts) and reports results as they come. Scenarios and filters are plain data and cross
 * the thread boundary by structured clone.
 */
import { Worker } from 'node:worker_threads';
import type { ScenarioResult } from '../report/results.ts';
import type { Scenario } from '../scenario/types.ts';
import type { BackendName } from './backends.ts';
import type { SuiteOptions } from './suite.ts';

export type PoolSuiteOptions = Omit<SuiteOptions, 'backend' | 'jobs' | 'onStart' | 'onResult'>;

export interface PoolWorkerData {
  backendName: BackendName;
  suite: PoolSuiteOptions;
  wantTranscript: boolean;
}

export interface PoolRequest {
  index: number;
  scenario: Scenario;
}

export type PoolResponse = { index: number; result: ScenarioResult; transcript?: string } | { index: number; crash: string };

export interface PoolOptions {
  backendName: BackendName;
  jobs: number;
  suite: PoolSuiteOptions;
  /** Also send back each transcript (crosscheck compares them). */
  wantTranscript?: boolean;
  onStart?: (scenario: Scenario) => void;
  onResult?: (result: ScenarioResult & { transcript?: string }, scenario: Scenario) => void;
}

const WORKER_URL = new URL('./suite-worker-boot.js', import.meta.url);

export async function runInWorkers(scenarios: readonly Scenario[], opts: PoolOptions): Promise<(ScenarioResult & { transcript?: string })[]> {
  const results: (ScenarioResult & { transcript?: string })[] = new Array(scenarios.length);
  if (scenarios.length === 0) return results;
  const workerData: PoolWorkerData = { backendName: opts.backendName, suite: opts.suite, wantTranscript: opts.wantTranscript === true };
  let next = 0;
  let done = 0;

  return new Promise((resolve) => {
    const finish = (index: number, result: ScenarioResult & { transcript?: string }): void => {
      if (results[index]) return;
      results[index] = result;
      done++;
      opts.onResult?.(result, scenarios[index]!);
    };

    const spawn = (): void => {
      const worker = new Worker(WORKER_URL, { workerData });
      let busy: number | null = null;
      const feed = (): void => {
        if (next >= scenarios.length) {
          busy = null;
          void worker.terminate();
          if (done === scenarios.length) resolve(results);
          return;
        }
        busy = next++;
        opts.onStart?.(scenarios[busy]!);
        worker.postMessage({ index: busy, scenario: scenarios[busy]! } satisfies PoolRequest);
      };
      worker.on('message', (msg: PoolResponse) => {
        const s = scenarios[msg.index]!;
        if ('crash' in msg) finish(msg.index, { id: s.id, title: s.title, status: 'error', durationMs: 0, message: `worker: ${msg.crash}` });
        else finish(msg.index, msg.transcript !== undefined ? { ...msg.result, transcript: msg.transcript } : msg.result);
        feed();
      });
      // A worker that dies takes only its current scenario with it; a new one carries on.
      const lost = (why: string): void => {
        if (busy === null) return;
        const s = scenarios[busy]!;
        finish(busy, { id: s.id, title: s.title, status: 'error', durationMs: 0, message: `worker thread ${why}` });
        busy = null;
        if (next < scenarios.length) spawn();
        else if (done === scenarios.length) resolve(results);
      };
      worker.on('error', (err) => lost(`failed: ${err.stack ?? err.message}`));
      worker.on('exit', (code) => lost(`exited with code ${code}`));
      feed();
    };

    for (let i = 0; i < Math.min(opts.jobs, scenarios.length); i++) spawn();
  });
}
