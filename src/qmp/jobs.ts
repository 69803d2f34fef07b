/**
 * Block jobs as QMP shows them (job.c): a status machine whose every transition is a
 * JOB_STATUS_CHANGE event, verbs allowed only in some states, and the JobInfo of query-jobs.
 */
import type { JsonObject } from './json.ts';
import { QmpError } from './qapi.ts';

export type JobStatus =
  | 'undefined'
  | 'created'
  | 'running'
  | 'paused'
  | 'ready'
  | 'standby'
  | 'waiting'
  | 'pending'
  | 'aborting'
  | 'concluded'
  | 'null';

export type JobVerb = 'cancel' | 'pause' | 'resume' | 'set-speed' | 'complete' | 'finalize' | 'dismiss';

/** job.c's JobVerbTable: the states in which each verb is accepted. */
const verbStates: Record<JobVerb, readonly JobStatus[]> = {
  cancel: ['created', 'running', 'paused', 'ready', 'standby', 'waiting', 'pending', 'aborting'],
  pause: ['created', 'running', 'paused', 'ready', 'standby', 'waiting', 'pending', 'aborting'],
  resume: ['created', 'running', 'paused', 'ready', 'standby', 'waiting', 'pending', 'aborting'],
  'set-speed': ['created', 'running', 'paused', 'ready', 'standby', 'waiting', 'pending', 'aborting'],
  complete: ['ready'],
  finalize: ['pending'],
  dismiss: ['concluded'],
};

export class Job {
  readonly id: string;
  readonly type: string;
  status: JobStatus = 'undefined';
  currentProgress = 0n;
  totalProgress = 1n;
  error: string | undefined;
  private readonly onStatus: (job: Job) => void;

  constructor(id: string, type: string, onStatus: (job: Job) => void) {
    this.id = id;
    this.type = type;
    this.onStatus = onStatus;
  }

  transition(status: JobStatus): void {
    this.status = status;
    this.onStatus(this);
  }

  checkVerb(verb: JobVerb): void {
    if (!verbStates[verb].includes(this.status)) {
      throw new QmpError(`Job '${this.id}' in state '${this.status}' cannot accept command verb '${verb}'`);
    }
  }

  /** JobInfo, members inserted in QAPI order (the writer applies QDict order). */
  info(): JsonObject {
    const m: JsonObject = new Map();
    m.set('id', this.id);
    m.set('type', this.type);
    m.set('status', this.status);
    m.set('current-progress', this.currentProgress);
    m.set('total-progress', this.totalProgress);
    if (this.error !== undefined) m.set('error', this.error);
    return m;
  }
}

/** The jobs of one QEMU process, newest first as query-jobs lists them. */
export class JobList {
  private jobs: Job[] = [];

  add(job: Job): void {
    if (this.jobs.some((j) => j.id === job.id)) throw new QmpError(`Job ID '${job.id}' already in use`);
    this.jobs.unshift(job);
  }

  find(id: string): Job {
    const job = this.jobs.find((j) => j.id === id);
    if (!job) throw new QmpError('Job not found');
    return job;
  }

  remove(job: Job): void {
    this.jobs = this.jobs.filter((j) => j !== job);
  }

  all(): readonly Job[] {
    return this.jobs;
  }
}
