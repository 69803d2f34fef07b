/**
 * Deterministic generator of interop scenarios: a matrix of image configurations
 * (cluster size, refcount width, v2/v3, extended L2, backing, data file, compression,
 * snapshots, lazy refcounts, preallocation) times random operation sequences that respect
 * what both QEMU and the engine accept (e.g. compressed writes only to untouched clusters).
 */
import type { Op, Scenario } from './scenario.ts';

/** mulberry32: small, seedable, good enough for test data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface GenConfig {
  clusterSize: number;
  refcountBits?: number;
  compat?: '0.10' | '1.1';
  extendedL2?: boolean;
  dataFile?: boolean;
  dataFileRaw?: boolean;
  backing?: 'qcow2' | 'raw';
  compression?: 'zlib' | 'zstd';
  snapshots?: boolean;
  lazyRefcounts?: boolean;
  preallocation?: 'metadata' | 'falloc' | 'full';
  resize?: boolean;
  size?: number;
}

const M = 1 << 20;

/** The configuration matrix; every entry becomes one scenario. */
export const CONFIGS: GenConfig[] = [
  { clusterSize: 65536 },
  { clusterSize: 4096 },
  { clusterSize: 512 },
  { clusterSize: 2 * M, size: 32 * M },
  { clusterSize: 16384, refcountBits: 1 },
  { clusterSize: 4096, refcountBits: 2 },
  { clusterSize: 8192, refcountBits: 4 },
  { clusterSize: 65536, refcountBits: 8 },
  { clusterSize: 32768, refcountBits: 32 },
  { clusterSize: 1024, refcountBits: 64 },
  { clusterSize: 65536, compat: '0.10' },
  { clusterSize: 4096, compat: '0.10' },
  { clusterSize: 65536, compat: '0.10', backing: 'qcow2' },
  { clusterSize: 65536, extendedL2: true },
  { clusterSize: 16384, extendedL2: true },
  { clusterSize: 131072, extendedL2: true, backing: 'qcow2' },
  { clusterSize: 65536, backing: 'qcow2' },
  { clusterSize: 4096, backing: 'raw' },
  { clusterSize: 65536, backing: 'raw', lazyRefcounts: true },
  { clusterSize: 65536, dataFile: true },
  { clusterSize: 4096, dataFile: true },
  { clusterSize: 65536, dataFile: true, dataFileRaw: true },
  { clusterSize: 512, dataFile: true, dataFileRaw: true, size: 2 * M },
  { clusterSize: 65536, dataFile: true, backing: 'qcow2' },
  { clusterSize: 65536, compression: 'zlib' },
  { clusterSize: 4096, compression: 'zlib' },
  { clusterSize: 65536, compression: 'zstd' },
  { clusterSize: 16384, compression: 'zstd', refcountBits: 8 },
  { clusterSize: 65536, compression: 'zlib', extendedL2: true },
  { clusterSize: 65536, compression: 'zlib', backing: 'qcow2' },
  { clusterSize: 65536, snapshots: true },
  { clusterSize: 4096, snapshots: true },
  { clusterSize: 65536, snapshots: true, compat: '0.10' },
  { clusterSize: 65536, snapshots: true, compression: 'zlib' },
  { clusterSize: 65536, snapshots: true, extendedL2: true },
  { clusterSize: 512, snapshots: true, refcountBits: 4 },
  { clusterSize: 65536, snapshots: true, backing: 'qcow2' },
  { clusterSize: 65536, lazyRefcounts: true },
  { clusterSize: 65536, preallocation: 'metadata' },
  { clusterSize: 4096, preallocation: 'falloc', size: 4 * M },
  { clusterSize: 65536, preallocation: 'full', size: 4 * M },
  { clusterSize: 65536, preallocation: 'metadata', extendedL2: true, backing: 'qcow2' },
  { clusterSize: 65536, resize: true },
  { clusterSize: 4096, resize: true, compat: '0.10' },
  { clusterSize: 65536, resize: true, dataFile: true, dataFileRaw: true },
  { clusterSize: 65536, extendedL2: true, dataFile: true },
];

/** Whether the layout of engine and QEMU images must match (zlib output may differ). */
export function layoutComparable(sc: Scenario): boolean {
  return !sc.ops.some((o) => o.kind === 'compress');
}

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

