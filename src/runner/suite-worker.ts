/**
 * One worker thread of an in-process backend's `-j N` pool (pool.ts): it creates its own
 * backend, then runs the scenarios the main thread hands it one at a time and posts each
 * result back. The builtin engine is synchronous, CPU-bound code; on the main thread's single
 * event loop two "parallel" scenarios would only take turns.
 */
import { parentPort, workerData } from 'node:worker_threads';
import config from '../../runner.config.ts';
import { createBackend } from './backends.ts';
import type { PoolRequest, PoolResponse, PoolWorkerData } from './pool.ts';
import { runOne } from './suite.ts';

const data = workerData as PoolWorkerData;
const port = parentPort!;

const backendReady = createBackend(data.backendName, config);

port.on('message', (request: PoolRequest) => {
  void (async () => {
    let response: PoolResponse;
    try {
      const backend = await backendReady;
      const { transcript, ...result } = await runOne(request.scenario, { ...data.suite, backend, jobs: 1 });
      response = { index: request.index, result, ...(data.wantTranscript && transcript !== undefined ? { transcript } : {}) };
    } catch (err) {
      response = { index: request.index, crash: err instanceof Error ? (err.stack ?? err.message) : String(err) };
    }
    port.postMessage(response);
  })();
});
