/**
 * Differential runs of command sequences against Debian's QEMU 7.2: each sequence runs in a
 * fresh directory once with the real tools and once with qtest's (in-process through the
 * ToolMain the drop-in CLIs call, or through the real drop-in CLI `node bin/qtest.js`), and
 * every compared step's stdout, stderr, `2>&1` text and exit code must be identical after the
 * iotests timing filter. Setup steps run the real tools on both sides, so only the tool under
 * test differs. Shared by the qemu-io sequences (qemu-io.test.ts); qemu-img's own sequences
 * live in img-harness.ts.
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RecordingSink } from '../../src/tools/output.ts';
import type { ToolMain } from '../../src/tools/context.ts';

export const QEMU_IMG = process.env.QEMU_IMG ?? 'qemu-img';
export const QEMU_IO = process.env.QEMU_IO ?? 'qemu-io';
export const haveQemu = spawnSync(QEMU_IMG, ['--version']).status === 0 && spawnSync(QEMU_IO, ['--version']).status === 0;

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const NODE = process.execPath;
const QTEST = path.join(REPO, 'bin/qtest.js');

export type Tool = 'qemu-io' | 'qemu-img';

/** Steps that prepare files directly, the same on both sides (shared with img-harness.ts). */
export type FileStep =
  /** Create a file of `size` bytes filled with `fill`. */
  | { file: string; size: number; fill?: number }
  /** Remove a file. */
  | { rm: string }
  /** Overwrite bytes of a file at an offset (hex string), e.g. to corrupt metadata. */
  | { poke: string; offset: number; hex: string };

/** Carry out a FileStep in `dir`. */
export function applyFileStep(dir: string, step: FileStep): void {
  if ('file' in step) {
    fs.writeFileSync(path.join(dir, step.file), Buffer.alloc(step.size, step.fill ?? 0));
  } else if ('poke' in step) {
    const fd = fs.openSync(path.join(dir, step.poke), 'r+');
    fs.writeSync(fd, Buffer.from(step.hex, 'hex'), 0, step.hex.length / 2, step.offset);
    fs.closeSync(fd);
  } else {
    fs.rmSync(path.join(dir, step.rm), { force: true });
  }
}

export type Step =
  /** qemu-io arguments: compared between the real tool and ours. */
  | { io: string[]; stdin?: string }
  /** qemu-img arguments: compared between the real tool and ours. */
  | { img: string[]; stdin?: string }
  /** Setup with the real qemu-img on both sides (not compared). */
  | { setupImg: string[] }
  /** Setup with the real qemu-io on both sides (not compared). */
  | { setupIo: string[] }
  | FileStep;

export interface Sequence {
  name: string;
  steps: Step[];
  /** Run our side through the drop-in CLI (`node bin/qtest.js qemu-io ...`) instead of in-process. */
  cli?: boolean;
  /** Also compare the md5 of every file left in the directory. */
  compareFiles?: boolean;
  /**
   * Run each compared step once, with separate pipes only (no `2>&1` view). For sequences
   * whose result depends on which blocks of a sparse file are allocated: restoring the
   * directory between the two runs cannot reproduce a file's exact extents.
   */
  separateOnly?: boolean;
}

export interface StepResult {
  step: string;
  exit: number;
  stdout: string;
  stderr: string;
  /** Both streams through one descriptor, as `2>&1` sees them. */
  merged: string;
}

/**
 * The iotests qemu-io filter for statistics lines, plus its equivalent for -C's
 * machine-readable line (not exercised by iotests, timing-dependent as well).
 */
export function timingFilter(text: string): string {
  return text
    .replace(/[0-9]* ops; [0-9/:. sec]* \([0-9/.inf]* [EPTGMKiBbytes]*\/sec and [0-9/.inf]* ops\/sec\)/g, 'X ops; XX:XX:XX.X (XXX YYY/sec and XXX ops/sec)')
    .replace(/^(\d+),(\d+),\d+:\d\d:\d\d\.\d\d,[0-9.inf-]+,[0-9.inf-]+$/gm, '$1,$2,TIME,RATE,RATE');
}

function tmpFile(): string {
  return path.join(os.tmpdir(), `qtest-diff-${process.pid}-${crypto.randomBytes(6).toString('hex')}`);
}

/** Copy a directory's contents (cp keeps sparse files sparse; exact extents may differ). */
function copyTree(from: string, to: string): void {
  fs.mkdirSync(to, { recursive: true });
  const entries = fs.readdirSync(from).map((f) => path.join(from, f));
  if (entries.length === 0) return;
  const r = spawnSync('cp', ['-a', ...entries, to]);
  if (r.status !== 0) throw new Error(`cp failed: ${r.stderr}`);
}

