/**
 * What the fuzzer does with one mutant, inside a worker process (fuzz/child.ts) that the
 * parent kills when it takes too long: open it through the block layer, read its header,
 * snapshots and bitmaps (info), walk block status over the whole disk (map), read every
 * cluster, run the engine's check, run the built-in `qemu-img check -f qcow2` (whose exit
 * status is compared with real QEMU's), then write to a copy and check the copy again.
 *
 * Failures the engine or the block layer report as typed errors (ErrnoError and its
 * subclasses, BlockOpenError, OptionsError, PathRefusedError) are expected outcomes; anything
 * else thrown is a crash and is recorded with its stack.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ErrnoError } from '../src/errno.ts';
import { BlockOpenError, OptionsError } from '../src/block/errors.ts';
import { openImage } from '../src/block/open.ts';
import { blockStatusAbove } from '../src/block/status.ts';
import type { BlockBackend } from '../src/block/backend.ts';
import { Qcow2Node } from '../src/block/drivers/qcow2.ts';
import { PathRefusedError } from '../src/tools/context.ts';
import type { OutputSink } from '../src/tools/output.ts';
import { qemuImgMain } from '../src/tools/qemu-img/main.ts';
import { TestDirPathPolicy } from '../src/scenario/paths.ts';
import { CappedText } from './verdict.ts';

export interface Job {
  /** The mutant's directory (main image plus the seed's companions); only read. */
  dir: string;
  main: string;
  /** An empty directory for the write phase's copy; null skips the write phase. */
  writeDir: string | null;
  /** Self-test of the watchdog: misbehave on purpose instead of exercising the image. */
  misbehave?: 'loop' | 'allocate' | 'throw' | 'exit';
}

export interface OpRecord {
  op: string;
  outcome: 'ok' | 'error' | 'crash';
  /** The typed error's message, or the crash's "Name: message". */
  message?: string;
  ms: number;
}

export interface Crash {
  op: string;
  error: string;
  stack: string;
}

export interface ExerciseResult {
  ops: OpRecord[];
  crashes: Crash[];
  /** Exit status of the built-in `qemu-img check -f qcow2` and its output (each stream capped as QEMU's). */
  builtinCheck: { exit: number; output: string; stdout: string; stderr: string } | null;
  /** Exit status of the built-in check on the copy after the write phase. */
  checkAfterWrite: number | null;
  notes: string[];
}

/** Errors the engine and the block layer raise on purpose. */
export function isTypedError(err: unknown): boolean {
  if (err instanceof ErrnoError || err instanceof BlockOpenError || err instanceof OptionsError || err instanceof PathRefusedError) {
    return typeof err.message === 'string';
  }
  return false;
}

function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return `non-Error thrown: ${String(err)}`;
}

/** Most map runs / cluster reads one mutant may cost before they are sampled instead. */
const MAX_MAP_RUNS = 1_000_000;
const MAX_READS = 65536;

class Recorder {
  readonly ops: OpRecord[] = [];
  readonly crashes: Crash[] = [];

  /** Run fn; a typed error is an outcome, anything else a crash. Returns fn's value or null. */
  run<T>(op: string, fn: () => T): T | null {
    const t0 = performance.now();
    try {
      const v = fn();
      this.ops.push({ op, outcome: 'ok', ms: performance.now() - t0 });
      return v;
    } catch (err) {
      const ms = performance.now() - t0;
      if (isTypedError(err)) {
        this.ops.push({ op, outcome: 'error', message: (err as Error).message, ms });
      } else {
        const error = describeError(err);
        this.ops.push({ op, outcome: 'crash', message: error, ms });
        this.crashes.push({ op, error, stack: err instanceof Error ? (err.stack ?? '') : '' });
      }
      return null;
    }
  }
}

function qcow2Node(blk: BlockBackend): Qcow2Node | null {
  return blk.root instanceof Qcow2Node ? blk.root : null;
}

function mapWholeDisk(blk: BlockBackend, notes: string[]): number {
  const size = blk.length();
  let off = 0;
  let runs = 0;
  while (off < size) {
    const st = blockStatusAbove(blk.root, off, size - off);
    if (!(st.status.length > 0)) throw new Error(`block status made no progress at ${off}`);
    off += st.status.length;
    if (++runs >= MAX_MAP_RUNS) {
      notes.push(`map stopped after ${runs} runs at ${off} of ${size}`);
      break;
    }
  }
  return runs;
}

function readEveryCluster(blk: BlockBackend, clusterSize: number, notes: string[]): void {
  const size = blk.length();
  const clusters = Math.ceil(size / clusterSize);
  // Huge (mutated) disks are sampled evenly; the seeds themselves are read whole.
  const stride = clusters > MAX_READS ? Math.ceil(clusters / MAX_READS) : 1;
  if (stride > 1) notes.push(`read sampled every ${stride}th of ${clusters} clusters`);
  const buf = new Uint8Array(clusterSize);
  for (let c = 0; c < clusters; c += stride) {
    const off = c * clusterSize;
    const len = Math.min(clusterSize, size - off);
    blk.read(off, len === clusterSize ? buf : buf.subarray(0, len));
  }
}

