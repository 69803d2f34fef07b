/**
 * The valid images mutants start from. Each seed is a short recipe of qemu-img / qemu-io
 * command lines, made twice: by real QEMU (maker "qemu") and by qtest's own tools in-process
 * (maker "engine"), so mutations hit both QEMU's layouts and the engine's. Images are small
 * (1-4 MiB virtual) so that reading every cluster of a mutant stays cheap.
 *
 * Compressed writes cover one cluster each: QEMU compresses the clusters of one request in
 * parallel threads, so their order in the file would vary from run to run.
 *
 * Snapshot dates and VM clocks are set to fixed values afterwards, so a seed's bytes (and with
 * them every mutant of a given fuzz seed) are the same on every run.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RecordingSink } from '../src/tools/output.ts';
import { qemuImgMain } from '../src/tools/qemu-img/main.ts';
import { qemuIoMain } from '../src/tools/qemu-io/main.ts';
import { parseLayout } from './layout.ts';

export type Maker = 'engine' | 'qemu';

type Step = ['qemu-img' | 'qemu-io', ...string[]];

export interface SeedRecipe {
  name: string;
  /** The image mutants are made of; every other file the steps create is a companion. */
  main: string;
  steps: Step[];
  /** Only these makers can produce it (the engine cannot create persistent bitmaps). */
  makers?: Maker[];
}

const IMG = 'img.qcow2';
const io = (...cmds: string[]): Step => ['qemu-io', '-f', 'qcow2', ...cmds.flatMap((c) => ['-c', c]), IMG];

