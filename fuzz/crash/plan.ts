/**
 * Crash-consistency trials: what a trial does (a pure function of its seed, shared by the
 * writer process and the verifying parent) and what the guest disk must look like afterwards.
 *
 * Each op writes bytes that depend on the op and the position (so data found at the wrong
 * place or from the wrong op shows), and the model answers, for every byte, which values are
 * acceptable after a crash: the value as of the last acknowledged flush, or the value of any
 * later operation that may have reached the disk.
 */
import { rng } from '../rng.ts';

export type CrashMode = 'plain' | 'data-file' | 'backing' | 'compressed' | 'snapshot';
export const CRASH_MODES: readonly CrashMode[] = ['plain', 'data-file', 'backing', 'compressed', 'snapshot'];

export type Op =
  | { kind: 'write'; offset: number; length: number; tag: number }
  | { kind: 'zero'; offset: number; length: number; unmap: boolean }
  | { kind: 'discard'; offset: number; length: number }
  | { kind: 'compress'; offset: number; length: number; tag: number }
  | { kind: 'flush' }
  | { kind: 'snapshot'; name: string };

export interface TrialPlan {
  seed: number;
  mode: CrashMode;
  clusterSize: number;
  refcountBits: number;
  extendedL2: boolean;
  size: number;
  ops: Op[];
  /**
   * Where the writer kills itself: before its Nth write-like call to a storage (a precise
   * point inside an operation). null: the parent kills it at a random wall-clock moment.
   */
  selfKillAtCall: number | null;
}

const M = 1 << 20;

/** The byte op `tag` writes at guest position `pos`. */
export function opByte(tag: number, pos: number): number {
  return (tag * 37 + Math.floor(pos / 512) * 11 + 1) & 0xff;
}

/** The backing file's contents (mode "backing"). */
export function backingByte(pos: number): number {
  return (Math.floor(pos / 512) * 7 + 0x5a) & 0xff;
}

export function fillOp(tag: number, offset: number, length: number): Uint8Array {
  const b = new Uint8Array(length);
  for (let i = 0; i < length; i++) b[i] = opByte(tag, offset + i);
  return b;
}

export function planTrial(seed: number, forceMode?: CrashMode): TrialPlan {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  // The mode is drawn even when forced, so that forcing it changes nothing else.
  const drawn = pick(CRASH_MODES);
  const mode = forceMode ?? drawn;
  const clusterSize = pick([512, 4096, 4096, 16384, 65536, 65536]);
  const refcountBits = pick([16, 16, 16, 64, 8]);
  const extendedL2 = mode !== 'compressed' && clusterSize >= 16384 && r() < 0.3;
  const size = 8 * M;
  const ops: Op[] = [];
  const count = 150 + Math.floor(r() * 250);
  const touched = new Set<number>();
  const clusters = size / clusterSize;
  let tag = 1;
  let snapshots = 0;
  for (let i = 0; i < count; i++) {
    const k = r();
    if (k < 0.1) {
      ops.push({ kind: 'flush' });
      continue;
    }
    if (mode === 'snapshot' && k < 0.14 && snapshots < 6) {
      // A guest (savevm) flushes before the snapshot is taken.
      ops.push({ kind: 'flush' });
      ops.push({ kind: 'snapshot', name: `s${++snapshots}` });
      continue;
    }
    if (mode === 'compressed' && k < 0.35) {
      // Compressed writes go to clusters nothing has touched (QEMU refuses others).
      const free: number[] = [];
      for (let c = 0; c < clusters; c++) if (!touched.has(c)) free.push(c);
      if (free.length) {
        const c = pick(free);
        touched.add(c);
        ops.push({ kind: 'compress', offset: c * clusterSize, length: clusterSize, tag: tag++ });
        continue;
      }
    }
    const q = r();
    let offset: number;
    let length: number;
    if (q < 0.5) {
      // Unaligned: copy-on-write of partial clusters, sub-cluster allocation with extended L2.
      offset = Math.floor(r() * size);
      length = 1 + Math.floor(r() * Math.min(3 * clusterSize, 70000));
    } else {
      offset = Math.floor(r() * clusters) * clusterSize;
      length = (1 + Math.floor(r() * 3)) * clusterSize;
    }
    length = Math.min(length, size - offset);
    for (let c = Math.floor(offset / clusterSize); c * clusterSize < offset + length; c++) touched.add(c);
    const w = r();
    if (w < 0.75) ops.push({ kind: 'write', offset, length, tag: tag++ });
    else if (w < 0.9) ops.push({ kind: 'zero', offset, length, unmap: r() < 0.5 });
    else ops.push({ kind: 'discard', offset, length });
  }
  ops.push({ kind: 'flush' });
  // Half the trials kill at a precise storage call. A run makes about one write-like call per
  // operation (three with 512-byte clusters), so this lands in the run most of the time.
  const selfKillAtCall = r() < 0.5 ? 1 + Math.floor(r() * count * (clusterSize === 512 ? 3 : 1.3)) : null;
  return { seed, mode, clusterSize, refcountBits, extendedL2, size, ops, selfKillAtCall };
}