/** Keeps the beginning of each stream as bytes (the UTF-8 a process would write), as qemuCheck does for real QEMU. */
class CappedSink implements OutputSink {
  readonly out = new CappedText();
  readonly err = new CappedText();
  stdout(t: string): void {
    this.out.add(Buffer.from(t, 'utf8').toString('latin1'));
  }
  stderr(t: string): void {
    this.err.add(Buffer.from(t, 'utf8').toString('latin1'));
  }
  flushStdout(): void {}
}

function builtinCheck(dir: string, main: string): Promise<{ exit: number; output: string; stdout: string; stderr: string }> {
  const sink = new CappedSink();
  return qemuImgMain(['check', '-f', 'qcow2', main], { out: sink, cwd: dir, env: {} }).then((exit) => ({
    exit,
    output: `${sink.out}${sink.err}`,
    stdout: sink.out.text,
    stderr: sink.err.text,
  }));
}

function copyDir(from: string, to: string): void {
  for (const name of fs.readdirSync(from)) {
    const src = path.join(from, name);
    if (fs.statSync(src).isFile()) fs.copyFileSync(src, path.join(to, name));
  }
}

const NO_FLUSH = { direct: false, noFlush: true, writethrough: false };

function readPhase(job: Job, rec: Recorder, notes: string[]): void {
  const policy = new TestDirPathPolicy(job.dir);
  const blk = rec.run('open', () =>
    openImage({ filename: job.main, format: 'qcow2', readOnly: true, cache: NO_FLUSH }, { cwd: job.dir, pathPolicy: policy }),
  );
  if (!blk) return;
  try {
    const node = qcow2Node(blk);
    if (!node) throw new Error('qcow2 open did not give a qcow2 node');
    const image = node.image;
    rec.run('info', () => {
      const h = image.header;
      void image.snapshots;
      image.listBitmaps();
      blk.getInfo();
      return h;
    });
    rec.run('map', () => mapWholeDisk(blk, notes));
    rec.run('read', () => readEveryCluster(blk, image.clusterSize, notes));
    rec.run('check', () => image.check('none', () => {}));
  } finally {
    rec.run('close', () => blk.close());
  }
}

function writePhase(job: Job, writeDir: string, rec: Recorder): boolean {
  copyDir(job.dir, writeDir);
  const policy = new TestDirPathPolicy(writeDir);
  const blk = rec.run('open-rw', () =>
    openImage({ filename: job.main, format: 'qcow2', readOnly: false, cache: NO_FLUSH }, { cwd: writeDir, pathPolicy: policy }),
  );
  if (!blk) return false;
  try {
    const size = blk.length();
    const cs = qcow2Node(blk)?.image.clusterSize ?? 65536;
    const pattern = (n: number, v: number) => new Uint8Array(n).fill(v);
    // A partial cluster (copy-on-write), a whole cluster in the middle, zeroes and a discard.
    if (size >= 4096) rec.run('write', () => blk.write(512, pattern(3000, 0xa5)));
    const mid = Math.floor(size / 2 / cs) * cs;
    if (mid + cs <= size && mid > 0) {
      rec.run('write-cluster', () => blk.write(mid, pattern(cs, 0x5a)));
      rec.run('write-zeroes', () => blk.writeZeroes(mid, cs, { unmap: true }));
    }
    const last = Math.floor((size - 1) / cs) * cs;
    if (last > mid && last + cs <= size) rec.run('write-compressed', () => blk.writeCompressed(last, pattern(cs, 0x3c)));
    if (size >= 2 * cs) rec.run('discard', () => blk.discard(cs, cs));
    rec.run('flush', () => blk.flush());
  } finally {
    rec.run('close-rw', () => blk.close());
  }
  return true;
}

function misbehave(kind: NonNullable<Job['misbehave']>, rec: Recorder): void {
  switch (kind) {
    case 'loop':
      for (;;);
    case 'allocate': {
      const hold: Uint8Array[] = [];
      for (let i = 0; i < 64; i++) hold.push(new Uint8Array(32 << 20).fill(1));
      (globalThis as { fuzzHold?: unknown }).fuzzHold = hold;
      return;
    }
    case 'throw':
      rec.run('open', () => (null as unknown as { x: number }).x);
      return;
    case 'exit':
      process.exit(3);
  }
}

export async function exercise(job: Job): Promise<ExerciseResult> {
  const rec = new Recorder();
  const notes: string[] = [];
  if (job.misbehave) {
    misbehave(job.misbehave, rec);
    return { ops: rec.ops, crashes: rec.crashes, builtinCheck: null, checkAfterWrite: null, notes };
  }
  readPhase(job, rec, notes);
  const check = await builtinCheck(job.dir, job.main).catch((err: unknown) => {
    rec.crashes.push({ op: 'qemu-img check', error: describeError(err), stack: err instanceof Error ? (err.stack ?? '') : '' });
    return null;
  });
  let checkAfterWrite: number | null = null;
  if (job.writeDir) {
    const wrote = writePhase(job, job.writeDir, rec);
    if (wrote) {
      const again = await builtinCheck(job.writeDir, job.main).catch(() => null);
      checkAfterWrite = again?.exit ?? null;
    }
  }
  return { ops: rec.ops, crashes: rec.crashes, builtinCheck: check, checkAfterWrite, notes };
}