export const SEED_RECIPES: SeedRecipe[] = [
  {
    name: 'plain',
    main: IMG,
    steps: [
      ['qemu-img', 'create', '-f', 'qcow2', IMG, '4M'],
      io('write -P 0x11 0 200k', 'write -P 0x22 1M 64k', 'write -z 2M 128k', 'write -P 0x33 3M 4k', 'discard 1M 64k'),
    ],
  },
  {
    name: 'small-clusters',
    main: IMG,
    steps: [
      ['qemu-img', 'create', '-f', 'qcow2', '-o', 'cluster_size=512,refcount_bits=4', IMG, '1M'],
      io('write -P 0x11 0 20k', 'write -P 0x22 300k 3k', 'write -z 600k 2k', 'write -P 0x44 1023k 1k'),
    ],
  },
  {
    name: 'extl2-zstd',
    main: IMG,
    steps: [
      ['qemu-img', 'create', '-f', 'qcow2', '-o', 'extended_l2=on,compression_type=zstd,cluster_size=64k', IMG, '4M'],
      io('write -P 0x11 0 6k', 'write -P 0x22 70k 2k', 'write -z 128k 8k', 'write -c -P 0x55 1M 64k', 'write -P 0x66 2M 130k'),
    ],
  },
  {
    name: 'v2-snapshots',
    main: IMG,
    steps: [
      ['qemu-img', 'create', '-f', 'qcow2', '-o', 'compat=0.10', IMG, '4M'],
      io('write -P 0x11 0 128k', 'write -P 0x22 2M 64k'),
      ['qemu-img', 'snapshot', '-c', 'one', IMG],
      io('write -P 0x33 64k 64k', 'write -P 0x44 3M 1k'),
    ],
  },
  {
    name: 'snapshots',
    main: IMG,
    steps: [
      ['qemu-img', 'create', '-f', 'qcow2', '-o', 'cluster_size=4k', IMG, '2M'],
      io('write -P 0x11 0 40k', 'write -P 0x22 1M 8k'),
      ['qemu-img', 'snapshot', '-c', 'one', IMG],
      io('write -P 0x33 4k 8k', 'write -z 1M 4k', 'write -P 0x44 1536k 4k'),
      ['qemu-img', 'snapshot', '-c', 'two', IMG],
      io('discard 0 4k', 'write -P 0x55 8k 1k'),
    ],
  },
  {
    name: 'compressed',
    main: IMG,
    steps: [
      ['qemu-img', 'create', '-f', 'qcow2', IMG, '4M'],
      io('write -c -P 0x11 0 64k', 'write -c -P 0x22 64k 64k', 'write -c -P 0x33 1M 64k', 'write -c -P 0x34 1088k 64k', 'write -P 0x44 2M 64k', 'write -c -P 0x55 3M 64k'),
    ],
  },
  {
    name: 'compressed-small',
    main: IMG,
    steps: [
      ['qemu-img', 'create', '-f', 'qcow2', '-o', 'cluster_size=4k,refcount_bits=64', IMG, '1M'],
      io('write -c -P 0x11 0 4k', 'write -c -P 0x22 8k 4k', 'write -c -P 0x23 12k 4k', 'write -c -P 0x24 16k 4k', 'write -P 0x33 64k 8k', 'write -c -P 0x44 512k 4k'),
    ],
  },
  {
    name: 'data-file',
    main: IMG,
    steps: [
      ['qemu-img', 'create', '-f', 'qcow2', '-o', 'data_file=img.data', IMG, '4M'],
      io('write -P 0x11 0 100k', 'write -P 0x22 2M 64k', 'write -z 3M 64k'),
    ],
  },
  {
    name: 'data-file-raw',
    main: IMG,
    steps: [
      ['qemu-img', 'create', '-f', 'qcow2', '-o', 'data_file=img.data,data_file_raw=on,cluster_size=16k', IMG, '2M'],
      io('write -P 0x11 0 40k', 'write -P 0x22 1M 16k'),
    ],
  },
  {
    name: 'backing',
    main: IMG,
    steps: [
      ['qemu-img', 'create', '-f', 'qcow2', 'base.qcow2', '4M'],
      ['qemu-io', '-f', 'qcow2', '-c', 'write -P 0xaa 0 4M', 'base.qcow2'],
      ['qemu-img', 'create', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', IMG, '4M'],
      io('write -P 0x11 1k 2k', 'write -P 0x22 1M 64k', 'write -z 2M 64k', 'discard 3M 64k'),
    ],
  },
  {
    name: 'backing-raw',
    main: IMG,
    steps: [
      ['qemu-img', 'create', '-f', 'raw', 'base.raw', '2M'],
      ['qemu-io', '-f', 'raw', '-c', 'write -P 0xbb 0 2M', 'base.raw'],
      ['qemu-img', 'create', '-f', 'qcow2', '-o', 'cluster_size=8k', '-b', 'base.raw', '-F', 'raw', IMG, '2M'],
      io('write -P 0x11 100 300', 'write -P 0x22 1M 8k'),
    ],
  },
  {
    name: 'bitmaps',
    main: IMG,
    makers: ['qemu'],
    steps: [
      ['qemu-img', 'create', '-f', 'qcow2', IMG, '4M'],
      ['qemu-img', 'bitmap', '--add', IMG, 'b0'],
      ['qemu-img', 'bitmap', '--add', '-g', '128k', IMG, 'b1'],
      io('write -P 0x11 0 64k', 'write -P 0x22 2M 64k'),
    ],
  },
  {
    name: 'prealloc-metadata',
    main: IMG,
    steps: [
      ['qemu-img', 'create', '-f', 'qcow2', '-o', 'preallocation=metadata,cluster_size=32k,refcount_bits=8', IMG, '2M'],
      io('write -P 0x11 32k 40k'),
    ],
  },
  {
    name: 'lazy-refcounts',
    main: IMG,
    steps: [
      ['qemu-img', 'create', '-f', 'qcow2', '-o', 'lazy_refcounts=on,refcount_bits=1', IMG, '4M'],
      io('write -P 0x11 0 64k', 'write -P 0x22 1M 192k'),
    ],
  },
];

export interface Seed {
  recipe: SeedRecipe;
  maker: Maker;
  /** Where the seed's files live (the main image and its companions). */
  dir: string;
  image: Uint8Array;
  companions: string[];
}

export function seedId(seed: Pick<Seed, 'recipe' | 'maker'>): string {
  return `${seed.recipe.name}/${seed.maker}`;
}

function runReal(step: Step, cwd: string): void {
  const [tool, ...args] = step;
  const r = spawnSync(tool, args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`seed step failed: ${step.join(' ')}: ${r.stderr || r.error?.message}`);
}

async function runBuiltin(step: Step, cwd: string): Promise<void> {
  const [tool, ...args] = step;
  const out = new RecordingSink();
  const main = tool === 'qemu-img' ? qemuImgMain : qemuIoMain;
  const status = await main(args, { out, cwd, env: process.env });
  out.flushStdout();
  if (status !== 0) throw new Error(`seed step failed (builtin): ${step.join(' ')}: ${out.text('stderr')}`);
}

/** Fixed snapshot dates and clocks: QEMU writes the wall clock there. */
function normalizeSnapshots(file: string): void {
  const b = fs.readFileSync(file);
  const layout = parseLayout(b);
  let changed = false;
  for (const f of layout.fields) {
    if (f.kind !== 'snapshot' || !f.name.endsWith('.date_sec')) continue;
    // date_sec, date_nsec and vm_clock_nsec are 16 consecutive bytes.
    b.writeUInt32BE(1_600_000_000, f.offset);
    b.writeUInt32BE(0, f.offset + 4);
    b.writeBigUInt64BE(0n, f.offset + 8);
    changed = true;
  }
  if (changed) fs.writeFileSync(file, b);
}

export function haveQemuImg(): boolean {
  const r = spawnSync('qemu-img', ['--version'], { encoding: 'utf8' });
  const q = spawnSync('qemu-io', ['--version'], { encoding: 'utf8' });
  return r.status === 0 && q.status === 0;
}

/** Build one seed in `dir` (created empty). */
export async function buildSeed(recipe: SeedRecipe, maker: Maker, dir: string): Promise<Seed> {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  for (const step of recipe.steps) {
    if (maker === 'qemu') runReal(step, dir);
    else await runBuiltin(step, dir);
  }
  const main = path.join(dir, recipe.main);
  normalizeSnapshots(main);
  const companions = fs.readdirSync(dir).filter((n) => n !== recipe.main).sort();
  return { recipe, maker, dir, image: new Uint8Array(fs.readFileSync(main)), companions };
}

/** Every recipe by every available maker, in a fixed order. */
export async function buildSeeds(root: string, makers: Maker[], only?: string[]): Promise<Seed[]> {
  const seeds: Seed[] = [];
  for (const recipe of SEED_RECIPES) {
    if (only && !only.includes(recipe.name)) continue;
    for (const maker of makers) {
      if (recipe.makers && !recipe.makers.includes(maker)) continue;
      seeds.push(await buildSeed(recipe, maker, path.join(root, `${recipe.name}.${maker}`)));
    }
  }
  return seeds;
}