/** Guest contents before any op: the backing file's, or zeroes. */
export function initialDisk(plan: TrialPlan): Uint8Array {
  const d = new Uint8Array(plan.size);
  if (plan.mode === 'backing') for (let i = 0; i < d.length; i++) d[i] = backingByte(i);
  return d;
}

/** The whole clusters inside [offset, offset+length): what a discard affects. */
export function discardRange(plan: TrialPlan, offset: number, length: number): [number, number] | null {
  const cs = plan.clusterSize;
  const start = Math.ceil(offset / cs) * cs;
  const end = Math.floor((offset + length) / cs) * cs;
  return end > start ? [start, end] : null;
}

/** Apply op to a disk image in memory (snapshots and flushes change nothing). */
export function applyOp(plan: TrialPlan, disk: Uint8Array, op: Op): void {
  switch (op.kind) {
    case 'write':
    case 'compress':
      for (let i = 0; i < op.length; i++) disk[op.offset + i] = opByte(op.tag, op.offset + i);
      break;
    case 'zero':
      disk.fill(0, op.offset, op.offset + op.length);
      break;
    case 'discard': {
      // v3 images: discarded whole clusters read as zeroes, with or without a backing file.
      const r = discardRange(plan, op.offset, op.length);
      if (r) disk.fill(0, r[0], r[1]);
      break;
    }
    default:
      break;
  }
}

/**
 * Compare what the guest reads after the crash with the model. `acked` ops are durable;
 * ops [acked, started) may have reached the disk in part. Returns a description of the first
 * few bytes that no allowed state explains.
 */
export function verifyDisk(plan: TrialPlan, actual: Uint8Array, acked: number, started: number): string[] {
  const disk = initialDisk(plan);
  for (let i = 0; i < acked; i++) applyOp(plan, disk, plan.ops[i]!);
  const later = plan.ops.slice(acked, Math.min(started, plan.ops.length));
  /** The value a later op may have left at pos, or null when it does not touch pos. */
  const laterValue = (op: Op, pos: number): number | null => {
    switch (op.kind) {
      case 'write':
      case 'compress':
        return pos >= op.offset && pos < op.offset + op.length ? opByte(op.tag, pos) : null;
      case 'zero':
        return pos >= op.offset && pos < op.offset + op.length ? 0 : null;
      case 'discard': {
        const r = discardRange(plan, op.offset, op.length);
        return r && pos >= r[0] && pos < r[1] ? 0 : null;
      }
      default:
        return null;
    }
  };
  const problems: string[] = [];
  if (actual.length < plan.size) problems.push(`guest disk is ${actual.length} bytes, expected ${plan.size}`);
  for (let p = 0; p < plan.size && problems.length < 5; p++) {
    const v = actual[p] ?? 0;
    if (v === disk[p]) continue;
    const options = later.map((op) => laterValue(op, p)).filter((x): x is number => x !== null);
    if (options.includes(v)) continue;
    const alt = options.length ? ` or one of ${[...new Set(options)].map((x) => `0x${x.toString(16)}`).join(', ')}` : '';
    problems.push(`guest byte ${p} (cluster ${Math.floor(p / plan.clusterSize)}) is 0x${v.toString(16)}, expected 0x${disk[p]!.toString(16)}${alt}`);
  }
  return problems;
}

/** The guest contents when snapshot `name` was taken (all ops before it). */
export function diskAtSnapshot(plan: TrialPlan, name: string): Uint8Array | null {
  const disk = initialDisk(plan);
  for (const op of plan.ops) {
    if (op.kind === 'snapshot' && op.name === name) return disk;
    applyOp(plan, disk, op);
  }
  return null;
}