/** Run a program twice: with separate pipes, and with one shared file for stdout+stderr. */
function runProcess(program: string, args: string[], cwd: string, stdin: string | undefined, separateOnly = false): Omit<StepResult, 'step'> {
  const env = { ...process.env, LC_ALL: 'C' };
  const input = stdin ?? '';
  if (separateOnly) {
    const r = spawnSync(program, args, { cwd, encoding: 'utf8', env, input });
    return { exit: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, merged: '' };
  }
  // The step runs twice (separate pipes, then one shared file); the second run starts from
  // the directory state the first one saw.
  const saved = tmpFile();
  copyTree(cwd, saved);
  const sep = spawnSync(program, args, { cwd, encoding: 'utf8', env, input });
  for (const f of fs.readdirSync(cwd)) fs.rmSync(path.join(cwd, f), { recursive: true, force: true });
  copyTree(saved, cwd);
  fs.rmSync(saved, { recursive: true, force: true });
  const file = tmpFile();
  const fd = fs.openSync(file, 'w+');
  let mergedExit: number | null;
  try {
    const m = spawnSync(program, args, { cwd, env, input, stdio: ['pipe', fd, fd] });
    mergedExit = m.status;
  } finally {
    fs.closeSync(fd);
  }
  const merged = fs.readFileSync(file, 'utf8');
  fs.rmSync(file, { force: true });
  const exit = sep.status ?? (sep.signal ? 128 + (os.constants.signals as Record<string, number>)[sep.signal]! : -1);
  if (mergedExit !== sep.status) throw new Error(`${program} ${args.join(' ')}: exit ${sep.status} vs ${mergedExit} between runs`);
  return { exit, stdout: sep.stdout, stderr: sep.stderr, merged };
}

async function loadMain(tool: Tool): Promise<{ main: ToolMain; withStdin?: (argv: string[], ctx: Parameters<ToolMain>[1], readLine: () => string | null) => Promise<number> }> {
  if (tool === 'qemu-io') {
    const mod = await import('../../src/tools/qemu-io/main.ts');
    return { main: mod.qemuIoMain, withStdin: mod.runQemuIo };
  }
  return { main: (await import('../../src/tools/qemu-img/main.ts')).qemuImgMain };
}

async function runInProcess(tool: Tool, args: string[], cwd: string, stdin: string | undefined): Promise<Omit<StepResult, 'step'>> {
  const { main, withStdin } = await loadMain(tool);
  const sink = new RecordingSink();
  const ctx = { out: sink, cwd, env: { ...process.env, LC_ALL: 'C' } };
  let exit: number;
  if (stdin !== undefined && withStdin) {
    const lines = stdin.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    exit = await withStdin(args, ctx, () => (lines.length ? lines.shift()! : null));
  } else {
    exit = await main(args, ctx);
  }
  sink.flushStdout();
  return { exit, stdout: sink.text('stdout'), stderr: sink.text('stderr'), merged: sink.merged() };
}

function describeStep(step: Step): string {
  if ('io' in step) return `qemu-io ${step.io.join(' ')}`;
  if ('img' in step) return `qemu-img ${step.img.join(' ')}`;
  return JSON.stringify(step);
}

function filtered(r: Omit<StepResult, 'step'>, step: string): StepResult {
  return { step, exit: r.exit, stdout: timingFilter(r.stdout), stderr: timingFilter(r.stderr), merged: timingFilter(r.merged) };
}

/** md5 of every file in dir, by name (Sequence.compareFiles). */
export function digest(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, f);
    if (fs.statSync(p).isFile()) out[f] = crypto.createHash('md5').update(fs.readFileSync(p)).digest('hex');
  }
  return out;
}

function setup(program: string, args: string[], cwd: string): void {
  const r = spawnSync(program, args, { cwd, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  if (r.status !== 0) throw new Error(`setup failed: ${program} ${args.join(' ')}: ${r.stderr}`);
}

async function runSide(seq: Sequence, dir: string, ours: boolean): Promise<{ results: StepResult[]; files: Record<string, string> }> {
  for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
  const results: StepResult[] = [];
  for (const step of seq.steps) {
    if ('io' in step || 'img' in step) {
      const tool: Tool = 'io' in step ? 'qemu-io' : 'qemu-img';
      const args = 'io' in step ? step.io : step.img;
      let r: Omit<StepResult, 'step'>;
      if (!ours) r = runProcess(tool === 'qemu-io' ? QEMU_IO : QEMU_IMG, args, dir, step.stdin, seq.separateOnly);
      else if (seq.cli) r = runProcess(NODE, [QTEST, tool, ...args], dir, step.stdin, seq.separateOnly);
      else r = await runInProcess(tool, args, dir, step.stdin);
      if (seq.separateOnly) r = { ...r, merged: '' };
      results.push(filtered(r, describeStep(step)));
    } else if ('setupImg' in step) {
      setup(QEMU_IMG, step.setupImg, dir);
    } else if ('setupIo' in step) {
      setup(QEMU_IO, step.setupIo, dir);
    } else {
      applyFileStep(dir, step);
    }
  }
  return { results, files: seq.compareFiles ? digest(dir) : {} };
}

export interface DifferentialResult {
  real: StepResult[];
  ours: StepResult[];
  realFiles: Record<string, string>;
  ourFiles: Record<string, string>;
}

/** Runs a sequence on both sides in the same fresh directory (paths end up in image headers). */
export async function runDifferential(seq: Sequence): Promise<DifferentialResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-diff-'));
  try {
    const real = await runSide(seq, dir, false);
    const ours = await runSide(seq, dir, true);
    return { real: real.results, ours: ours.results, realFiles: real.files, ourFiles: ours.files };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
