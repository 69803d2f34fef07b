/**
 * A pool of fuzz worker processes (fuzz/child.ts) with a watchdog. Each worker runs one job
 * at a time. A job that runs longer than the wall-clock limit is a hang: the worker is killed
 * with SIGKILL and replaced. Memory is watched twice: the worker reports its peak RSS after
 * each job, and the parent samples /proc/PID/status while a job runs and kills the worker
 * once it passes the hard limit (so a runaway allocation cannot take the machine down).
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JobMessage, ResultMessage } from './child.ts';
import type { ExerciseResult, Job } from './exercise.ts';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'child.ts');

export interface PoolOptions {
  workers: number;
  /** Wall-clock limit per job; past it the job is a hang. */
  hangMs: number;
  /** A job whose worker's resident set goes past this is killed as a memory blow-up. */
  hardMemoryMiB: number;
  /** A worker whose peak RSS passed this is replaced after its job, so peaks stay per job. */
  softMemoryMiB: number;
}

export type JobOutcome =
  | { kind: 'done'; result: ExerciseResult; cpuMs: number; wallMs: number; maxRssMiB: number }
  | { kind: 'hang'; wallMs: number }
  | { kind: 'memory'; rssMiB: number; wallMs: number }
  | { kind: 'died'; signal: string | null; code: number | null; stderr: string; wallMs: number };

interface Worker {
  proc: ChildProcess;
  ready: Promise<void>;
  busy: boolean;
  stderr: string;
}

/** CPU time a process has used so far (utime + stime from /proc; clock ticks are 10 ms). */
function cpuMsOf(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
}

function rssMiB(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

export class WorkerPool {
  private readonly opts: PoolOptions;
  private readonly idle: Worker[] = [];
  private readonly waiting: Array<(w: Worker) => void> = [];
  private readonly all = new Set<Worker>();
  private nextId = 1;
  private closed = false;
  /** Workers started so far (restarts after hangs, crashes and blow-ups included). */
  started = 0;

  constructor(opts: PoolOptions) {
    this.opts = opts;
    for (let i = 0; i < opts.workers; i++) this.idle.push(this.spawn());
  }

  private spawn(): Worker {
    this.started++;
    const proc = fork(CHILD, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], execArgv: ['--disable-warning=ExperimentalWarning'] });
    const w: Worker = { proc, ready: Promise.resolve(), busy: false, stderr: '' };
    proc.stderr!.on('data', (d: Buffer) => {
      if (w.stderr.length < 20000) w.stderr += d.toString();
    });
    w.ready = new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`fuzz worker exited while starting (${code}): ${w.stderr}`));
      const onMsg = (m: { type?: string }): void => {
        if (m.type === 'ready') {
          proc.off('message', onMsg);
          proc.off('exit', onExit);
          resolve();
        }
      };
      proc.on('message', onMsg);
      proc.once('exit', onExit);
    });
    // Workers killed before they were ready (pool closed, replaced) are no error.
    w.ready.catch(() => {});
    this.all.add(w);
    return w;
  }

  private acquire(): Promise<Worker> {
    const w = this.idle.pop();
    if (w) return Promise.resolve(w);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(w: Worker): void {
    if (this.closed) {
      w.proc.kill('SIGKILL');
      return;
    }
    const next = this.waiting.shift();
    if (next) next(w);
    else this.idle.push(w);
  }

  private replace(w: Worker): Worker {
    this.all.delete(w);
    if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
    return this.spawn();
  }

  /** Run one job on a worker; `fresh` gives it a newly started worker (clean peak RSS). */
  async run(job: Job, fresh = false): Promise<JobOutcome> {
    let w = await this.acquire();
    if (fresh) w = this.replace(w);
    await w.ready;
    const id = this.nextId++;
    const t0 = performance.now();
    w.stderr = '';
    const outcome = await new Promise<JobOutcome>((resolve) => {
      let settled = false;
      const finish = (o: JobOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearInterval(sampler);
        w.proc.off('message', onMessage);
        w.proc.off('exit', onExit);
        resolve(o);
      };
      const onMessage = (m: ResultMessage): void => {
        if (m.type === 'result' && m.id === id) {
          finish({ kind: 'done', result: m.result, cpuMs: m.cpuMs, wallMs: performance.now() - t0, maxRssMiB: m.maxRssMiB });
        }
      };
      const onExit = (code: number | null, signal: string | null): void => {
        // Let stderr drain: the stack of an uncaught exception arrives last.
        setTimeout(() => finish({ kind: 'died', code, signal, stderr: w.stderr, wallMs: performance.now() - t0 }), 50);
      };
      // A hang is hangMs of work: on a busy machine (the CI slice runs beside other tests) a
      // job that is only waiting for a core gets more wall-clock time, up to 5 x hangMs.
      const pid = w.proc.pid ?? 0;
      const cpu0 = cpuMsOf(pid);
      let timer: NodeJS.Timeout;
      const watch = (): void => {
        const wall = performance.now() - t0;
        const cpu = cpu0 === null ? null : (cpuMsOf(pid) ?? 0) - cpu0;
        if (cpu === null || cpu >= this.opts.hangMs || wall >= 5 * this.opts.hangMs) finish({ kind: 'hang', wallMs: wall });
        else timer = setTimeout(watch, 100);
      };
      timer = setTimeout(watch, this.opts.hangMs);
      const sampler = setInterval(() => {
        const rss = w.proc.pid ? rssMiB(w.proc.pid) : null;
        if (rss !== null && rss > this.opts.hardMemoryMiB) finish({ kind: 'memory', rssMiB: rss, wallMs: performance.now() - t0 });
      }, 25);
      w.proc.on('message', onMessage);
      w.proc.once('exit', onExit);
      const msg: JobMessage = { type: 'job', id, job };
      w.proc.send(msg);
    });
    this.release(outcome.kind === 'done' && outcome.maxRssMiB <= this.opts.softMemoryMiB ? w : this.replace(w));
    return outcome;
  }

  /** Replace a worker whose peak RSS no longer tells one job's use (after a big job). */
  async recycle(): Promise<void> {
    const w = await this.acquire();
    this.release(this.replace(w));
  }

  close(): void {
    this.closed = true;
    for (const w of this.all) w.proc.kill('SIGKILL');
    this.all.clear();
    this.idle.length = 0;
  }
}
