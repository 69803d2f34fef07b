/**
 * Test support: an operation sequence applied three ways — to a plain byte array (the raw
 * model), through the engine, and through real qemu-img/qemu-io — so tests can compare
 * contents, `qemu-img check` results and layouts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileStorage } from '../../storage/file.ts';
import type { Storage } from '../../storage/types.ts';
import { createQcow2, openQcow2 } from '../index.ts';
import type { GuestReader, Qcow2CreateOptions, Qcow2Image } from '../index.ts';
import { qemuImg, qemuIo } from './qemu.ts';

export type Op =
  | { kind: 'write'; offset: number; length: number; pattern: number }
  | { kind: 'zero'; offset: number; length: number; unmap: boolean }
  | { kind: 'discard'; offset: number; length: number }
  | { kind: 'compress'; offset: number; length: number; pattern: number }
  | { kind: 'snapshot'; name: string }
  | { kind: 'apply'; name: string }
  | { kind: 'delete-snapshot'; name: string }
  | { kind: 'resize'; size: number };

export interface Scenario {
  name: string;
  create: Omit<Qcow2CreateOptions, 'backingFile' | 'backingFormat' | 'dataFile'> & {
    /** Use an external data file (named <image>.data). */
    dataFile?: boolean;
  };
  /** Backing image, written by QEMU in both runs (the engine only reads it). */
  backing?: { format: 'qcow2' | 'raw'; size: number; ops: Op[]; clusterSize?: number };
  ops: Op[];
}

/** What one run produced. */
export interface RunOutput {
  image: string;
  dataFile?: string;
  backing?: string;
}

// ---------------------------------------------------------------- raw model

export interface ModelContext {
  clusterSize: number;
  /** v2 images with a backing file ignore discards. */
  ignoreDiscard: boolean;
  /**
   * Shrinking to a size inside a cluster keeps that cluster, so growing again shows its old
   * bytes (as in QEMU). Not with an external data file, which is truncated exactly.
   */
  keepPartialCluster?: boolean;
  /** Bytes of the last partial cluster beyond the size, kept across a shrink. */
  hiddenTail?: { offset: number; bytes: Uint8Array };
}

export function applyModel(model: Uint8Array, op: Op, snapshots: Map<string, Uint8Array>, ctx: ModelContext): Uint8Array {
  switch (op.kind) {
    case 'write':
    case 'compress':
      model.fill(op.pattern, op.offset, op.offset + op.length);
      return model;
    case 'zero':
      model.fill(0, op.offset, op.offset + op.length);
      return model;
    case 'discard': {
      // Only whole clusters are discarded (and the image's partial last cluster); they then
      // read as zeroes: zero flag on v3, unallocated without backing on v2.
      if (ctx.ignoreDiscard) return model;
      const cs = ctx.clusterSize;
      const end = op.offset + op.length;
      const start = Math.ceil(op.offset / cs) * cs;
      let stop = Math.floor(end / cs) * cs;
      if (end === model.length && stop % cs === 0 && stop >= start) stop = end;
      if (stop > start) model.fill(0, start, stop);
      return model;
    }
    case 'snapshot':
      snapshots.set(op.name, model.slice());
      return model;
    case 'apply':
      return snapshots.get(op.name)!.slice();
    case 'delete-snapshot':
      snapshots.delete(op.name);
      return model;
    case 'resize': {
      const m = new Uint8Array(op.size);
      m.set(model.subarray(0, Math.min(op.size, model.length)));
      const cs = ctx.clusterSize;
      if (ctx.keepPartialCluster) {
        if (op.size < model.length) {
          const end = Math.min(Math.ceil(op.size / cs) * cs, model.length);
          ctx.hiddenTail = end > op.size ? { offset: op.size, bytes: model.slice(op.size, end) } : undefined;
        } else if (ctx.hiddenTail && ctx.hiddenTail.offset === model.length) {
          const t = ctx.hiddenTail.bytes;
          m.set(t.subarray(0, Math.min(t.length, op.size - model.length)), model.length);
          ctx.hiddenTail = undefined;
        } else {
          ctx.hiddenTail = undefined;
        }
      }
      return m;
    }
  }
}

// ---------------------------------------------------------------- QEMU commands

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

export function qemuIoCommand(op: Op): string {
  switch (op.kind) {
    case 'write':
      return `write -P ${hex(op.pattern)} ${op.offset} ${op.length}`;
    case 'compress':
      return `write -c -P ${hex(op.pattern)} ${op.offset} ${op.length}`;
    case 'zero':
      return `write -z${op.unmap ? ' -u' : ''} ${op.offset} ${op.length}`;
    case 'discard':
      return `discard ${op.offset} ${op.length}`;
    default:
      throw new Error(`not a qemu-io op: ${op.kind}`);
  }
}

function isIoOp(op: Op): boolean {
  return op.kind === 'write' || op.kind === 'compress' || op.kind === 'zero' || op.kind === 'discard';
}