export function generateScenario(cfg: GenConfig, seed: number): Scenario {
  const r = rng(seed);
  const cs = cfg.clusterSize;
  let size = cfg.size ?? 8 * M;
  const touched = new Set<number>();
  const markTouched = (off: number, len: number): void => {
    for (let c = Math.floor(off / cs); c * cs < off + len; c++) touched.add(c);
  };
  if (cfg.preallocation) markTouched(0, size);
  const sector = (max: number): number => Math.floor(r() * (max / 512)) * 512;
  const anyLen = (): number => {
    const k = r();
    if (k < 0.3) return 1 + Math.floor(r() * 4096);
    if (k < 0.7) return (1 + Math.floor(r() * 3)) * cs;
    return 512 * (1 + Math.floor(r() * 2048));
  };
  const range = (aligned: boolean): { offset: number; length: number } => {
    let offset = aligned ? Math.floor(r() * (size / cs)) * cs : r() < 0.5 ? sector(size) : Math.floor(r() * size);
    let length = aligned ? (1 + Math.floor(r() * 4)) * cs : anyLen();
    if (offset >= size) offset = size - 512;
    if (offset + length > size) length = size - offset;
    return { offset, length };
  };
  const ops: Op[] = [];
  const snaps: string[] = [];
  let pattern = 0x10;
  const n = 8 + Math.floor(r() * 8);
  const canCompress = !!cfg.compression && !cfg.dataFile;
  const canSnapshot = !!cfg.snapshots && !cfg.dataFile && (cfg.refcountBits ?? 16) > 1;
  for (let i = 0; i < n; i++) {
    const k = r();
    if (canCompress && k < 0.25) {
      const free: number[] = [];
      for (let c = 0; c * cs < size; c++) if (!touched.has(c)) free.push(c);
      if (free.length) {
        const c = pick(r, free);
        let run = 1;
        while (run < 4 && !touched.has(c + run) && (c + run) * cs < size) run++;
        const length = Math.min(run * cs, size - c * cs);
        ops.push({ kind: 'compress', offset: c * cs, length, pattern: pattern++ });
        markTouched(c * cs, length);
        continue;
      }
    }
    if (canSnapshot && k > 0.85) {
      const kk = r();
      if (kk < 0.5 || !snaps.length) {
        const name = `s${i}`;
        snaps.push(name);
        ops.push({ kind: 'snapshot', name });
      } else if (kk < 0.8) {
        ops.push({ kind: 'apply', name: pick(r, snaps) });
      } else {
        const name = snaps.splice(Math.floor(r() * snaps.length), 1)[0]!;
        ops.push({ kind: 'delete-snapshot', name });
      }
      continue;
    }
    if (cfg.resize && k > 0.85) {
      // Grow by whole MiB, or shrink (keeping at least 1 MiB), sector aligned either way.
      if (r() < 0.5 || size <= 2 * M) size += (1 + Math.floor(r() * 4)) * M;
      else size = Math.max(M, size - 512 * (1 + Math.floor(r() * ((size - M) / 512))));
      ops.push({ kind: 'resize', size });
      if (cfg.preallocation) markTouched(0, size);
      continue;
    }
    const kind = r();
    if (kind < 0.55) {
      const { offset, length } = range(r() < 0.4);
      ops.push({ kind: 'write', offset, length, pattern: pattern++ });
      markTouched(offset, length);
    } else if (kind < 0.8) {
      const { offset, length } = range(r() < 0.5);
      const unmap = r() < 0.5;
      ops.push({ kind: 'zero', offset, length, unmap });
      // Unaligned heads/tails become explicit writes (allocations); aligned parts may keep
      // zero-alloc clusters: either way they are no longer targets for compression.
      markTouched(offset, length);
    } else {
      const { offset, length } = range(r() < 0.6);
      ops.push({ kind: 'discard', offset, length });
    }
  }
  const sc: Scenario = {
    name: describe(cfg, seed),
    create: {
      size: cfg.size ?? 8 * M,
      clusterSize: cs,
      refcountBits: cfg.refcountBits,
      compat: cfg.compat,
      extendedL2: cfg.extendedL2,
      dataFile: cfg.dataFile,
      dataFileRaw: cfg.dataFileRaw,
      compressionType: cfg.compression === 'zstd' ? 'zstd' : undefined,
      lazyRefcounts: cfg.lazyRefcounts,
      preallocation: cfg.preallocation,
    },
    ops,
  };
  if (cfg.backing) {
    const bsize = Math.max(M, (cfg.size ?? 8 * M) - 2 * M);
    const bops: Op[] = [];
    for (let i = 0; i < 5; i++) {
      let offset = sector(bsize);
      let length = 512 * (1 + Math.floor(r() * 1024));
      if (offset + length > bsize) length = bsize - offset;
      bops.push({ kind: 'write', offset, length, pattern: 0xa0 + i });
      offset = 0;
    }
    sc.backing = { format: cfg.backing, size: bsize, ops: bops };
  }
  return sc;
}

function describe(cfg: GenConfig, seed: number): string {
  const parts = [`cs=${cfg.clusterSize}`];
  if (cfg.refcountBits) parts.push(`rb=${cfg.refcountBits}`);
  if (cfg.compat) parts.push(`compat=${cfg.compat}`);
  if (cfg.extendedL2) parts.push('extl2');
  if (cfg.dataFile) parts.push(cfg.dataFileRaw ? 'data_file_raw' : 'data_file');
  if (cfg.backing) parts.push(`backing=${cfg.backing}`);
  if (cfg.compression) parts.push(cfg.compression);
  if (cfg.snapshots) parts.push('snapshots');
  if (cfg.lazyRefcounts) parts.push('lazy');
  if (cfg.preallocation) parts.push(`prealloc=${cfg.preallocation}`);
  if (cfg.resize) parts.push('resize');
  return `${parts.join(' ')} #${seed}`;
}
