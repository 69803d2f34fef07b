/**
 * The workloads of issue 4. Each workload yields pairs: one command for real QEMU 7.2 and one
 * for qtest, run alternately by run.ts. A pair may prepare state before each run (a fresh
 * image), check that both sides printed the same thing, and verify qtest's result with real
 * qemu-img once.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command, Timed } from './lib/proc.ts';
import { runChecked } from './lib/proc.ts';
import { writeScalingImage, writeScatteredRaw } from './lib/images.ts';

export type SideName = 'qemu' | 'qtest';

export interface BenchContext {
  /** Project root (where bin/qtest.js lives). */
  root: string;
  /** Scratch directory for images, on the disk being measured. */
  work: string;
  /** The Node that runs qtest. */
  node: string;
  /** Real qemu-img. */
  qemuImg: string;
  log: (line: string) => void;
}

export interface Pair {
  /** Row label inside the workload's table. */
  label: string;
  commands: Record<SideName, Command>;
  /** Called before every run of a side (warm-up and counted), outside the timing. */
  prepare?: (side: SideName) => void;
  /** Called after every run of a side, outside the timing (cleanup of large outputs). */
  after?: (side: SideName) => void;
  /** Given the first counted run of each side: null when they agree, else what differs. */
  compare?: (qemu: Timed, qtest: Timed) => string | null;
  /** Called once after qtest's first counted run: check its result with real QEMU. */
  verify?: () => string | null;
  /** Pulls a tool-reported duration (seconds) out of the output, e.g. qemu-img bench's. */
  reported?: (run: Timed) => number | null;
  /** Extra facts for the series (workload 4). */
  facts?: Record<string, string | number>;
}