function createOptionString(sc: Scenario, image: string, backing?: string, backingFmt?: string): string {
  const c = sc.create;
  const o: string[] = [];
  if (c.compat) o.push(`compat=${c.compat}`);
  if (c.clusterSize) o.push(`cluster_size=${c.clusterSize}`);
  if (c.refcountBits) o.push(`refcount_bits=${c.refcountBits}`);
  if (c.extendedL2) o.push('extended_l2=on');
  if (c.compressionType) o.push(`compression_type=${c.compressionType}`);
  if (c.lazyRefcounts) o.push('lazy_refcounts=on');
  if (c.preallocation) o.push(`preallocation=${c.preallocation}`);
  if (c.dataFile) o.push(`data_file=${image}.data`);
  if (c.dataFileRaw) o.push('data_file_raw=on');
  if (backing) o.push(`backing_file=${backing}`, `backing_fmt=${backingFmt}`);
  return o.join(',');
}

function check(r: { status: number; stdout: string; stderr: string }, what: string): void {
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}): ${r.stderr}${r.stdout}`);
}

/** Run a list of ops against an image with real QEMU tools. */
export function qemuApply(image: string, ops: Op[], fmt: 'qcow2' | 'raw' = 'qcow2'): void {
  let batch: string[] = [];
  const flush = (): void => {
    if (!batch.length) return;
    const args = ['-f', fmt];
    for (const c of batch) args.push('-c', c);
    args.push(image);
    const r = qemuIo(args);
    check(r, `qemu-io ${batch.join('; ')}`);
    if (/failed|Pattern verification/.test(r.stdout + r.stderr)) throw new Error(`qemu-io: ${r.stdout}${r.stderr}`);
    batch = [];
  };
  for (const op of ops) {
    if (isIoOp(op)) {
      batch.push(qemuIoCommand(op));
      continue;
    }
    flush();
    switch (op.kind) {
      case 'snapshot':
        check(qemuImg(['snapshot', '-c', op.name, image]), 'snapshot -c');
        break;
      case 'apply':
        check(qemuImg(['snapshot', '-a', op.name, image]), 'snapshot -a');
        break;
      case 'delete-snapshot':
        check(qemuImg(['snapshot', '-d', op.name, image]), 'snapshot -d');
        break;
      case 'resize':
        check(qemuImg(['resize', '-f', fmt, '--shrink', image, String(op.size)]), 'resize');
        break;
      default:
        break;
    }
  }
  flush();
}

function makeBacking(sc: Scenario, dir: string): string | undefined {
  if (!sc.backing) return undefined;
  const b = path.join(dir, `base.${sc.backing.format}`);
  const args = ['create', '-f', sc.backing.format];
  if (sc.backing.format === 'qcow2' && sc.backing.clusterSize) args.push('-o', `cluster_size=${sc.backing.clusterSize}`);
  args.push(b, String(sc.backing.size));
  check(qemuImg(args), 'create backing');
  qemuApply(b, sc.backing.ops, sc.backing.format);
  return b;
}

/** The whole scenario with real QEMU, in dir. */
export function runQemu(sc: Scenario, dir: string): RunOutput {
  fs.mkdirSync(dir, { recursive: true });
  const backing = makeBacking(sc, dir);
  const image = path.join(dir, 'img.qcow2');
  const args = ['create', '-f', 'qcow2'];
  const o = createOptionString(sc, image, backing, sc.backing?.format);
  if (o) args.push('-o', o);
  args.push(image, String(sc.create.size));
  check(qemuImg(args), 'create');
  qemuApply(image, sc.ops);
  return { image, dataFile: sc.create.dataFile ? `${image}.data` : undefined, backing };
}

// ---------------------------------------------------------------- engine

/** A backing node read through FileStorage (raw) or the engine (qcow2). */
export function openBacking(file: string, format: 'qcow2' | 'raw'): { reader: GuestReader; close(): void } {
  const st = FileStorage.open(file, { readOnly: true });
  if (format === 'raw') {
    return {
      reader: {
        length: () => st.size(),
        read: (o, b) => st.read(o, b),
        // file-posix reports holes as zero; reading zeroes is the closest Node can get.
        isZero: (o, len) => {
          const b = new Uint8Array(len);
          st.read(o, b);
          return b.every((x) => x === 0);
        },
      },
      close: () => st.close(),
    };
  }
  const img = openQcow2({ file: st, readOnly: true });
  return {
    reader: imageReader(img),
    close: () => {
      img.close();
      st.close();
    },
  };
}

/** A qcow2 image as a backing node, with zero detection through block status. */
export function imageReader(img: Qcow2Image): GuestReader {
  return {
    length: () => img.virtualSize,
    read: (o, b) => img.read(o, b),
    isZero: (o, len) => {
      let off = o;
      const end = o + len;
      while (off < end) {
        const st = img.blockStatus(off, end - off);
        if (st.kind === 'zero' || st.kind === 'zero-alloc') {
          // zero
        } else if (st.kind === 'unallocated' || st.kind === 'unallocated-alloc') {
          const b = img.backing;
          if (b && (!b.isZero || !b.isZero(off, Math.min(st.length, Math.max(0, b.length() - off))))) {
            if (off < b.length()) return false;
          }
        } else {
          return false;
        }
        off += st.length;
      }
      return true;
    },
  };
}

export function engineApply(img: Qcow2Image, ops: Op[]): void {
  for (const op of ops) {
    switch (op.kind) {
      case 'write':
        img.write(op.offset, new Uint8Array(op.length).fill(op.pattern));
        break;
      case 'compress':
        img.writeCompressed(op.offset, new Uint8Array(op.length).fill(op.pattern));
        break;
      case 'zero':
        img.writeZeroes(op.offset, op.length, { unmap: op.unmap });
        break;
      case 'discard':
        img.discard(op.offset, op.length);
        break;
      case 'snapshot':
        img.createSnapshot({ name: op.name });
        break;
      case 'apply':
        img.applySnapshot(op.name);
        break;
      case 'delete-snapshot':
        img.deleteSnapshot(undefined, op.name);
        break;
      case 'resize':
        img.resize(op.size);
        break;
    }
  }
}

/** Split ops into the units one QEMU process performs. */
export function segments(ops: Op[]): Op[][] {
  const out: Op[][] = [];
  let batch: Op[] = [];
  for (const op of ops) {
    if (isIoOp(op)) {
      batch.push(op);
      continue;
    }
    if (batch.length) out.push(batch);
    batch = [];
    out.push([op]);
  }
  if (batch.length) out.push(batch);
  return out;
}

/** The whole scenario through the engine (the backing image is still made by QEMU). */
export function runEngine(sc: Scenario, dir: string): RunOutput {
  fs.mkdirSync(dir, { recursive: true });
  const backing = makeBacking(sc, dir);
  const image = path.join(dir, 'img.qcow2');
  const file = FileStorage.open(image, { create: true, truncate: true });
  let data: Storage | undefined;
  if (sc.create.dataFile) data = FileStorage.open(`${image}.data`, { create: true, truncate: true });
  const { dataFile: _df, ...rest } = sc.create;
  createQcow2(
    file,
    {
      ...rest,
      dataFile: sc.create.dataFile ? `${image}.data` : undefined,
      backingFile: backing,
      backingFormat: sc.backing?.format,
    },
    data,
  );
  const b = backing ? openBacking(backing, sc.backing!.format) : null;
  try {
    // Open and close the image at the same points as the QEMU run does (one qemu-io per
    // batch of I/O, one qemu-img per snapshot/resize), since a fresh open restarts the
    // cluster allocator's search at the start of the file.
    for (const segment of segments(sc.ops)) {
      const img = openQcow2({ file, dataFile: data ?? null, backing: b?.reader ?? null });
      try {
        engineApply(img, segment);
      } finally {
        img.close();
      }
    }
  } finally {
    b?.close();
    file.close();
    data?.close();
  }
  return { image, dataFile: data ? `${image}.data` : undefined, backing };
}

/** The guest contents the scenario should produce. */
export function modelOf(sc: Scenario): Uint8Array {
  let base = new Uint8Array(0);
  if (sc.backing) {
    base = new Uint8Array(sc.backing.size);
    const bctx = {
      clusterSize: sc.backing.format === 'raw' ? 1 : (sc.backing.clusterSize ?? 65536),
      ignoreDiscard: sc.backing.format === 'raw',
    };
    for (const op of sc.backing.ops) base = applyModel(base, op, new Map(), bctx) as Uint8Array<ArrayBuffer>;
  }
  let m = new Uint8Array(sc.create.size);
  m.set(base.subarray(0, Math.min(base.length, m.length)));
  const snaps = new Map<string, Uint8Array>();
  const ctx: ModelContext = {
    clusterSize: sc.create.clusterSize ?? 65536,
    ignoreDiscard: sc.create.compat === '0.10' && !!sc.backing,
    keepPartialCluster: !sc.create.dataFile,
  };
  for (const op of sc.ops) m = applyModel(m, op, snaps, ctx) as Uint8Array<ArrayBuffer>;
  return m;
}

/** Read a whole image through the engine. */
export function engineReadAll(out: RunOutput, backingFormat?: 'qcow2' | 'raw'): Uint8Array {
  const file = FileStorage.open(out.image, { readOnly: true });
  const data = out.dataFile ? FileStorage.open(out.dataFile, { readOnly: true }) : null;
  const b = out.backing ? openBacking(out.backing, backingFormat!) : null;
  const img = openQcow2({ file, readOnly: true, dataFile: data, backing: b?.reader ?? null });
  try {
    const buf = new Uint8Array(img.virtualSize);
    img.read(0, buf);
    return buf;
  } finally {
    img.close();
    b?.close();
    file.close();
    data?.close();
  }
}
