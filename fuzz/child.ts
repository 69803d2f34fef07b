/**
 * Worker process of the fuzzer: receives jobs over the IPC channel, runs them one at a time
 * and answers with the result plus its CPU time and peak RSS. The parent kills it (SIGKILL)
 * when a job runs too long or its memory grows too far, and starts a fresh one.
 */
import { setSyncToDisk } from '../src/storage/file.ts';
import { setStrictErrors } from '../src/qcow2/index.ts';
import { exercise } from './exercise.ts';
import type { ExerciseResult, Job } from './exercise.ts';

export interface JobMessage {
  type: 'job';
  id: number;
  job: Job;
}

export interface ResultMessage {
  type: 'result';
  id: number;
  result: ExerciseResult;
  cpuMs: number;
  /** Peak resident set size of this process so far (getrusage ru_maxrss). */
  maxRssMiB: number;
}

// Mutants are scratch files: nobody needs them after a power cut.
setSyncToDisk(false);
// Engine bugs must show as crashes, not as plausible EIO errors.
setStrictErrors(true);

process.on('message', (msg: JobMessage) => {
  if (msg.type !== 'job') return;
  const cpu0 = process.cpuUsage();
  const failed = (err: unknown): ExerciseResult => ({
    ops: [],
    crashes: [{ op: 'exercise', error: String(err), stack: err instanceof Error ? (err.stack ?? '') : '' }],
    builtinCheck: null,
    checkAfterWrite: null,
    notes: [],
  });
  void exercise(msg.job).catch(failed).then((result) => {
    const cpu = process.cpuUsage(cpu0);
    const reply: ResultMessage = {
      type: 'result',
      id: msg.id,
      result,
      cpuMs: (cpu.user + cpu.system) / 1000,
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
    };
    process.send!(reply);
  });
});
process.send!({ type: 'ready' });