export interface Workload {
  id: string;
  title: string;
  /** Target ratio qtest/QEMU (median over median), or null for a series without target. */
  target: number | null;
  pairs: (ctx: BenchContext) => Pair[];
  cleanup?: (ctx: BenchContext) => void;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

function qtest(ctx: BenchContext, ...args: string[]): Command {
  return { argv: [ctx.node, path.join(ctx.root, 'bin', 'qtest.js'), ...args], cwd: ctx.work };
}

function qemuImg(ctx: BenchContext, ...args: string[]): Command {
  return { argv: [ctx.qemuImg, ...args], cwd: ctx.work };
}

function sameText(what: string): (q: Timed, t: Timed) => string | null {
  return (q, t) => (q.stdout === t.stdout && q.stderr === t.stderr ? null : `${what} differs between QEMU and qtest`);
}

// ---------------------------------------------------------------------------------------------
// 1. The whole scenario on both backends.

const scenario244: Workload = {
  id: '1',
  title: 'qtest run 244: builtin backend vs qemu backend (real binaries)',
  target: 0.1,
  pairs(ctx) {
    const env = { QTEST_STATE: path.join(ctx.work, 'state'), QTEST_SCRATCH: path.join(ctx.work, 'scratch') };
    const run = (backend: string): Command => ({ ...qtest(ctx, 'run', '244', '--backend', backend), cwd: ctx.root, env });
    return [
      {
        label: 'run 244',
        commands: { qemu: run('qemu'), qtest: run('builtin') },
        compare: (q, t) => {
          const passed = (r: Timed): boolean => r.status === 0 && /1 passed, 0 failed/.test(r.stdout);
          return passed(q) && passed(t) ? null : 'scenario 244 did not pass on both backends';
        },
      },
    ];
  },
};

// ---------------------------------------------------------------------------------------------
// 2. qemu-img bench.

const BENCH_LINE = /^Run completed in (\d+\.\d{3}) seconds\.$/m;

function benchReported(run: Timed): number | null {
  const m = BENCH_LINE.exec(run.stdout);
  return m ? Number(m[1]) : null;
}

/** Same request line, and both report a completion time in 7.2's format. */
function sameBenchOutput(q: Timed, t: Timed): string | null {
  const first = (r: Timed): string => r.stdout.split('\n')[0] ?? '';
  const lines = (r: Timed): number => r.stdout.trimEnd().split('\n').length;
  if (first(q) !== first(t)) return `first line differs: ${JSON.stringify(first(q))} vs ${JSON.stringify(first(t))}`;
  if (lines(q) !== lines(t) || !BENCH_LINE.test(q.stdout) || !BENCH_LINE.test(t.stdout)) return 'output shape differs';
  if (q.stderr !== t.stderr) return 'stderr differs';
  return null;
}

interface BenchSpec {
  id: string;
  size: number;
  args: string[];
  write: boolean;
}

const BENCH_SPECS: BenchSpec[] = [
  { id: '2a', size: 4 * GiB, args: ['-s', '1M', '-c', '2048'], write: true },
  { id: '2b', size: 4 * GiB, args: ['-s', '1M', '-c', '2048'], write: false },
  { id: '2c', size: 8 * GiB, args: ['-s', '4k', '-c', '100000', '-S', '65536'], write: true },
  { id: '2d', size: 8 * GiB, args: ['-s', '4k', '-c', '100000', '-S', '65536'], write: false },
  { id: '2e', size: 8 * GiB, args: ['-s', '4k', '-c', '100000', '-S', '4096'], write: true },
];

function benchWorkload(spec: BenchSpec): Workload {
  const sizeText = `${spec.size / GiB}G`;
  return {
    id: spec.id,
    title: `qemu-img bench -t writeback ${spec.write ? '-w ' : ''}${spec.args.join(' ')} on a fresh ${sizeText} qcow2` +
      (spec.write ? '' : ' (written once by real qemu-img bench -w)'),
    target: 1.0,
    pairs(ctx) {
      const image = (side: SideName): string => path.join(ctx.work, `bench-${spec.id}-${side}.qcow2`);
      const benchArgs = (file: string): string[] => ['bench', '-t', 'writeback', ...(spec.write ? ['-w'] : []), ...spec.args, file];
      const create = (file: string): void => {
        fs.rmSync(file, { force: true });
        runChecked(qemuImg(ctx, 'create', '-q', '-f', 'qcow2', file, sizeText));
      };
      let readImage: string | null = null;
      if (!spec.write) {
        // Both sides read the same image, written once by real QEMU with the matching write run.
        readImage = path.join(ctx.work, `bench-${spec.id}-source.qcow2`);
        create(readImage);
        runChecked(qemuImg(ctx, 'bench', '-q', '-t', 'writeback', '-w', ...spec.args, readImage));
      }
      const fileFor = (side: SideName): string => readImage ?? image(side);
      return [
        {
          label: `${spec.write ? 'write' : 'read'} ${spec.args.join(' ')}`,
          commands: { qemu: qemuImg(ctx, ...benchArgs(fileFor('qemu'))), qtest: qtest(ctx, 'qemu-img', ...benchArgs(fileFor('qtest'))) },
          prepare: (side) => {
            if (spec.write) create(image(side));
          },
          after: (side) => {
            if (spec.write) fs.rmSync(image(side), { force: true });
          },
          compare: sameBenchOutput,
          verify: spec.write
            ? () => {
                // The bench's own image is removed after each run; check one written now.
                const file = image('qtest');
                create(file);
                runChecked(qtest(ctx, 'qemu-img', ...benchArgs(file)));
                const out = runChecked(qemuImg(ctx, 'check', file));
                fs.rmSync(file, { force: true });
                return /No errors were found/.test(out) ? null : `qemu-img check of qtest's image: ${out}`;
              }
            : undefined,
          reported: benchReported,
        },
      ];
    },
    cleanup(ctx) {
      fs.rmSync(path.join(ctx.work, `bench-${spec.id}-source.qcow2`), { force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// 3. convert.

const convertWorkload: Workload = {
  id: '3',
  title: 'qemu-img convert -O qcow2 of a 1 GiB qcow2, half allocated in scattered 64 KiB runs',
  target: 1.0,
  pairs(ctx) {
    const raw = path.join(ctx.work, 'convert-source.raw');
    const source = path.join(ctx.work, 'convert-source.qcow2');
    const out = (side: SideName): string => path.join(ctx.work, `convert-out-${side}.qcow2`);
    const runs = writeScatteredRaw(raw, GiB, 64 * KiB, 244);
    runChecked(qemuImg(ctx, 'convert', '-f', 'raw', '-O', 'qcow2', raw, source));
    fs.rmSync(raw);
    ctx.log(`  source: ${runs} data runs of 64 KiB (${((runs * 64 * KiB) / MiB).toFixed(0)} MiB) in 1 GiB`);
    return [
      {
        label: 'convert -O qcow2',
        commands: {
          qemu: qemuImg(ctx, 'convert', '-O', 'qcow2', source, out('qemu')),
          qtest: qtest(ctx, 'qemu-img', 'convert', '-O', 'qcow2', source, out('qtest')),
        },
        prepare: (side) => fs.rmSync(out(side), { force: true }),
        compare: sameText('output'),
        verify: () => {
          const cmp = runChecked(qemuImg(ctx, 'compare', source, out('qtest')));
          const check = runChecked(qemuImg(ctx, 'check', out('qtest')));
          if (!/Images are identical/.test(cmp)) return `qemu-img compare: ${cmp}`;
          if (!/No errors were found/.test(check)) return `qemu-img check: ${check}`;
          const sizes = [out('qemu'), out('qtest')].map((f) => fs.statSync(f).size);
          return sizes[0] === sizes[1] ? null : `output sizes differ: QEMU ${sizes[0]}, qtest ${sizes[1]}`;
        },
      },
    ];
  },
  cleanup(ctx) {
    for (const f of ['convert-source.qcow2', 'convert-out-qemu.qcow2', 'convert-out-qtest.qcow2']) {
      fs.rmSync(path.join(ctx.work, f), { force: true });
    }
  },
};

// ---------------------------------------------------------------------------------------------
// 4. Scaling of map and check with allocated clusters, not virtual size.

export const SCALING_IMAGES: Array<{ name: string; virtualSize: number; allocated: number }> = [
  { name: '1G-100k', virtualSize: GiB, allocated: 100_000 },
  { name: '64G-100k', virtualSize: 64 * GiB, allocated: 100_000 },
  { name: '1T-100k', virtualSize: TiB, allocated: 100_000 },
  { name: '1T-10k', virtualSize: TiB, allocated: 10_000 },
  { name: '1T-1M', virtualSize: TiB, allocated: 1_000_000 },
];

function scalingWorkload(id: string, command: 'map' | 'check'): Workload {
  const args = command === 'map' ? ['map', '--output=json'] : ['check'];
  return {
    id,
    title: `qemu-img ${args.join(' ')} on 4 KiB-cluster qcow2 images: virtual size vs allocated clusters`,
    target: null,
    pairs(ctx) {
      return SCALING_IMAGES.map((img) => {
        const file = path.join(ctx.work, `scaling-${img.name}.qcow2`);
        if (!fs.existsSync(file)) {
          const start = Date.now();
          const built = writeScalingImage(file, img.virtualSize, img.allocated);
          const out = runChecked(qemuImg(ctx, 'check', file));
          if (!/No errors were found/.test(out)) throw new Error(`scaling image ${img.name} fails qemu-img check:\n${out}`);
          ctx.log(`  built ${img.name}: ${(built.fileSize / MiB).toFixed(0)} MiB host file in ${Date.now() - start} ms, qemu-img check clean`);
        }
        return {
          label: `${command} ${img.name}`,
          commands: { qemu: qemuImg(ctx, ...args, file), qtest: qtest(ctx, 'qemu-img', ...args, file) },
          compare: sameText(`${command} output`),
          facts: { image: img.name, virtualSize: img.virtualSize, allocatedClusters: img.allocated },
        };
      });
    },
  };
}

export function scalingCleanup(ctx: BenchContext): void {
  for (const img of SCALING_IMAGES) fs.rmSync(path.join(ctx.work, `scaling-${img.name}.qcow2`), { force: true });
}

export const WORKLOADS: Workload[] = [
  scenario244,
  ...BENCH_SPECS.map(benchWorkload),
  convertWorkload,
  scalingWorkload('4-map', 'map'),
  { ...scalingWorkload('4-check', 'check'), cleanup: scalingCleanup },
];

/** Workload 5 is not run on its own: it reads qtest's peak RSS from these. */
export const MEMORY_SOURCES = ['2a', '4-map', '4-check'];
export const MEMORY_LIMIT_KIB = 200 * 1024;
